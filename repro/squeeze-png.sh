#!/bin/sh
# Re-encode a PNG compressed, pixel for pixel, for reports/: sdseg writes PNGs with stored
# (uncompressed) deflate blocks so that it needs no compression library; gnuplot's pngcairo
# compresses. Usage: repro/squeeze-png.sh IN.png OUT.png [SCALE] (SCALE < 1 shrinks, for
# figures whose noise-like pixels do not compress)
set -eu
[ $# -eq 2 ] || [ $# -eq 3 ] || { echo "usage: repro/squeeze-png.sh IN.png OUT.png [SCALE]" >&2; exit 2; }
# width and height: big-endian 32-bit words at bytes 16 and 20 of the IHDR chunk
size() { od -An -tu1 -j "$2" -N4 "$1" | awk '{ print (($1 * 256 + $2) * 256 + $3) * 256 + $4 }'; }
w=$(size "$1" 16) h=$(size "$1" 20)
[ "$w" -gt 0 ] && [ "$h" -gt 0 ] || { echo "squeeze-png: $1 is not a PNG" >&2; exit 2; }
scale=${3:-1}
tmp=$2.tmp.$$
gnuplot -e "set terminal pngcairo size int($w*$scale),int($h*$scale); set output '$tmp'; unset border; unset tics; unset key;
set margins 0,0,0,0; set xrange [-0.5:$w-0.5]; set yrange [-0.5:$h-0.5];
plot '$1' binary filetype=png with rgbimage"
mv "$tmp" "$2"
