"""PyTorch reference of the diffusion U-Net and the VAE, seed and improved configs (Debian's
python3-torch, float64).

Usage: /usr/bin/python3 tests/gen_oracle.py DIR      (DIR written by `t_gen_models dump`)

The modules below follow ../shared/docs/seed-models.md ("Building blocks", "VAE",
"Diffusion model") in the seed's own PyTorch style, generalized to the widths of each
<case>_config.txt, with the improved configs' switches as specified for them:
  U-Net  act: the residual blocks' and the output layer's activation (LeakyReLU(slope) or
         SiLU; the time MLP stays the seed's); time_film: linear_time emits 2c, (scale,
         shift) = its halves, m = GN_merged(f) * (1 + scale) + shift instead of
         GN_merged(f + t); pre_norm: f = conv_feature(act(GN_feature(x))); antialias:
         depthwise [1 2 1]^T [1 2 1] / 16 blur with reflect padding before each stride-2
         convolution, which keeps stride 2 and padding 1.
  VAE    skips 0: the decoder's merge 1x1 convolutions read the decoder path alone (no
         concatenation); tanh_out: tanh on the output; antialias: the same blur before each
         stride-2 convolution, which keeps the seed's right/bottom pad; generation decodes z
         with all-zero skip features (skips 1) or z alone.
Each C checkpoint must load with load_state_dict(strict=True) -- the same names, shapes and
layouts. For every case the C outputs must match this model's within TOL, and the gradients
of sum(out * R) (VAE: + sum(mean * R_mean) + sum(logvar * R_logvar)) by autograd, for every
parameter and for the input, must match the C tape backward's within GRAD_TOL per tensor.
Also: DDIM-4 sampling with the seed U-Net (tests/sampler_oracle.py's reference DDIM), and
the seed VAE's training loss (MSE + 0.5 KL, with the mean in the KL and with the seed's
defect 3, the standard deviation in its place) and its parameter gradients.
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
GRAD_TOL = 1e-4  # the same, per gradient tensor
KL_WEIGHT = 0.5  # t_gen_models' dump_vae_loss_grads
SEED_SLOPE = 0.3  # the seed's LeakyReLU: the time MLP and the whole VAE
# What t_gen_models dumps; the switches each case must have (so a case cannot silently
# test the seed twice).
UNET_CASES = {"unet_seed": dict(time_film=0, pre_norm=0, antialias=0, act="leaky_relu"),
              "unet_improved": dict(time_film=1, pre_norm=1, antialias=1, act="silu"),
              "unet_mixed": dict(time_film=1, pre_norm=0, antialias=1, act="leaky_relu")}
VAE_CASES = {"vae_seed": dict(in_ch=1, skips=1, tanh_out=0, antialias=0),
             "vae_improved": dict(in_ch=2, skips=0, tanh_out=1, antialias=1),
             "vae_mixed": dict(in_ch=2, skips=1, tanh_out=1, antialias=1)}


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


def blur(x):
    """Depthwise [1 2 1]^T [1 2 1] / 16 with reflect padding 1, stride 1."""
    taps = torch.tensor([1.0, 2.0, 1.0], device=x.device)
    kernel = (taps[:, None] * taps[None, :] / 16).expand(x.shape[1], 1, 3, 3)
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), kernel, groups=x.shape[1])


def activation(cfg):
    if cfg["act"] == "silu":
        return F.silu
    assert cfg["act"] == "leaky_relu", cfg["act"]
    return lambda x: F.leaky_relu(x, cfg["slope"])


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
    """The seed's MLP, in every config."""

    def __init__(self, n_in, n_embd):
        super().__init__()
        self.linear_1 = nn.Linear(n_in, n_embd)
        self.linear_2 = nn.Linear(n_embd, n_embd)

    def forward(self, x):
        x = F.silu(F.leaky_relu(self.linear_1(x), SEED_SLOPE))
        return F.leaky_relu(self.linear_2(x), SEED_SLOPE)


class ResidualBlock(nn.Module):
    def __init__(self, cin, cout, cfg):
        super().__init__()
        self.film, self.pre_norm, self.act = cfg["time_film"], cfg["pre_norm"], activation(cfg)
        self.groupnorm_feature = nn.GroupNorm(cfg["groups"], cin)  # the seed declares it, never applies it
        self.conv_feature = nn.Conv2d(cin, cout, 3, padding=1)
        self.linear_time = nn.Linear(cfg["time_dim"], 2 * cout if self.film else cout)
        self.groupnorm_merged = nn.GroupNorm(cfg["groups"], cout)
        self.conv_merged = nn.Conv2d(cout, cout, 3, padding=1)
        self.residual_layer = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1)

    def forward(self, feature, time):
        residue = feature
        if self.pre_norm:
            feature = self.groupnorm_feature(feature)
        feature = self.conv_feature(self.act(feature))
        time = self.linear_time(self.act(time))
        if self.film:
            scale, shift = time.chunk(2, dim=1)
            merged = self.groupnorm_merged(feature) * (1 + scale[:, :, None, None]) + shift[:, :, None, None]
        else:
            merged = self.groupnorm_merged(feature + time[:, :, None, None])
        merged = self.conv_merged(self.act(merged))
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


class Downsample(nn.Conv2d):
    """Conv3x3 stride 2 padding 1, with the blur first when anti-aliased."""

    def __init__(self, c, antialias):
        super().__init__(c, c, 3, stride=2, padding=1)
        self.antialias = antialias

    def forward(self, x):
        return super().forward(blur(x) if self.antialias else x)


class SwitchSequential(nn.Sequential):
    def forward(self, x, time):
        for layer in self:
            x = layer(x, time) if isinstance(layer, ResidualBlock) else layer(x)
        return x


class UNet(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        base, levels, blocks, heads, groups = (cfg[k] for k in ("base", "levels", "blocks", "heads", "groups"))
        widths = [base * m for m in cfg["mult"]]

        def entry(cin, cout, attn, up):
            layers = [ResidualBlock(cin, cout, cfg)]
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
                self.encoders.append(SwitchSequential(Downsample(c, cfg["antialias"])))
                skips.append(c)
        self.bottleneck = SwitchSequential(ResidualBlock(c, c, cfg), AttentionBlock(heads, c, groups),
                                           ResidualBlock(c, c, cfg))
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
    def __init__(self, c, out, cfg):
        super().__init__()
        self.act = activation(cfg)
        self.groupnorm = nn.GroupNorm(cfg["groups"], c)
        self.conv = nn.Conv2d(c, out, 3, padding=1)

    def forward(self, x):
        return self.conv(self.act(self.groupnorm(x)))


class Diffusion(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.time_in = cfg["time_in"]
        self.time_embedding = TimeEmbedding(cfg["time_in"], cfg["time_dim"])
        self.unet = UNet(cfg)
        self.final = OutputLayer(cfg["base"], cfg["in_ch"], cfg)

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
        y = self.conv_1(F.leaky_relu(self.groupnorm_1(x), SEED_SLOPE))
        y = self.conv_2(F.leaky_relu(self.groupnorm_2(y), SEED_SLOPE))
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
        self.antialias = cfg["antialias"]
        self.main = nn.Sequential(
            nn.Conv2d(cfg["in_ch"], b, 3, padding=1), VaeResidualBlock(b, b, g), nn.Conv2d(b, b, 3, stride=2),
            VaeResidualBlock(b, 2 * b, g), nn.Conv2d(2 * b, 2 * b, 3, stride=2),
            VaeResidualBlock(2 * b, 4 * b, g), nn.Conv2d(4 * b, 4 * b, 3, stride=2),
            VaeResidualBlock(4 * b, 4 * b, g), VaeAttentionBlock(4 * b, g), VaeResidualBlock(4 * b, 4 * b, g),
            nn.GroupNorm(g, 4 * b), nn.LeakyReLU(SEED_SLOPE), nn.Conv2d(4 * b, 2 * lat, 3, padding=1),
            nn.Conv2d(2 * lat, 2 * lat, 3, padding=1))

    def forward(self, x):
        skips = []
        for module in self.main:
            if isinstance(module, nn.Conv2d) and module.stride == (2, 2):
                x = module(F.pad(blur(x) if self.antialias else x, (0, 1, 0, 1)))
                skips.append(x)
            else:
                x = module(x)
        mean, logvar = torch.chunk(x, 2, dim=1)
        return mean, logvar, skips


class VaeDecoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        b, g, lat = cfg["base"], cfg["groups"], cfg["latent"]
        self.skips, self.tanh_out = cfg["skips"], cfg["tanh_out"]
        skip = (lambda c: c) if self.skips else (lambda c: 0)  # skip channels the merge convolutions read
        self.stg1 = nn.Sequential(
            nn.Conv2d(lat + skip(4 * b), 2 * b, 1), nn.Conv2d(2 * b, 4 * b, 3, padding=1),
            VaeResidualBlock(4 * b, 4 * b, g), VaeAttentionBlock(4 * b, g), VaeResidualBlock(4 * b, 4 * b, g),
            nn.ConvTranspose2d(4 * b, 4 * b, 4, stride=2, padding=1))
        self.stg2 = nn.Sequential(
            nn.Conv2d(4 * b + skip(2 * b), 4 * b, 1), nn.Conv2d(4 * b, 4 * b, 3, padding=1),
            VaeResidualBlock(4 * b, 4 * b, g), nn.ConvTranspose2d(4 * b, 4 * b, 4, stride=2, padding=1),
            nn.Conv2d(4 * b, 4 * b, 1))
        self.stg3 = nn.Sequential(
            nn.Conv2d(4 * b + skip(b), 4 * b, 1), nn.Conv2d(4 * b, 4 * b, 3, padding=1),
            VaeResidualBlock(4 * b, 2 * b, g), VaeResidualBlock(2 * b, 2 * b, g),
            nn.ConvTranspose2d(2 * b, 2 * b, 4, stride=2, padding=1), nn.Conv2d(2 * b, 2 * b, 3, padding=1),
            VaeResidualBlock(2 * b, b, g), VaeResidualBlock(b, b, g), nn.GroupNorm(g, b),
            nn.LeakyReLU(SEED_SLOPE), nn.Conv2d(b, b // 2, 3, padding=1),
            nn.Conv2d(b // 2, cfg["in_ch"], 3, padding=1))

    def merge(self, x, skip):
        return torch.cat((x, skip), dim=1) if self.skips else x

    def forward(self, z, skips):
        f1, f2, f3 = skips
        x = self.stg1(self.merge(z, f3))
        x = self.stg2(self.merge(x, f2))
        x = self.stg3(self.merge(x, f1))
        return torch.tanh(x) if self.tanh_out else x


class Vae(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.encoder = VaeEncoder(cfg)
        self.decoder = VaeDecoder(cfg)

    def generate(self, z):
        """Decoding z alone: the encoder features (f1: base channels at 4x the latent size,
        f2: 2 base at 2x, f3: 4 base at 1x) are zeros."""
        n, _, h, w = z.shape
        b = self.cfg["base"]
        zeros = [torch.zeros(n, b * 2 ** s, h * 2 ** (2 - s), w * 2 ** (2 - s), device=z.device) for s in range(3)]
        return self.decoder(z, zeros)


def read_config(path):
    cfg = {}
    with open(path) as f:
        for line in f:
            k, v = line.split()
            if k in ("mult", "attn"):
                cfg[k] = [int(x) for x in v.split(",")]
            elif k == "slope":
                cfg[k] = float(v)
            else:
                cfg[k] = int(v) if v.lstrip("-").isdigit() else v
    if "mult" in cfg:
        cfg["levels"] = len(cfg["mult"])
    return cfg


def load(d, name):
    return torch.from_numpy(np.load(os.path.join(d, name)).astype(np.float64))


def build(d, case, cls, switches):
    cfg = read_config(os.path.join(d, f"{case}_config.txt"))
    wrong = {k: cfg[k] for k, v in switches.items() if cfg[k] != v}
    assert not wrong, f"{case}: switches {wrong}, expected {switches}"
    model = cls(cfg)
    model.load_state_dict(read_safetensors(os.path.join(d, f"{case}.safetensors")), strict=True)
    return model


def rel_error(got, ref):
    return float((got - ref).abs().max() / ref.abs().max())


def grad_error(got, ref):
    """max |C - autograd| / max |autograd| for one tensor (absolute where autograd is 0)."""
    scale = float(ref.abs().max())
    return float((got - ref).abs().max()) / (scale if scale > 0 else 1.0)


def worst_param_grad(model, grads):
    """The largest grad_error over the parameters, and its name."""
    worst, where = 0.0, ""
    for name, param in model.named_parameters():
        ref = torch.zeros_like(param) if param.grad is None else param.grad  # the unused GroupNorms
        e = grad_error(grads[name], ref)
        if not e <= worst:
            worst, where = e, name
    return worst, where


def gradient_rows(d, case, model, x):
    """Rows for the C tape's gradients: every parameter (worst tensor named) and the input."""
    worst, where = worst_param_grad(model, read_safetensors(os.path.join(d, f"{case}_grad.safetensors")))
    return [(f"{case} parameter gradients ({len(list(model.parameters()))} tensors, worst {where})", worst,
             GRAD_TOL),
            (f"{case} input gradient", grad_error(load(d, f"{case}_dx.npy"), x.grad), GRAD_TOL)]


def check_unet(d, case, switches):
    model = build(d, case, Diffusion, switches)
    x = load(d, f"{case}_x.npy").requires_grad_(True)
    out = model(x, load(d, f"{case}_t.npy"))
    (out * load(d, f"{case}_r.npy")).sum().backward()
    return [(f"{case} prediction", rel_error(load(d, f"{case}_out.npy"), out.detach()), TOL)] + \
        gradient_rows(d, case, model, x)


def check_unet_ddim(d, case):
    model = build(d, case, Diffusion, {})

    def denoise(latent, t):
        return model(latent, torch.full((latent.shape[0],), float(t)))

    with torch.no_grad():
        sample = ddim(alphas_cumprod("scaled-linear", 1000), "epsilon", 1000, 4, 0.0, load(d, f"{case}_xT.npy"),
                      denoise, None, [])
    return [(f"{case} inside DDIM-4", rel_error(load(d, f"{case}_ddim4.npy"), sample), TOL)]


def check_vae(d, case, switches):
    model = build(d, case, Vae, switches)
    x = load(d, f"{case}_x.npy").requires_grad_(True)
    mean, logvar, skips = model.encoder(x)
    z = mean + torch.exp(0.5 * torch.clamp(logvar, -30, 20)) * load(d, f"{case}_eps.npy")
    recon = model.decoder(z, skips)
    loss = (recon * load(d, f"{case}_r.npy")).sum() + (mean * load(d, f"{case}_r_mean.npy")).sum() + \
        (logvar * load(d, f"{case}_r_logvar.npy")).sum()
    loss.backward()
    with torch.no_grad():
        generated = model.generate(load(d, f"{case}_z.npy"))
    return [(f"{case} mean", rel_error(load(d, f"{case}_mean.npy"), mean.detach()), TOL),
            (f"{case} logvar", rel_error(load(d, f"{case}_logvar.npy"), logvar.detach()), TOL),
            (f"{case} reconstruction", rel_error(load(d, f"{case}_out.npy"), recon.detach()), TOL)] + \
        gradient_rows(d, case, model, x) + \
        [(f"{case} generation from z alone", rel_error(load(d, f"{case}_gen.npy"), generated), TOL)]


def vae_loss(model, x, eps, kl_std_for_mean):
    """The seed's objective: MSE(recon, x) + KL_WEIGHT * KL(N(mu, exp(logvar)) || N(0, 1))."""
    mean, logvar, skips = model.encoder(x)
    std = torch.exp(0.5 * torch.clamp(logvar, -30, 20))
    recon = model.decoder(mean + std * eps, skips)
    mu = std if kl_std_for_mean else mean
    mse = F.mse_loss(recon, x)
    kl = -0.5 * torch.mean(1 + logvar - mu ** 2 - logvar.exp())
    return mse, kl, mse + KL_WEIGHT * kl


def check_vae_loss_grads(d, case):
    model = build(d, case, Vae, {})
    x, eps = load(d, f"{case}_x.npy"), load(d, f"{case}_eps.npy")
    rows = []
    for variant, defect in (("fixed", False), ("seed", True)):
        model.zero_grad(set_to_none=True)
        losses = vae_loss(model, x, eps, defect)
        losses[2].backward()
        got = load(d, f"{case}_loss_{variant}.npy")
        rows.append((f"{case} loss, KL {variant}", rel_error(got, torch.stack([v.detach() for v in losses])), TOL))
        grads = read_safetensors(os.path.join(d, f"{case}_lossgrad_{variant}.safetensors"))
        worst, where = worst_param_grad(model, grads)
        rows.append((f"{case} loss gradients, KL {variant} (worst {where})", worst, GRAD_TOL))
    return rows


def main():
    d = sys.argv[1]
    rows = []
    for case, switches in UNET_CASES.items():
        rows += check_unet(d, case, switches)
    rows += check_unet_ddim(d, "unet_seed")
    for case, switches in VAE_CASES.items():
        rows += check_vae(d, case, switches)
    rows += check_vae_loss_grads(d, "vae_seed")
    failed = 0
    print("(every checkpoint loaded with a strict state_dict load)")
    for label, err, tol in rows:
        ok = err <= tol
        failed += not ok
        print(f"{label:<76} rel error {err:.2e} (limit {tol:.0e})  {'ok' if ok else 'FAIL'}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
