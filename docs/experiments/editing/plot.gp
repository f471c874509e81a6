# written by `mome experiment editing`; run in this folder: gnuplot plot.gp
set terminal svg size 1200,420 font 'sans,12' background rgb 'white'
set output 'editing.svg'
set datafile separator ','
set grid
set xlabel 'facts in the memory'
set multiplot layout 1,3 title 'zsRE facts added to one memory a batch at a time'
set key bottom left box opaque
set yrange [0:1.05]
set ylabel 'share'
plot 'batches.csv' using 2:6 with linespoints lw 2 pt 7 title 'recall, all so far', \
     '' using 2:7 with linespoints lw 2 pt 6 title 'recall, first batch', \
     '' using 2:9 with linespoints lw 2 pt 5 title 'paraphrase recall', \
     '' using 2:11 with linespoints lw 2 pt 9 title 'locality (loc)'
set autoscale y
set yrange [0:*]
set ylabel 'decode tokens/s (1 token per call)'
plot 'batches.csv' using 2:14 with linespoints lw 2 pt 7 title 'with the memory', \
     '' using 2:15 with linespoints lw 2 pt 5 title 'without'
set ylabel 'KiB, seconds'
set key top left box opaque
plot 'batches.csv' using 2:($16/1024) with linespoints lw 2 pt 7 title 'memory file (KiB)', \
     '' using 2:5 with linespoints lw 2 pt 5 title 'tuning the batch (s)'
unset multiplot
