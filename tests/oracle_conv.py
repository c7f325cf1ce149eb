"""PyTorch references for tests/cases_conv.c: conv2d, conv_transpose2d, linear.
Inputs are [x, weight] or [x, weight, bias]."""
import torch.nn.functional as F


def ints(p, key, default):
    return [int(v) for v in p[key].split(",")] if key in p else default


def bias(xs):
    return xs[2] if len(xs) > 2 else None


def conv2d(p, xs):
    stride = ints(p, "stride", [1])
    pad = ints(p, "pad", [0])
    if len(stride) == 1:
        stride *= 2
    if len(pad) == 1:
        pad *= 4
    top, bottom, left, right = pad
    x = F.pad(xs[0], (left, right, top, bottom))  # asymmetric zero padding, as the seed VAE
    return [F.conv2d(x, xs[1], bias(xs), stride=tuple(stride))]


def conv_transpose2d(p, xs):
    return [F.conv_transpose2d(xs[0], xs[1], bias(xs), stride=int(p["stride"]), padding=int(p["pad"]))]


def linear(p, xs):
    return [F.linear(xs[0], xs[1], bias(xs))]


OPS = {
    "conv2d": conv2d,
    "conv_transpose2d": conv_transpose2d,
    "linear": linear,
}
