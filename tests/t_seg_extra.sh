#!/bin/sh
# train-seg --extra-data: a second prep dataset's training tiles join the training set.
# The reference is independent of the option's code: the two phantom stacks joined page by
# page with tiffcp and cut by prep with the first stack's validation slices (--val-slices)
# give the same training tiles in the same order, so a run on that one dataset must log
# exactly the same losses, epoch after epoch, also across a resume. Also: the tile count
# (from sdseg info), a run without the extra tiles logging other losses, and the refusals:
# resuming with other extra data, without it, or with it after a run that had none; extra
# tiles without masks or of another size.
set -u
. "$(dirname "$0")/lib.sh"
test_init t_seg_extra

tiles() { "$S" info --in "$1" | sed -n 's/.*, \([0-9]*\) tiles of .*/\1/p'; }
# step,epoch,lr,loss of steps.csv and epochs.csv without the timing columns
losses() { cut -d, -f1-4 "$1/steps.csv"; cut -d, -f1-9 "$1/epochs.csv"; }
same_losses() { [ "$(losses "$1")" = "$(losses "$2")" ]; }

phantom() { # phantom NAME PAGES SEED
    "$S" phantom --out "$T/$1.tif" --mask-out "$T/$1m.tif" --pages "$2" --height 64 --width 64 --seed "$3" >/dev/null
}
command -v tiffcp >/dev/null || { echo "  FAIL tiffcp (libtiff-tools) is missing: make deps"; exit 1; }
{
    phantom a 10 1 && phantom b 4 2 && phantom c 4 3 &&
        tiffcp "$T/a.tif" "$T/b.tif" "$T/ab.tif" && tiffcp "$T/am.tif" "$T/bm.tif" "$T/abm.tif" &&
        "$S" prep --image "$T/a.tif" --mask "$T/am.tif" --out "$T/A" --tile 32 --val-last 2 &&
        "$S" prep --image "$T/b.tif" --mask "$T/bm.tif" --out "$T/B" --tile 32 --val-last 0 &&
        "$S" prep --image "$T/c.tif" --mask "$T/cm.tif" --out "$T/C" --tile 32 --val-last 0 &&
        "$S" prep --image "$T/b.tif" --out "$T/Bimg" --tile 32 --val-last 0 &&
        "$S" prep --image "$T/b.tif" --mask "$T/bm.tif" --out "$T/B16" --tile 16 --val-last 0 &&
        "$S" prep --image "$T/ab.tif" --mask "$T/abm.tif" --out "$T/AB" --tile 32 --val-slices 8:10
} >/dev/null 2>&1 || { echo "  FAIL making the phantom tile datasets"; exit 1; }
check_eq "joined reference: training tiles (A 8 slices + B 4 slices, 4 tiles each)" "$(tiles "$T/AB/train.tiles")" 48
check_eq "joined reference: validation tiles (A's last 2 slices)" "$(tiles "$T/AB/val.tiles")" 8

# seed recipe, batch 4: 12 steps per epoch with the extra tiles, 8 without
R="--width 4 --batch 4 --epochs 1 --threads 2"
"$S" train-seg --data "$T/A" --extra-data "$T/B" --out "$T/r1" $R 2>"$T/log1"
"$S" train-seg --data "$T/AB" --out "$T/r2" $R 2>/dev/null
"$S" train-seg --data "$T/A" --out "$T/r0" $R 2>/dev/null
check "--extra-data: 48 training tiles reported" grep -q "48 training and 8 validation tiles" "$T/log1"
check_eq "--extra-data: steps in the epoch" "$(tail -n +2 "$T/r1/steps.csv" | wc -l)" 12
check "--extra-data: losses identical to the joined dataset's" same_losses "$T/r1" "$T/r2"
check "without --extra-data: other losses" [ "$(sed -n 2p "$T/r0/steps.csv" | cut -d, -f4)" != \
    "$(sed -n 2p "$T/r1/steps.csv" | cut -d, -f4)" ]

# refusals, each one line
"$S" train-seg --data "$T/A" --extra-data "$T/C" --out "$T/r1" --resume 2>"$T/err"
check "resume with other extra data: refused" one_line_error "$T/err" "not the data this run was started with"
"$S" train-seg --data "$T/A" --out "$T/r1" --resume 2>"$T/err"
check "resume without the extra data: refused" one_line_error "$T/err" "give it again to resume"
"$S" train-seg --data "$T/A" --extra-data "$T/B" --out "$T/r0" --resume 2>"$T/err"
check "resume with extra data a run never had: refused" one_line_error "$T/err" "started without --extra-data"
"$S" train-seg --data "$T/A" --extra-data "$T/Bimg" --out "$T/r3" $R 2>"$T/err"
check "extra tiles without masks: refused" one_line_error "$T/err" "holds no masks"
"$S" train-seg --data "$T/A" --extra-data "$T/B16" --out "$T/r4" $R 2>"$T/err"
check "extra tiles of another size: refused" one_line_error "$T/err" "16x16 tiles"

# the same extra data resumes, and continues exactly as the joined dataset's run
"$S" train-seg --data "$T/A" --extra-data "$T/B" --out "$T/r1" --resume --epochs 2 --threads 2 2>/dev/null
"$S" train-seg --data "$T/AB" --out "$T/r2" --resume --epochs 2 --threads 2 2>/dev/null
check_eq "resumed with the same extra data: steps after 2 epochs" "$(tail -n +2 "$T/r1/steps.csv" | wc -l)" 24
check "resumed: losses still identical to the joined dataset's" same_losses "$T/r1" "$T/r2"

[ "$fail" -eq 0 ] && echo "t_seg_extra: ok" || echo "t_seg_extra: FAILED"
exit "$fail"
