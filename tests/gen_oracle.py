"""PyTorch reference of the seed's diffusion U-Net and VAE (Debian's python3-torch, float64).

Usage: /usr/bin/python3 tests/gen_oracle.py DIR      (DIR written by `t_gen_models dump`)

The modules below follow ../shared/docs/seed-models.md ("Building blocks", "VAE",
"Diffusion model") in the seed's own PyTorch style, generalized to the widths of
unet_config.txt / vae_config.txt. Each C checkpoint must load with
load_state_dict(strict=True) -- the same names, shapes and layouts -- and the C outputs
(U-Net prediction; DDIM-4 sampling with the U-Net, run by tests/sampler_oracle.py's
reference DDIM; VAE mean, logvar and reconstruction from the same eps) must match this
model's within TOL. The VAE's training loss (MSE + 0.5 KL, with the mean in the KL and
with the seed's defect 3, the standard deviation in its place) and the gradient of every
parameter by autograd must match the C backward's within TOL and GRAD_TOL per tensor.
"""
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from sampler_oracle import alphas_cumprod, ddim

torch.set_default_dtype(torch.float64)
TOL = 1e-5  # max |C - reference| / max |reference| (C runs in float32)
GRAD_TOL = 1e-4  # the same, per parameter gradient tensor
KL_WEIGHT = 0.5  # t_gen_models' dump_vae_grads
SLOPE = 0.3


def read_safetensors(path):
    """A few lines instead of the safetensors module: length, JSON header, raw F32 data."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", f"{name}: dtype {info['dtype']}"
        begin, end = info["data_offsets"]
        data = np.frombuffer(blob[base + begin:base + end], dtype="<f4").reshape(info["shape"])
        out[name] = torch.from_numpy(data.astype(np.float64))
    return out


class SelfAttention(nn.Module):
    def __init__(self, heads, d, in_proj_bias=True):
        super().__init__()
        self.in_proj = nn.Linear(d, 3 * d, bias=in_proj_bias)
        self.out_proj = nn.Linear(d, d)
        self.heads, self.d_head = heads, d // heads

    def forward(self, x):
        n, s, d = x.shape
        q, k, v = self.in_proj(x).chunk(3, dim=-1)
        q, k, v = (y.view(n, s, self.heads, self.d_head).transpose(1, 2) for y in (q, k, v))
        weight = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(self.d_head), dim=-1)
        return self.out_proj((weight @ v).transpose(1, 2).reshape(n, s, d))


class TimeEmbedding(nn.Module):
    def __init__(self, n_in, n_embd):
        super().__init__()
        self.linear_1 = nn.Linear(n_in, n_embd)
        self.linear_2 = nn.Linear(n_embd, n_embd)

    def forward(self, x):
        x = F.silu(F.leaky_relu(self.linear_1(x), SLOPE))
        return F.leaky_relu(self.linear_2(x), SLOPE)


class ResidualBlock(nn.Module):
    def __init__(self, cin, cout, n_time, groups):
        super().__init__()
        self.groupnorm_feature = nn.GroupNorm(groups, cin)  # declared, never applied (as the seed)
        self.conv_feature = nn.Conv2d(cin, cout, 3, padding=1)
        self.linear_time = nn.Linear(n_time, cout)
        self.groupnorm_merged = nn.GroupNorm(groups, cout)
        self.conv_merged = nn.Conv2d(cout, cout, 3, padding=1)
        self.residual_layer = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1)

    def forward(self, feature, time):
        residue = feature
        feature = self.conv_feature(F.leaky_relu(feature, SLOPE))
        time = self.linear_time(F.leaky_relu(time, SLOPE))
        merged = feature + time[:, :, None, None]
        merged = self.conv_merged(F.leaky_relu(self.groupnorm_merged(merged), SLOPE))
        return merged + self.residual_layer(residue)


class AttentionBlock(nn.Module):
    def __init__(self, heads, c, groups):
        super().__init__()
        self.groupnorm = nn.GroupNorm(groups, c, eps=1e-6)
        self.conv_input = nn.Conv2d(c, c, 1)
        self.layernorm_1 = nn.LayerNorm(c)
        self.attention_1 = SelfAttention(heads, c, in_proj_bias=False)
        self.layernorm_2 = nn.LayerNorm(c)
        self.linear_geglu_1 = nn.Linear(c, 4 * c * 2)
        self.linear_geglu_2 = nn.Linear(4 * c, c)
        self.conv_output = nn.Conv2d(c, c, 1)

    def forward(self, x):
        residue_long = x
        x = self.conv_input(self.groupnorm(x))
        n, c, h, w = x.shape
        x = x.view(n, c, h * w).transpose(-1, -2)
        x = x + self.attention_1(self.layernorm_1(x))
        a, gate = self.linear_geglu_1(self.layernorm_2(x)).chunk(2, dim=-1)
        x = x + self.linear_geglu_2(a * F.gelu(gate))
        x = x.transpose(-1, -2).reshape(n, c, h, w)
        return self.conv_output(x) + residue_long


class Upsample(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class SwitchSequential(nn.Sequential):
    def forward(self, x, time):
        for layer in self:
            x = layer(x, time) if isinstance(layer, ResidualBlock) else layer(x)
        return x


class UNet(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        base, levels, blocks, heads, groups, n_time = (cfg[k] for k in ("base", "levels", "blocks", "heads",
                                                                         "groups", "time_dim"))
        widths = [base * m for m in cfg["mult"]]

        def entry(cin, cout, attn, up):
            layers = [ResidualBlock(cin, cout, n_time, groups)]
            if attn:
                layers.append(AttentionBlock(heads, cout, groups))
            if up:
                layers.append(Upsample(cout))
            return SwitchSequential(*layers)

        self.encoders = nn.ModuleList([SwitchSequential(nn.Conv2d(cfg["in_ch"], base, 3, padding=1))])
        skips, c = [base], base
        for level in range(levels):
            for _ in range(blocks):
                self.encoders.append(entry(c, widths[level], cfg["attn"][level], False))
                c = widths[level]
                skips.append(c)
            if level + 1 < levels:
                self.encoders.append(SwitchSequential(nn.Conv2d(c, c, 3, stride=2, padding=1)))
                skips.append(c)
        self.bottleneck = SwitchSequential(ResidualBlock(c, c, n_time, groups), AttentionBlock(heads, c, groups),
                                           ResidualBlock(c, c, n_time, groups))
        self.decoders = nn.ModuleList()
        for level in reversed(range(levels)):
            for j in range(blocks + 1):
                self.decoders.append(entry(c + skips.pop(), widths[level], cfg["attn"][level],
                                           j == blocks and level > 0))
                c = widths[level]

    def forward(self, x, time):
        skips = []
        for layers in self.encoders:
            x = layers(x, time)
            skips.append(x)
        x = self.bottleneck(x, time)
        for layers in self.decoders:
            x = layers(torch.cat((x, skips.pop()), dim=1), time)
        return x


class OutputLayer(nn.Module):
    def __init__(self, c, out, groups):
        super().__init__()
        self.groupnorm = nn.GroupNorm(groups, c)
        self.conv = nn.Conv2d(c, out, 3, padding=1)

    def forward(self, x):
        return self.conv(F.leaky_relu(self.groupnorm(x), SLOPE))


class Diffusion(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.time_in = cfg["time_in"]
        self.time_embedding = TimeEmbedding(cfg["time_in"], cfg["time_dim"])
        self.unet = UNet(cfg)
        self.final = OutputLayer(cfg["base"], cfg["in_ch"], cfg["groups"])

    def forward(self, latent, t):
        half = self.time_in // 2
        freqs = torch.pow(10000, -torch.arange(half, dtype=torch.float64) / half)
        angles = t[:, None] * freqs[None]
        time = self.time_embedding(torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1))
        return self.final(self.unet(latent, time))


class VaeResidualBlock(nn.Module):
    def __init__(self, cin, cout, groups):
        super().__init__()
        self.groupnorm_1 = nn.GroupNorm(groups, cin)
        self.conv_1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.groupnorm_2 = nn.GroupNorm(groups, cout)
        self.conv_2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.residual_layer = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1)

    def forward(self, x):
        y = self.conv_1(F.leaky_relu(self.groupnorm_1(x), SLOPE))
        y = self.conv_2(F.leaky_relu(self.groupnorm_2(y), SLOPE))
        return y + self.residual_layer(x)


class VaeAttentionBlock(nn.Module):
    def __init__(self, c, groups):
        super().__init__()
        self.groupnorm = nn.GroupNorm(groups, c)  # declared, never applied (as the seed)
        self.attention = SelfAttention(1, c)

    def forward(self, x):
        n, c, h, w = x.shape
        y = self.attention(x.view(n, c, h * w).transpose(-1, -2))
        return y.transpose(-1, -2).reshape(n, c, h, w) + x


class VaeEncoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        b, g, lat = cfg["base"], cfg["groups"], cfg["latent"]
        self.main = nn.Sequential(
            nn.Conv2d(cfg["in_ch"], b, 3, padding=1), VaeResidualBlock(b, b, g), nn.Conv2d(b, b, 3, stride=2),
            VaeResidualBlock(b, 2 * b, g), nn.Conv2d(2 * b, 2 * b, 3, stride=2),
            VaeResidualBlock(2 * b, 4 * b, g), nn.Conv2d(4 * b, 4 * b, 3, stride=2),
            VaeResidualBlock(4 * b, 4 * b, g), VaeAttentionBlock(4 * b, g), VaeResidualBlock(4 * b, 4 * b, g),
            nn.GroupNorm(g, 4 * b), nn.LeakyReLU(SLOPE), nn.Conv2d(4 * b, 2 * lat, 3, padding=1),
            nn.Conv2d(2 * lat, 2 * lat, 3, padding=1))

    def forward(self, x):
        skips = []
        for module in self.main:
            if isinstance(module, nn.Conv2d) and module.stride == (2, 2):
                x = module(F.pad(x, (0, 1, 0, 1)))
                skips.append(x)
            else:
                x = module(x)
        mean, logvar = torch.chunk(x, 2, dim=1)
        return mean, logvar, skips


class VaeDecoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        b, g, lat = cfg["base"], cfg["groups"], cfg["latent"]
        self.stg1 = nn.Sequential(
            nn.Conv2d(lat + 4 * b, 2 * b, 1), nn.Conv2d(2 * b, 4 * b, 3, padding=1), VaeResidualBlock(4 * b, 4 * b, g),
            VaeAttentionBlock(4 * b, g), VaeResidualBlock(4 * b, 4 * b, g),
            nn.ConvTranspose2d(4 * b, 4 * b, 4, stride=2, padding=1))
        self.stg2 = nn.Sequential(
            nn.Conv2d(6 * b, 4 * b, 1), nn.Conv2d(4 * b, 4 * b, 3, padding=1), VaeResidualBlock(4 * b, 4 * b, g),
            nn.ConvTranspose2d(4 * b, 4 * b, 4, stride=2, padding=1), nn.Conv2d(4 * b, 4 * b, 1))
        self.stg3 = nn.Sequential(
            nn.Conv2d(5 * b, 4 * b, 1), nn.Conv2d(4 * b, 4 * b, 3, padding=1), VaeResidualBlock(4 * b, 2 * b, g),
            VaeResidualBlock(2 * b, 2 * b, g), nn.ConvTranspose2d(2 * b, 2 * b, 4, stride=2, padding=1),
            nn.Conv2d(2 * b, 2 * b, 3, padding=1), VaeResidualBlock(2 * b, b, g), VaeResidualBlock(b, b, g),
            nn.GroupNorm(g, b), nn.LeakyReLU(SLOPE), nn.Conv2d(b, b // 2, 3, padding=1),
            nn.Conv2d(b // 2, cfg["in_ch"], 3, padding=1))

    def forward(self, z, skips):
        f1, f2, f3 = skips
        x = self.stg1(torch.cat((z, f3), dim=1))
        x = self.stg2(torch.cat((x, f2), dim=1))
        return self.stg3(torch.cat((x, f1), dim=1))


class Vae(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.encoder = VaeEncoder(cfg)
        self.decoder = VaeDecoder(cfg)


def read_config(path):
    cfg = {}
    with open(path) as f:
        for line in f:
            k, v = line.split()
            cfg[k] = [int(x) for x in v.split(",")] if "," in v else int(v)
    if "mult" in cfg:
        cfg["levels"] = sum(1 for m in cfg["mult"] if m > 0)
        cfg["mult"], cfg["attn"] = cfg["mult"][:cfg["levels"]], cfg["attn"][:cfg["levels"]]
    return cfg


def load(d, name):
    return torch.from_numpy(np.load(os.path.join(d, name)).astype(np.float64))


def build(d, prefix, cls):
    model = cls(read_config(os.path.join(d, f"{prefix}_config.txt")))
    model.load_state_dict(read_safetensors(os.path.join(d, f"{prefix}.safetensors")), strict=True)
    return model


def rel_error(got, ref):
    return float((got - ref).abs().max() / ref.abs().max())


def check_unet(d):
    model = build(d, "unet", Diffusion)
    ref = model(load(d, "unet_x.npy"), load(d, "unet_t.npy"))
    x = load(d, "unet_xT.npy")

    def denoise(latent, t):
        return model(latent, torch.full((latent.shape[0],), float(t)))

    sample = ddim(alphas_cumprod("scaled-linear", 1000), "epsilon", 1000, 4, 0.0, x, denoise, None, [])
    return [("diffusion U-Net prediction", rel_error(load(d, "unet_out.npy"), ref)),
            ("DDIM-4 with the U-Net", rel_error(load(d, "unet_ddim4.npy"), sample))]


def check_vae(d):
    model = build(d, "vae", Vae)
    mean, logvar, skips = model.encoder(load(d, "vae_x.npy"))
    z = mean + torch.exp(0.5 * torch.clamp(logvar, -30, 20)) * load(d, "vae_eps.npy")
    recon = model.decoder(z, skips)
    return [("VAE mean", rel_error(load(d, "vae_mean.npy"), mean)),
            ("VAE logvar", rel_error(load(d, "vae_logvar.npy"), logvar)),
            ("VAE reconstruction", rel_error(load(d, "vae_out.npy"), recon))]


def vae_loss(model, x, eps, kl_std_for_mean):
    """The seed's objective: MSE(recon, x) + KL_WEIGHT * KL(N(mu, exp(logvar)) || N(0, 1))."""
    mean, logvar, skips = model.encoder(x)
    std = torch.exp(0.5 * torch.clamp(logvar, -30, 20))
    recon = model.decoder(mean + std * eps, skips)
    mu = std if kl_std_for_mean else mean
    mse = F.mse_loss(recon, x)
    kl = -0.5 * torch.mean(1 + logvar - mu ** 2 - logvar.exp())
    return mse, kl, mse + KL_WEIGHT * kl


def grad_error(got, ref):
    """max |C - autograd| / max |autograd| for one tensor (absolute where autograd is 0)."""
    scale = float(ref.abs().max())
    return float((got - ref).abs().max()) / (scale if scale > 0 else 1.0)


def check_vae_grads(d):
    model = build(d, "vae", Vae)
    x, eps = load(d, "vae_x.npy"), load(d, "vae_eps.npy")
    rows = []
    for variant, defect in (("fixed", False), ("seed", True)):
        model.zero_grad(set_to_none=False)
        losses = vae_loss(model, x, eps, defect)
        losses[2].backward()
        got = load(d, f"vae_loss_{variant}.npy")
        ref = torch.stack([v.detach() for v in losses])
        rows.append((f"VAE loss, KL {variant}", rel_error(got, ref), TOL))
        grads = read_safetensors(os.path.join(d, f"vae_grad_{variant}.safetensors"))
        worst, where = 0.0, ""
        for name, param in model.named_parameters():
            ref = torch.zeros_like(param) if param.grad is None else param.grad  # the unused GroupNorms
            e = grad_error(grads[name], ref)
            if not e <= worst:
                worst, where = e, name
        rows.append((f"VAE gradients, KL {variant} (worst {where})", worst, GRAD_TOL))
    return rows


def main():
    d = sys.argv[1]
    with torch.no_grad():
        rows = [(label, err, TOL) for label, err in check_unet(d) + check_vae(d)]
    rows += check_vae_grads(d)
    failed = 0
    print("(every checkpoint loaded with a strict state_dict load)")
    for label, err, tol in rows:
        ok = err <= tol
        failed += not ok
        print(f"{label:<54} rel error {err:.2e} (limit {tol:.0e})  {'ok' if ok else 'FAIL'}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
