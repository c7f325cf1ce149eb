#!/bin/sh
# The generative half, seed against improved, at the same small size: trains the seed
# configuration (VAE with decoder skips and the seed's KL, diffusion U-Net trained at t = 999
# only, SGD recipes) on the tiles of a finished `repro/run.sh` run, whose vae and ddpm stages
# are the improved configuration, then samples both, times the three samplers and measures
# fidelity against the real validation tiles. Writes $OUT/summary.md (tables) and the grids.
#
#   repro/gen-compare.sh [REPRO_OUT [OUT]]   (defaults: runs/repro-cpu, runs/gen-compare)
#
# Settings (environment, defaults = the cpu profile's sizes): VAE_BASE 16, VAE_GROUPS 8,
# VAE_EPOCHS 3, DDPM_BASE 32, DDPM_EPOCHS 10, FID_COUNT 256 (tiles sampled per config for
# fidelity), SPEED_COUNT 16 (tiles per sampler for the timings), TILE 128, THREADS 0,
# DEVICE cpu (or cuda).
# Each training resumes when interrupted; finished outputs are kept.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SDSEG=$ROOT/build/sdseg
SRC=${1:-$ROOT/runs/repro-cpu}
OUT=${2:-$ROOT/runs/gen-compare}
VAE_BASE=${VAE_BASE:-16} VAE_GROUPS=${VAE_GROUPS:-8} VAE_EPOCHS=${VAE_EPOCHS:-3}
DDPM_BASE=${DDPM_BASE:-32} DDPM_EPOCHS=${DDPM_EPOCHS:-10}
FID_COUNT=${FID_COUNT:-256} SPEED_COUNT=${SPEED_COUNT:-16} THREADS=${THREADS:-0} DEVICE=${DEVICE:-cpu}
TILES=$SRC/vae/tiles
for f in "$TILES/train.tiles" "$SRC/vae/run/best.safetensors" "$SRC/ddpm/run/best.safetensors" \
    "$SRC/seg-real/run/best.safetensors" "$SRC/prep/tiles/val.tiles"; do
    [ -s "$f" ] || { echo "gen-compare: $f is missing (run repro/run.sh first)" >&2; exit 2; }
done
mkdir -p "$OUT"
LOG=$OUT/log.txt
run() {
    echo "+ $*" >> "$LOG"
    "$@" 2>> "$LOG"
}

# train DIR COMMAND ARGS...: a run that resumes when interrupted and is skipped when done.
train() {
    dir=$1
    shift
    [ -s "$dir/done" ] && return 0
    resume=""
    [ -f "$dir/last.safetensors" ] && resume=--resume
    run "$SDSEG" "$@" --out "$dir" --device "$DEVICE" --threads "$THREADS" $resume
    date -u > "$dir/done"
}

echo "gen-compare: seed VAE ($VAE_EPOCHS epochs) and seed diffusion U-Net ($DDPM_EPOCHS epochs), log in $LOG"
train "$OUT/seed-vae" train-vae --data "$TILES" --recipe seed --width "$VAE_BASE" --groups "$VAE_GROUPS" \
    --epochs "$VAE_EPOCHS"
train "$OUT/seed-ddpm" train-ddpm --data "$TILES" --vae "$OUT/seed-vae/best.safetensors" --recipe seed \
    --width "$DDPM_BASE" --epochs "$DDPM_EPOCHS"

SEG=$SRC/seg-real/run/best.safetensors
REAL_VAL=$SRC/prep/tiles/val.tiles
TILE=${TILE:-128} # the repro profile's tile size
# sample_set CONFIG DDPM SAMPLER STEPS COUNT: samples into $OUT/CONFIG-SAMPLER-STEPS.
sample_set() {
    dir=$OUT/$1-$3-$4
    [ -s "$dir/sample.csv" ] && [ "$(sed -n 2p "$dir/sample.csv" | cut -d, -f1)" = "$5" ] && return 0
    run "$SDSEG" sample --ddpm "$2" --out "$dir" --count "$5" --batch 16 --sampler "$3" --steps "$4" --seed 7 \
        --device "$DEVICE" --threads "$THREADS"
}
for config in seed improved; do
    ddpm=$OUT/seed-ddpm/best.safetensors
    [ "$config" = improved ] && ddpm=$SRC/ddpm/run/best.safetensors
    echo "gen-compare: sampling the $config model"
    sample_set "$config" "$ddpm" dpm++2m 20 "$FID_COUNT"
    sample_set "$config" "$ddpm" ddpm 50 "$SPEED_COUNT"
    sample_set "$config" "$ddpm" ddim 50 "$SPEED_COUNT"
    [ -s "$OUT/fidelity-$config.csv" ] ||
        run "$SDSEG" fidelity --seg "$SEG" --real "$REAL_VAL" --fake "$OUT/$config-dpm++2m-20/samples.tif" \
            --tile "$TILE" --max "$FID_COUNT" --csv "$OUT/fidelity-$config.csv" --device "$DEVICE" --threads "$THREADS"
done
[ -s "$OUT/fidelity-floor.csv" ] ||
    run "$SDSEG" fidelity --seg "$SEG" --real "$REAL_VAL" --fake "$TILES/train.tiles" --tile "$TILE" \
        --max "$FID_COUNT" --csv "$OUT/fidelity-floor.csv" --device "$DEVICE" --threads "$THREADS"

# ------------------------------------------------------------------ summary
col() { # col FILE NAME: the value of column NAME in the second row of CSV FILE
    awk -F, -v name="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == name) c = i } NR == 2 { print $c }' "$1"
}
last_epoch() { tail -n 1 "$1"; }
{
    echo "| config | sampler | steps | s / image (sampling) | s / image (total) |"
    echo "|---|---|---:|---:|---:|"
    for config in seed improved; do
        for s in "ddpm 50" "ddim 50" "dpm++2m 20"; do
            set -- $s
            csv=$OUT/$config-$1-$2/sample.csv
            echo "| $config | $1 | $2 | $(col "$csv" sample_s_per_image) | $(col "$csv" total_s_per_image) |"
        done
    done
    echo
    echo "| tiles against the real validation tiles | n | FD | KID | hist W1 | spectrum |"
    echo "|---|---:|---:|---:|---:|---:|"
    for f in floor seed improved; do
        csv=$OUT/fidelity-$f.csv
        echo "| $f | $(col "$csv" n_fake) | $(col "$csv" fd) | $(col "$csv" kid) | $(col "$csv" hist_w1) | $(col "$csv" spectrum) |"
    done
    echo
    echo "last epoch of each run (epochs.csv):"
    echo
    for r in "$OUT/seed-vae" "$SRC/vae/run" "$OUT/seed-ddpm" "$SRC/ddpm/run"; do
        echo "- $r: \`$(head -n 1 "$r/epochs.csv")\` = \`$(last_epoch "$r/epochs.csv")\`"
    done
} > "$OUT/summary.md"
cat "$OUT/summary.md"
