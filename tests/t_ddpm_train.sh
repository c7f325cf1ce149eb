#!/bin/sh
# train-ddpm on a tiny phantom through a tiny VAE (train-vae width 8, 32x32 tiles, latents
# 4x4x4; a 2-level U-Net of width 8):
#   - uniform t: the validation loss (fixed seeded timesteps and noise) falls below 93% of
#     the first epoch's and the training loss by more than 5%;
#   - t-sampling fixed999 (the seed's defect 1) against uniform from the same start: other
#     losses from the first step on; trained at t = 999 only, the training loss drops to
#     under 75% of the validation loss, which covers every t, while uniform's stay together;
#   - stopped by --max-steps mid-epoch and resumed (seed and improved recipes), the final
#     last.safetensors, best.safetensors and step log are byte-identical to a run never
#     interrupted;
#   - the checkpoints: latent scale and the VAE's absolute path in both, "ema." weights in
#     the improved recipe's best;
#   - bad options, a missing --vae, another --vae on resume, a truncated checkpoint,
#     another model's checkpoint, a VAE file that is not one, a conflicting setting on
#     resume and training into an existing run: one line on stderr, exit status 2;
#   - one optimizer step against PyTorch (t_ddpm_step dump + tests/ddpm_oracle.py): the
#     drawn timesteps, x_t, targets, loss and every parameter gradient.
set -u
. "$(dirname "$0")/lib.sh"
test_init t_ddpm_train

# refused <file with stderr> <exit status> <text>: status 2 and exactly one line, containing text
refused() {
    [ "$2" -eq 2 ] || { echo "       got status $2: $(cat "$1")"; return 1; }
    one_line_error "$1" "$3"
}

# epochs_py <run> <python condition on rows e (epochs.csv dicts, floats)>
epochs_py() {
    "$PY" -c "import csv, sys
e = [{k: float(v) for k, v in r.items()} for r in csv.DictReader(open(sys.argv[1] + '/epochs.csv'))]
sys.exit(not ($2))" "$1"
}

phantom_stack 8 && prep_tiles "$T/data" 2 && tiny_vae "$T/vae" --latent 4 --lr 0.01 ||
    setup_failed "making the phantom tiles and the VAE"
V="$T/vae/best.safetensors"

# 24 training latents, batch 4 x accum 1: 6 steps per epoch; one thread (bit-identical resume)
A="--data $T/data --vae $V --width 8 --levels 2 --groups 4 --heads 2 --blocks 1 --batch 4 --accum 1 --threads 1"

# ---------------------------------------------------------------- learning
"$S" train-ddpm $A --out "$T/learn" --t-sampling uniform --lr 0.05 --epochs 16 --revert-patience 0 \
    --stop-patience 20 2>/dev/null
check "uniform t, 16 epochs: finishes" [ $? -eq 0 ]
check "uniform t: validation loss below 93% of the first epoch's" \
    epochs_py "$T/learn" "min(r['val_loss'] for r in e) < 0.93 * e[0]['val_loss']"
check "uniform t: training loss of the last 4 epochs below 95% of the first 4" \
    epochs_py "$T/learn" "sum(r['train_loss'] for r in e[-4:]) < 0.95 * sum(r['train_loss'] for r in e[:4])"

"$S" train-ddpm $A --out "$T/t999" --lr 0.05 --epochs 4 --revert-patience 0 2>/dev/null
"$S" train-ddpm $A --out "$T/tuni" --lr 0.05 --epochs 4 --revert-patience 0 --t-sampling uniform 2>/dev/null
check "fixed999 and uniform: other losses from the first step" \
    [ "$(sed -n 2p "$T/t999/steps.csv" | cut -d, -f4)" != "$(sed -n 2p "$T/tuni/steps.csv" | cut -d, -f4)" ]
check "fixed999: training loss under 75% of the validation loss (it never saw t < 999)" \
    epochs_py "$T/t999" "e[-1]['train_loss'] < 0.75 * e[-1]['val_loss']"
check "uniform: training and validation loss within 15%" \
    epochs_py "$T/tuni" "abs(e[-1]['train_loss'] / e[-1]['val_loss'] - 1) < 0.15"

# ---------------------------------------------------------------- resume
"$S" train-ddpm $A --out "$T/full" --epochs 2 2>/dev/null
"$S" train-ddpm $A --out "$T/stop" --epochs 2 --max-steps 4 2>/dev/null
"$S" train-ddpm --data "$T/data" --out "$T/stop" --resume --threads 1 2>/dev/null
check "seed recipe: stop at step 4 (mid-epoch), resume: identical checkpoints" same_run "$T/full" "$T/stop"
check "seed recipe: resumed step log has the same losses" same_log "$T/full" "$T/stop" 4

I="$A --recipe improved --revert-patience 3 --epochs 2 --lr 3e-3"
"$S" train-ddpm $I --out "$T/ifull" 2>/dev/null
"$S" train-ddpm $I --out "$T/istop" --max-steps 8 --save-every 5 2>/dev/null
"$S" train-ddpm --data "$T/data" --vae "$V" --out "$T/istop" --resume --threads 1 2>/dev/null
check "improved recipe (AdamW, EMA, cosine, revert copies): stop at step 8, resume: identical" \
    same_run "$T/ifull" "$T/istop"

check "checkpoints: latent scale, the VAE's absolute path, ema. in the improved best" "$PY" - "$T" "$V" <<'EOF'
import json, os, struct, sys
def header(path):
    blob = open(path, "rb").read()
    (n,) = struct.unpack("<Q", blob[:8])
    return json.loads(blob[8:8 + n])
root, vae = sys.argv[1], os.path.realpath(sys.argv[2])
ok = True
for run, ema in (("full", False), ("ifull", True)):
    for name in ("best", "last"):
        h = header(f"{root}/{run}/{name}.safetensors")
        m = h["__metadata__"]
        ok &= m["model"] == "ddpm" and m["vae_path"] == vae and float(m["state.latent_scale"]) > 0
        ok &= m["cfg.latent"] == "4" and m["cfg.latent_h"] == "4" and m["cfg.latent_w"] == "4"
        ok &= any(k.startswith("ema.") for k in h) == ema
sys.exit(not ok)
EOF

# ---------------------------------------------------------------- refusals
"$S" train-ddpm $A --out "$T/bad1" --t-sampling sometimes 2>"$T/err"
check "--t-sampling sometimes: one line, status 2" refused "$T/err" $? "bad t_sampling 'sometimes'"
"$S" train-ddpm $A --out "$T/bad2" --attn 1,2 2>"$T/err"
check "--attn 1,2: one line, status 2" refused "$T/err" $? "bad attn"
"$S" train-ddpm $A --out "$T/bad3" --width 7 2>"$T/err"
check "--width 7: one line, status 2" refused "$T/err" $? "width must be even"
"$S" train-ddpm --data "$T/data" --out "$T/bad4" 2>"$T/err"
check "no --vae for a new run: one line, status 2" refused "$T/err" $? "vae is required"
"$S" train-ddpm $A --out "$T/bad5" --levels 4 2>"$T/err"
check "4 levels on 4x4 latents: one line, status 2" refused "$T/err" $? "multiples of 8"
"$S" train-ddpm --data "$T/data" --vae "$T/full/best.safetensors" --out "$T/bad6" 2>"$T/err"
check "--vae naming a diffusion checkpoint: one line, status 2" refused "$T/err" $? "best.safetensors"
cp "$V" "$T/other_vae.safetensors"
"$S" train-ddpm --data "$T/data" --vae "$T/other_vae.safetensors" --out "$T/full" --resume 2>"$T/err"
check "resume with another --vae: one line, status 2" refused "$T/err" $? "not the VAE this run was trained on"
"$S" train-ddpm --data "$T/data" --out "$T/full" --resume --lr 0.5 2>"$T/err"
check "resume with a different --lr: one line, status 2" refused "$T/err" $? "differs from this run"
"$S" train-ddpm $A --out "$T/full" 2>"$T/err"
check "train into an existing run without --resume: one line, status 2" refused "$T/err" $? "already holds a run"
mkdir -p "$T/cut"
head -c 3000 "$T/full/last.safetensors" >"$T/cut/last.safetensors"
"$S" train-ddpm --data "$T/data" --out "$T/cut" --resume 2>"$T/err"
check "resume from a truncated checkpoint: one line, status 2" refused "$T/err" $? "last.safetensors"
mkdir -p "$T/foreign"
cp "$T/vae/last.safetensors" "$T/foreign/last.safetensors"
"$S" train-ddpm --data "$T/data" --out "$T/foreign" --resume 2>"$T/err"
check "resume from a VAE's checkpoint: one line, status 2" refused "$T/err" $? "not a diffusion"

# ---------------------------------------------------------------- one step against PyTorch
"$B/tests/t_ddpm_step" dump "$T/oracle" && (cd tests && "$PY" ddpm_oracle.py "$T/oracle") >"$T/oracle.log" 2>&1
check "one optimizer step against PyTorch (tests/ddpm_oracle.py)" [ $? -eq 0 ]
grep -q FAIL "$T/oracle.log" && cat "$T/oracle.log"

[ "$fail" -eq 0 ] && echo "t_ddpm_train: ok" || echo "t_ddpm_train: FAILED"
exit "$fail"
