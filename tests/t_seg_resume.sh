#!/bin/sh
# train-seg --resume is bit-identical on the CPU to a run that was never interrupted:
# the final last.safetensors and best.safetensors (weights, batch-norm buffers, optimizer
# moments, EMA, schedule state, metadata) must match byte for byte, for
#   1. the seed recipe with gradient accumulation, stopped by --max-steps mid-epoch and
#      exactly at an epoch boundary, then resumed twice;
#   2. the improved recipe (cosine, EMA, BCE + Dice, augmentation), stopped by SIGTERM at
#      whatever step it had reached, then resumed.
# Also: resuming with a conflicting setting, or training into an existing run without
# --resume, fails with a one-line message.
set -u
. "$(dirname "$0")/lib.sh"
test_init t_seg_resume

phantom_stack 10 && prep_tiles "$T/data" 2 masks || setup_failed "making the phantom tiles"

# 1. seed recipe, batch 4 x accum 2: 4 steps per epoch, 12 in all
A="--data $T/data --width 4 --batch 4 --accum 2 --epochs 3 --threads 2"
"$S" train-seg $A --out "$T/full" 2>/dev/null
"$S" train-seg $A --out "$T/stop" --max-steps 5 2>/dev/null
"$S" train-seg --data "$T/data" --out "$T/stop" --resume --max-steps 8 --threads 2 2>/dev/null
"$S" train-seg --data "$T/data" --out "$T/stop" --resume --threads 2 2>/dev/null
check "seed recipe: stop at step 5 and 8, resume: identical checkpoints" same_run "$T/full" "$T/stop"
check "seed recipe: one epochs.csv row per epoch" [ "$(wc -l <"$T/stop/epochs.csv")" -eq 4 ]
check "seed recipe: one steps.csv row per step" [ "$(wc -l <"$T/stop/steps.csv")" -eq 13 ]

# 2. improved recipe, interrupted by SIGTERM wherever it is after its third step
I="--data $T/data --width 4 --batch 4 --epochs 6 --recipe improved --threads 2"
"$S" train-seg $I --out "$T/full2" 2>/dev/null
"$S" train-seg $I --out "$T/kill" 2>/dev/null &
pid=$!
n=0
while [ "$n" -lt 200 ] && [ "$(cat "$T/kill/steps.csv" 2>/dev/null | wc -l)" -lt 4 ]; do
    sleep 0.05
    n=$((n + 1))
done
kill -TERM "$pid" 2>/dev/null
wait "$pid"
echo "       (stopped after step $(tail -n 1 "$T/kill/steps.csv" | cut -d, -f1) of 48)"
"$S" train-seg --data "$T/data" --out "$T/kill" --resume --threads 2 2>/dev/null
check "improved recipe: SIGTERM, resume: identical checkpoints" same_run "$T/full2" "$T/kill"

# refusals
"$S" train-seg --data "$T/data" --out "$T/full" --resume --lr 0.5 2>"$T/err"
check "resume with a different --lr: one-line error" one_line_error "$T/err" "differs from this run"
"$S" train-seg $A --out "$T/full" 2>"$T/err"
check "train into an existing run without --resume: one-line error" one_line_error "$T/err" "already holds a run"
"$S" train-seg --data "$T/data" --out "$T/none" --resume 2>"$T/err"
check "resume without a run: one-line error" one_line_error "$T/err" "nothing to resume"

[ "$fail" -eq 0 ] && echo "t_seg_resume: ok" || echo "t_seg_resume: FAILED"
exit "$fail"
