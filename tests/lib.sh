# Shared helpers of the tests/t_*.sh scripts (sourced). Each script sets fail=0 first
# (test_init does) and exits with "$fail".

# check_eq <description> <got> <want>
check_eq() {
    if [ "$2" = "$3" ]; then
        echo "  ok    $1 = $2"
    else
        echo "  FAIL  $1 = $2, want $3"
        fail=1
    fi
}

# check <description> <command...>: the command must succeed
check() {
    what=$1
    shift
    if "$@"; then echo "  ok   $what"; else echo "  FAIL $what"; fail=1; fi
}

# test_init <name>: what every script starts with -- B (the build folder), S (its sdseg),
# PY (the oracle's python), T (a scratch folder /tmp/sdseg_<name>.*, removed on exit) and
# fail=0.
test_init() {
    B=${BUILD:-build}
    S="$B/sdseg"
    PY=${PY:-/usr/bin/python3}
    T=$(mktemp -d "/tmp/sdseg_$1.XXXXXX")
    trap 'rm -rf "$T"' EXIT
    fail=0
}

# setup_failed <what>: a FAIL line, the last lines of $T/setup.log when there is one, and
# the end of the script (its setup did not work).
setup_failed() {
    echo "  FAIL $1"
    [ -f "$T/setup.log" ] && tail -3 "$T/setup.log"
    exit 1
}

# phantom_stack <pages>: $T/ph.tif, a phantom of that many 64 x 64 pages, and its masks $T/phm.tif.
phantom_stack() {
    "$S" phantom --out "$T/ph.tif" --mask-out "$T/phm.tif" --pages "$1" --height 64 --width 64 >/dev/null 2>&1
}

# prep_tiles <out> <val-last> [masks]: $T/ph.tif (with "masks": and $T/phm.tif) cut by prep
# into 32 x 32 tiles in <out>, its last <val-last> pages for validation.
prep_tiles() {
    if [ "${3:-}" = masks ]; then
        "$S" prep --image "$T/ph.tif" --mask "$T/phm.tif" --out "$1" --tile 32 --val-last "$2" >/dev/null 2>&1
    else
        "$S" prep --image "$T/ph.tif" --out "$1" --tile 32 --val-last "$2" >/dev/null 2>&1
    fi
}

# tiny_vae <out> <option...>: train-vae for one epoch on $T/data, width 8, 4 groups, batch
# 4 x accum 1, one thread, quietly; the options (at least --latent) add to these.
tiny_vae() {
    out=$1
    shift
    "$S" train-vae --data "$T/data" --out "$out" --width 8 --groups 4 --batch 4 --accum 1 --epochs 1 --threads 1 \
        "$@" >/dev/null 2>&1
}

# tiny_seg <data> <out>: train-seg, a U-Net of width 4 for 3 steps of batch 4, one thread.
tiny_seg() {
    "$S" train-seg --data "$1" --out "$2" --width 4 --epochs 1 --batch 4 --max-steps 3 --threads 1
}

# raw <in> <out>: an uncompressed copy of a TIFF stack, for the oracles' own parser.
raw() { tiffcp -c none "$1" "$2" 2>/dev/null; }

# same_run <run> <run>: the same last.safetensors and best.safetensors, byte for byte.
same_run() {
    cmp -s "$1/last.safetensors" "$2/last.safetensors" && cmp -s "$1/best.safetensors" "$2/best.safetensors"
}

# same_log <run> <run> <columns>: the same first <columns> columns of steps.csv (the ones
# before the timings).
same_log() {
    cut -d, -f1-"$3" "$1/steps.csv" >"$T/log1" && cut -d, -f1-"$3" "$2/steps.csv" >"$T/log2" &&
        cmp -s "$T/log1" "$T/log2"
}

# one_line_error <file with stderr> <text>: exactly one line, containing text.
one_line_error() {
    [ "$(wc -l <"$1")" -eq 1 ] && grep -q -- "$2" "$1" || { echo "       got: $(cat "$1")"; return 1; }
}

# error_exit <status> <description> <text> <command...>: the command fails with that exit
# status and one line on stderr containing text.
error_exit() {
    want=$1 what=$2 text=$3
    shift 3
    "$@" >/dev/null 2>"$T/err"
    st=$?
    if [ "$st" -eq "$want" ] && [ "$(wc -l <"$T/err")" -eq 1 ] && grep -q -- "$text" "$T/err"; then
        echo "  ok   $what"
    else
        echo "  FAIL $what (status $st): $(cat "$T/err")"
        fail=1
    fi
}
