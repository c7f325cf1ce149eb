"""PyTorch references for tests/cases_norm.c."""
import torch.nn.functional as F


def batch_norm_train(p, xs, stats=False):
    x, gamma, beta, rm, rv = xs
    rm, rv = rm.detach().clone(), rv.detach().clone()  # updated in place by F.batch_norm
    y = F.batch_norm(x, rm, rv, gamma, beta, training=True, momentum=float(p["momentum"]), eps=float(p["eps"]))
    return [y, rm, rv] if stats else [y]


def batch_norm_eval(p, xs):
    x, gamma, beta, rm, rv = xs
    return [F.batch_norm(x, rm, rv, gamma, beta, training=False, eps=float(p["eps"]))]


def group_norm(p, xs):
    x, gamma, beta = xs
    return [F.group_norm(x, int(p["groups"]), gamma, beta, eps=float(p["eps"]))]


def layer_norm(p, xs):
    x, gamma, beta = xs
    return [F.layer_norm(x, (x.shape[-1],), gamma, beta, eps=float(p["eps"]))]


OPS = {
    "batch_norm_train": batch_norm_train,
    "batch_norm_train_stats": lambda p, xs: batch_norm_train(p, xs, stats=True),
    "batch_norm_eval": batch_norm_eval,
    "group_norm": group_norm,
    "layer_norm": layer_norm,
}
