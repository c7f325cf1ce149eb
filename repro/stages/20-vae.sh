#!/bin/sh
# Stage vae: the VAE whose latent space the diffusion model learns. It is the improved VAE
# with a mask channel (train-vae --recipe $VAE_RECIPE --with-masks: input = image + mask),
# whatever the profile: the seed's decoder reads the encoder's skip features (its defect 2),
# so it cannot decode a latent sampled from noise, and only a VAE that also encodes the
# mask lets the diffusion model generate labelled tiles for the seg-mixed stage. Trained
# on tiles of training.tif and its masks (the same slice split as prep; GEN_STRIDE > TILE
# takes a sparser grid of tile positions: shorter epochs for the generative models),
# resumed when interrupted.
set -eu
. "$REPRO/lib.sh"
stage_begin "train the VAE ($VAE_RECIPE recipe, image + mask channels, base width $VAE_BASE)"
need_command train-vae --data --out --recipe --with-masks --width --groups --batch --accum --epochs --resume \
    --device --threads
TILING="tile=$TILE stride=$GEN_STRIDE val_last=$VAL_LAST masks=1"
KEY="$TILING recipe=$VAE_RECIPE base=$VAE_BASE groups=$VAE_GROUPS batch=$VAE_BATCH accum=$VAE_ACCUM epochs=$VAE_EPOCHS"
# (early stopping may end a run before VAE_EPOCHS: a run that exits normally is complete)
outputs_valid() { [ -s "$SDIR/run/best.safetensors" ]; }
done_with "$KEY" && outputs_valid && stage_skip

if [ "$(cat "$SDIR/tiles/settings" 2> /dev/null)" != "$TILING" ] || ! valid_data "$SDIR/tiles/train.tiles" ||
    ! valid_data "$SDIR/tiles/val.tiles"; then
    run "$SDSEG" prep --image "$DATA/training.tif" --mask "$DATA/training_groundtruth.tif" --out "$SDIR/tiles" \
        --tile "$TILE" --stride "$GEN_STRIDE" --val-last "$VAL_LAST"
    echo "$TILING" > "$SDIR/tiles/settings"
fi
fresh_unless_same "$KEY" "$SDIR/run"
resume=""
[ -f "$SDIR/run/last.safetensors" ] && resume=--resume
# shellcheck disable=SC2046 # device_opts are words
run "$SDSEG" train-vae --data "$SDIR/tiles" --out "$SDIR/run" --recipe "$VAE_RECIPE" --with-masks \
    --width "$VAE_BASE" --groups "$VAE_GROUPS" --batch "$VAE_BATCH" --accum "$VAE_ACCUM" --epochs "$VAE_EPOCHS" \
    $(device_opts) $resume
outputs_valid || fail "train-vae finished without best.safetensors"
stage_done "$KEY"
