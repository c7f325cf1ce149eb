"""PyTorch oracle for the segmentation U-Net and one training step (tests/t_seg_oracle.c).

Usage: /usr/bin/python3 tests/seg_oracle.py DIR

DIR holds what the C test wrote: case.json (settings), model.safetensors (the weights
before the step), x.npy / t.npy (images, masks), eval_logits.npy (`sdseg predict` on
model.safetensors), and from one seg_trainer_step: logits_train.npy, loss.npy,
grads.safetensors and after.safetensors (weights, batch-norm buffers, Adam moments).
A float64 re-implementation of the seed's U-Net recomputes all of it; the script prints
one line per check and exits 1 if any error exceeds its limit. The checkpoint is read with
the few lines below (no safetensors module): 8-byte length, JSON header, raw data.
"""
import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)

# Errors are max|C - torch| / max|torch|; float32 C against float64 torch measures ~1e-6.
# Adam's limit covers float32 betas: 1 - 0.999f differs from 0.001 by 1.3e-5 (relative).
LIMITS = {"forward": 2e-5, "loss": 1e-6, "grad": 1e-4, "buffers": 1e-5, "adam": 1e-4}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    meta = header.pop("__metadata__", {})
    tensors = {}
    for name, info in header.items():
        assert info["dtype"] == "F32", f"{name}: dtype {info['dtype']}"
        b, e = info["data_offsets"]
        raw = np.frombuffer(data[8 + n + b : 8 + n + e], dtype="<f4")
        tensors[name] = torch.from_numpy(raw.astype(np.float64).reshape(info["shape"]))
    return tensors, meta


class Block(nn.Module):
    """[Conv3x3 same -> BatchNorm -> ReLU] x 2"""

    def __init__(self, cin, c, eps, momentum):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, c, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(c, eps=eps, momentum=momentum)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(c, eps=eps, momentum=momentum)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(x)))


class SegUnet(nn.Module):
    def __init__(self, width, eps, momentum):
        super().__init__()
        c = [width << i for i in range(5)]
        self.enc = nn.ModuleList(Block(c[i - 1] if i else 1, c[i], eps, momentum) for i in range(4))
        self.bridge = Block(c[3], c[4], eps, momentum)
        self.up = nn.ModuleList(nn.ConvTranspose2d(c[4 - i], c[3 - i], 2, stride=2) for i in range(4))
        self.dec = nn.ModuleList(Block(2 * c[3 - i], c[3 - i], eps, momentum) for i in range(4))
        self.head = nn.Conv2d(c[0], 1, 1)

    def forward(self, x):
        skips = []
        for block in self.enc:
            x = block(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bridge(x)
        for up, dec in zip(self.up, self.dec):
            x = dec(torch.cat([up(x), skips.pop()], 1))  # Keras order: [upsampled, skip]
        return self.head(x)


failures = []


def report(what, kind, err):
    ok = err <= LIMITS[kind]
    print(f"  {what:<44} {err:.2e}  {'ok' if ok else 'FAIL'} (limit {LIMITS[kind]:.0e})")
    if not ok:
        failures.append(what)


def rel_err(got, want):
    got, want = torch.as_tensor(got, dtype=torch.float64), torch.as_tensor(want, dtype=torch.float64)
    assert got.shape == want.shape, f"shape {tuple(got.shape)} vs {tuple(want.shape)}"
    return ((got - want).abs().max() / want.abs().max().clamp_min(1e-12)).item()


def worst(pairs):
    return max(rel_err(a, b) for a, b in pairs)


def grad_errors(model, grads):
    """Each gradient's error relative to the largest gradient of its layer: a convolution
    bias followed by batch norm has a gradient of exactly zero in theory, so in float32 it
    is rounding noise, which only its layer's scale can judge."""
    scale = {}
    for k, p in model.named_parameters():
        layer = k.rsplit(".", 1)[0]
        scale[layer] = max(scale.get(layer, 0.0), p.grad.abs().max().item())
    return max((grads[k] - p.grad).abs().max().item() / max(scale[k.rsplit(".", 1)[0]], 1e-30)
               for k, p in model.named_parameters())


def check_names(model, weights, width, repo):
    """Checkpoint names and shapes = the model's state_dict (less num_batches_tracked) and
    the seed's key list scaled by the width."""
    want = {k: tuple(v.shape) for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    got = {k: tuple(v.shape) for k, v in weights.items()}
    assert got == want, f"checkpoint keys differ from the PyTorch module: {set(got) ^ set(want)}"
    tsv = os.path.join(repo, "..", "shared", "docs", "checkpoint-keys", "seg_unet.tsv")
    if not os.path.exists(tsv):
        print("  (seg_unet.tsv not found: key-list check skipped)")
        return
    seed = {}
    for line in open(tsv):
        name, shape = line.rstrip("\n").split("\t")
        dims = json.loads(shape)
        seed[name] = tuple(d * width // 64 if d >= 64 else d for d in dims)
    assert got == seed, f"checkpoint keys differ from seg_unet.tsv: {set(got) ^ set(seed)}"
    print(f"  names and shapes = seg_unet.tsv scaled to width {width} ({len(got)} tensors)")


def check_init(model, before):
    """PyTorch's default initialization: conv and transposed-conv weights and biases
    uniform in +-1/sqrt(fan_in), fan_in as torch computes it from the weight's shape."""
    bad = []
    for name, module in model.named_modules():
        if not isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            continue
        fan_in, _ = nn.init._calculate_fan_in_and_fan_out(module.weight)
        bound = fan_in ** -0.5
        for leaf in ("weight", "bias"):
            v = before[f"{name}.{leaf}"]
            n = v.numel()
            ok = v.abs().max() < bound and (n < 50 or v.abs().max() > 0.9 * bound)
            ok = ok and (n < 500 or abs(v.std() / (bound / 3 ** 0.5) - 1) < 0.1)
            if not ok:
                bad.append(f"{name}.{leaf}")
    print(f"  initialization U(+-1/sqrt(fan_in)): {'ok' if not bad else 'FAIL ' + ', '.join(bad)}")
    if bad:
        failures.append("initialization")


def bn_buffers(name):
    return name.endswith("running_mean") or name.endswith("running_var")


def data_loss(logits, target, case):
    bce = F.binary_cross_entropy_with_logits(logits, target)
    if case["loss"] == "bce":
        return bce
    smooth, p = case["dice_smooth"], torch.sigmoid(logits)
    dice = 1 - (2 * (p * target).sum() + smooth) / (p.sum() + target.sum() + smooth)
    return bce + dice


def check_optimizer(model, before, grads, after, case):
    """torch.optim.Adam / AdamW from the C gradients. Adam carries the Keras L2 as coupled
    weight decay 2*wd, AdamW decoupled decay wd; both on conv kernels and biases only."""
    params = {k: before[k].clone().requires_grad_(True) for k, _ in model.named_parameters()}
    for k, p in params.items():
        p.grad = grads[k].clone()
    decay = [p for k, p in params.items() if ".bn" not in k]
    plain = [p for k, p in params.items() if ".bn" in k]
    adamw = case["optim"] == "adamw"
    groups = [{"params": decay, "weight_decay": case["wd"] if adamw else 2 * case["wd"]},
              {"params": plain, "weight_decay": 0}]
    opt = (torch.optim.AdamW if adamw else torch.optim.Adam)(groups, lr=case["lr"], betas=(0.9, 0.999),
                                                             eps=case["adam_eps"])
    opt.step()
    report(f"{case['optim']} step: weights", "adam", worst((after[k], p.detach()) for k, p in params.items()))
    report(f"{case['optim']} step: first moments", "adam",
           worst((after["optim.m." + k], opt.state[p]["exp_avg"]) for k, p in params.items()))
    report(f"{case['optim']} step: second moments", "adam",
           worst((after["optim.v." + k], opt.state[p]["exp_avg_sq"]) for k, p in params.items()))


def check_ema(before, after, case):
    """After step 1 the EMA is d*initial + (1-d)*updated, d = min(decay, 2/11)."""
    d = min(case["ema"], 2 / 11)
    report("EMA of weights and buffers", "adam",
           worst((after["ema." + k], d * v + (1 - d) * after[k]) for k, v in before.items()))


def main():
    d = sys.argv[1]
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    case = json.load(open(os.path.join(d, "case.json")))
    before, meta = read_safetensors(os.path.join(d, "model.safetensors"))
    assert meta.get("model") == "seg_unet", f"metadata model = {meta.get('model')}"
    model = SegUnet(case["width"], case["bn_eps"], case["bn_momentum"])
    check_names(model, before, case["width"], repo)
    check_init(model, before)
    model.load_state_dict(before, strict=False)
    x = torch.from_numpy(np.load(os.path.join(d, "x.npy")).astype(np.float64))
    t = torch.from_numpy(np.load(os.path.join(d, "t.npy")).astype(np.float64))

    model.eval()
    with torch.no_grad():
        want = model(x)
    report("eval forward (sdseg predict)", "forward", rel_err(np.load(os.path.join(d, "eval_logits.npy")), want))

    model.train()
    logits = model(x)
    report("train forward (batch statistics)", "forward", rel_err(np.load(os.path.join(d, "logits_train.npy")), logits))
    loss = data_loss(logits, t, case)
    penalty = 0.0
    if case["optim"] == "adam":  # Keras reports the L2 penalty as part of the loss
        penalty = sum((p ** 2).sum() for k, p in model.named_parameters() if ".bn" not in k) * case["wd"]
    report(f"loss: {case['loss']}{' + Keras L2 penalty' if penalty else ''}", "loss",
           rel_err(np.load(os.path.join(d, "loss.npy")), (loss + penalty).detach().reshape(1)))
    loss.backward()
    grads, _ = read_safetensors(os.path.join(d, "grads.safetensors"))
    report("parameter gradients (worst, per layer scale)", "grad", grad_errors(model, grads))
    after, _ = read_safetensors(os.path.join(d, "after.safetensors"))
    state = model.state_dict()
    report("running statistics after the step", "buffers",
           worst((after[k], state[k]) for k in before if bn_buffers(k)))
    check_optimizer(model, before, grads, after, case)
    if case["ema"] > 0:
        check_ema(before, after, case)
    if failures:
        print(f"seg oracle: {len(failures)} checks failed")
        sys.exit(1)
    print("seg oracle: all checks passed")


if __name__ == "__main__":
    main()
