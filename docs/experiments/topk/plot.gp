# written by `mome experiment topk`; run in this folder: gnuplot plot.gp
set terminal svg size 1260,460 font 'sans,12' background rgb 'white'
set output 'topk.svg'
set datafile separator ','
set grid
set logscale x 2
set xrange [0.714286:89.6]
set xlabel 'facts mixed per question (--top-k)'
set xtics (1, 2, 4, 8, 16, 32, 64)
set multiplot layout 1,3 title 'top-k mixtures of facts (zsRE; own: a fact trains its own values, all: its whole mixture)'
set key bottom left box opaque
set yrange [0:1.05]
set ylabel 'share'
plot 'runs_own.csv' using 2:15 with linespoints lw 2 pt 7 lc 1 title 'recall, own', \
     'runs_all.csv' using 2:15 with linespoints lw 2 dt 2 pt 6 lc 1 title 'recall, all', \
     'runs_own.csv' using 2:16 with linespoints lw 2 pt 5 lc 2 title 'paraphrases, own', \
     'runs_all.csv' using 2:16 with linespoints lw 2 dt 2 pt 4 lc 2 title 'paraphrases, all', \
     'runs_own.csv' using 2:18 with linespoints lw 2 pt 9 lc 3 title 'locality, own', \
     'runs_all.csv' using 2:18 with linespoints lw 2 dt 2 pt 8 lc 3 title 'locality, all', \
     'runs_own.csv' using 2:12 with linespoints lw 1 pt 1 lc 4 title 'own fact weight, trained question', \
     'runs_own.csv' using 2:13 with linespoints lw 1 dt 3 pt 2 lc 4 title 'own fact weight, paraphrase'
set autoscale y
set yrange [0:*]
set key bottom right box opaque
set ylabel 'tuning steps (to every fact verified)'
set y2label 'tuning CPU seconds'
set y2tics
set y2range [0:*]
plot 'runs_own.csv' using 2:5 with linespoints lw 2 pt 7 lc 1 title 'steps, own', \
     'runs_all.csv' using 2:5 with linespoints lw 2 dt 2 pt 6 lc 1 title 'steps, all', \
     'runs_own.csv' using 2:7 axes x1y2 with linespoints lw 2 pt 9 lc 3 title 'tuning CPU s, own (right)', \
     'runs_all.csv' using 2:7 axes x1y2 with linespoints lw 2 dt 2 pt 8 lc 3 title 'tuning CPU s, all (right)'
set ylabel 'decode tokens/s (1 token per call)'
set y2label 'memory file (KiB)'
set key bottom left box opaque
plot 'runs_own.csv' using 2:20 with linespoints lw 2 pt 7 lc 1 title 'with the memory, own', \
     'runs_all.csv' using 2:20 with linespoints lw 2 dt 2 pt 6 lc 1 title 'with the memory, all', \
     'runs_own.csv' using 2:21 with linespoints lw 2 pt 5 lc 2 title 'without (measured in turn)', \
     'runs_own.csv' using 2:($22/1024) axes x1y2 with linespoints lw 2 pt 9 lc 3 title 'file KiB (right)'
unset multiplot
