#!/bin/sh
# Stage eval: each trained segmentation U-Net (seg-real, and seg-mixed when it exists)
# segments the whole held-out testing.tif (256-pixel tiles overlapping by 64, blended) and
# is scored against testing_groundtruth.tif at two fixed thresholds: 0.5 and the seed's 0.05.
# Nothing is tuned on these volumes.
set -eu
. "$REPRO/lib.sh"
stage_begin "segment and score the held-out testing volume"
models=""
for m in seg-real seg-mixed; do
    [ -s "$OUT/$m/run/best.safetensors" ] && models="$models $m"
done
[ -n "$models" ] || need_file "$OUT/seg-real/run/best.safetensors" seg-real
KEY="batch=$SEGMENT_BATCH$(for m in $models; do printf ' %s=%s' "$m" "$(cksum < "$OUT/$m/run/best.safetensors")"; done)"
outputs_valid() {
    for m in $models; do
        [ -s "$SDIR/$m/scores.csv" ] && [ -s "$SDIR/$m/scores-seed.csv" ] && valid_data "$SDIR/$m/mask.tif" || return 1
    done
}
done_with "$KEY" && outputs_valid && stage_skip

for m in $models; do
    mkdir -p "$SDIR/$m"
    # shellcheck disable=SC2046 # device_opts are words
    run "$SDSEG" segment --weights "$OUT/$m/run/best.safetensors" --input "$DATA/testing.tif" \
        --out-prob "$SDIR/$m/prob.tif" --out-mask "$SDIR/$m/mask.tif" --batch "$SEGMENT_BATCH" $(device_opts)
    run "$SDSEG" eval --pred "$SDIR/$m/prob.tif" --truth "$DATA/testing_groundtruth.tif" \
        --csv "$SDIR/$m/scores.csv" --objects "$SDIR/$m/objects.csv"
    run "$SDSEG" eval --pred "$SDIR/$m/prob.tif" --truth "$DATA/testing_groundtruth.tif" --threshold 0.05 \
        --csv "$SDIR/$m/scores-seed.csv"
done
stage_done "$KEY"
