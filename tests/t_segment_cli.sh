#!/bin/sh
# sdseg segment end to end on a phantom: a tiny U-Net trained a few steps, whole stacks of
# sizes that are not tile multiples (and smaller than a tile), outputs that line up with
# the input (eval refuses any size mismatch), post-processing, and bad input. The
# blending itself is checked exactly in t_tiling.
set -u
. "$(dirname "$0")/lib.sh"
test_init t_segment_cli

{ "$S" phantom --out "$T/img.tif" --mask-out "$T/mask.tif" --pages 3 --height 100 --width 90 --seed 3 &&
    "$S" prep --image "$T/img.tif" --mask "$T/mask.tif" --out "$T/prep" --tile 32 --val-last 1 &&
    tiny_seg "$T/prep" "$T/run"; } >"$T/setup.log" 2>&1 || setup_failed "making a phantom and a tiny model"
W=$T/run/last.safetensors

echo "== whole stack, 100 x 90 slices in 32-pixel tiles"
"$S" segment --weights "$W" --input "$T/img.tif" --out-prob "$T/prob.tif" --out-mask "$T/pm.tif" --tile 32 \
    --overlap 8 --batch 5 --threads 1 > "$T/out.txt" 2> "$T/err.txt"
check_eq "status" "$?" "0"
check_eq "progress on stderr" "$(grep -c 'segment: tiles' "$T/err.txt")" "1"
"$S" eval --pred "$T/prob.tif" --truth "$T/mask.tif" > /dev/null 2>&1
check_eq "probabilities line up with the truth (eval status)" "$?" "0"
"$S" eval --pred "$T/pm.tif" --truth "$T/mask.tif" > /dev/null 2>&1
check_eq "mask lines up with the truth (eval status)" "$?" "0"

echo "== a stack smaller than one tile (reflect padding)"
"$S" segment --weights "$W" --input "$T/img.tif" --out-mask "$T/pm128.tif" --tile 128 --overlap 0 --threads 1 \
    > /dev/null 2>&1
check_eq "status" "$?" "0"
"$S" eval --pred "$T/pm128.tif" --truth "$T/mask.tif" > /dev/null 2>&1
check_eq "mask lines up with the truth (eval status)" "$?" "0"

echo "== post-processing"
# No object of the 100 x 90 slices can reach 10^5 pixels: --min-size 100000 empties the mask.
"$S" segment --weights "$W" --input "$T/img.tif" --out-mask "$T/empty.tif" --tile 32 --overlap 8 --min-size 100000 \
    --fill-holes --threshold 0 --threads 1 > "$T/out.txt" 2> /dev/null
check_eq "foreground after removing everything" "$(grep -o 'foreground [0-9.]*%' "$T/out.txt")" "foreground 0.00%"
# Threshold 0 keeps every pixel (probabilities are > 0): one slice-filling object each.
"$S" segment --weights "$W" --input "$T/img.tif" --out-mask "$T/full.tif" --tile 32 --overlap 8 --threshold 0 --threads 1 \
    > "$T/out.txt" 2> /dev/null
check_eq "foreground at threshold 0" "$(grep -o 'foreground [0-9.]*%' "$T/out.txt")" "foreground 100.00%"

echo "== the chain of make demo: improved recipe (EMA weights), best checkpoint, eval CSVs"
"$S" train-seg --data "$T/prep" --out "$T/run2" --recipe improved --width 4 --epochs 1 --batch 4 --threads 1 \
    > /dev/null 2>&1
check_eq "train-seg status" "$?" "0"
check_eq "best checkpoint written" "$([ -s "$T/run2/best.safetensors" ] && echo yes || echo no)" "yes"
check_eq "epoch log rows" "$(($(wc -l < "$T/run2/epochs.csv") - 1))" "1"
"$S" segment --weights "$T/run2/best.safetensors" --input "$T/img.tif" --out-mask "$T/best.tif" --tile 32 \
    --overlap 8 --threads 1 > /dev/null 2>&1
check_eq "segment status" "$?" "0"
"$S" eval --pred "$T/best.tif" --truth "$T/mask.tif" --csv "$T/scores.csv" --objects "$T/objects.csv" \
    > /dev/null 2>&1
check_eq "eval status" "$?" "0"
check_eq "scores main row" "$(grep -c '^main,0.5,' "$T/scores.csv" 2> /dev/null)" "1"
check_eq "objects header" "$(head -c 21 "$T/objects.csv" 2> /dev/null)" "id,slice,area_px,area"

echo "== bad input"
"$S" segment --weights "$W" --input "$T/img.tif" --out-mask "$T/x.tif" --tile 32 --overlap 32 > /dev/null 2>&1
check_eq "overlap >= tile status" "$?" "2"
"$S" segment --weights "$W" --input "$T/img.tif" --out-mask "$T/x.tif" --tile 40 > /dev/null 2>&1
check_eq "tile not a multiple of 16 status" "$?" "2"
"$S" segment --weights "$T/none.safetensors" --input "$T/img.tif" --out-mask "$T/x.tif" > /dev/null 2> "$T/err.txt"
check_eq "missing weights status" "$?" "1"
check_eq "missing weights message lines" "$(wc -l < "$T/err.txt")" "1"
"$S" segment --weights "$W" --input "$T/img.tif" > /dev/null 2>&1
check_eq "no output status" "$?" "2"
check_eq "nothing written on failure" "$([ -e "$T/x.tif" ] && echo written || echo none)" "none"

[ "$fail" -eq 0 ] && echo "t_segment_cli: ok"
exit "$fail"
