# written by `mome experiment capacity`; run in this folder: gnuplot plot.gp
set terminal svg size 1260,560 font 'sans,12' background rgb 'white'
set output 'capacity.svg'
set datafile separator ','
set grid
set logscale x
set xrange [11.4286:89.6]
set xlabel 'random facts in the memory'
set xtics (16, 32, 64)
set multiplot layout 1,3 title 'Capacity: random keys -> random answers, one memory per size'
set key below box
set yrange [0:1.05]
set ylabel 'share (mome eval, default selection)'
plot 'sizes.csv' using 1:6 with linespoints lw 2 pt 7 title 'recall', \
     '' using 1:7 with linespoints lw 2 pt 5 title 'locality, look-alikes', \
     '' using 1:8 with linespoints lw 2 pt 9 title 'locality, NQ questions'
set ylabel 'share (selection at tau, by key weight w)'
plot 'selection.csv' skip 1 every 3::0 using 1:4 with linespoints lw 2 pt 7 lc 1 title 'recall, w=0.7', \
     '' skip 1 every 3::0 using 1:5 with linespoints lw 2 dt 2 pt 5 lc 1 title 'look-alike locality, w=0.7', \
     'selection.csv' skip 1 every 3::1 using 1:4 with linespoints lw 2 pt 7 lc 2 title 'recall, w=1', \
     '' skip 1 every 3::1 using 1:5 with linespoints lw 2 dt 2 pt 5 lc 2 title 'look-alike locality, w=1', \
     'selection.csv' skip 1 every 3::2 using 1:4 with linespoints lw 2 pt 7 lc 3 title 'recall, w=0', \
     '' skip 1 every 3::2 using 1:5 with linespoints lw 2 dt 2 pt 5 lc 3 title 'look-alike locality, w=0'
set autoscale y
set yrange [0:*]
set ylabel 'tuning: seconds, steps'
set y2label 'KiB'
set y2tics
set y2range [0:*]
plot 'sizes.csv' using 1:4 with linespoints lw 2 pt 7 title 'tuning time (s)', \
     '' using 1:3 with linespoints lw 2 pt 9 title 'tuning steps', \
     '' using 1:($11/1024) axes x1y2 with linespoints lw 2 pt 5 title 'memory file (KiB, right)'
unset multiplot
