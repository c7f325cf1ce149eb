"""Independent reference for one train-ddpm optimizer step (Debian's python3-torch, float64).

Usage: /usr/bin/python3 tests/ddpm_oracle.py DIR      (DIR written by `t_ddpm_step dump DIR`)

For each configuration folder (seed: the seed's U-Net, epsilon, scaled-linear, t = T-1,
gradients averaged; variant: the improved U-Net -- FiLM, pre-norm, blur, SiLU --, v, cosine,
uniform t, summed) checks, from the micro-batches the C trainer drew:
  - latent_scale = 1 / std of the training means (population std, numpy);
  - the timesteps: all T-1 for fixed999, within 0..T-1 otherwise;
  - x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise with abar from tests/sampler_oracle.py's
    schedules, and the target: noise, or v = sqrt(abar) noise - sqrt(1 - abar) x0;
  - x0 = latent_scale * (mean + exp(logvar / 2) eps): the eps this implies is standard
    normal (mean and std within 0.35 of 0 and 1 over the batch's values);
  - the U-Net of tests/gen_oracle.py loaded strictly from the weights before the step: its
    loss MSE(unet(x_t, t), target) per micro-batch, averaged, against the C step's loss, and
    the autograd gradient of sum_k w * loss_k (w = 1/accum averaged, 1 summed) against the
    C gradients, per parameter tensor.
Exit status 1 on any mismatch.
"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

from gen_oracle import Diffusion, grad_error, read_config, read_safetensors, rel_error
from sampler_oracle import alphas_cumprod

torch.set_default_dtype(torch.float64)
TOL = 1e-5  # max |C - reference| / max |reference| (C runs in float32)
GRAD_TOL = 1e-4  # the same, per parameter gradient tensor


def read_step(d):
    with open(os.path.join(d, "step.txt")) as f:
        return dict(line.split() for line in f)


def load(d, name):
    return torch.from_numpy(np.load(os.path.join(d, name)).astype(np.float64))


def check_batch(d, k, step, ac, scale, rows):
    """The k-th micro-batch's draws; returns (x_t, t, reference target)."""
    x0, noise, x_t, target = (load(d, f"{n}_{k}.npy") for n in ("x0", "noise", "x_t", "target"))
    mean, logvar, t = load(d, f"mean_{k}.npy"), load(d, f"logvar_{k}.npy"), load(d, f"t_{k}.npy")
    T = int(step["timesteps"])
    ok_t = bool((t == T - 1).all()) if step["t_sampling"] == "fixed999" else bool(((t >= 0) & (t < T)).all())
    rows.append((f"micro-batch {k}: timesteps {t.long().tolist()} ({step['t_sampling']})", 0.0 if ok_t else 1.0, 0))
    a = ac[t.long()][:, None, None, None]
    rows.append((f"micro-batch {k}: x_t", rel_error(x_t, a.sqrt() * x0 + (1 - a).sqrt() * noise), TOL))
    ref = noise if step["prediction"] == "epsilon" else a.sqrt() * noise - (1 - a).sqrt() * x0
    rows.append((f"micro-batch {k}: target ({step['prediction']})", rel_error(target, ref), TOL))
    eps = (x0 / scale - mean) / torch.exp(0.5 * torch.clamp(logvar, -30, 20))
    off = max(abs(float(eps.mean())), abs(float(eps.std()) - 1))
    rows.append((f"micro-batch {k}: posterior eps mean/std off N(0, 1) by", off, 0.35))
    return x_t, t, ref


def check(d):
    step = read_step(d)
    rows = []
    means = np.load(os.path.join(d, "train_means_0.npy")).astype(np.float64)
    scale = float(step["latent_scale"])
    rows.append(("latent_scale = 1 / std(training means)", abs(scale * means.std() - 1), TOL))
    ac = alphas_cumprod(step["schedule"], int(step["timesteps"]))
    model = Diffusion(read_config(os.path.join(d, "unet_config.txt")))
    model.load_state_dict(read_safetensors(os.path.join(d, "unet.safetensors")), strict=True)
    accum = int(step["accum"])
    weight = 1.0 / accum if step["accum_mode"] == "mean" else 1.0
    losses = []
    for k in range(accum):
        x_t, t, target = check_batch(d, k, step, ac, scale, rows)
        losses.append(F.mse_loss(model(x_t, t), target))
    (weight * sum(losses)).backward()
    got = torch.tensor(float(step["loss"]))
    rows.append(("step loss (mean of the micro-batch MSEs)", rel_error(got, sum(losses).detach() / accum), TOL))
    grads = read_safetensors(os.path.join(d, "grad.safetensors"))
    worst, where = 0.0, ""
    for name, param in model.named_parameters():
        ref = torch.zeros_like(param) if param.grad is None else param.grad  # the unused groupnorm_feature
        e = grad_error(grads[name], ref)
        if not e <= worst:
            worst, where = e, name
    rows.append((f"gradients, {step['accum_mode']} of {accum} (worst {where})", worst, GRAD_TOL))
    return rows


def main():
    failed = 0
    for variant in ("seed", "variant"):
        print(f"-- {variant}")
        for label, err, tol in check(os.path.join(sys.argv[1], variant)):
            ok = err <= tol
            failed += not ok
            print(f"{label:<64} error {err:.2e} (limit {tol:.0e})  {'ok' if ok else 'FAIL'}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
