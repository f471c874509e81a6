# written by `mome experiment threshold`; run in this folder: gnuplot plot.gp
set terminal svg size 1000,420 font 'sans,12' background rgb 'white'
set output 'threshold.svg'
set datafile separator ','
set key bottom left box opaque
set logscale x
set xrange [0.0008:40]
set yrange [0:1.05]
set ylabel 'share of (snapshot, fact) answers'
set grid
set multiplot layout 1,2 title 'Greedy answer vs teacher-forced answer loss (memory snapshots during tuning)'
set arrow 1 from 0.693147,graph 0 to 0.693147,graph 1 nohead dt 2 lc rgb 'black'
set label 1 'ln 2' at 0.75,graph 0.96
set xlabel 'max per-token answer loss (nats)'
plot 'bins_max.csv' skip 2 using 3:5 with linespoints lw 2 pt 7 title 'P(exact)', \
     '' skip 2 using 3:6 with linespoints lw 2 pt 5 title 'P(near miss)'
set xlabel 'mean per-token answer loss (nats)'
plot 'bins_mean.csv' skip 2 using 3:5 with linespoints lw 2 pt 7 title 'P(exact)', \
     '' skip 2 using 3:6 with linespoints lw 2 pt 5 title 'P(near miss)'
unset multiplot
