# Shared by the stage scripts of repro/run.sh (sourced, POSIX sh). A stage script:
#
#   . "$REPRO/lib.sh"
#   stage_begin "what it does"
#   need_command train-seg --data --out      # or stop, naming the missing piece (exit 3)
#   KEY="the settings its outputs depend on"
#   done_with "$KEY" && outputs_valid && stage_skip   # outputs_valid: the stage's own check
#   run "$SDSEG" ...                         # logged: command line, output, seconds
#   stage_done "$KEY"
#
# run.sh exports: REPRO (this folder), ROOT, SDSEG, DATA, OUT, PROFILE, RUN_CMD and the
# profile's variables. Exit status of a stage: 0 done (or skipped: outputs already valid),
# 3 blocked (a command or an input it needs does not exist yet), anything else failed.

STAGE=$(basename "$0" .sh)
STAGE=${STAGE#[0-9][0-9]-}
SDIR=$OUT/$STAGE
LOG=$SDIR/stage.log
BLOCKED=3

say() { echo "[$STAGE] $*" | tee -a "$LOG"; }

fail() {
    say "FAILED: $*"
    exit 1
}

# Stop this stage: something it needs is missing (not an error of the stage itself).
blocked() {
    say "BLOCKED: $*"
    echo "$*" > "$SDIR/BLOCKED"
    exit "$BLOCKED"
}

commit_id() {
    c=$(git -C "$ROOT" rev-parse --short HEAD 2> /dev/null || echo unknown)
    if [ -z "$(git -C "$ROOT" status --porcelain 2> /dev/null)" ]; then echo "$c"; else echo "$c+uncommitted"; fi
}

device_name() {
    if [ "$DEVICE" = cuda ] && command -v nvidia-smi > /dev/null; then
        nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1
    else
        cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
        echo "cpu: $cpu, $(nproc) cores"
    fi
}

# The log's header: what, when, which code, which device, how it was started.
stage_begin() {
    mkdir -p "$SDIR"
    rm -f "$SDIR/BLOCKED"
    STAGE_START=$(date +%s)
    {
        echo "== $STAGE: $1"
        echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
        echo "commit: $(commit_id)"
        echo "device: $DEVICE ($(device_name)), threads ${THREADS:-0}"
        echo "profile: $PROFILE; data: $DATA; out: $OUT"
        echo "started by: $RUN_CMD"
    } >> "$LOG"
    echo "[$STAGE] $1 (log: $LOG)"
}

# sdseg must have command $1 and every option that follows, else the stage is blocked.
need_command() {
    cmd=$1
    shift
    help=$("$SDSEG" "$cmd" --help 2>&1) ||
        blocked "sdseg has no '$cmd' command yet (issue 6, the generative half, delivers it)"
    for opt in "$@"; do
        echo "$help" | grep -q -e "^  $opt " ||
            blocked "sdseg $cmd has no $opt option, which this stage passes: update repro/stages/$(basename "$0")"
    done
}

# An input another stage makes: without it this stage is blocked, naming that stage.
need_file() {
    [ -e "$1" ] || blocked "needs $1, which stage '$2' has not produced (see $OUT/$2/stage.log)"
}

# Run and log a command: its line, its output, its seconds (also to $OUT/timings.csv).
run() {
    say "+ $*"
    t0=$(date +%s)
    rcfile=$SDIR/.rc
    { "$@" 2>&1 && echo 0 > "$rcfile" || echo $? > "$rcfile"; } | tee -a "$LOG"
    rc=$(cat "$rcfile")
    rm -f "$rcfile"
    seconds=$(($(date +%s) - t0))
    [ -f "$OUT/timings.csv" ] || echo "stage,seconds,status,command" > "$OUT/timings.csv"
    printf '%s,%s,%s,"%s"\n' "$STAGE" "$seconds" "$rc" "$(echo "$*" | tr '"' "'")" >> "$OUT/timings.csv"
    say "  ($seconds s, exit status $rc)"
    [ "$rc" = 0 ] || fail "exit status $rc: $*"
}

stage_skip() {
    say "outputs present and valid: skipped (delete $SDIR to redo)"
    exit 0
}

# KEY: the settings a stage's outputs depend on, as one line. stage_done KEY records it; a
# later run skips the stage only when done_with KEY (same settings) and its outputs validate.
done_with() { [ -f "$SDIR/DONE" ] && [ "$(cat "$SDIR/DONE")" = "$1" ]; }

# Before training into run folder $2 with settings KEY $1: a folder left by a run with other
# settings is removed (training starts afresh); one with the same settings is resumed.
fresh_unless_same() {
    if [ -d "$2" ] && [ "$(cat "$SDIR/STARTED" 2> /dev/null)" != "$1" ]; then
        say "settings changed since $2 was started: removing it"
        rm -rf "$2"
    fi
    echo "$1" > "$SDIR/STARTED"
}

stage_done() {
    echo "$1" > "$SDIR/DONE"
    say "done in $(($(date +%s) - STAGE_START)) s"
}

# A tile dataset or TIFF stack that sdseg info reads completely and validates.
valid_data() { [ -s "$1" ] && "$SDSEG" info --in "$1" > /dev/null 2>&1; }

# A segmentation checkpoint that loads and runs: sdseg predict on one 32 x 32 zero image.
valid_seg_weights() {
    [ -s "$1" ] || return 1
    npy=$SDIR/.probe.npy
    dict="{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 32, 32), }"
    # NPY v1: magic, version 1.0, header length 118 (little-endian), header, 32*32 float32 zeros
    { printf '\223NUMPY\001\000\166\000'; printf "%-117s\n" "$dict"; head -c 4096 /dev/zero; } > "$npy"
    "$SDSEG" predict --weights "$1" --input "$npy" --output "$npy.out" > /dev/null 2>&1
    ok=$?
    rm -f "$npy" "$npy.out"
    return $ok
}

# The last epoch number in a train-seg style epochs.csv (0 when absent).
last_epoch() { [ -s "$1" ] && tail -n 1 "$1" | cut -d, -f2 | grep -E '^[0-9]+$' || echo 0; }

# --device/--threads/--fast as the profile sets them.
device_opts() {
    echo "$(device_threads)$([ "${FAST:-0}" = 1 ] && echo " --fast")"
}

# --device/--threads alone, for a command without --fast (sdseg sample).
device_threads() { echo "--device $DEVICE --threads ${THREADS:-0}"; }

# Train (or resume, or find finished) the segmentation U-Net of the profile into $SDIR/run
# on the tile folder $1 (train.tiles, val.tiles), plus the training tiles of the tile folder
# $2 when given (train-seg --extra-data; validation stays on $1's).
seg_train() {
    data=$1 extra=${2:-}
    key="data=$(cksum < "$data/train.tiles") recipe=$SEG_RECIPE width=$SEG_WIDTH batch=$SEG_BATCH epochs=$SEG_EPOCHS"
    set --
    if [ -n "$extra" ]; then
        key="$key extra=$(cksum < "$extra/train.tiles")"
        set -- --extra-data "$extra"
    fi
    if done_with "$key" && valid_seg_weights "$SDIR/run/best.safetensors" &&
        [ "$(last_epoch "$SDIR/run/epochs.csv")" -ge "$SEG_EPOCHS" ]; then
        stage_skip
    fi
    fresh_unless_same "$key" "$SDIR/run"
    [ ! -f "$SDIR/run/last.safetensors" ] || set -- "$@" --resume
    # shellcheck disable=SC2046 # device_opts are words
    run "$SDSEG" train-seg --data "$data" --out "$SDIR/run" --recipe "$SEG_RECIPE" --width "$SEG_WIDTH" \
        --batch "$SEG_BATCH" --epochs "$SEG_EPOCHS" $(device_opts) "$@"
    valid_seg_weights "$SDIR/run/best.safetensors" || fail "train-seg left no loadable best.safetensors"
    stage_done "$key"
}
