#!/bin/sh
# Re-encode a PNG compressed, pixel for pixel, for reports/: sdseg writes PNGs with stored
# (uncompressed) deflate blocks so that it needs no compression library; gnuplot's pngcairo
# compresses. Usage: repro/squeeze-png.sh IN.png OUT.png
set -eu
[ $# -eq 2 ] || { echo "usage: repro/squeeze-png.sh IN.png OUT.png" >&2; exit 2; }
# width and height: big-endian 32-bit words at bytes 16 and 20 of the IHDR chunk
size() { od -An -tu1 -j "$2" -N4 "$1" | awk '{ print (($1 * 256 + $2) * 256 + $3) * 256 + $4 }'; }
w=$(size "$1" 16) h=$(size "$1" 20)
[ "$w" -gt 0 ] && [ "$h" -gt 0 ] || { echo "squeeze-png: $1 is not a PNG" >&2; exit 2; }
tmp=$2.tmp.$$
gnuplot -e "set terminal pngcairo size $w,$h; set output '$tmp'; unset border; unset tics; unset key;
set margins 0,0,0,0; set xrange [-0.5:$w-0.5]; set yrange [-0.5:$h-0.5];
plot '$1' binary filetype=png with rgbimage"
mv "$tmp" "$2"
