"""PyTorch references for tests/cases_elem.c."""
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


OPS = {
    "act": act,
}
