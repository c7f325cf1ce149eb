#!/bin/sh
# make demo: the whole segmentation pipeline in a few minutes on a CPU.
#
#   repro/demo.sh [--data DIR] [--out DIR]
#
# Without --data: a synthetic EM stack (sdseg phantom) is cut into tiles (validation =
# the last slices), a small U-Net trains for a fixed step budget (about two minutes on 2
# cores), and a separate phantom made with another seed is segmented and scored.
# With --data DIR (the EPFL files training.tif, training_groundtruth.tif, testing.tif,
# testing_groundtruth.tif): the same on every 12th slice of the training volume (the last
# three of those for validation), scored on every 10th slice of the held-out testing volume.
# Writes OUT/report.md (default build/demo) with the commands, the scores, a loss curve and
# an image / truth / prediction overlay. Needs build/sdseg and build/demo_overlay (make demo
# builds both), gnuplot, and tiffcp for --data.
set -eu

BUILD=${BUILD:-build}
SDSEG=$BUILD/sdseg
OVERLAY=$BUILD/demo_overlay
THREADS=${THREADS:-0} # 0: OpenMP's default, every core
WIDTH=8               # U-Net base width (the seed's is 64)
LR=3e-3               # the improved recipe's 1e-3 learns too slowly for a run this short
TILE=128              # training tiles; segment uses 256-pixel tiles overlapping by 64
DATA=""
OUT=$BUILD/demo
export OMP_WAIT_POLICY=passive # idle OpenMP threads sleep instead of spinning on a shared machine

usage() {
    echo "usage: repro/demo.sh [--data DIR] [--out DIR]" >&2
    exit 2
}
while [ $# -gt 0 ]; do
    case $1 in
    --data) [ $# -ge 2 ] || usage; DATA=$2; shift 2 ;;
    --out) [ $# -ge 2 ] || usage; OUT=$2; shift 2 ;;
    *) usage ;;
    esac
done

step() { printf '\n== %s\n' "$*"; }
die() {
    echo "demo: $*" >&2
    exit 1
}
# Run a command, show it, and keep it for the report.
run() {
    echo "+ $*"
    echo "$*" >> "$OUT/commands.txt"
    "$@"
}
# "PAGES H W" of a TIFF stack, from sdseg info.
stack_size() {
    "$SDSEG" info --in "$1" | sed -n 's/.*TIFF stack, \([0-9]*\) pages of \([0-9]*\) x \([0-9]*\),.*/\1 \2 \3/p'
}

for tool in "$SDSEG" "$OVERLAY"; do
    [ -x "$tool" ] || die "$tool is missing: run make demo (or make all $OVERLAY)"
done
command -v gnuplot > /dev/null || die "gnuplot is missing: run make deps"

# ------------------------------------------------------------ the data

phantom_data() {
    step "1/6 synthetic EM stacks: one to train on, a separate one (another seed) to test on"
    run "$SDSEG" phantom --out "$OUT/data/train.tif" --mask-out "$OUT/data/train_mask.tif" --pages 40 --seed 1
    run "$SDSEG" phantom --out "$OUT/data/test.tif" --mask-out "$OUT/data/test_mask.tif" --pages 16 --seed 2
    step "2/6 tiles of ${TILE} x ${TILE}, the last 8 of 40 slices for validation"
    run "$SDSEG" prep --image "$OUT/data/train.tif" --mask "$OUT/data/train_mask.tif" --out "$OUT/tiles" \
        --tile "$TILE" --val-last 8
    EPOCHS=30 # 16 steps of 8 tiles each: 480 steps, about two minutes on 2 cores
    TEST_STEP=1
    SOURCE="synthetic phantom stacks (\`sdseg phantom\`): training seed 1 (40 slices of 256 x 256, the last 8 for \
validation), held-out test seed 2 (16 slices)"
}

real_data() {
    for f in training training_groundtruth testing testing_groundtruth; do
        [ -r "$DATA/$f.tif" ] || die "$DATA/$f.tif is missing (want the EPFL hippocampus stacks)"
    done
    command -v tiffcp > /dev/null || die "tiffcp is missing: run make deps"
    # Neighbouring slices are nearly identical: spread slices cover the volume at a short run's cost.
    train_pages=$(seq -s, 0 12 164)
    test_pages=$(seq -s, 0 10 164)
    step "1/6 slices of the EPFL volumes: training $train_pages; held-out testing $test_pages"
    run tiffcp "$DATA/training.tif,$train_pages" "$OUT/data/train.tif"
    run tiffcp "$DATA/training_groundtruth.tif,$train_pages" "$OUT/data/train_mask.tif"
    run tiffcp "$DATA/testing.tif,$test_pages" "$OUT/data/test.tif"
    run tiffcp "$DATA/testing_groundtruth.tif,$test_pages" "$OUT/data/test_mask.tif"
    step "2/6 tiles of ${TILE} x ${TILE}, the last 3 of those training slices (132, 144, 156) for validation"
    run "$SDSEG" prep --image "$OUT/data/train.tif" --mask "$OUT/data/train_mask.tif" --out "$OUT/tiles" \
        --tile "$TILE" --val-last 3
    EPOCHS=7 # 66 steps of 8 tiles each: 462 steps
    TEST_STEP=10 # slice k of the test stack is slice 10k of testing.tif
    SOURCE="the EPFL hippocampus volumes in \`$DATA\`: training slices $train_pages (validation: the last \
3 of them), held-out testing slices $test_pages"
}

# ------------------------------------------------------------ the pictures

loss_curve() { # run_dir png
    gnuplot << EOF
set terminal pngcairo size 900,560 font ',11'
set output '$2'
set datafile separator ','
set title 'Training of the width-$WIDTH U-Net'
set xlabel 'optimizer step'
set ylabel 'loss (BCE + soft Dice)'
set y2label 'validation foreground IoU'
set yrange [0:*]
set y2range [0:1]
set ytics nomirror
set y2tics 0.2
set grid
set key below maxrows 2
plot '$1/steps.csv' skip 1 using 1:4 with lines lc rgb '#bbbbbb' title 'training loss per step', \
     '$1/epochs.csv' skip 1 using 1:4 with linespoints lw 2 pt 7 lc rgb '#1f77b4' title 'training loss (epoch mean)', \
     '' skip 1 using 1:5 with linespoints lw 2 pt 7 lc rgb '#d62728' title 'validation loss', \
     '' skip 1 using 1:7 axes x1y2 with linespoints dt 2 pt 5 lc rgb '#2ca02c' title 'validation IoU (right axis)'
EOF
}

# Three slices of the test stack as one raw RGB picture from demo_overlay (a band per
# slice: image | outlines), drawn 1200 pixels wide with a label on each band.
overlay_png() { # png
    set -- "$1" $(stack_size "$OUT/data/test.tif")
    [ $# -eq 4 ] || die "cannot read the size of $OUT/data/test.tif"
    png=$1 pages=$2 h=$3 w=$4
    slices="$((pages / 6)),$((pages / 2)),$((pages * 5 / 6))"
    run "$OVERLAY" "$OUT/data/test.tif" "$OUT/data/test_mask.tif" "$OUT/pred_mask.tif" "$slices" "$OUT/overlay.rgb"
    png_h=$((1200 * 3 * h / (2 * w) + 40))
    {
        echo "set terminal pngcairo size 1200,$png_h font ',12'"
        echo "set output '$png'"
        echo "set title 'held-out slices: image | truth (green), prediction (red), both (yellow)'"
        echo "set lmargin at screen 0; set rmargin at screen 1; set bmargin at screen 0"
        echo "set tmargin at screen $((png_h - 40)).0 / $png_h"
        echo "unset key; unset tics; unset border; unset colorbox; set size ratio -1"
        echo "set xrange [-0.5:$((2 * w)) - 0.5]; set yrange [-0.5:$((3 * h)) - 0.5]"
        echo "set style textbox opaque noborder"
        echo "set arrow from $w - 0.5, -0.5 to $w - 0.5, $((3 * h)) nohead front lc rgb 'white' lw 2"
        band=0
        for s in $(echo "$slices" | tr , ' '); do
            top=$(((3 - band) * h))
            echo "set label 'slice $((s * TEST_STEP))' at 4, $top - 4 left front boxed offset 0,-0.8"
            echo "set arrow from -0.5, $top - 0.5 to $((2 * w)), $top - 0.5 nohead front lc rgb 'white' lw 2"
            band=$((band + 1))
        done
        echo "plot '$OUT/overlay.rgb' binary array=($((2 * w)),$((3 * h))) format='%uchar%uchar%uchar' flipy \
with rgbimage"
    } | gnuplot
    rm -f "$OUT/overlay.rgb"
}

# ------------------------------------------------------------ the report

# One markdown table row per field of the "main" row of sdseg eval's CSV.
metrics_table() { # scores.csv
    awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) name[i] = $i }
        $1 == "main" {
            print "| measure | value |"; print "| --- | --- |"
            for (i = 2; i <= NF; i++) printf "| %s | %s |\n", name[i], $i
        }' "$1"
}

# Count, median area and mean equivalent diameter of the predicted objects.
objects_summary() { # objects.csv
    n=$(($(wc -l < "$1") - 1))
    if [ "$n" -le 0 ]; then
        echo "No objects predicted."
        return
    fi
    median=$(tail -n +2 "$1" | cut -d, -f4 | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
    diam=$(tail -n +2 "$1" | awk -F, '{ s += $12 } END { printf "%.0f", s / NR }')
    echo "$n predicted objects; median area $median nm^2, mean equivalent diameter $diam nm (5 nm pixels)."
}

write_report() { # seconds_total seconds_train cpu_seconds_of_the_commands
    threads=$THREADS
    [ "$threads" -gt 0 ] || threads=${OMP_NUM_THREADS:-$(nproc)}
    last=$(tail -n 1 "$OUT/run/epochs.csv")
    best=$(awk -F, 'NR > 1 && $9 == 1 { e = $2; l = $5 } END { print "epoch " e ", validation loss " l }' \
        "$OUT/run/epochs.csv")
    {
        echo "# sdseg demo"
        echo
        echo "Data: $SOURCE."
        echo
        echo "A width-$WIDTH U-Net (the seed's network at 1/8 of its width; improved recipe: BCE + soft Dice,"
        echo "AdamW with lr $LR, cosine schedule, EMA) trained for $(echo "$last" | cut -d, -f1) steps of 8 tiles of"
        echo "$TILE x $TILE in $2 s on $threads CPU threads; the weights kept are those with the best validation loss"
        echo "($best). The held-out stack was segmented with 256-pixel tiles overlapping by 64 and"
        echo "scored at threshold 0.5. The whole demo took $1 s of wall time and $3 s of CPU time (wall"
        echo "times grow when other jobs share the cores)."
        echo
        echo "## Scores on the held-out stack"
        echo
        metrics_table "$OUT/scores.csv"
        echo
        echo "Objects are 8-connected per slice; object scores count a match at IoU >= 0.5."
        objects_summary "$OUT/objects.csv"
        echo "Every object's measurements are in \`objects.csv\`."
        echo
        echo "## Loss curve"
        echo
        echo "![loss curve](loss.png)"
        echo
        echo "## Image, truth and prediction"
        echo
        echo "![overlay](overlay.png)"
        echo
        echo "## Commands"
        echo
        echo "gnuplot then draws the loss curve from \`run/steps.csv\` and \`run/epochs.csv\`, and the overlay from the"
        echo "raw RGB that demo_overlay writes."
        echo
        echo '```sh'
        cat "$OUT/commands.txt"
        echo '```'
    } > "$OUT/report.md.tmp"
    mv "$OUT/report.md.tmp" "$OUT/report.md"
}

# ------------------------------------------------------------ the run

start=$(date +%s)
mkdir -p "$OUT/data"
rm -rf "$OUT/run" "$OUT/tiles" "$OUT/commands.txt" "$OUT/report.md"
if [ -n "$DATA" ]; then real_data; else phantom_data; fi

step "3/6 training a width-$WIDTH U-Net ($EPOCHS epochs, about two minutes on 2 cores)"
train_start=$(date +%s)
run "$SDSEG" train-seg --data "$OUT/tiles" --out "$OUT/run" --recipe improved --width "$WIDTH" --epochs "$EPOCHS" \
    --lr "$LR" --threads "$THREADS"
train_s=$(($(date +%s) - train_start))

step "4/6 segmenting the held-out stack with the best checkpoint"
run "$SDSEG" segment --weights "$OUT/run/best.safetensors" --input "$OUT/data/test.tif" \
    --out-prob "$OUT/pred_prob.tif" --out-mask "$OUT/pred_mask.tif" --threads "$THREADS"

step "5/6 scoring against the truth"
run "$SDSEG" eval --pred "$OUT/pred_mask.tif" --truth "$OUT/data/test_mask.tif" --csv "$OUT/scores.csv" \
    --objects "$OUT/objects.csv"

step "6/6 report: loss curve, overlay"
loss_curve "$OUT/run" "$OUT/loss.png"
overlay_png "$OUT/overlay.png"
# The commands' CPU time: user + system time of this shell's children, the second line of
# `times` (run in this shell: in a $(...) subshell it would count the subshell's children).
times > "$OUT/times.txt"
cpu_s=$(awk 'NR == 2 { split($1, u, /[ms]/); split($2, k, /[ms]/); printf "%.0f", 60 * (u[1] + k[1]) + u[2] + k[2] }' \
    "$OUT/times.txt")
rm -f "$OUT/times.txt"
write_report "$(($(date +%s) - start))" "$train_s" "$cpu_s"
echo
echo "demo: done in $(($(date +%s) - start)) s; report in $OUT/report.md"
