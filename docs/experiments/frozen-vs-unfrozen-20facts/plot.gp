# written by `mome experiment frozen-vs-unfrozen`; run in this folder: gnuplot plot.gp
set terminal svg size 1000,420 font 'sans,12' background rgb 'white'
set output 'frozen_vs_unfrozen.svg'
set datafile separator ','
set key bottom right box opaque
set grid
set yrange [0:1.05]
set ylabel 'share memorized (tuner count)'
set multiplot layout 1,2 title 'Facts memorized: frozen model + memory vs LoRA vs full fine-tuning'
set xlabel 'optimizer step'
plot 'curve_mome.csv' skip 1 using 2:(strcol(7) eq 'verify' ? NaN : $5/$6) with lines lw 2 title 'MoME (frozen)', \
     'curve_lora.csv' skip 1 using 2:($5/$6) with lines lw 2 title 'LoRA (base frozen)', \
     'curve_full.csv' skip 1 using 2:($5/$6) with lines lw 2 title 'full fine-tuning'
set xlabel 'wall time (s)'
plot 'curve_mome.csv' skip 1 using 3:(strcol(7) eq 'verify' ? NaN : $5/$6) with lines lw 2 title 'MoME (frozen)', \
     'curve_lora.csv' skip 1 using 3:($5/$6) with lines lw 2 title 'LoRA (base frozen)', \
     'curve_full.csv' skip 1 using 3:($5/$6) with lines lw 2 title 'full fine-tuning'
unset multiplot
