#!/bin/sh
# Stage vae: the seed's VAE and recipe (SGD, plateau schedule, keep-best / revert / early
# stop) at base width VAE_BASE on image-only tiles of training.tif (same slice split as
# prep), resumed when interrupted. Needs `sdseg train-vae` (issue 6).
set -eu
. "$REPRO/lib.sh"
stage_begin "train the VAE (seed recipe, base width $VAE_BASE)"
need_command train-vae --data --out --width --groups --batch --accum --epochs --resume --device --threads
KEY="tile=$TILE val_last=$VAL_LAST base=$VAE_BASE groups=$VAE_GROUPS batch=$VAE_BATCH accum=$VAE_ACCUM epochs=$VAE_EPOCHS"
# (early stopping may end a run before VAE_EPOCHS: a run that exits normally is complete)
outputs_valid() { [ -s "$SDIR/run/best.safetensors" ]; }
done_with "$KEY" && outputs_valid && stage_skip

tiling="tile=$TILE val_last=$VAL_LAST"
if [ "$(cat "$SDIR/tiles/settings" 2> /dev/null)" != "$tiling" ] || ! valid_data "$SDIR/tiles/train.tiles" ||
    ! valid_data "$SDIR/tiles/val.tiles"; then
    run "$SDSEG" prep --image "$DATA/training.tif" --out "$SDIR/tiles" --tile "$TILE" --val-last "$VAL_LAST"
    echo "$tiling" > "$SDIR/tiles/settings"
fi
fresh_unless_same "$KEY" "$SDIR/run"
resume=""
[ -f "$SDIR/run/last.safetensors" ] && resume=--resume
# shellcheck disable=SC2046 # device_opts are words
run "$SDSEG" train-vae --data "$SDIR/tiles" --out "$SDIR/run" --width "$VAE_BASE" --groups "$VAE_GROUPS" \
    --batch "$VAE_BATCH" --accum "$VAE_ACCUM" --epochs "$VAE_EPOCHS" $(device_opts) $resume
outputs_valid || fail "train-vae finished without best.safetensors"
stage_done "$KEY"
