#!/bin/sh
# Makes reports/data-pipeline.png: a phantom slice with its exact mask, and the same tile
# through the loader under several augmentation settings (image, mask, mask overlaid).
# usage: sh reports/make-data-figure.sh   (from the repository root; BUILD=build)
set -eu
B=${BUILD:-build}
make -s BUILD="$B" "$B/sdseg" "$B/tests/fig_data"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
"$B/sdseg" phantom --out "$T/phantom.tif" --mask-out "$T/mask.tif" --pages 16 --height 256 --width 256 --seed 3
"$B/sdseg" prep --image "$T/phantom.tif" --mask "$T/mask.tif" --out "$T/ds" --tile 256 --val-last 0
"$B/tests/fig_data" "$T/ds/train.tiles" "$T"

names="none seed1 seed2 seed3 elastic levels all"
titles="phantom_slice_0 seed_affine+flips_(1) seed_affine+flips_(2) seed_affine+flips_(3)
        elastic_(alpha_300,_sigma_10) brightness/contrast/gamma/blur/noise all_of_them_+_rot90"
{
    echo "set terminal pngcairo size 1820,820 font 'Sans,10'"
    echo "set output 'reports/data-pipeline.png'"
    echo "set multiplot layout 3,7 margins 0.01,0.99,0.02,0.95 spacing 0.004,0.03"
    echo "unset border; unset tics; unset colorbox; unset key; set size ratio -1"
    echo "set xrange [-0.5:255.5]; set yrange [255.5:-0.5]"
    for row in image mask overlay; do
        i=1
        for n in $names; do
            t=$(echo $titles | cut -d' ' -f$i | tr '_' ' ') # unquoted: one line, single spaces
            if [ "$row" = image ]; then echo "set title '$t'"; else echo "unset title"; fi
            case $row in
            image) echo "set palette gray; set cbrange [0:255]; plot '$T/${n}_image.dat' matrix with image" ;;
            mask) echo "set palette gray; set cbrange [0:1]; plot '$T/${n}_mask.dat' matrix with image" ;;
            overlay) echo "set palette gray; set cbrange [0:255]; plot '$T/${n}_image.dat' matrix with image," \
                "'$T/${n}_mask.dat' matrix using 1:2:(255):(40):(40):(\$3 > 0 ? 110 : 0) with rgbalpha" ;;
            esac
            i=$((i + 1))
        done
    done
    echo "unset multiplot"
} > "$T/figure.gp"
gnuplot "$T/figure.gp"
echo "wrote reports/data-pipeline.png"
