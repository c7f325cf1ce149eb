"""PyTorch references for tests/cases_elem.c."""
import math

import torch
import torch.nn.functional as F

ACTS = {
    0: lambda x, p: F.relu(x),
    1: lambda x, p: F.leaky_relu(x, float(p["slope"])),
    2: lambda x, p: F.silu(x),
    3: lambda x, p: F.gelu(x),
    4: lambda x, p: F.gelu(x, approximate="tanh"),
    5: lambda x, p: torch.sigmoid(x),
    6: lambda x, p: torch.tanh(x),
}


def act(p, xs):
    return [ACTS[int(p["act"])](xs[0], p)]


def blur(p, xs):
    """Depthwise [1,2,1]^T [1,2,1] / 16 on the reflect-padded input."""
    x = xs[0]
    taps = torch.tensor([1.0, 2.0, 1.0])
    kernel = (torch.outer(taps, taps) / 16).expand(x.shape[1], 1, 3, 3)
    padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
    return [F.conv2d(padded, kernel, stride=int(p["stride"]), groups=x.shape[1])]


def max_pool_ties(p, xs):
    """Pool the 2x upsampled input (all-tied windows); route the pooled values back."""
    t = F.interpolate(xs[0].detach(), scale_factor=2, mode="nearest").requires_grad_(True)
    y = F.max_pool2d(t, 2)
    (routed,) = torch.autograd.grad((y * y.detach()).sum(), t)
    return [y.detach(), routed]


def timestep_embedding(p, xs):
    """The seed's embedding: half = dim/2 frequencies 10000^(-i/half), [cos | sin]."""
    t = xs[0]
    dim = int(p["dim"])
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half) / half)
    args = t[:, None] * freqs[None, :]
    return [torch.cat([torch.cos(args), torch.sin(args)], dim=1)]


def geglu(p, xs):
    a, g = xs[0].chunk(2, dim=-1)
    return [a * F.gelu(g)]


def film(p, xs):
    x, scale, shift = xs
    return [x * (1 + scale[:, :, None]) + shift[:, :, None]]


OPS = {
    "act": act,
    "add": lambda p, xs: [xs[0] + xs[1]],
    "axpy": lambda p, xs: [xs[1] + float(p["alpha"]) * xs[0]],
    "scale": lambda p, xs: [float(p["alpha"]) * xs[0]],
    "max_pool": lambda p, xs: [F.max_pool2d(xs[0], 2)],
    "max_pool_ties": max_pool_ties,
    "avg_pool": lambda p, xs: [F.avg_pool2d(xs[0], 2)],
    "blur": blur,
    "upsample": lambda p, xs: [F.interpolate(xs[0], scale_factor=2, mode="nearest")],
    "concat": lambda p, xs: [torch.cat(xs, dim=1)],
    "film": film,
    "nchw_to_nlc": lambda p, xs: [xs[0].transpose(1, 2)],
    "nlc_to_nchw": lambda p, xs: [xs[0].transpose(1, 2)],
    "geglu": geglu,
    "timestep_embedding": timestep_embedding,
}
