#!/bin/sh
# make bench-models-gpu: the seed networks on a GPU, sdseg beside PyTorch, case by case, each
# case in five variants, each variant in its own process (so each peak is that run's alone):
#
#   sdseg fp32              bench_models --device cuda          float32, TF32 off
#   sdseg bf16              bench_models --device cuda --fast   bf16 operands, float32 accumulation
#   torch eager fp32        torch_models.py --device cuda       cuDNN (autotuned), TF32 off
#   torch eager bf16 CL     ... --precision bf16 --channels-last   autocast, channels_last
#   torch compile bf16 CL   ... --mode compile (torch.compile; compilation not timed)
#
#   BUILD=build PY=python3 sh bench/bench_models_gpu.sh
#
# Same cases, batches and sizes on both sides. Writes $REPORTS/bench-<device>-<date>.csv (one
# row per case and variant), .md (GPU, date, command, commit, a summary with "ours / best
# PyTorch" and a table per case), .gp and .png (gnuplot chart of every variant's throughput
# relative to the case's best PyTorch variant). Environment:
#   BENCH_SECONDS=S  the whole run's budget (default 480; measured from the start): each command
#                    gets what is left of it, and the compile variants run last, after every
#                    case's other variants, so a short budget costs them first. A variant that
#                    fails, runs out of time or finds none left is a row saying so.
#   BENCH_COMPILE=0  leave the torch.compile variant out
#   BENCH_QUICK=1    tiny sizes, output under $BUILD/bench-quick-gpu/: a smoke test of the chain
#   BENCH_ONLY=RE    only the cases whose name matches the extended regex RE (e.g. sample)
#   REPORTS=DIR      output folder (default reports)
#   BENCH_DEVICE=cpu with BENCH_QUICK=1: the chain on the CPU, for a machine without a GPU
#                    (sdseg's --fast fails there, and torch.compile where PyTorch is older than 2.2)
#   PEAK_FP32_TFLOPS, PEAK_BF16_TFLOPS
#                    the utilisation denominators; default: this GPU's dense datasheet rates
#                    (FP32 without tensor cores; BF16 tensor) from reports/peak-rates.md
set -u
. bench/lib.sh

# The settings given in the environment, for the report (", NAME=value" each).
given_settings() {
    for v in BENCH_SECONDS BENCH_COMPILE BENCH_QUICK BENCH_ONLY BENCH_DEVICE PEAK_FP32_TFLOPS PEAK_BF16_TFLOPS; do
        eval "val=\${$v:-}"
        [ -z "$val" ] || printf ', %s=%s' "$v" "$val"
    done
}
SETTINGS=$(given_settings)

BUILD=${BUILD:-build}
PY=${PY:-python3}
DEVICE=${BENCH_DEVICE:-cuda}
QUICK=${BENCH_QUICK:-0}
BUDGET=${BENCH_SECONDS:-480}
COMPILE=${BENCH_COMPILE:-1}
OURS=$BUILD/bench_models_gpu
START=$(date +%s)
DATE=$(date -u +%Y-%m-%d)
if [ "$QUICK" = 1 ]; then REPORTS=${REPORTS:-$BUILD/bench-quick-gpu}; else REPORTS=${REPORTS:-reports}; fi

die() {
    echo "bench-models-gpu: $*" >&2
    exit 1
}
[ -x "$OURS" ] || die "$OURS is missing: run make bench-models-gpu"
"$PY" -c "import torch" 2> /dev/null || die "$PY cannot import torch (PY=python3 with PyTorch)"
case "$DEVICE" in
cuda)
    GPU=$(nvidia-smi --query-gpu=name --format=csv,noheader 2> /dev/null | head -n 1)
    [ -n "$GPU" ] || die "no GPU: nvidia-smi lists none"
    ;;
cpu)
    [ "$QUICK" = 1 ] || die "BENCH_DEVICE=cpu is a smoke test of the chain: use it with BENCH_QUICK=1 (make bench-models benchmarks the CPU)"
    GPU=cpu
    ;;
*) die "BENCH_DEVICE must be cuda or cpu (got $DEVICE)" ;;
esac
SLUG=$(echo "$GPU" | tr '[:upper:]' '[:lower:]' | sed 's/[^a-z0-9][^a-z0-9]*/-/g; s/^-//; s/-$//')
BASE=$REPORTS/bench-$SLUG-$DATE
mkdir -p "$REPORTS" || die "cannot create $REPORTS"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# ------------------------------------------------------------ peak rates

# The row of reports/peak-rates.md that describes a GPU, by the name the driver gives it.
table_row() {
    case "$1" in
    *H100*NVL*) echo "H100 NVL" ;;
    *H100*PCIe*) echo "H100 PCIe" ;;
    *H100*) echo "H100 SXM" ;;
    *H200*NVL*) echo "H200 NVL" ;;
    *H200*) echo "H200 SXM" ;;
    *A100*80GB*PCIe*) echo "A100 80 GB PCIe" ;;
    *A100*SXM*80GB*) echo "A100 80 GB SXM" ;;
    *A100*) echo "A100 40 GB PCIe / SXM" ;;
    *L4) echo "L4" ;;
    *T4) echo "T4" ;;
    esac
}

# "FP32 BF16" dense TFLOP/s of that row (BF16 empty where the GPU has none).
table_rates() {
    awk -F'|' -v key="$1" '{ d = $2; gsub(/^ +| +$/, "", d) }
        key != "" && (d == key || index(d, key " (") == 1) {
            gsub(/,/, "", $5); split($3, f, " "); split($5, b, " ")
            print f[1], (b[1] ~ /^[0-9.]+$/ ? b[1] : ""); exit }' reports/peak-rates.md
}

ROW=$(table_row "$GPU")
RATES=$(table_rates "$ROW")
PEAK_FP32=${PEAK_FP32_TFLOPS:-$(echo "$RATES" | cut -d' ' -f1 -s)}
PEAK_BF16=${PEAK_BF16_TFLOPS:-$(echo "$RATES" | cut -d' ' -f2 -s)}
if [ -n "${PEAK_FP32_TFLOPS:-}${PEAK_BF16_TFLOPS:-}" ]; then
    PEAK_SOURCE="given (PEAK_FP32_TFLOPS, PEAK_BF16_TFLOPS)"
elif [ -n "$ROW" ]; then
    PEAK_SOURCE="reports/peak-rates.md, row \"$ROW\" (dense datasheet rates)"
else
    PEAK_SOURCE="none known for this device: no utilisation"
fi

# ------------------------------------------------------------ the cases

# "case options" lines, at the seed's sizes: segmentation U-Net width 64 at batch 8 on 256^2
# tiles, seg-infer over 32 pages of EPFL size (a fifth of the stack: 640 tiles, whole batches
# of 8), sampling 4 images of 256^2 with the seed-sized improved models, the seed VAE at width
# 128 (batch 4), the seed diffusion U-Net at width 320 on 32x32 latents (batch 8). In the order
# of issue 7's measures, the forward-only cases last: when the budget runs short, their
# compile variants go first.
if [ "$QUICK" = 1 ]; then
    CASES="seg-train --width 4 --batch 2 --size 64 --reps 2
seg-infer --width 4 --batch 2 --stack 1x256x320 --reps 2
sample-ddpm --width 16 --vae-width 8 --size 64 --batch 2 --reps 1
sample-ddim --width 16 --vae-width 8 --size 64 --batch 2 --reps 1
sample-dpm++2m --width 16 --vae-width 8 --size 64 --batch 2 --reps 1
vae-forward --width 32 --size 32 --reps 2
diffusion-forward --width 32 --size 8 --reps 2"
else
    # reps: about a second of timed fp32 iterations per case on an H100; each process also
    # pays its start (CUDA, cuDNN, PyTorch's import: seconds) and a warm-up
    CASES="seg-train --width 64 --batch 8 --size 256 --reps 10
seg-infer --width 64 --batch 8 --stack 32x768x1024 --reps 2
sample-ddpm --width 320 --vae-width 128 --size 256 --batch 4 --reps 2
sample-ddim --width 320 --vae-width 128 --size 256 --batch 4 --reps 2
sample-dpm++2m --width 320 --vae-width 128 --size 256 --batch 4 --reps 3
vae-forward --width 128 --batch 4 --size 256 --reps 10
diffusion-forward --width 320 --batch 8 --size 32 --reps 10"
fi
[ -z "${BENCH_ONLY:-}" ] || CASES=$(echo "$CASES" | grep -E "^[^ ]*(${BENCH_ONLY})") || die "no case matches $BENCH_ONLY"

# "label|side|options" of each variant; the compile variant runs in a second pass, after
# every case's other variants.
VARIANTS="sdseg fp32|ours|
sdseg bf16|ours|--fast
torch eager fp32|torch|
torch eager bf16 CL|torch|--precision bf16 --channels-last"
COMPILE_LABEL="torch compile bf16 CL"
COMPILE_OPTS="--mode compile --precision bf16 --channels-last"
LABELS=$(echo "$VARIANTS" | cut -d'|' -f1; echo "$COMPILE_LABEL")
MIN_SECONDS=20 # a command is not started with less of the budget left

# ------------------------------------------------------------ running

# The last line of a command's error output, fit for a CSV field and a Markdown cell.
last_error() {
    grep -v '^[[:space:]]*$' "$1" | tail -n 1 | tr ',|' ';/' | cut -c 1-160
}

# Run one variant of one case; append "variant,status,options,<BENCH_COLUMNS>" to rows.csv
# (the columns empty but impl and case when it did not finish).
run_variant() {
    name=$1 opts=$2 label=$3 side=$4 extra=$5
    left=$((BUDGET - ($(date +%s) - START)))
    status=ok
    if [ "$left" -lt "$MIN_SECONDS" ]; then
        status="skipped: the budget of $BUDGET s was spent"
    else
        if [ "$side" = ours ]; then set -- "$OURS"; else set -- "$PY" bench/torch_models.py; fi
        # shellcheck disable=SC2086 # options are words
        timeout -k 10 "$left" "$@" "$name" $opts --device "$DEVICE" $extra < /dev/null > "$WORK/out" 2> "$WORK/err"
        rc=$?
        sed 's/^/    /' "$WORK/err" >&2
        if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
            status="timed out after $left s (the rest of the budget)"
        elif [ $rc -ne 0 ] || [ "$(tail -n 1 "$WORK/out" | tr -cd , | wc -c)" -ne 19 ]; then
            status="failed: $(last_error "$WORK/err")"
        fi
    fi
    impl=sdseg
    [ "$side" = ours ] || impl=torch
    if [ "$status" = ok ]; then
        echo "$label,ok,$opts,$(tail -n 1 "$WORK/out")"
    else # the 18 columns after impl and case empty
        echo "$label,$status,$opts,$impl,$name,,,,,,,,,,,,,,,,,,"
    fi >> "$WORK/rows.csv"
    echo "== $name, $label: $status ($(($(date +%s) - START)) s)"
}

: > "$WORK/rows.csv"
echo "bench-models-gpu: $GPU, budget $BUDGET s, peaks FP32 ${PEAK_FP32:-?} / BF16 ${PEAK_BF16:-?} TFLOP/s ($PEAK_SOURCE)"
echo "$CASES" | while read -r name opts; do
    echo "$VARIANTS" | while IFS='|' read -r label side extra; do run_variant "$name" "$opts" "$label" "$side" "$extra"; done
done
[ "$COMPILE" = 0 ] || echo "$CASES" | while read -r name opts; do
    run_variant "$name" "$opts" "$COMPILE_LABEL" torch "$COMPILE_OPTS"
done
ELAPSED=$(($(date +%s) - START))

# ------------------------------------------------------------ CSV

# rows.csv: 1 variant, 2 status, 3 options, then BENCH_COLUMNS from 4: impl, 5 case, 6 width,
# 7 batch, 8 size, 9 items, 10 unit, 11 reps, 12 seconds, 13 rate, 14 gflop, 15 gflops,
# 16 threads, 17 peak_rss_mib, 18 cpu_s, 19 device, 20 precision, 21 mode, 22 layout,
# 23 peak_device_mib. Out: one row per case and variant, with the utilisation (against the
# precision's peak) and the throughput over the case's best PyTorch variant, grouped by case.
COLUMNS=device,case,options,variant,impl,mode,precision,layout,status,reps,seconds,rate,unit,gflop,gflops,peak_tflops,mfu,peak_device_mib,peak_rss_mib,over_best_torch
awk -F, -v gpu="$GPU" -v fp32="$PEAK_FP32" -v bf16="$PEAK_BF16" '
    FNR == NR { if ($2 == "ok" && $4 == "torch" && $13 > best[$5]) best[$5] = $13; next }
    !($5 in rows) { order[++cases] = $5 }
    $2 != "ok" { rows[$5] = rows[$5] sprintf("%s,%s,%s,%s,%s,,,,%s,,,,,,,,,,,\n", gpu, $5, $3, $1, $4, $2); next }
    { peak = $20 == "bf16" ? bf16 : fp32
      rows[$5] = rows[$5] sprintf("%s,%s,%s,%s,%s,%s,%s,%s,ok,%s,%.6g,%.6g,%s,%.6g,%.6g,%s,%s,%.1f,%.1f,%s\n", gpu,
          $5, $3, $1, $4, $21, $20, $22, $11, $12, $13, $10, $14, $15, peak,
          peak ? sprintf("%.4f", $15 / 1000 / peak) : "", $23, $17, best[$5] ? sprintf("%.3f", $13 / best[$5]) : "") }
    END { for (c = 1; c <= cases; c++) printf "%s", rows[order[c]] }' \
    "$WORK/rows.csv" "$WORK/rows.csv" > "$WORK/final.csv"
{
    echo "$COLUMNS"
    cat "$WORK/final.csv"
} > "$BASE.csv.tmp" && mv "$BASE.csv.tmp" "$BASE.csv"

# Every finished variant of a case counts the same FLOPs (sdseg: wrapped backend operators;
# PyTorch: module hooks, in an eager pass); prints the disagreements.
flop_disagreements() {
    awk -F, '$9 == "ok" { if (!($2 in g)) { g[$2] = $14; v[$2] = $4 }
        else if ($14 / g[$2] - 1 > 1e-3 || $14 / g[$2] - 1 < -1e-3)
            printf "- %s: %s counts %s GFLOP, %s %s\n", $2, $4, $14, v[$2], g[$2] }' "$WORK/final.csv"
}
FLOP_BAD=$(flop_disagreements)

# ------------------------------------------------------------ chart

# Throughput over the case's best PyTorch variant: one cluster per case, one bar per variant
# ("?" where it did not finish), the 1.2x target as a dashed line. The data lie in the script.
chart_script() {
    echo "set terminal pngcairo size 1100,560 font ',11'"
    echo "set output '$BASE.png'"
    echo "set title \"sdseg vs PyTorch on $GPU ($DATE): throughput / the best PyTorch variant's\""
    echo "set style data histograms"
    echo "set style histogram clustered gap 1"
    echo "set style fill solid 0.85 border -1"
    echo "set boxwidth 0.9"
    echo "set datafile missing '?'"
    echo "set ylabel 'throughput / best PyTorch'"
    echo "set yrange [0:*]"
    echo "set grid ytics"
    echo "set xtics rotate by 15 right"
    echo "set key top left"
    echo "\$rates << EOD"
    awk -F, -v labels="$(echo "$LABELS" | tr '\n' '|')" '
        BEGIN { nv = split(labels, v, "|") - 1 }
        { if (!($2 in seen)) { seen[$2] = 1; order[++nc] = $2 } r[$2, $4] = $20 }
        END { for (c = 1; c <= nc; c++) { line = "\"" order[c] "\""
              for (i = 1; i <= nv; i++) line = line " " (r[order[c], v[i]] == "" ? "?" : r[order[c], v[i]])
              print line } }' "$WORK/final.csv"
    echo "EOD"
    echo "$LABELS" | awk '{ printf "%s using %d%s title \"%s\"", NR == 1 ? "plot $rates" : ", \\\n     \"\"", NR + 1,
        NR == 1 ? ":xtic(1)" : "", $0 }
        END { print ", \\\n     1.2 with lines dashtype 2 lc rgb \"black\" title \"target 1.2x\"" }'
}
chart_script > "$BASE.gp.tmp" && mv "$BASE.gp.tmp" "$BASE.gp"
if command -v gnuplot > /dev/null &&
    sed "s|^set output .*|set output '$BASE.png.tmp'|" "$BASE.gp" | gnuplot && mv "$BASE.png.tmp" "$BASE.png"; then
    CHART="![throughput over the best PyTorch variant]($(basename "$BASE").png)"
else
    CHART="(no chart: no gnuplot here; \`gnuplot $BASE.gp\` in the repository's root draws it)"
fi

# ------------------------------------------------------------ report

machine() {
    if [ "$DEVICE" = cuda ]; then
        nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -n 1 |
            awk -F', ' '{ printf "%s, %s, driver %s", $1, $2, $3 }'
    else
        echo "no GPU (BENCH_DEVICE=cpu)"
    fi
    model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
    echo "; host $model, $(nproc) cores, $(uname -sr)"
}

nvcc_version() {
    nvcc=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
    "$nvcc" --version 2> /dev/null | sed -n 's/.*release \([^,]*\),.*/CUDA \1/p'
}

# One line per case: the best sdseg and PyTorch variants and their ratio.
summary_table() {
    echo "| case | best sdseg | best PyTorch | ours / best PyTorch | >= 1.2x |"
    echo "| --- | --- | --- | ---: | --- |"
    awk -F, '{ if (!($2 in seen)) { seen[$2] = 1; order[++nc] = $2 } }
        $9 == "ok" { u = $13 == "MP" ? "MP/s" : "img/s"; k = $2 SUBSEP $5
            if ($12 > best[k]) { best[k] = $12; name[k] = sprintf("%.3g %s (%s)", $12, u, $4) } }
        END { for (c = 1; c <= nc; c++) { s = order[c] SUBSEP "sdseg"; t = order[c] SUBSEP "torch"
            ratio = best[s] && best[t] ? best[s] / best[t] : 0
            printf "| %s | %s | %s | %s | %s |\n", order[c], s in name ? name[s] : "none finished",
                t in name ? name[t] : "none finished", ratio ? sprintf("%.2fx", ratio) : "-",
                ratio ? (ratio >= 1.2 ? "yes" : "no") : "-" } }' "$WORK/final.csv"
}

# A table per case: every variant, or why it has no numbers.
case_tables() {
    awk -F, '$2 != last { last = $2
            printf "\n### %s (%s)\n\n", $2, $3
            print "| variant | time / iteration | throughput | GFLOP/s | utilisation (of the peak) | peak device memory | peak host RSS | / best PyTorch |"
            print "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |" }
        $9 != "ok" { printf "| %s | %s | | | | | | |\n", $4, $9; next }
        { u = $13 == "MP" ? "MP/s" : "img/s"
          printf "| %s | %.4g s | %.4g %s | %.0f | %s | %.0f MiB | %.0f MiB | %s |\n", $4, $11, $12, u, $15,
              $17 == "" ? "-" : sprintf("%.1f%%", 100 * $17), $18, $19, $20 == "" ? "-" : $20 "x" }' \
        "$WORK/final.csv"
}

{
    echo "# GPU benchmark: the seed networks, sdseg vs PyTorch ($GPU, $DATE)"
    echo
    echo "- Machine: $(machine | tr -d '\n')"
    echo "- Peaks (the utilisation denominators): FP32 ${PEAK_FP32:-?} TFLOP/s for the fp32 variants, BF16 ${PEAK_BF16:-?} TFLOP/s for the bf16 ones; $PEAK_SOURCE"
    echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC'); whole run $ELAPSED s of a budget of $BUDGET s"
    echo "- Command: \`make bench-models-gpu\` (bench/bench_models_gpu.sh$SETTINGS)"
    echo "- Commit: $(commit_label)"
    echo "- sdseg: $(nvcc_version), $(cc --version | head -n 1), the CUDA backend (gpu/: cuDNN, cuBLAS)"
    echo "- PyTorch: $("$PY" -c 'import torch; print(torch.__version__, "CUDA", torch.version.cuda, "cuDNN", torch.backends.cudnn.version())' 2> /dev/null)"
    echo
    echo "## Summary"
    echo
    summary_table
    echo
    echo "$CHART"
    echo
    if [ -n "$FLOP_BAD" ]; then
        echo "**The FLOP counts disagree** (every variant of a case should count the same):"
        echo
        echo "$FLOP_BAD"
    else
        echo "Every finished variant of a case counted the same FLOPs (to 0.1%)."
    fi
    echo
    echo "## Cases"
    case_tables
    echo
    echo "## How"
    echo
    echo "- seg-train: one optimizer step of the seed recipe (BCE, Adam with the Keras L2 as coupled weight"
    echo "  decay) on a batch of 256^2 tiles, in images/s. seg-infer: \`sdseg segment\`'s path (256-pixel tiles"
    echo "  overlapping by 64, batch 8, raised-cosine blending) over a stack, host to host, in megapixels/s."
    echo "  vae-forward: the seed VAE's encoder + decoder (z = mean); diffusion-forward: one noise prediction"
    echo "  of the seed diffusion U-Net. sample-ddpm / -ddim / -dpm++2m: noise -> DDPM ancestral 50 steps,"
    echo "  DDIM 50 steps or DPM-Solver++(2M) 20 steps with the improved diffusion U-Net -> the improved VAE"
    echo "  decoder, in images/s. The options of each case head its table."
    echo "- sdseg: build/bench_models_gpu (bench/bench_models.c): fp32 is float32 throughout with TF32 off;"
    echo "  bf16 (--fast) gives convolutions and matrix products bf16 operands with float32 accumulation"
    echo "  (attention's scores QK^T excepted: float32, where PyTorch's autocast takes bf16)."
    echo "- PyTorch: bench/torch_models.py, the modules tests/ checks sdseg against, cudnn.benchmark on, TF32"
    echo "  off; bf16 is autocast around the forwards, CL the channels_last memory format of models and"
    echo "  inputs; compile is torch.compile (Inductor, default mode) of the networks' top-level modules,"
    echo "  its compilation and two further iterations left out of the timing."
    echo "- Each time is the best of the timed iterations after a warm-up, every iteration between two"
    echo "  device synchronisations. FLOPs are counted while the networks run (2 x multiply-adds of"
    echo "  convolutions, linear layers and attention products; a training step = 3 forward passes), by"
    echo "  each side independently. Utilisation = counted FLOP/s over the precision's peak."
    echo "- Peak device memory: sdseg's device-memory accountant (gpu/memory.cu: every allocation of the"
    echo "  backend, library workspaces included); PyTorch's torch.cuda.max_memory_allocated() (its caching"
    echo "  allocator's tensors; seg-infer keeps the whole stack on the GPU there). Peak host RSS: getrusage."
    echo "- / best PyTorch: the variant's throughput over the best PyTorch variant's of the same case."
    echo "  Rows: $(basename "$BASE").csv; chart script: $(basename "$BASE").gp."
} > "$BASE.md.tmp" && mv "$BASE.md.tmp" "$BASE.md"
echo "bench-models-gpu: $BASE.md, .csv, .gp$([ -f "$BASE.png" ] && echo ", .png") ($ELAPSED s)"
[ -z "$FLOP_BAD" ] || die "the FLOP counts disagree: $FLOP_BAD"
