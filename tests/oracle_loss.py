"""PyTorch references for tests/cases_loss.c (each loss as a one-element tensor) and the
VAE reparameterization."""
import torch
import torch.nn.functional as F


def kl_gauss(p, xs):
    mean, logvar = xs
    return -0.5 * torch.mean(1 + logvar - mean ** 2 - logvar.exp())


def soft_dice(p, xs):
    prob, target = xs
    s = float(p["smooth"])
    return 1 - (2 * (prob * target).sum() + s) / (prob.sum() + target.sum() + s)


def soft_iou(p, xs):
    prob, target = xs
    s = float(p["smooth"])
    inter = (prob * target).sum()
    return 1 - (inter + s) / (prob.sum() + target.sum() - inter + s)


def reparameterize(p, xs):
    mean, logvar, eps = xs
    return [mean + torch.exp(torch.clamp(logvar, -30, 20) / 2) * eps]


def scalar(fn):
    return lambda p, xs: [fn(p, xs).reshape(1)]


OPS = {
    "mse": scalar(lambda p, xs: F.mse_loss(xs[0], xs[1])),
    "kl_gauss": scalar(kl_gauss),
    "bce_logits": scalar(lambda p, xs: F.binary_cross_entropy_with_logits(xs[0], xs[1])),
    "soft_dice": scalar(soft_dice),
    "soft_iou": scalar(soft_iou),
    "reparameterize": reparameterize,
}
