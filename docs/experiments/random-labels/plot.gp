# written by `mome experiment random-labels`; run in this folder: gnuplot plot.gp
set terminal svg size 1000,760 font 'sans,12' background rgb 'white'
set output 'random_labels.svg'
set datafile separator ','
set key top right box opaque
set grid
set xlabel 'optimizer step'
set multiplot layout 2,2 title 'True vs random 32-character answers (NQ-open questions)'
set logscale y
set ylabel 'mean answer loss (nats)'
set title 'MoME (frozen model + memory)'
plot 'curve_mome_true.csv' skip 1 using 3:5 with lines lw 2 title 'true answers', \
     'curve_mome_random.csv' skip 1 using 3:5 with lines lw 2 title 'random answers'
set title 'LoRA baseline (rank 8, all blocks)'
plot 'curve_lora_true.csv' skip 1 using 3:5 with lines lw 2 title 'true answers', \
     'curve_lora_random.csv' skip 1 using 3:5 with lines lw 2 title 'random answers'
unset logscale y
set yrange [0:1.05]
set ylabel 'share memorized (tuner count; verify passes left out)'
set key bottom right
set title 'MoME'
plot 'curve_mome_true.csv' skip 1 using 3:(strcol(8) eq 'verify' ? NaN : $6/$7) with lines lw 2 title 'true answers', \
     'curve_mome_random.csv' skip 1 using 3:(strcol(8) eq 'verify' ? NaN : $6/$7) with lines lw 2 title 'random answers'
set title 'LoRA'
plot 'curve_lora_true.csv' skip 1 using 3:(strcol(8) eq 'verify' ? NaN : $6/$7) with lines lw 2 title 'true answers', \
     'curve_lora_random.csv' skip 1 using 3:(strcol(8) eq 'verify' ? NaN : $6/$7) with lines lw 2 title 'random answers'
unset multiplot
