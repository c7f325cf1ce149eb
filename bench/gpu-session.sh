#!/bin/sh
# The CUDA backend's whole GPU check in one call, for a machine with a GPU:
#   build -> make test-gpu (float32 and bf16-fast) -> make bench-gpu -> make test-gpu-memcheck
# then logs, the benchmark CSV, its gnuplot script and chart, and a summary into $OUT
# (8 files at most, flat). Finishes within ~9 minutes: memcheck, last, gets the time left.
#
#   COMMIT=<id> OUT=<dir> sh bench/gpu-session.sh
#
# COMMIT labels the benchmark (default: git rev-parse, else "unknown"); OUT defaults to
# build/gpu-machine/session. Builds into build/gpu-machine/ for this GPU's architecture only. When the
# CUDA toolkit has no cuDNN, the one shipped with python3's PyTorch wheels is used.
#
#   MODELS=1 COMMIT=<id> OUT=<dir> sh bench/gpu-session.sh
#
# runs the model benchmark instead: build -> make bench-models-gpu (sdseg vs PyTorch on the
# three networks, bench/bench_models_gpu.sh) within the deadline (default 570 s here; the
# kernel checks are left out, as both would not fit in one ~10-minute call), and copies its
# report (.md, .csv, .gp, .png) into $OUT beside the build and benchmark logs.
set -u
cd "$(dirname "$0")/.."
START=$(date +%s)
MODELS=${MODELS:-0}
if [ "$MODELS" = 1 ]; then DEADLINE=${DEADLINE:-570}; else DEADLINE=${DEADLINE:-520}; fi # seconds for the whole script
OUT=${OUT:-build/gpu-machine/session}
B=build/gpu-machine
COMMIT=${COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
mkdir -p "$OUT" "$B"
SUMMARY="$OUT/summary.txt"
: >"$SUMMARY"

note() { echo "$*" | tee -a "$SUMMARY"; }
elapsed() { echo $(($(date +%s) - START)); }

# --- cuDNN: the toolkit's, the system's, or one shipped in python3's packages (PyTorch's
# nvidia-cudnn wheel: headers and libcudnn.so.9, which then needs an unversioned link name)
find_cudnn() {
    nvcc_path=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
    cuda_home=$(dirname "$(dirname "$nvcc_path")")
    for inc in "$cuda_home/include" /usr/include /usr/include/x86_64-linux-gnu; do
        [ -f "$inc/cudnn.h" ] && return 0
    done
    sites=$(python3 -c 'import site; print(" ".join(site.getsitepackages()))' 2>/dev/null)
    header=$(find $sites /opt /usr/local -name cudnn.h 2>/dev/null | head -1)
    if [ -z "$header" ]; then
        note "cuDNN: not found (no cudnn.h in the toolkit, the system or python3's packages)"
        return 1
    fi
    inc=$(dirname "$header")
    lib=$(find "$(dirname "$inc")" -name 'libcudnn.so*' 2>/dev/null | sort | head -1)
    mkdir -p "$B/cudnn-link"
    ln -sf "$lib" "$B/cudnn-link/libcudnn.so"
    export CPATH="$inc${CPATH:+:$CPATH}"
    export LIBRARY_PATH="$PWD/$B/cudnn-link:$(dirname "$lib")${LIBRARY_PATH:+:$LIBRARY_PATH}"
    export LD_LIBRARY_PATH="$(dirname "$lib")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    note "cuDNN: headers $inc, library $lib"
}

note "sdseg gpu-session, commit $COMMIT, $(date -u '+%Y-%m-%d %H:%M UTC')"
note "$(nvidia-smi -L 2>&1 | head -2)"
find_cudnn
CC_CAP=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .')
MAKEVARS="BUILD=$B COMMIT=$COMMIT"
if [ -n "$CC_CAP" ]; then
    GENCODE="-gencode arch=compute_$CC_CAP,code=sm_$CC_CAP"
else
    GENCODE="" # the Makefile's full list
fi

# step NAME LOG SECONDS MAKE-ARGS...: one make run, its output in $OUT/LOG, limited to
# SECONDS and to what is left of DEADLINE.
step() {
    name=$1 log=$2 limit=$3
    shift 3
    left=$((DEADLINE - $(elapsed)))
    [ "$limit" -gt "$left" ] && limit=$left
    [ "$limit" -lt 30 ] && limit=30
    t0=$(date +%s)
    if [ -n "$GENCODE" ]; then
        timeout "$limit" make $MAKEVARS GENCODE="$GENCODE" "$@" >"$OUT/$log" 2>&1
    else
        timeout "$limit" make $MAKEVARS "$@" >"$OUT/$log" 2>&1
    fi
    rc=$?
    status="ok"
    [ $rc -eq 0 ] || status="FAILED (exit $rc$([ $rc -eq 124 ] && echo ', timed out'))"
    note "$name: $status in $(($(date +%s) - t0)) s (limit $limit s)"
    return $rc
}

# Only what the GPU checks need: sdseg itself wants libtiff, which this machine may lack.
if [ "$MODELS" = 1 ]; then TARGETS="$B/bench_models_gpu"; else TARGETS="$B/test_gpu_ops $B/bench_gpu"; fi
# shellcheck disable=SC2086 # the targets are words
if ! step "build" build.log 300 -j"$(nproc)" $TARGETS; then
    tail -20 "$OUT/build.log" >>"$SUMMARY"
    exit 1
fi

# The model benchmark, its budget what is left less a margin for writing its report.
if [ "$MODELS" = 1 ]; then
    BENCH_SECONDS=$((DEADLINE - $(elapsed) - 30))
    export BENCH_SECONDS
    step "make bench-models-gpu" models.log "$DEADLINE" bench-models-gpu
    grep -E "^bench-models-gpu:|^== " "$OUT/models.log" >>"$SUMMARY"
    base=$(sed -n 's/^bench-models-gpu: \([^ ,]*\)\.md, \.csv.*/\1/p' "$OUT/models.log" | tail -1)
    for f in "$base.md" "$base.csv" "$base.gp" "$base.png"; do [ -n "$base" ] && [ -f "$f" ] && cp "$f" "$OUT/"; done
    note "total $(elapsed) s; files: $(ls "$OUT" | tr '\n' ' ')"
    exit 0
fi
step "make test-gpu" test-gpu.log 240 test-gpu
grep -E "^gpu ops:|^device memory" "$OUT/test-gpu.log" >>"$SUMMARY"
grep -E " FAIL " "$OUT/test-gpu.log" >>"$SUMMARY"

step "make bench-gpu" bench.log 240 bench-gpu
grep -E "^ceilings|^peak device memory" "$OUT/bench.log" >>"$SUMMARY"
csv=$(ls -t reports/bench-gpu-*.csv 2>/dev/null | head -1)
if [ -n "$csv" ]; then
    base=${csv%.csv}
    for f in "$base.csv" "$base.gp" "$base.png"; do [ -f "$f" ] && cp "$f" "$OUT/"; done
fi

step "make test-gpu-memcheck" memcheck.log "$DEADLINE" test-gpu-memcheck
grep -E "ERROR SUMMARY|^gpu ops:" "$OUT/memcheck.log" >>"$SUMMARY"
note "total $(elapsed) s; files: $(ls "$OUT" | tr '\n' ' ')"
