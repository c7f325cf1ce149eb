#!/bin/sh
# train-vae on a tiny phantom (width 8, 32x32 tiles):
#   - seed recipe: a few steps give finite losses, one CSV row per step and per epoch, and
#     a validation loss that is MSE + KL of its own columns, the KL above the seed defect's
#     floor;
#   - stopped by --max-steps mid-epoch and resumed, the final last.safetensors and
#     best.safetensors and the step log are byte-identical to a run never interrupted;
#     the same from a checkpoint of format 1 (written before the improved recipe existed);
#   - improved recipe with --with-masks: 2-channel network, AdamW state, EMA weights and
#     the settings in the checkpoint, the warmup's learning rates in the log, the loss
#     MSE + 1e-4 KL, the image-channel MSE reported; stopped and resumed byte-identically;
#   - --with-masks on image-only datasets and an unknown recipe fail with one line;
#   - a truncated checkpoint, one whose tensors do not fit its settings, another model's,
#     a conflicting setting on resume, training into an existing run and resuming nothing
#     each fail with exactly one line on stderr.
set -u
. "$(dirname "$0")/lib.sh"
test_init t_vae_train

# tampered <from> <to> <metadata key> <value>: a copy of a checkpoint with one metadata value changed
# as_format1 <from> <to>: a seed run's checkpoint as format 1 wrote it (no later settings)
as_format1() {
    mkdir -p "$(dirname "$2")"
    "$PY" - "$@" <<'EOF'
import json, struct, sys
src, dst = sys.argv[1:3]
data = open(src, "rb").read()
(n,) = struct.unpack("<Q", data[:8])
h = json.loads(data[8:8 + n])
m = h["__metadata__"]
for k in ("config", "channels", "optim", "schedule", "wd", "ema", "warmup"):
    del m["cfg." + k]
m["format"] = "sdseg-train-vae/1"
raw = json.dumps(h).encode()
raw += b" " * (-len(raw) % 8)
open(dst, "wb").write(struct.pack("<Q", len(raw)) + raw + data[8 + n:])
EOF
}

tampered() {
    mkdir -p "$(dirname "$2")"
    "$PY" - "$@" <<'EOF'
import json, struct, sys
src, dst, key, value = sys.argv[1:5]
data = open(src, "rb").read()
(n,) = struct.unpack("<Q", data[:8])
h = json.loads(data[8:8 + n])
h["__metadata__"][key] = value
raw = json.dumps(h).encode()
raw += b" " * (-len(raw) % 8)
open(dst, "wb").write(struct.pack("<Q", len(raw)) + raw + data[8 + n:])
EOF
}

phantom_stack 8 && prep_tiles "$T/data" 2 && prep_tiles "$T/mdata" 2 masks || setup_failed "making the phantom tiles"

# 24 training tiles, batch 4 x accum 2: 3 steps per epoch, 6 in all
A="--data $T/data --width 8 --groups 4 --latent 4 --batch 4 --accum 2 --epochs 2 --lr 0.01 --threads 2"
"$S" train-vae $A --out "$T/full" 2>/dev/null
check "a fresh run finishes" [ $? -eq 0 ]
check "one steps.csv row per step, one epochs.csv row per epoch" \
    [ "$(wc -l <"$T/full/steps.csv")" -eq 7 -a "$(wc -l <"$T/full/epochs.csv")" -eq 3 ]
check "finite losses; val_loss = val_mse + val_kl >= ln(2)/2 (seed units and KL)" "$PY" - "$T/full" <<'EOF'
import csv, math, sys
steps = list(csv.DictReader(open(sys.argv[1] + "/steps.csv")))
epochs = list(csv.DictReader(open(sys.argv[1] + "/epochs.csv")))
ok = all(math.isfinite(float(r["loss"])) and float(r["mse"]) > 0 for r in steps)
ok &= all(abs(float(r["val_loss"]) - float(r["val_mse"]) - float(r["val_kl"])) < 1e-5 for r in epochs)
# the seed's KL defect: -0.5 (1 + lv - 2 exp(lv)) is at least ln(2)/2 per element
ok &= all(float(r["val_kl"]) >= math.log(2) / 2 - 1e-6 for r in epochs)
sys.exit(not ok)
EOF

"$S" train-vae $A --out "$T/stop" --max-steps 4 2>/dev/null
mkdir -p "$T/v1" && cp "$T/stop/"*.csv "$T/stop/best.safetensors" "$T/v1/" &&
    as_format1 "$T/stop/last.safetensors" "$T/v1/last.safetensors"
"$S" train-vae --data "$T/data" --out "$T/stop" --resume --threads 2 2>/dev/null
check "stop at step 4 (mid-epoch), resume: identical checkpoints" same_run "$T/full" "$T/stop"
check "resumed step log: the same losses" same_log "$T/full" "$T/stop" 6
"$S" train-vae --data "$T/data" --out "$T/v1" --resume --threads 2 2>/dev/null
check "resume from a format-1 checkpoint: identical checkpoints" same_run "$T/full" "$T/v1"

# the improved recipe on [image, mask]: 24 tiles, batch 4, accum 1: 6 steps per epoch, 12 in all
I="--data $T/mdata --recipe improved --with-masks --width 8 --groups 4 --latent 4 --batch 4 --epochs 2 --threads 2"
"$S" train-vae $I --out "$T/imp" 2>/dev/null
check "improved recipe with masks: a fresh run finishes" [ $? -eq 0 ]
check "improved: 2 channels, AdamW, EMA, cosine warmup, MSE + 1e-4 KL, image MSE" "$PY" - "$T/imp" <<'EOF'
import csv, json, math, struct, sys
d = sys.argv[1]
data = open(d + "/last.safetensors", "rb").read()
(n,) = struct.unpack("<Q", data[:8])
h = json.loads(data[8:8 + n])
m = h["__metadata__"]
ok = m["format"] == "sdseg-train-vae/2" and m["cfg.config"] == "improved" and m["cfg.channels"] == "2"
ok &= m["cfg.optim"] == "adamw" and m["cfg.schedule"] == "cosine" and float(m["cfg.ema"]) == 0.999
ok &= m["cfg.kl"] == "fixed" and float(m["cfg.kl_weight"]) == 1e-4 and m["cfg.warmup"] == "6"
ok &= h["encoder.main.0.weight"]["shape"] == [8, 2, 3, 3] and h["decoder.stg3.11.weight"]["shape"] == [2, 4, 3, 3]
ok &= all(p + "encoder.main.0.weight" in h for p in ("optim.m.", "optim.v.", "ema.", "best."))
steps = list(csv.DictReader(open(d + "/steps.csv")))
# warmup: lr 2e-4 (s + 1) / 6 for the first 6 steps, then the cosine below it
ok &= all(abs(float(r["lr"]) - 2e-4 * (i + 1) / 6) < 1e-9 for i, r in enumerate(steps[:6]))
ok &= all(float(r["lr"]) < 2e-4 for r in steps[7:]) and len(steps) == 12
epochs = list(csv.DictReader(open(d + "/epochs.csv")))
ok &= all(abs(float(r["val_loss"]) - float(r["val_mse"]) - 1e-4 * float(r["val_kl"])) < 1e-6 for r in epochs)
ok &= all(0 < float(r["val_mse_image"]) < 1 and math.isfinite(float(r["val_kl"])) for r in epochs)
sys.exit(not ok)
EOF
"$S" train-vae $I --out "$T/imp_stop" --max-steps 8 2>/dev/null
"$S" train-vae --data "$T/mdata" --out "$T/imp_stop" --resume --threads 2 2>/dev/null
check "improved: stop at step 8, resume: identical checkpoints" same_run "$T/imp" "$T/imp_stop"
check "improved: resumed step log: the same losses" same_log "$T/imp" "$T/imp_stop" 6

# refusals
"$S" train-vae --data "$T/data" --out "$T/nomask" --with-masks --batch 4 --accum 2 2>"$T/err"
check "--with-masks on image-only datasets: one-line error" one_line_error "$T/err" "hold no masks"
"$S" train-vae --data "$T/data" --out "$T/badrecipe" --recipe best 2>"$T/err"
check "an unknown recipe: one-line error" one_line_error "$T/err" "unknown recipe"
"$S" train-vae --data "$T/data" --out "$T/full" --resume --lr 0.5 2>"$T/err"
check "resume with a different --lr: one-line error" one_line_error "$T/err" "differs from this run"
"$S" train-vae $A --out "$T/full" 2>"$T/err"
check "train into an existing run without --resume: one-line error" one_line_error "$T/err" "already holds a run"
"$S" train-vae --data "$T/data" --out "$T/none" --resume 2>"$T/err"
check "resume without a run: one-line error" one_line_error "$T/err" "nothing to resume"
mkdir -p "$T/cut"
head -c 3000 "$T/full/last.safetensors" >"$T/cut/last.safetensors"
"$S" train-vae --data "$T/data" --out "$T/cut" --resume 2>"$T/err"
check "resume from a truncated checkpoint: one-line error" one_line_error "$T/err" "last.safetensors"
tampered "$T/full/last.safetensors" "$T/mix/last.safetensors" cfg.width 16
"$S" train-vae --data "$T/data" --out "$T/mix" --resume 2>"$T/err"
check "resume from tensors that do not fit the settings: one-line error" one_line_error "$T/err" "expected F32"
tampered "$T/full/last.safetensors" "$T/seg/last.safetensors" model seg-unet
"$S" train-vae --data "$T/data" --out "$T/seg" --resume 2>"$T/err"
check "resume from another model's checkpoint: one-line error" one_line_error "$T/err" "not a VAE training checkpoint"

[ "$fail" -eq 0 ] && echo "t_vae_train: ok" || echo "t_vae_train: FAILED"
exit "$fail"
