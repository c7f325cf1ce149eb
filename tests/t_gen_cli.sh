#!/bin/sh
# sdseg encode, decode and predict --model vae on tiny VAEs (width 8, latent 4) trained one
# epoch on a phantom -- the seed config on images and on image + mask, the improved config
# (no skips, tanh, anti-aliasing) on image + mask -- checked by tests/gen_cli_oracle.py
# (PyTorch, tests/gen_oracle.py's modules, float64):
#   - encode: posterior means of whole pages and of 32x32 tiles in raster order, and
#     --sample draws whose (z - mean) / std is standard normal; the same draws for the same
#     seed whatever --batch, other draws for another seed;
#   - decode: the decoder alone (all-zero encoder features where it reads them) on normal
#     latents, as 8-bit pages, and the mask channel (both values present);
#   - predict --model vae: the reconstruction through the posterior mean;
#   - without skips (the improved config) decode(encode(x)) equals predict --model vae;
#   - bad input (wrong channel count or rank, pages or tiles that are not multiples of 8, a
#     missing mask or checkpoint, an unknown --model) fails with one line and exit status 2
#     (predict: 1 for a batch its model cannot take, as for the segmentation U-Net).
set -u
. "$(dirname "$0")/lib.sh"
test_init t_gen_cli

phantom_stack 8 && prep_tiles "$T/data" 2 masks &&
    raw "$T/ph.tif" "$T/ph_raw.tif" && raw "$T/phm.tif" "$T/phm_raw.tif" || setup_failed "making the phantom tiles"
tiny_vae "$T/seed" --latent 4 --lr 0.01 &&
    tiny_vae "$T/seed2" --latent 4 --lr 0.01 --with-masks &&
    tiny_vae "$T/impr" --latent 4 --recipe improved --with-masks || setup_failed "training the VAEs"
SEED="$T/seed/best.safetensors" SEED2="$T/seed2/best.safetensors" IMPR="$T/impr/best.safetensors"
"$PY" tests/gen_cli_oracle.py images "$T/ph_raw.tif" - "$T/x.npy" + images "$T/ph_raw.tif" "$T/phm_raw.tif" \
    "$T/x2.npy" + latents 3 4 8 8 7 "$T/z.npy" || { echo "  FAIL writing the oracle's inputs"; exit 1; }

R="--threads 1"
run() { "$S" "$@" $R >/dev/null 2>&1; }
# seed VAE, images only
run encode --vae "$SEED" --in "$T/ph.tif" --out "$T/lat.npy" &&
    run encode --vae "$SEED" --in "$T/ph.tif" --out "$T/lat_tiles.npy" --tile 32 --batch 5 &&
    run decode --vae "$SEED" --in "$T/z.npy" --out "$T/dec.tif" --batch 2 &&
    run predict --model vae --weights "$SEED" --input "$T/x.npy" --output "$T/recon.npy" --batch 3 &&
    raw "$T/dec.tif" "$T/dec_raw.tif"
check "seed VAE: encode (pages, tiles), decode, predict run" [ $? -eq 0 ]
# posterior draws: seeded, independent of the batching
run encode --vae "$SEED" --in "$T/ph.tif" --out "$T/s1.npy" --sample --seed 5 --batch 1 &&
    run encode --vae "$SEED" --in "$T/ph.tif" --out "$T/s3.npy" --sample --seed 5 --batch 3 &&
    run encode --vae "$SEED" --in "$T/ph.tif" --out "$T/s6.npy" --sample --seed 6
check "encode --sample runs" [ $? -eq 0 ]
check "encode --sample: --batch 1 and 3 give the same draws" cmp -s "$T/s1.npy" "$T/s3.npy"
check "encode --sample: another seed, other draws" eval '! cmp -s "$T/s1.npy" "$T/s6.npy"'
# seed VAE, image + mask
run encode --vae "$SEED2" --in "$T/ph.tif" --mask "$T/phm.tif" --out "$T/lat2.npy" &&
    run decode --vae "$SEED2" --in "$T/z.npy" --out "$T/dec2.tif" &&
    raw "$T/dec2.tif" "$T/dec2_raw.tif"
check "seed VAE, image + mask: encode and decode run" [ $? -eq 0 ]
# improved config, image + mask
run encode --vae "$IMPR" --in "$T/ph.tif" --mask "$T/phm.tif" --out "$T/lat3.npy" &&
    run decode --vae "$IMPR" --in "$T/lat3.npy" --out "$T/rt3.tif" --out-mask "$T/rt3m.tif" &&
    run decode --vae "$IMPR" --in "$T/z.npy" --out "$T/dec3.tif" --out-mask "$T/dec3m.tif" &&
    run predict --model vae --weights "$IMPR" --input "$T/x2.npy" --output "$T/recon3.npy" &&
    raw "$T/rt3.tif" "$T/rt3_raw.tif" && raw "$T/rt3m.tif" "$T/rt3m_raw.tif" &&
    raw "$T/dec3.tif" "$T/dec3_raw.tif" && raw "$T/dec3m.tif" "$T/dec3m_raw.tif"
check "improved VAE: encode, decode, predict run" [ $? -eq 0 ]

P="$T/ph_raw.tif" M="$T/phm_raw.tif"
check "every output agrees with PyTorch (lines above)" "$PY" tests/gen_cli_oracle.py \
    encode "$SEED" "$P" - 0 "$T/lat.npy" "$T/s1.npy" + encode "$SEED" "$P" - 32 "$T/lat_tiles.npy" + \
    decode "$SEED" "$T/z.npy" "$T/dec_raw.tif" - + recon "$SEED" "$T/x.npy" "$T/recon.npy" + \
    encode "$SEED2" "$P" "$M" 0 "$T/lat2.npy" + decode "$SEED2" "$T/z.npy" "$T/dec2_raw.tif" - + \
    encode "$IMPR" "$P" "$M" 0 "$T/lat3.npy" + decode "$IMPR" "$T/z.npy" "$T/dec3_raw.tif" "$T/dec3m_raw.tif" + \
    recon "$IMPR" "$T/x2.npy" "$T/recon3.npy" + same "$T/recon3.npy" "$T/rt3_raw.tif" "$T/rt3m_raw.tif"

# bad input
"$PY" -c "import numpy as np; np.save('$T/rank3.npy', np.zeros((2, 4, 8), np.float32)); \
np.save('$T/ch3.npy', np.zeros((2, 3, 8, 8), np.float32))"
"$S" phantom --out "$T/odd.tif" --pages 2 --height 36 --width 64 >/dev/null 2>&1
error_exit 2 "decode: a 3-d array" "3-d array" "$S" decode --vae "$SEED" --in "$T/rank3.npy" --out "$T/o.tif"
error_exit 2 "decode: 3 latent channels for 4" "3 latent channels" \
    "$S" decode --vae "$SEED" --in "$T/ch3.npy" --out "$T/o.tif"
error_exit 2 "decode --out-mask with an image-only VAE" "drop --out-mask" \
    "$S" decode --vae "$SEED" --in "$T/z.npy" --out "$T/o.tif" --out-mask "$T/om.tif"
error_exit 2 "encode: pages of 36x64" "multiples of 8" "$S" encode --vae "$SEED" --in "$T/odd.tif" --out "$T/o.npy"
error_exit 2 "encode: --tile 24 on 64x64 pages" "do not divide" \
    "$S" encode --vae "$SEED" --in "$T/ph.tif" --out "$T/o.npy" --tile 24
error_exit 2 "encode: --tile 12" "multiple of 8" "$S" encode --vae "$SEED" --in "$T/ph.tif" --out "$T/o.npy" --tile 12
error_exit 2 "encode: image + mask VAE without --mask" "give --mask" \
    "$S" encode --vae "$IMPR" --in "$T/ph.tif" --out "$T/o.npy"
error_exit 2 "encode: a missing checkpoint" "nothing.safetensors" \
    "$S" encode --vae "$T/nothing.safetensors" --in "$T/ph.tif" --out "$T/o.npy"
error_exit 2 "predict --model: an unknown model" "vae or ddpm" \
    "$S" predict --model gan --weights "$SEED" --input "$T/x.npy" --output "$T/o.npy"
error_exit 1 "predict --model vae: 2 channels for an image-only VAE" "takes \[n, 1, h, w\]" \
    "$S" predict --model vae --weights "$SEED" --input "$T/x2.npy" --output "$T/o.npy"
check "no output written by the failed commands" [ ! -e "$T/o.tif" -a ! -e "$T/o.npy" ]

[ "$fail" -eq 0 ] && echo "t_gen_cli: ok" || echo "t_gen_cli: FAILED"
exit "$fail"
