#!/bin/sh
# Checkpoints through the command line: `sdseg predict` on a trained U-Net's
# best.safetensors gives finite logits of the input's shape, the same as from
# last.safetensors when they hold the same weights; damaged or unfit checkpoints (truncated,
# bad JSON, a tensor of the wrong shape, another model, no file) fail with exactly one
# line on stderr and a non-zero exit status.
set -u
. "$(dirname "$0")/lib.sh"
test_init t_seg_checkpoint

# rejects <file> <text>: predict fails, one stderr line containing text
rejects() {
    "$S" predict --weights "$1" --input "$T/x.npy" --output "$T/bad.npy" 2>"$T/err"
    rc=$?
    [ "$rc" -ne 0 ] && [ "$(wc -l <"$T/err")" -eq 1 ] && grep -q "^sdseg predict: .*$2" "$T/err" ||
        { echo "       exit $rc: $(cat "$T/err")"; return 1; }
}

phantom_stack 6 && prep_tiles "$T/data" 1 masks &&
    "$S" train-seg --data "$T/data" --out "$T/run" --width 4 --batch 4 --epochs 1 --augment none 2>/dev/null ||
    setup_failed "training a tiny U-Net"

"$PY" - "$T" <<'EOF'
import sys, numpy as np
np.save(sys.argv[1] + "/x.npy", np.random.default_rng(0).random((3, 1, 48, 32), dtype=np.float32))
EOF
"$S" predict --weights "$T/run/best.safetensors" --input "$T/x.npy" --output "$T/y.npy" --batch 2 &&
    "$S" predict --weights "$T/run/last.safetensors" --input "$T/x.npy" --output "$T/y_last.npy"
check "predict on best.safetensors and last.safetensors" [ $? -eq 0 ]
check "logits: input's shape, finite, same from both files (one epoch: best = last)" "$PY" - "$T" <<'EOF'
import sys, numpy as np
y, z = np.load(sys.argv[1] + "/y.npy"), np.load(sys.argv[1] + "/y_last.npy")
sys.exit(not (y.shape == (3, 1, 48, 32) and np.isfinite(y).all() and y.std() > 0 and np.array_equal(y, z)))
EOF

# damaged and unfit files, made from best.safetensors
"$PY" - "$T" <<'EOF'
import json, struct, sys
d = sys.argv[1]
data = open(d + "/run/best.safetensors", "rb").read()
(n,) = struct.unpack("<Q", data[:8])
header = json.loads(data[8 : 8 + n])

def write(name, head, body=data[8 + n :]):
    raw = json.dumps(head).encode()
    raw += b" " * (-len(raw) % 8)
    open(d + "/" + name, "wb").write(struct.pack("<Q", len(raw)) + raw + body)

open(d + "/truncated.safetensors", "wb").write(data[: len(data) // 2])
open(d + "/badjson.safetensors", "wb").write(data[:8] + b"[" + data[9:])
h = json.loads(json.dumps(header))
h["enc.1.conv1.weight"]["shape"] = [4, 8, 3, 3]  # same size, transposed channels
write("wrongshape.safetensors", h)
h = json.loads(json.dumps(header))
h["__metadata__"]["model"] = "vae"
write("othermodel.safetensors", h)
EOF
check "truncated file" rejects "$T/truncated.safetensors" "truncated\|do not match"
check "bad JSON header" rejects "$T/badjson.safetensors" "damaged safetensors header"
check "a tensor of the wrong shape" rejects "$T/wrongshape.safetensors" \
    "enc.1.conv1.weight is F32 \[4,8,3,3\], expected F32 \[8,4,3,3\]"
check "another model" rejects "$T/othermodel.safetensors" "unknown model 'vae'"
check "no such file" rejects "$T/none.safetensors" "cannot open"

[ "$fail" -eq 0 ] && echo "t_seg_checkpoint: ok" || echo "t_seg_checkpoint: FAILED"
exit "$fail"
