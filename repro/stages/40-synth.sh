#!/bin/sh
# Stage synth: synthetic training tiles. Synthetic images only help segmentation with correct
# masks (the seed's own lesson), so they are sampled conditioned on the real training masks
# (one image per mask slice, training volume only) and cut into a tile dataset with those
# masks; the last VAL_LAST slices go to its val.tiles, unused, so no validation mask shapes
# reach training. Needs `sdseg sample` with mask conditioning (issue 6) and the vae and ddpm stages.
set -eu
. "$REPRO/lib.sh"
stage_begin "sample synthetic EM slices for the training masks ($SYNTH_SAMPLER, $SYNTH_STEPS steps)"
need_command sample --vae --ddpm --masks --sampler --steps --seed --out --device --threads
VAE=$OUT/vae/run/best.safetensors DDPM=$OUT/ddpm/run/best.safetensors
need_file "$VAE" vae
need_file "$DDPM" ddpm
KEY="ddpm=$(cksum < "$DDPM") sampler=$SYNTH_SAMPLER steps=$SYNTH_STEPS tile=$TILE"
outputs_valid() { valid_data "$SDIR/synth.tif" && valid_data "$SDIR/tiles/train.tiles"; }
done_with "$KEY" && outputs_valid && stage_skip

# shellcheck disable=SC2046
run "$SDSEG" sample --vae "$VAE" --ddpm "$DDPM" --masks "$DATA/training_groundtruth.tif" --sampler "$SYNTH_SAMPLER" \
    --steps "$SYNTH_STEPS" --seed 1 --out "$SDIR/synth.tif" $(device_opts)
run "$SDSEG" prep --image "$SDIR/synth.tif" --mask "$DATA/training_groundtruth.tif" --out "$SDIR/tiles" \
    --tile "$TILE" --val-last "$VAL_LAST"
outputs_valid || fail "the synthetic stack or its tiles do not validate"
stage_done "$KEY"
