# written by `mome experiment random-labels`; run in this folder: gnuplot plot.gp
set terminal svg size 1260,760 font 'sans,12' background rgb 'white'
set output 'random_labels.svg'
set datafile separator ','
set grid
set xrange [0:*]
set xlabel 'epoch (pass over the facts still training)'
set key box opaque
set multiplot layout 2,3 title 'True vs random 32-character answers (NQ-open questions)'
set logscale y
set autoscale y
set key top right
set ylabel 'mean answer loss (nats)'
set title "MoME (frozen model + memory; engine)"
plot 'curve_mome_true.csv' skip 1 using 1:($4 > 0 ? $4 : 1/0) with linespoints lw 2 pt 7 ps 0.5 title 'true', \
     'curve_mome_random.csv' skip 1 using 1:($4 > 0 ? $4 : 1/0) with linespoints lw 2 pt 5 ps 0.5 title 'random'
unset logscale y
set yrange [0:1.05]
set key bottom right
set ylabel 'exact recall'
set title 'MoME: greedy answers, engine'
plot 'curve_mome_true.csv' skip 1 using 1:($5/$7) with linespoints lw 2 pt 7 ps 0.5 title 'true', \
     'curve_mome_random.csv' skip 1 using 1:($5/$7) with linespoints lw 2 pt 5 ps 0.5 title 'random'
set autoscale y
set key top left
set ylabel 'held-out perplexity'
set title 'MoME: perplexity, engine'
plot 'ppl_mome_true.csv' skip 1 using 1:2 with linespoints lw 2 pt 7 title 'true', \
     'ppl_mome_random.csv' skip 1 using 1:2 with linespoints lw 2 pt 5 title 'random'
set logscale y
set autoscale y
set key top right
set ylabel 'mean answer loss (nats)'
set title "LoRA (rank 8, all blocks; f32 stack)"
plot 'curve_lora_true.csv' skip 1 using 1:($4 > 0 ? $4 : 1/0) with linespoints lw 2 pt 7 ps 0.5 title 'true', \
     'curve_lora_random.csv' skip 1 using 1:($4 > 0 ? $4 : 1/0) with linespoints lw 2 pt 5 ps 0.5 title 'random'
unset logscale y
set yrange [0:1.05]
set key bottom right
set ylabel 'exact recall'
set title 'LoRA: every answer token the argmax'
plot 'curve_lora_true.csv' skip 1 using 1:($5/$7) with linespoints lw 2 pt 7 ps 0.5 title 'true', \
     'curve_lora_random.csv' skip 1 using 1:($5/$7) with linespoints lw 2 pt 5 ps 0.5 title 'random'
set autoscale y
set key top left
set ylabel 'held-out perplexity'
set title 'LoRA: perplexity, f32 stack'
plot 'ppl_lora_true.csv' skip 1 using 1:2 with linespoints lw 2 pt 7 title 'true', \
     'ppl_lora_random.csv' skip 1 using 1:2 with linespoints lw 2 pt 5 title 'random'
unset multiplot
