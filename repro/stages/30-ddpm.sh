#!/bin/sh
# Stage ddpm: the latent diffusion U-Net on the VAE's latents of the same training tiles
# (VAE frozen), resumed when interrupted. Needs `sdseg train-ddpm` (issue 6) and the vae stage.
set -eu
. "$REPRO/lib.sh"
stage_begin "train the latent diffusion U-Net (seed recipe, base width $DDPM_BASE)"
need_command train-ddpm --data --vae --out --width --batch --epochs --resume --device --threads
VAE=$OUT/vae/run/best.safetensors
need_file "$VAE" vae
KEY="vae=$(cksum < "$VAE") base=$DDPM_BASE batch=$DDPM_BATCH epochs=$DDPM_EPOCHS"
outputs_valid() { [ -s "$SDIR/run/best.safetensors" ]; }
done_with "$KEY" && outputs_valid && stage_skip

fresh_unless_same "$KEY" "$SDIR/run"
resume=""
[ -f "$SDIR/run/last.safetensors" ] && resume=--resume
# shellcheck disable=SC2046
run "$SDSEG" train-ddpm --data "$OUT/vae/tiles" --vae "$VAE" --out "$SDIR/run" --width "$DDPM_BASE" \
    --batch "$DDPM_BATCH" --epochs "$DDPM_EPOCHS" $(device_opts) $resume
outputs_valid || fail "train-ddpm finished without best.safetensors"
stage_done "$KEY"
