#!/bin/sh
# sdseg sample with tiny models trained one epoch on a phantom: a seed-config VAE (images)
# under a seed-recipe U-Net, an improved VAE (image + mask) under an improved U-Net (EMA).
#   - the same seed gives the same samples.tif; --batch 1 and --batch 4 give the same
#     images and masks (sample i's noise depends only on i); another seed, other images;
#   - every sampler's images (and masks) are those of tests/gen_cli_oracle.py, which redoes
#     the whole run in PyTorch: Philox noise, tests/sampler_oracle.py's samplers with the
#     U-Net (EMA or raw weights), / latent scale, the VAE's decoder alone -- ddpm on the
#     seed's 50-step grid and on all 1000 steps, ddim with eta 0.5, dpm++2m, --no-ema;
#   - grid.png decodes to the pages in a grid (with masks: RGB with their outlines);
#   - predict --model ddpm: the U-Net's prediction at a timestep, EMA and raw weights;
#   - sample.csv holds the settings and positive seconds per image;
#   - bad options and checkpoints fail with one line and exit status 2.
set -u
. "$(dirname "$0")/lib.sh"
test_init t_sample_cli

phantom_stack 8 && prep_tiles "$T/data" 2 masks || setup_failed "making the phantom tiles"
D="--data $T/data --width 8 --levels 2 --blocks 1 --heads 2 --groups 4 --batch 4 --accum 1 --epochs 1 --threads 1"
tiny_vae "$T/vae1" --latent 4 --lr 0.01 &&
    tiny_vae "$T/vae2" --latent 4 --recipe improved --with-masks &&
    tiny_vae "$T/vae_l2" --latent 2 &&
    "$S" train-ddpm $D --vae "$T/vae1/best.safetensors" --out "$T/dd1" >/dev/null 2>&1 &&
    "$S" train-ddpm $D --vae "$T/vae2/best.safetensors" --recipe improved --lr 0.01 --out "$T/dd2" >/dev/null 2>&1 ||
    setup_failed "training the models"
DD1="$T/dd1/best.safetensors" DD2="$T/dd2/best.safetensors"
V1="$T/vae1/best.safetensors" V2="$T/vae2/best.safetensors"

sample() { "$S" sample --threads 1 "$@" >/dev/null 2>&1; }
# images only; the seed's sampler and grid (ddpm, 50 steps) by default
sample --ddpm "$DD1" --out "$T/a" --count 5 --batch 4 --seed 3 &&
    sample --ddpm "$DD1" --out "$T/b" --count 5 --batch 1 --seed 3 &&
    sample --ddpm "$DD1" --out "$T/c" --count 5 --batch 4 --seed 3 &&
    sample --ddpm "$DD1" --out "$T/d" --count 5 --batch 4 --seed 4 &&
    sample --ddpm "$DD1" --out "$T/full" --count 2 --steps 1000
check "sample runs (images only)" [ $? -eq 0 ]
check "the same seed: the same samples.tif" cmp -s "$T/a/samples.tif" "$T/c/samples.tif"
check "--batch 1 and --batch 4: the same samples.tif" cmp -s "$T/a/samples.tif" "$T/b/samples.tif"
check "another seed: other images" eval '! cmp -s "$T/a/samples.tif" "$T/d/samples.tif"'
check "no masks.tif from an image-only VAE" [ ! -e "$T/a/masks.tif" ]
check "sample.csv: the settings and positive seconds per image" "$PY" - "$T/a/sample.csv" <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
r = rows[0]
ok = len(rows) == 1 and (r["count"], r["batch"], r["sampler"], r["steps"], r["seed"]) == ("5", "4", "ddpm", "50", "3")
ok &= all(float(r[k + "_s_per_image"]) > 0 for k in ("sample", "decode", "model", "total"))
ok &= float(r["total_s_per_image"]) >= float(r["model_s_per_image"])
sys.exit(not ok)
EOF

# image + mask, improved models with EMA weights, the other samplers
sample --ddpm "$DD2" --out "$T/m4" --count 5 --batch 4 --seed 1 --sampler ddim --steps 10 --eta 0.5 &&
    sample --ddpm "$DD2" --out "$T/m1" --count 5 --batch 1 --seed 1 --sampler ddim --steps 10 --eta 0.5 &&
    sample --ddpm "$DD2" --out "$T/dpm" --count 5 --batch 2 --sampler dpm++2m --steps 8 &&
    sample --ddpm "$DD2" --out "$T/raw" --count 5 --batch 2 --sampler dpm++2m --steps 8 --no-ema
check "sample runs (image + mask)" [ $? -eq 0 ]
check "image + mask, --batch 1 and 4: the same samples.tif and masks.tif" \
    eval 'cmp -s "$T/m4/samples.tif" "$T/m1/samples.tif" && cmp -s "$T/m4/masks.tif" "$T/m1/masks.tif"'
check "--no-ema: other images (the raw weights)" eval '! cmp -s "$T/dpm/samples.tif" "$T/raw/samples.tif"'

"$PY" -c "import numpy as np; np.save('$T/x.npy', np.random.default_rng(2).standard_normal((3, 4, 4, 4)).astype('f4'))"
P="$S predict --model ddpm --weights $DD2 --input $T/x.npy"
$P --t 500 --output "$T/eps_ema.npy" --batch 2 >/dev/null 2>&1 &&
    $P --t 37 --no-ema --output "$T/eps_raw.npy" >/dev/null 2>&1
check "predict --model ddpm runs" [ $? -eq 0 ]

for d in a full m4 dpm raw; do
    raw "$T/$d/samples.tif" "$T/$d/s_raw.tif" || fail=1
    [ -e "$T/$d/masks.tif" ] && { raw "$T/$d/masks.tif" "$T/$d/m_raw.tif" || fail=1; }
done
check "every sample agrees with PyTorch, grids too (lines above)" "$PY" tests/gen_cli_oracle.py \
    sample "$DD1" "$V1" ddpm 50 0 3 5 1 "$T/a/s_raw.tif" - + \
    sample "$DD1" "$V1" ddpm 1000 0 0 2 1 "$T/full/s_raw.tif" - + \
    sample "$DD2" "$V2" ddim 10 0.5 1 5 1 "$T/m4/s_raw.tif" "$T/m4/m_raw.tif" + \
    sample "$DD2" "$V2" dpm++2m 8 0 0 5 1 "$T/dpm/s_raw.tif" "$T/dpm/m_raw.tif" + \
    sample "$DD2" "$V2" dpm++2m 8 0 0 5 0 "$T/raw/s_raw.tif" "$T/raw/m_raw.tif" + \
    grid "$T/a/s_raw.tif" - "$T/a/grid.png" + grid "$T/m4/s_raw.tif" "$T/m4/m_raw.tif" "$T/m4/grid.png" + \
    unet "$DD2" "$T/x.npy" 500 1 "$T/eps_ema.npy" + unet "$DD2" "$T/x.npy" 37 0 "$T/eps_raw.npy"

# bad options and checkpoints
error_exit 2 "--sampler euler" "sampler" "$S" sample --ddpm "$DD1" --out "$T/e" --sampler euler
error_exit 2 "--steps 0" "--steps" "$S" sample --ddpm "$DD1" --out "$T/e" --steps 0
error_exit 2 "--steps 2000 on a 1000-step schedule" "2000" "$S" sample --ddpm "$DD1" --out "$T/e" --steps 2000
error_exit 2 "--ema with --no-ema" "contradict" "$S" sample --ddpm "$DD1" --out "$T/e" --ema --no-ema
error_exit 2 "a VAE with another latent width" "latent of 2 channels" \
    "$S" sample --ddpm "$DD1" --vae "$T/vae_l2/best.safetensors" --out "$T/e"
error_exit 2 "a VAE checkpoint as the diffusion model" "vae1" "$S" sample --ddpm "$V1" --out "$T/e"
error_exit 2 "a missing checkpoint" "nothing.safetensors" "$S" sample --ddpm "$T/nothing.safetensors" --out "$T/e"
error_exit 2 "predict --model ddpm without --t" "needs --t" \
    "$S" predict --model ddpm --weights "$DD2" --input "$T/x.npy" --output "$T/e.npy"
check "nothing written by the failed runs" [ ! -e "$T/e" -a ! -e "$T/e.npy" ]

[ "$fail" -eq 0 ] && echo "t_sample_cli: ok" || echo "t_sample_cli: FAILED"
exit "$fail"
