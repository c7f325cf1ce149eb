"""Independent reference for models/diffusion_sched (Debian's python3-torch, float64).

Usage: /usr/bin/python3 tests/sampler_oracle.py DIR     (DIR written by `t_samplers dump`)

Re-implements the noise schedules and the samplers from the semantics of diffusers'
DDPMScheduler (variance_type "fixed_small", no clipping), DDIMScheduler (set_alpha_to_one,
no clipping) and DPMSolverMultistepScheduler (algorithm_type "dpmsolver++", solver_order 2,
solver_type "midpoint", final_sigmas_type "zero", lower_order_final) -- diffusers itself is
not installed -- runs them from the same x_T with the same noise (noise.npy) and the same
test model, out = 0.1 x + 0.05 sin(t), and compares every state of the C trajectory
(traj.npy: x at each model evaluation, then the result). Also checks alphas_cumprod and
the forward process / v-prediction conversions. Exit status 1 on any mismatch.
"""
import math
import os
import sys

import numpy as np
import torch

torch.set_default_dtype(torch.float64)
TOL = 1e-5  # max |C - reference| / max |reference|, per state (C runs in float32)


def betas_for(kind, steps):
    if kind == "scaled-linear":
        return torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, steps) ** 2
    if kind == "linear":
        return torch.linspace(1e-4, 0.02, steps)

    def abar(s):
        return math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2

    return torch.tensor([min(1 - abar((i + 1) / steps) / abar(i / steps), 0.999) for i in range(steps)])


def alphas_cumprod(kind, steps):
    return torch.cumprod(1.0 - betas_for(kind, steps), dim=0)


def x0_and_eps(pred, a, x, out):
    """pred_original_sample and pred_epsilon as diffusers writes them."""
    if pred == "epsilon":
        return (x - (1 - a) ** 0.5 * out) / a ** 0.5, out
    return a ** 0.5 * x - (1 - a) ** 0.5 * out, a ** 0.5 * out + (1 - a) ** 0.5 * x


def leading_timesteps(train, n):
    ratio = train // n
    return (np.arange(0, n) * ratio).round()[::-1].copy().astype(np.int64)


def ddpm(ac, pred, train, n, x, model, noise, states):
    ratio = train // n
    for i, t in enumerate(leading_timesteps(train, n)):
        states.append(x.clone())
        out = model(x, t)
        prev_t = t - ratio
        a_t = ac[t]
        a_prev = ac[prev_t] if prev_t >= 0 else torch.tensor(1.0)
        current_alpha = a_t / a_prev
        current_beta = 1 - current_alpha
        x0, _ = x0_and_eps(pred, a_t, x, out)
        x0_coeff = a_prev ** 0.5 * current_beta / (1 - a_t)
        x_coeff = current_alpha ** 0.5 * (1 - a_prev) / (1 - a_t)
        x = x0_coeff * x0 + x_coeff * x
        if t > 0:
            variance = torch.clamp((1 - a_prev) / (1 - a_t) * current_beta, min=1e-20)
            x = x + variance ** 0.5 * noise[i + 1]
    return x


def ddim(ac, pred, train, n, eta, x, model, noise, states):
    ratio = train // n
    for i, t in enumerate(leading_timesteps(train, n)):
        states.append(x.clone())
        out = model(x, t)
        prev_t = t - ratio
        a_t = ac[t]
        a_prev = ac[prev_t] if prev_t >= 0 else torch.tensor(1.0)
        x0, eps = x0_and_eps(pred, a_t, x, out)
        variance = (1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)
        std = eta * variance ** 0.5
        direction = (1 - a_prev - std ** 2) ** 0.5 * eps
        x = a_prev ** 0.5 * x0 + direction
        if eta > 0:
            x = x + std * noise[i + 1]
    return x


def dpmpp_2m(ac, pred, train, n, x, model, states):
    timesteps = np.linspace(0, train - 1, n + 1).round()[::-1][:-1].copy().astype(np.int64)
    all_sigmas = ((1 - ac) / ac) ** 0.5
    sigmas = torch.cat([all_sigmas[torch.from_numpy(timesteps)], torch.zeros(1)])

    def alpha_sigma(sigma):
        alpha = 1 / (sigma ** 2 + 1) ** 0.5
        return alpha, sigma * alpha

    outputs = []
    for i, t in enumerate(timesteps):
        states.append(x.clone())
        out = model(x, t)
        alpha_s0, sigma_s0 = alpha_sigma(sigmas[i])
        x0 = (x - sigma_s0 * out) / alpha_s0 if pred == "epsilon" else alpha_s0 * x - sigma_s0 * out
        outputs.append(x0)
        alpha_t, sigma_t = alpha_sigma(sigmas[i + 1])
        lambda_t = torch.log(alpha_t) - torch.log(sigma_t)
        lambda_s0 = torch.log(alpha_s0) - torch.log(sigma_s0)
        h = lambda_t - lambda_s0
        lower_order_final = i == len(timesteps) - 1
        if i == 0 or lower_order_final:
            x = (sigma_t / sigma_s0) * x - (alpha_t * (torch.exp(-h) - 1.0)) * x0
        else:
            alpha_s1, sigma_s1 = alpha_sigma(sigmas[i - 1])
            lambda_s1 = torch.log(alpha_s1) - torch.log(sigma_s1)
            r0 = (lambda_s0 - lambda_s1) / h
            d0, d1 = outputs[-1], (1.0 / r0) * (outputs[-1] - outputs[-2])
            x = ((sigma_t / sigma_s0) * x - (alpha_t * (torch.exp(-h) - 1.0)) * d0
                 - 0.5 * (alpha_t * (torch.exp(-h) - 1.0)) * d1)
    return x


def test_model(x, t):
    return 0.1 * x + 0.05 * math.sin(float(t))


def read_meta(d):
    with open(os.path.join(d, "meta.txt")) as f:
        return dict(line.rstrip("\n").split(" ", 1) for line in f)


def load(d, name):
    return torch.from_numpy(np.load(os.path.join(d, name)).astype(np.float64))


def rel_error(c, ref):
    return float((c - ref).abs().max() / max(float(ref.abs().max()), 1e-8))


def check_case(d):
    m = read_meta(d)
    train, n, pred = int(m["train_steps"]), int(m["steps"]), m["prediction"]
    ac = alphas_cumprod(m["schedule"], train)
    traj, noise = load(d, "traj.npy"), load(d, "noise.npy")
    x, states = noise[0].clone(), []
    if m["sampler"] == "ddpm":
        final = ddpm(ac, pred, train, n, x, test_model, noise, states)
    elif m["sampler"] == "ddim":
        final = ddim(ac, pred, train, n, float(m["eta"]), x, test_model, noise, states)
    else:
        final = dpmpp_2m(ac, pred, train, n, x, test_model, states)
    states.append(final)
    assert len(states) == traj.shape[0], f"{d}: {len(states)} states, C wrote {traj.shape[0]}"
    err = max(rel_error(traj[i], s) for i, s in enumerate(states))
    label = f"{m['schedule']} {m['sampler']}-{n} eta {float(m['eta']):g} {pred}"
    return label, err


def check_forward(d):
    x0, eps = load(d, "x0.npy"), load(d, "eps.npy")
    ts = torch.tensor([0, 1, 500, 999])
    rows = []
    for kind in ("scaled-linear", "linear", "cosine"):
        ac = alphas_cumprod(kind, 1000)
        a = ac[ts][:, None]
        xt = a ** 0.5 * x0 + (1 - a) ** 0.5 * eps
        v = a ** 0.5 * eps - (1 - a) ** 0.5 * x0
        rows.append((f"{kind} alphas_cumprod", rel_error(load(d, f"{kind}_abar.npy"), ac)))
        rows.append((f"{kind} q(x_t|x0)", rel_error(load(d, f"{kind}_xt.npy"), xt)))
        rows.append((f"{kind} v target", rel_error(load(d, f"{kind}_v.npy"), v)))
        rows.append((f"{kind} x0 from v", rel_error(load(d, f"{kind}_x0pred.npy"), x0)))
    return rows


def main():
    root = sys.argv[1]
    rows = [check_case(os.path.join(root, d)) for d in sorted(os.listdir(root)) if d.startswith("case")]
    rows += check_forward(os.path.join(root, "forward"))
    failed = 0
    for label, err in rows:
        ok = err <= TOL
        failed += not ok
        print(f"{label:<40} rel error {err:.2e}  {'ok' if ok else 'FAIL'}")
    print(f"sampler oracle: {len(rows) - failed} of {len(rows)} within {TOL:g}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
