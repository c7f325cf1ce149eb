"""PyTorch references for tests/cases_attn.c."""
import math

import torch
import torch.nn.functional as F


def attention(p, xs):
    """softmax(q k^T / sqrt(d)) v per head, heads packed as in nn.MultiheadAttention."""
    qkv = xs[0]
    n, length, three_c = qkv.shape
    heads = int(p["heads"])
    c = three_c // 3
    d = c // heads
    q, k, v = (t.reshape(n, length, heads, d).transpose(1, 2) for t in qkv.split(c, dim=-1))
    probs = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), dim=-1)
    return [(probs @ v).transpose(1, 2).reshape(n, length, c)]


def mhsa(p, xs):
    """torch's own multi-head attention with the case's weights (inputs in C order:
    x, in_proj_weight, out_proj_weight, out_proj_bias[, in_proj_bias])."""
    x, w_in, w_out, b_out = xs[:4]
    b_in = xs[4] if int(p["bias"]) else None
    tokens = x.transpose(0, 1)  # (L, N, E), the functional form's layout
    y, _ = F.multi_head_attention_forward(
        tokens, tokens, tokens, x.shape[-1], int(p["heads"]), w_in, b_in, None, None, False, 0.0, w_out, b_out,
        training=False, need_weights=False)
    return [y.transpose(0, 1)]


OPS = {
    "attention": attention,
    "mhsa": mhsa,
}
