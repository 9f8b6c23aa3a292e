# The benchmark's plot: median ns per call by method and process count,
# log scale. Run by tools/bench:
#   gnuplot -e "data='PLOT.dat'; out='bench.png'; subtitle='...'" bench.gp
# PLOT.dat comes from `ucaasauth-bench --plot`: a quoted method name, then
# the median ns/call with 1, 2 and 4 processes ("?" where not measured:
# the profile rows and whole processes have one process only). The last
# bars are whole processes, what a shell script pays per header.
if (!exists("subtitle")) subtitle = ""
set terminal pngcairo size 1700,850 font "DejaVu Sans,12" noenhanced
set output out
set title "One Authorization header line, warm, by method: median time per call (log scale, lower is better); \"a process\": one run of a program per header\n".subtitle
set style data histogram
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set logscale y
set yrange [1:1e8]
set format y "%.0f"
set ytics ("1 ns" 1, "10 ns" 10, "100 ns" 100, "1 µs" 1000, "10 µs" 1e4, \
           "100 µs" 1e5, "1 ms" 1e6, "10 ms" 1e7, "100 ms" 1e8)
set ylabel "time per call"
set xtics rotate by -25 nomirror
set grid ytics
set key top left
set datafile missing "?"
set bmargin 8
set rmargin 12
# One bar per process count; its value written above it.
fmt(v) = v < 100 ? sprintf("%.1f ns", v) : v < 1e3 ? sprintf("%.0f ns", v) \
         : v < 1e4 ? sprintf("%.1f µs", v / 1e3) \
         : v < 1e6 ? sprintf("%.0f µs", v / 1e3) : sprintf("%.1f ms", v / 1e6)
plot data using 2:xtic(1) title "1 process" lc rgb "#1f77b4", \
     '' using 3 title "2 processes" lc rgb "#ff7f0e", \
     '' using 4 title "4 processes (2 CPUs)" lc rgb "#2ca02c", \
     '' using ($0 - 0.25):2:(fmt($2)) with labels rotate by 90 left offset 0,0.4 font ",9" notitle, \
     '' using ($0):3:(fmt($3)) with labels rotate by 90 left offset 0,0.4 font ",9" notitle, \
     '' using ($0 + 0.25):4:(fmt($4)) with labels rotate by 90 left offset 0,0.4 font ",9" notitle
