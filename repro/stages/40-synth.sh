#!/bin/sh
# Stage synth: SYNTH_COUNT labelled synthetic tiles from the diffusion model (the VAE decodes
# image and mask together), cut by prep into a tile dataset with no validation part
# (seg-mixed validates on real tiles only), and how real they look: sdseg fidelity (FD and
# KID on the seg-real U-Net's features, intensity-histogram and power-spectrum distances)
# of the synthetic tiles against the real validation tiles, beside the floor: the real
# training tiles against the same validation tiles, what two real samples of this volume
# differ by. Both comparisons use at most FID_MAX tiles per set (FD grows as sets shrink,
# so the two rows use the same counts).
set -eu
. "$REPRO/lib.sh"
stage_begin "sample $SYNTH_COUNT labelled tiles ($SYNTH_SAMPLER, $SYNTH_STEPS steps) and measure their fidelity"
need_command sample --ddpm --vae --out --count --batch --sampler --steps --seed --device --threads
need_command fidelity --seg --real --fake --tile --max --csv --device --threads
VAE=$OUT/vae/run/best.safetensors DDPM=$OUT/ddpm/run/best.safetensors SEG=$OUT/seg-real/run/best.safetensors
need_file "$DDPM" ddpm
need_file "$SEG" seg-real
need_file "$OUT/prep/tiles/val.tiles" prep
SAMPLING="ddpm=$(cksum < "$DDPM") sampler=$SYNTH_SAMPLER steps=$SYNTH_STEPS count=$SYNTH_COUNT seed=1 tile=$TILE"
KEY="$SAMPLING seg=$(cksum < "$SEG") fid_max=$FID_MAX"
REAL_VAL=$OUT/prep/tiles/val.tiles
outputs_valid() {
    valid_data "$SDIR/samples/samples.tif" && valid_data "$SDIR/tiles/train.tiles" &&
        [ -s "$SDIR/fidelity-synth.csv" ] && [ -s "$SDIR/fidelity-floor.csv" ]
}
done_with "$KEY" && outputs_valid && stage_skip

# Sampling (the expensive part) is redone only when the diffusion model or its settings changed.
if [ "$(cat "$SDIR/tiles/settings" 2> /dev/null)" != "$SAMPLING" ] || ! valid_data "$SDIR/tiles/train.tiles"; then
    rm -rf "$SDIR/samples" "$SDIR/tiles"
    # shellcheck disable=SC2046 # device_threads are words
    run "$SDSEG" sample --ddpm "$DDPM" --vae "$VAE" --out "$SDIR/samples" --count "$SYNTH_COUNT" \
        --batch "$SYNTH_BATCH" --sampler "$SYNTH_SAMPLER" --steps "$SYNTH_STEPS" --seed 1 $(device_threads)
    [ -s "$SDIR/samples/masks.tif" ] || fail "sample wrote no masks.tif: the VAE of the vae stage has no mask channel"
    run "$SDSEG" prep --image "$SDIR/samples/samples.tif" --mask "$SDIR/samples/masks.tif" --out "$SDIR/tiles" \
        --tile "$TILE" --val-last 0
    echo "$SAMPLING" > "$SDIR/tiles/settings"
fi
# shellcheck disable=SC2046 # device_opts are words
run "$SDSEG" fidelity --seg "$SEG" --real "$REAL_VAL" --fake "$SDIR/tiles/train.tiles" --tile "$TILE" \
    --max "$FID_MAX" --csv "$SDIR/fidelity-synth.csv" $(device_opts)
# shellcheck disable=SC2046
run "$SDSEG" fidelity --seg "$SEG" --real "$REAL_VAL" --fake "$OUT/prep/tiles/train.tiles" --tile "$TILE" \
    --max "$FID_MAX" --csv "$SDIR/fidelity-floor.csv" $(device_opts)
outputs_valid || fail "the synthetic tiles or the fidelity tables are missing"
stage_done "$KEY"
