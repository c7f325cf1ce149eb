#!/bin/sh
# make bench-models: the three seed networks on the CPU, ours beside PyTorch's, case by case,
# and sampling (diffusion U-Net + VAE decoder) with three samplers.
#
#   BUILD=build PY=/usr/bin/python3 sh bench/bench_models.sh
#
# Each case runs once through build/bench_models and once through bench/torch_models.py,
# each in its own process (so each peak RSS is that case's alone), with the same threads,
# batch and sizes, float32. Writes reports/bench-cpu-<date>.csv (both sides' rows),
# .md (machine, date, command, commit, the table) and .png (gnuplot chart of the share of
# the CPU's peak each side reaches). Environment:
#   THREADS=N       threads for both sides (default: every core)
#   BENCH_QUICK=1   tiny sizes, output under $BUILD/bench-quick/: a smoke test of the chain
#   BENCH_ONLY=RE   only the cases whose name matches the extended regex RE (e.g. sample)
#   OUT=DIR         output folder (default reports, or $BUILD/bench-quick with BENCH_QUICK)
#   QUIET_WAIT=S    before each case, wait up to S seconds (default 600) for the other
#                   processes to use under a fifth of a core
# The machine should be otherwise idle. Each row records how many cores other processes kept
# busy while each side ran (system-wide busy CPU time from /proc/stat minus the process's
# own), so a disturbed row shows.
set -eu
. bench/lib.sh

BUILD=${BUILD:-build}
PY=${PY:-/usr/bin/python3}
THREADS=${THREADS:-$(nproc)}
QUICK=${BENCH_QUICK:-0}
QUIET_WAIT=${QUIET_WAIT:-600}
CLK=$(getconf CLK_TCK)
if [ "$QUICK" = 1 ]; then OUT=${OUT:-$BUILD/bench-quick}; else OUT=${OUT:-reports}; fi
DATE=$(date -u +%Y-%m-%d)
BASE=$OUT/bench-cpu-$DATE
OURS=$BUILD/bench_models

die() {
    echo "bench-models: $*" >&2
    exit 1
}
[ -x "$OURS" ] || die "$OURS is missing: run make bench-models"
"$PY" -c "import torch" 2> /dev/null || die "$PY cannot import torch: run make deps"
command -v gnuplot > /dev/null || die "gnuplot is missing: run make deps"
mkdir -p "$OUT"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# Busy jiffies of all CPUs (user, nice, system, irq, softirq, steal).
busy_jiffies() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
now_ms() { date +%s%3N; }

# Until other processes use under 0.2 cores over 3 s (at most QUIET_WAIT seconds).
wait_quiet() {
    waited=0
    while :; do
        a=$(busy_jiffies)
        sleep 3
        [ $(($(busy_jiffies) - a)) -lt $((3 * CLK / 5)) ] && return 0
        waited=$((waited + 3))
        if [ "$waited" -ge "$QUIET_WAIT" ]; then
            echo "bench-models: still busy after $waited s of waiting: measuring anyway (see the other-load columns)"
            return 0
        fi
    done
}

# Run one side (its CSV row on stdout) and append ",other_cores" (the last field): the cores other
# processes kept busy meanwhile, from the system's busy CPU time less the row's own cpu_s.
measure() {
    j0=$(busy_jiffies) t0=$(now_ms)
    row=$("$@" < /dev/null)
    j1=$(busy_jiffies) t1=$(now_ms)
    echo "$row" | awk -F, -v j=$((j1 - j0)) -v clk="$CLK" -v ms=$((t1 - t0)) \
        '{ o = (j / clk - $15) / (ms / 1000); printf "%s,%.2f\n", $0, o < 0 ? 0 : o }'
}

# ------------------------------------------------------------ the cases

# The sampling cases, one per sampler: U-Net width S_WIDTH, VAE width S_VAE, S_SIZE-pixel
# images, batch S_BATCH, S_REPS timed iterations (set below; the report states them).
sampling_cases() {
    for s in ddpm ddim dpm++2m; do
        echo "sample-$s --width $S_WIDTH --vae-width $S_VAE --size $S_SIZE --batch $S_BATCH --reps $S_REPS"
    done
}

# "case options" lines; seg-infer's stack (PAGESxHxW) is one slice of the EPFL size.
if [ "$QUICK" = 1 ]; then
    STACK=1x256x320
    CASES="seg-train --width 4 --batch 2 --size 64
seg-infer --width 4 --batch 2 --reps 2
vae-forward --width 32 --size 32 --reps 2
diffusion-forward --width 32 --size 8 --reps 2"
    S_WIDTH=16 S_VAE=8 S_SIZE=64 S_BATCH=2 S_REPS=1
else
    STACK=1x768x1024
    # Sized to take about 11 minutes on 2 cores: width-64 training at batch 4 (the seed: 8),
    # a single timed iteration where one takes ~20 s or more; sampling at the sizes the cpu
    # repro profile samples at (repro/profiles/cpu.env: diffusion U-Net width 32, VAE width 16,
    # 128-pixel tiles, so 16 x 16 latents), 8 images per iteration, about 3 minutes of the total.
    CASES="seg-train --width 16 --reps 2
seg-train --width 32 --reps 1
seg-train --width 64 --batch 4 --reps 1
seg-infer --width 16 --reps 2
seg-infer --width 64 --reps 1
vae-forward --reps 1
diffusion-forward --reps 3"
    S_WIDTH=32 S_VAE=16 S_SIZE=128 S_BATCH=8 S_REPS=2
fi
CASES="$CASES
$(sampling_cases)"
[ -z "${BENCH_ONLY:-}" ] || CASES=$(echo "$CASES" | grep -E "^[^ ]*(${BENCH_ONLY})") || die "no case matches $BENCH_ONLY"

COLUMNS_CSV=impl,case,width,batch,size,items,unit,reps,seconds,rate,gflop,gflops,threads,peak_rss_mib,cpu_s,device,precision,mode,layout,peak_device_mib,other_cores
echo "$COLUMNS_CSV" > "$WORK/rows.csv"
wait_quiet
PEAK_ROW=$("$OURS" peak --threads "$THREADS")
PEAK=$(echo "$PEAK_ROW" | cut -d, -f5)
echo "CPU peak: $PEAK GFLOP/s ($PEAK_ROW: threads,GHz,lanes,ISA,GFLOP/s,memory GB/s)"

start=$(date +%s)
echo "$CASES" | while read -r name opts; do
    [ "$name" = seg-infer ] && opts="$opts --stack $STACK"
    echo "== $name $opts"
    wait_quiet
    # shellcheck disable=SC2086 # opts are words
    measure "$OURS" "$name" $opts --threads "$THREADS" >> "$WORK/rows.csv"
    # shellcheck disable=SC2086
    measure "$PY" bench/torch_models.py "$name" $opts --threads "$THREADS" >> "$WORK/rows.csv"
    tail -n 2 "$WORK/rows.csv"
done
ELAPSED=$(($(date +%s) - start))

# ------------------------------------------------------------ checks

# Both sides count the same FLOPs (C: wrapped backend ops; torch: module hooks).
awk -F, 'NR > 1 { key = $2 "," $3 "," $4 "," $5; if (key in g) { d = $11 / g[key] - 1; if (d > 1e-3 || d < -1e-3) {
    printf "bench-models: %s: sdseg counts %s GFLOP, torch %s\n", key, g[key], $11; bad = 1 } } else g[key] = $11 }
    END { exit bad }' "$WORK/rows.csv" || die "the two FLOP counts disagree"

# ------------------------------------------------------------ CSV, chart, report

# One row per case: ours and torch side by side.
awk -F, -v peak="$PEAK" 'NR == 1 { next }
    $1 == "sdseg" { o[NR] = $0; next }
    { n = split(o[NR - 1], s, ","); printf "%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%.4f,%.4f,%s,%s,%.3f,%s,%s\n", s[2], s[3],
      s[4], s[5], s[7], s[11], s[9], $9, s[10], $10, s[12], $12, s[12] / peak, $12 / peak, s[14], $14, $9 / s[9], s[n],
      $NF }' \
    "$WORK/rows.csv" > "$WORK/pairs.csv"
{
    echo "case,width,batch,size,unit,gflop,sdseg_s,torch_s,sdseg_rate,torch_rate,sdseg_gflops,torch_gflops,sdseg_peak,torch_peak,sdseg_rss_mib,torch_rss_mib,speedup,sdseg_other_cores,torch_other_cores"
    cat "$WORK/pairs.csv"
} > "$BASE.csv.tmp"
mv "$BASE.csv.tmp" "$BASE.csv"

gnuplot << EOF
set terminal pngcairo size 1000,520 font ',11'
set output '$BASE.png.tmp'
set datafile separator ','
set title "sdseg vs PyTorch on the CPU ($THREADS threads, float32): share of the measured peak ($PEAK GFLOP/s)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set ylabel '% of CPU peak'
set yrange [0:*]
set grid ytics
set xtics rotate by 15 right
set key top right
plot '$BASE.csv' skip 1 using (100*\$13):xtic(sprintf("%s w%s b%s", stringcolumn(1), stringcolumn(2), stringcolumn(3))) \
        title 'sdseg' lc rgb '#1f77b4', \
     '' skip 1 using (100*\$14) title 'PyTorch $("$PY" -c 'import torch; print(torch.__version__)')' lc rgb '#ff7f0e'
EOF
mv "$BASE.png.tmp" "$BASE.png"

machine() {
    model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
    mem=$(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)
    echo "$model, $(nproc) cores, $mem RAM; $(uname -sr)"
}

# Counted forward GFLOP per image beside ../shared/docs/seed-models.md's, for the seed-sized rows.
flop_check() {
    awk -F, '$1 == "seg-train" && $2 == 64 && $4 == 256 { f = $6 / 3 / $3; d = 96.2; n = "segmentation U-Net, per 256^2 tile" }
        $1 == "vae-forward" && $2 == 128 && $4 == 256 { f = $6 / $3; d = 688; n = "VAE, per 256^2 tile" }
        $1 == "diffusion-forward" && $2 == 320 && $4 == 32 { f = $6 / $3; d = 170; n = "diffusion U-Net, per 32x32x32 latent" }
        d { printf "- %s: %.1f GFLOP forward counted, %s documented\n", n, f, d; d = 0; seen = 1 }
        END { if (!seen) print "- (no seed-sized rows in this run)" }' "$WORK/pairs.csv"
}

table() {
    echo "| case | width | batch | input | sdseg | PyTorch | speed-up | sdseg GFLOP/s (% peak) | PyTorch GFLOP/s (% peak) | sdseg RSS | PyTorch RSS | other load (cores) |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    awk -F, -v stack="$STACK" '{ u = $5 == "MP" ? "MP/s" : "img/s"; printf "| %s | %s | %s | %s | %.3g %s | %.3g %s | %.2fx | %.0f (%.0f%%) | %.0f (%.0f%%) | %.0f MiB | %.0f MiB | %s / %s |\n",
        $1, $2, $3, ($1 == "seg-infer" ? stack : $4 "x" $4), $9, u, $10, u, $17, $11, 100 * $13, $12, 100 * $14, $15, $16, $18, $19 }' \
        "$WORK/pairs.csv"
}

{
    echo "# CPU benchmark: the seed networks, sdseg vs PyTorch ($DATE)"
    echo
    echo "- Machine: $(machine)"
    echo "- Peak: $PEAK GFLOP/s float32 = $(echo "$PEAK_ROW" | awk -F, '{ printf "%s threads x %s GHz (measured) x %s lanes (%s) x 2 FMA units x 2", $1, $2, $3, $4 }') (bench/cpu_peak.c); memory bandwidth $(echo "$PEAK_ROW" | cut -d, -f6) GB/s (STREAM-style triad)"
    echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC'); whole run $ELAPSED s"
    echo "- Command: \`make bench-models\` (bench/bench_models.sh$([ "$QUICK" = 1 ] && echo ", BENCH_QUICK=1"))"
    echo "- Commit: $(commit_label)"
    echo "- sdseg: $(cc --version | head -n 1), -O3 -march=native, OpenMP, $THREADS threads"
    echo "- PyTorch: $("$PY" -c 'import torch; print(torch.__version__, "(Debian python3-torch), MKL-DNN", torch.backends.mkldnn.is_available())'), $THREADS threads, eager, float32"
    echo
    table
    echo
    echo "![share of peak]($(basename "$BASE").png)"
    echo
    echo "Cases (seed sizes: 256^2 tiles, 32^2 latents; segmentation batch 8, VAE and diffusion batch 1):"
    echo
    echo "- seg-train: one optimizer step of the seed recipe (BCE, Adam with the Keras L2 as coupled weight"
    echo "  decay) on a batch of 256^2 phantom tiles, in images/s."
    echo "- seg-infer: \`sdseg segment\`'s path (256-pixel tiles overlapping by 64, batch 8, raised-cosine"
    echo "  blending) over a $STACK (pages x height x width) stack, in megapixels/s; sdseg gets an EM-like"
    echo "  phantom, PyTorch uniform noise (the work does not depend on the values)."
    echo "- vae-forward: encoder + decoder (z = mean) of one 256^2 tile; diffusion-forward: one noise"
    echo "  prediction on a 32x32x32 latent (the seed's configurations; their training steps are not"
    echo "  measured here)."
    echo "- sample-ddpm, sample-ddim, sample-dpm++2m: generation as \`sdseg sample\` does it, in images/s:"
    echo "  Gaussian noise -> the sampler (DDPM ancestral 50 steps, the seed's; DDIM 50 steps, eta 0;"
    echo "  DPM-Solver++(2M) 20 steps) with the improved diffusion U-Net -> the improved VAE decoder"
    echo "  (image + mask channels) at U-Net width $S_WIDTH, VAE width $S_VAE, $S_SIZE^2 images ($((S_SIZE / 8))^2 latents), batch $S_BATCH."
    echo "  PyTorch runs the same models (tests/gen_oracle.py) in the loops of tests/sampler_oracle.py"
    echo "  (diffusers' scheduler arithmetic), eager, under no_grad."
    echo
    echo "Each rate is the best of the timed iterations after one warm-up (the CSV's reps: 1 where an"
    echo "iteration takes ~20 s or more, and width-64 training at batch 4 rather than the seed's 8, to keep"
    echo "the run near 8 minutes). FLOPs are counted while the networks run (2 x multiply-adds of"
    echo "convolutions, linear layers and attention products; a training step = 3 forward passes); the two"
    echo "sides count independently (wrapped backend operators; PyTorch module hooks) and the script checks"
    echo "that they agree to 0.1%. Against ../shared/docs/seed-models.md:"
    echo
    flop_check
    echo
    echo "RSS is each process's peak resident set (getrusage); PyTorch's includes the interpreter and"
    echo "libtorch (about 250 MiB before any model). Speed-up = PyTorch time / sdseg time (above 1: sdseg"
    echo "faster). Other load: the cores other processes kept busy while sdseg / PyTorch ran (the machine is"
    echo "shared; each case waits for a quiet moment first); a row with more than ~0.3 was disturbed."
    echo "Rows: $(basename "$BASE").csv."
} > "$BASE.md.tmp"
mv "$BASE.md.tmp" "$BASE.md"
echo "bench-models: $BASE.md, .csv, .png ($ELAPSED s)"
