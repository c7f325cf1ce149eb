"""PyTorch oracle for the VAE trainer's optimizer wiring (tests/t_vae_trainer.c).

Usage: /usr/bin/python3 tests/vae_oracle.py DIR

DIR holds what the C test wrote around `steps` vae_trainer_update calls of the improved
recipe on given gradients: case.json (lr, wd, warmup, total, ema decay, the names of the
tensors without weight decay), before.safetensors (the weights), g<k>.safetensors (the
gradient of step k), w<k>.safetensors (the weights after it) and after.safetensors
(weights, "optim.m.", "optim.v.", "ema."). torch.optim.AdamW in float64 redoes the steps
with the learning rates of cosine-with-warmup computed here; the EMA is recomputed from
the saved weights of each step. Prints one line per check, exits 1 if any error exceeds
its limit.
"""
import json
import math
import struct
import sys

import numpy as np
import torch

torch.set_default_dtype(torch.float64)

# Errors are max|C - torch| / max|torch| over all tensors. The weights are compared by
# their change from the start (a few lr), where float32 storage of weights near 0.3 costs
# ~2e-5 relative; a wrong rate, decay group or EMA ramp costs 1e-2 or more.
LIMITS = {"weights": 1e-3, "optim.m.": 1e-4, "optim.v.": 1e-4, "ema": 1e-3}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    header.pop("__metadata__", None)
    tensors = {}
    for name, info in header.items():
        b, e = info["data_offsets"]
        raw = np.frombuffer(data[8 + n + b : 8 + n + e], dtype="<f4")
        tensors[name] = torch.from_numpy(raw.astype(np.float64).reshape(info["shape"]))
    return tensors


def cosine_lr(case, s):
    """ops/schedule.h: linear warmup to lr over `warmup` steps, then cosine to 0 at `total`."""
    w, total, lr = case["warmup"], case["total"], case["lr"]
    if s < w:
        return lr * (s + 1) / w
    return lr * (1 + math.cos(math.pi * min(s - w, total - w) / (total - w))) / 2


def error(pairs):
    num = max(float((a - b).abs().max()) for a, b in pairs)
    den = max(float(b.abs().max()) for _, b in pairs)
    return num / den


def adamw(case, w0, d):
    params = {k: v.clone().requires_grad_(True) for k, v in w0.items()}
    no_decay = set(case["no_decay"])
    groups = [{"params": [p for k, p in params.items() if k not in no_decay], "weight_decay": case["wd"]},
              {"params": [p for k, p in params.items() if k in no_decay], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=case["lr"], betas=(0.9, 0.999), eps=1e-8)
    for s in range(case["steps"]):
        g = read_safetensors(f"{d}/g{s + 1}.safetensors")
        for k, p in params.items():
            p.grad = g[k]
        for group in opt.param_groups:
            group["lr"] = cosine_lr(case, s)
        opt.step()
    return params, opt


def ema_closed_form(case, w0, d):
    """ema_0 = w_0, ema_s = d_s ema_{s-1} + (1 - d_s) w_s, d_s = min(decay, (1 + s) / (10 + s))."""
    ema = dict(w0)
    for s in range(1, case["steps"] + 1):
        ws = read_safetensors(f"{d}/w{s}.safetensors")
        ds = min(case["ema"], (1 + s) / (10 + s))
        ema = {k: ds * v + (1 - ds) * ws[k] for k, v in ema.items()}
    return ema


def main():
    d = sys.argv[1]
    case = json.load(open(f"{d}/case.json"))
    w0 = read_safetensors(f"{d}/before.safetensors")
    after = read_safetensors(f"{d}/after.safetensors")
    params, opt = adamw(case, w0, d)
    errors = {"weights": error([(after[k] - w0[k], params[k].detach() - w0[k]) for k in w0])}
    for prefix, key in (("optim.m.", "exp_avg"), ("optim.v.", "exp_avg_sq")):
        errors[prefix] = error([(after[prefix + k], opt.state[params[k]][key]) for k in w0])
    ema = ema_closed_form(case, w0, d)
    errors["ema"] = error([(after["ema." + k] - w0[k], ema[k] - w0[k]) for k in w0])
    failed = False
    for name, err in errors.items():
        ok = err <= LIMITS[name]
        failed |= not ok
        print(f"  {name:10s} error {err:.2e} (limit {LIMITS[name]:.0e}) {'ok' if ok else 'FAIL'}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
