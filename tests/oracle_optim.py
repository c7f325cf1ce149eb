"""PyTorch references for tests/cases_optim.c: optimizers run step by step on a
parameter whose .grad is set from the dumped gradients; schedules drive a dummy SGD."""
import warnings

import torch
import torch.optim.lr_scheduler as sched

# SequentialLR itself calls scheduler.step(0), which warns about the epoch argument
warnings.filterwarnings("ignore", message="The epoch parameter")


def run_optimizer(make, w0, grads):
    w = w0.detach().clone().requires_grad_(True)
    opt = make([w])
    for g in grads:
        w.grad = g.detach().clone()
        opt.step()
    return w.detach(), opt.state[w]


def sgd(p, xs):
    momentum = float(p.get("momentum", 0))
    w, state = run_optimizer(lambda ps: torch.optim.SGD(
        ps, lr=float(p["lr"]), momentum=momentum, dampening=float(p.get("dampening", 0)),
        weight_decay=float(p.get("weight_decay", 0)), nesterov=bool(int(p.get("nesterov", 0)))), *xs)
    return [w, state["momentum_buffer"]] if momentum else [w]


def adam(p, xs):
    cls = torch.optim.AdamW if int(p.get("decoupled", 0)) else torch.optim.Adam
    w, state = run_optimizer(lambda ps: cls(
        ps, lr=float(p["lr"]), betas=(float(p["beta1"]), float(p["beta2"])), eps=float(p["eps"]),
        weight_decay=float(p.get("weight_decay", 0))), *xs)
    return [w, state["exp_avg"], state["exp_avg_sq"]]


def ema(p, xs):
    avg = xs[0].detach().clone()
    decay = float(p["decay"])
    for w in xs[1]:
        avg = torch.lerp(w, avg, decay)  # decay*avg + (1-decay)*w
    return [avg]


def clip_grad_norm(p, xs):
    w = torch.zeros_like(xs[0], requires_grad=True)
    w.grad = xs[0].detach().clone()
    norm = torch.nn.utils.clip_grad_norm_([w], float(p["max_norm"]))
    return [w.grad, norm.reshape(1)]


def dummy_optimizer(lr):
    return torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)


def plateau(p, xs):
    opt = dummy_optimizer(float(p["lr"]))
    s = sched.ReduceLROnPlateau(
        opt, mode=["min", "max"][int(p.get("mode", 0))], factor=float(p["factor"]),
        patience=int(p["patience"]), threshold=float(p.get("threshold", 1e-4)),
        threshold_mode=["rel", "abs"][int(p.get("threshold_mode", 0))], cooldown=int(p.get("cooldown", 0)),
        min_lr=float(p.get("min_lr", 0)), eps=float(p.get("eps", 1e-8)))
    lrs = []
    for m in xs[0].tolist():
        s.step(m)
        lrs.append(opt.param_groups[0]["lr"])
    return [torch.tensor(lrs)]


def lr_sequence(opt, s, steps):
    lrs = []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        s.step()
    return torch.tensor(lrs)


def cosine(p, xs, steps):
    lr, warmup, total = float(p["lr"]), int(p["warmup"]), int(p["total"])
    opt = dummy_optimizer(lr)
    cos = sched.CosineAnnealingLR(opt, T_max=total - warmup, eta_min=float(p["min_lr"]))
    if warmup:
        lin = sched.LinearLR(opt, start_factor=1 / warmup, end_factor=1, total_iters=warmup - 1)
        cos = sched.SequentialLR(opt, [lin, cos], milestones=[warmup])
    return [lr_sequence(opt, cos, steps)]


def steplr(p, xs, steps):
    opt = dummy_optimizer(float(p["lr"]))
    s = sched.StepLR(opt, step_size=int(p["step_size"]), gamma=float(p["gamma"]))
    return [lr_sequence(opt, s, steps)]


OPS = {
    "sgd": sgd,
    "adam": adam,
    "ema": ema,
    "sum_squares": lambda p, xs: [(xs[0] ** 2).sum().reshape(1)],
    "clip_grad_norm": clip_grad_norm,
    "plateau": plateau,
    "cosine": lambda p, xs: cosine(p, xs, int(p["steps"])),
    "steplr": lambda p, xs: steplr(p, xs, int(p["steps"])),
}
