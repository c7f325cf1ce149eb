#!/bin/sh
# Stage ddpm: the latent diffusion U-Net on the VAE's latents of the vae stage's tiles
# (image + mask: it learns to generate labelled tiles), VAE frozen, resumed when
# interrupted. The profile's recipe (improved: timesteps drawn uniformly -- the seed trained
# at t = 999 only, its defect 1 --, AdamW, cosine schedule, EMA weights), width and
# attention levels.
set -eu
. "$REPRO/lib.sh"
stage_begin "train the latent diffusion U-Net ($DDPM_RECIPE recipe, base width $DDPM_BASE)"
need_command train-ddpm --data --vae --out --recipe --width --attn --batch --accum --epochs --resume --device --threads
VAE=$OUT/vae/run/best.safetensors
need_file "$VAE" vae
KEY="vae=$(cksum < "$VAE") recipe=$DDPM_RECIPE base=$DDPM_BASE attn=$DDPM_ATTN batch=$DDPM_BATCH accum=$DDPM_ACCUM epochs=$DDPM_EPOCHS"
outputs_valid() { [ -s "$SDIR/run/best.safetensors" ]; }
done_with "$KEY" && outputs_valid && stage_skip

fresh_unless_same "$KEY" "$SDIR/run"
resume=""
[ -f "$SDIR/run/last.safetensors" ] && resume=--resume
# shellcheck disable=SC2046 # device_opts are words
run "$SDSEG" train-ddpm --data "$OUT/vae/tiles" --vae "$VAE" --out "$SDIR/run" --recipe "$DDPM_RECIPE" \
    --width "$DDPM_BASE" --attn "$DDPM_ATTN" --batch "$DDPM_BATCH" --accum "$DDPM_ACCUM" --epochs "$DDPM_EPOCHS" \
    $(device_opts) $resume
outputs_valid || fail "train-ddpm finished without best.safetensors"
stage_done "$KEY"
