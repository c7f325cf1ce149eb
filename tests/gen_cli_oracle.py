"""Independent checks of `sdseg encode`, `decode`, `predict --model vae` (tests/t_gen_cli.sh)
and `sdseg sample` (tests/t_sample_cli.sh).

A VAE checkpoint is rebuilt as tests/gen_oracle.py's PyTorch modules (float64, strict
state_dict load; config -- seed or improved --, widths, latent, groups and channels from its
metadata), and the commands' outputs are recomputed from the same inputs. Stacks are read from UNCOMPRESSED
copies (libtiff-tools' tiffcp -c none) by tests/check_tiles.py's parser.

  gen_cli_oracle.py images IMAGE.tif MASK.tif|- X.npy
      write the [-1, 1] batch [n, 1 or 2, h, w] the commands see (mask > 0 -> +1, else -1)
  gen_cli_oracle.py latents N C H W SEED Z.npy
      write N standard normal latents [N, C, H, W]
  gen_cli_oracle.py encode CKPT IMAGE.tif MASK.tif|- TILE LAT.npy [SAMPLE.npy]
      LAT: the posterior means of the TILE x TILE tiles of every page in raster order
      (TILE 0: whole pages); SAMPLE: a draw, whose (z - mean) / std must look standard normal
  gen_cli_oracle.py decode CKPT LAT.npy DEC.tif MASKS.tif|-
      DEC: the decoder alone (all-zero encoder features where it reads them) mapped to
      0..255; MASKS: channel 1 > 0 -> 255, which must hold both values
  gen_cli_oracle.py recon CKPT X.npy RECON.npy
      RECON: decoder(posterior mean, the encoder's features)
  gen_cli_oracle.py same RECON.npy DEC.tif MASKS.tif|-
      no torch: DEC (and MASKS) are RECON's channels as 8-bit pages (a VAE without skips,
      where decode(encode(x)) is the reconstruction)
  gen_cli_oracle.py sample DDPM VAE SAMPLER STEPS ETA SEED COUNT EMA SAMPLES.tif MASKS.tif|-
      the whole of `sdseg sample` again: x_T and every step's noise from Philox4x32-10 by
      the samplers' convention (sample i's values at offset i * per of stream 0, and of
      stream 1 + k for step k; reimplemented here), tests/sampler_oracle.py's sampler with
      the U-Net (EMA weights when EMA is 1 and the checkpoint has them), / latent scale,
      the VAE's decoder alone; pages compared as for decode
  gen_cli_oracle.py unet DDPM X.npy T EMA OUT.npy
      OUT: the U-Net's prediction for the latents X at timestep T (predict --model ddpm)
  gen_cli_oracle.py grid SAMPLES.tif MASKS.tif|- GRID.png
      GRID: the first 64 pages in ceil(sqrt(n)) columns (tests/png_check.py's layout and
      decoder), with masks as RGB with each mask's outline -- mask pixels with a
      4-neighbour outside it -- in red
Several checks run in one process (torch loads once) when joined by "+" arguments. Prints
one line per check; exit 1 if any fails.
"""
import json
import os
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_tiles import read_raw_tiff  # noqa: E402
from gen_oracle import Diffusion, Vae, read_safetensors  # noqa: E402
from png_check import grid_rows, read_png  # noqa: E402
from sampler_oracle import alphas_cumprod, ddim, ddpm, dpmpp_2m  # noqa: E402

torch.set_default_dtype(torch.float64)
TOL = 1e-4           # max |C - torch| / max |torch| of float outputs (C runs in float32)
PIXEL_SHARE = 0.01   # 8-bit pages: off by one (a rounding boundary) on at most this share
failed = 0


def report(label, ok, detail):
    global failed
    failed += not ok
    print(f"  {'ok  ' if ok else 'FAIL'}  {label}: {detail}")


def read_meta(path):
    blob = open(path, "rb").read()
    (n,) = struct.unpack("<Q", blob[:8])
    return json.loads(blob[8:8 + n])["__metadata__"]


def load_vae(path):
    meta = read_meta(path)
    improved = {"seed": 0, "improved": 1}[meta["cfg.config"]]
    cfg = {"base": int(meta["cfg.width"]), "latent": int(meta["cfg.latent"]), "groups": int(meta["cfg.groups"]),
           "in_ch": int(meta["cfg.channels"]), "skips": 1 - improved, "tanh_out": improved, "antialias": improved}
    model = Vae(cfg)
    model.load_state_dict(read_safetensors(path), strict=True)
    return model.eval()


def load_ddpm(path, ema):
    meta = read_meta(path)
    improved, levels, width = meta["cfg.config"] == "improved", int(meta["cfg.levels"]), int(meta["cfg.width"])
    per_level = {k: [int(v) for v in meta["cfg." + k].split(",")][:levels] for k in ("mult", "attn")}
    cfg = {"in_ch": int(meta["cfg.latent"]), "base": width, "levels": levels, "blocks": int(meta["cfg.blocks"]),
           "heads": int(meta["cfg.heads"]), "groups": int(meta["cfg.groups"]), "time_in": width,
           "time_dim": 2 * width, "time_film": improved, "pre_norm": improved, "antialias": improved,
           "act": "silu" if improved else "leaky_relu", "slope": 0.3, **per_level}
    tensors = read_safetensors(path)
    use_ema = int(ema) and float(meta["cfg.ema"]) > 0
    raw = {k: v for k, v in tensors.items() if not k.startswith("ema.")}
    weights = {k[4:]: v for k, v in tensors.items() if k.startswith("ema.")} if use_ema else raw
    model = Diffusion(cfg)
    model.load_state_dict(weights, strict=True)
    return model.eval(), meta


MASK32 = np.uint64(0xFFFFFFFF)


def philox(seed, stream, block):
    """Philox4x32-10 (core/philox.h) of counters (block, stream) under key seed, vectorized over block."""
    c = [block & MASK32, block >> np.uint64(32), np.full_like(block, stream & 0xFFFFFFFF),
         np.full_like(block, stream >> 32)]
    k0, k1 = np.uint64(seed & 0xFFFFFFFF), np.uint64(seed >> 32)
    for _ in range(10):
        p0, p1 = np.uint64(0xD2511F53) * c[0], np.uint64(0xCD9E8D57) * c[2]
        c = [(p1 >> np.uint64(32)) ^ c[1] ^ k0, p1 & MASK32, (p0 >> np.uint64(32)) ^ c[3] ^ k1, p0 & MASK32]
        k0, k1 = (k0 + np.uint64(0x9E3779B9)) & MASK32, (k1 + np.uint64(0xBB67AE85)) & MASK32
    return c


def philox_normal(seed, stream, count):
    """Standard normal values 0..count-1 of (seed, stream): Box-Muller on word pairs, rounded to float32."""
    index = np.arange(count, dtype=np.uint64)
    words = philox(seed, stream, index >> np.uint64(1))
    odd = (index & np.uint64(1)).astype(bool)
    first, second = np.where(odd, words[2], words[0]), np.where(odd, words[3], words[1])
    u1, u2 = (((w >> np.uint64(9)).astype(np.float64) + 0.5) / 8388608.0 for w in (first, second))
    return (np.sqrt(-2.0 * np.log(u1)) * np.cos(6.283185307179586 * u2)).astype(np.float32)


def images(image_path, mask_path):
    x = read_raw_tiff(image_path).astype(np.float64) / 255 * 2 - 1
    channels = [x]
    if mask_path != "-":
        channels.append(np.where(read_raw_tiff(mask_path) > 0, 1.0, -1.0))
    return np.stack(channels, axis=1)


def tiles(x, tile):
    if tile == 0:
        return x
    n, c, h, w = x.shape
    return np.stack([x[p, :, r:r + tile, q:q + tile] for p in range(n) for r in range(0, h, tile)
                     for q in range(0, w, tile)])


def rel_error(got, ref):
    return float(np.abs(got - ref).max() / np.abs(ref).max())


def to_u8(v):
    return np.clip(np.floor((v + 1) * 127.5 + 0.5), 0, 255)


def compare_pages(label, got, ref_u8):
    diff = np.abs(got.astype(np.int64) - ref_u8.astype(np.int64))
    share = float((diff > 0).mean())
    ok = got.shape == ref_u8.shape and diff.max() <= 1 and share <= PIXEL_SHARE
    report(label, ok, f"{got.shape}, max diff {diff.max()}, {100 * share:.2f}% off by one, "
           f"reference spread {ref_u8.min():.0f}..{ref_u8.max():.0f}")


def check_masks(label, got, channel, need_both):
    sure = np.abs(channel) > 1e-4  # values this close to 0 may fall either way in float32
    ok = got.shape == channel.shape and np.array_equal(got[sure], np.where(channel[sure] > 0, 255, 0))
    ok &= not need_both or 0 < (channel > 0).mean() < 1
    share = 100 * float((channel > 0).mean())
    report(label, ok, f"{int(sure.sum())} of {channel.size} pixels compared, {share:.1f}% set")


def cmd_images(image_path, mask_path, out):
    np.save(out, images(image_path, mask_path).astype(np.float32))


def cmd_latents(n, c, h, w, seed, out):
    shape = tuple(int(v) for v in (n, c, h, w))
    np.save(out, np.random.default_rng(int(seed)).standard_normal(shape).astype(np.float32))


def cmd_encode(ckpt, image_path, mask_path, tile, lat_path, sample_path=None):
    model = load_vae(ckpt)
    x = torch.from_numpy(tiles(images(image_path, mask_path), int(tile)))
    with torch.no_grad():
        mean, logvar, _ = model.encoder(x)
    got = np.load(lat_path)
    ok = got.shape == tuple(mean.shape) and rel_error(got, mean.numpy()) <= TOL
    report(f"encode tile {tile}: posterior means", ok, f"{got.shape}, rel error {rel_error(got, mean.numpy()):.1e}")
    if sample_path:
        std = torch.exp(0.5 * torch.clamp(logvar, -30, 20)).numpy()
        eps = (np.load(sample_path) - mean.numpy()) / std
        ok = abs(eps.mean()) < 0.1 and 0.9 < eps.std() < 1.1
        report("encode --sample: (z - mean) / std", ok, f"mean {eps.mean():.3f}, std {eps.std():.3f} over {eps.size}")


def cmd_decode(ckpt, lat_path, dec_path, masks_path):
    model = load_vae(ckpt)
    z = torch.from_numpy(np.load(lat_path).astype(np.float64))
    with torch.no_grad():
        out = model.generate(z).numpy()
    compare_pages("decode: image pages", read_raw_tiff(dec_path), to_u8(out[:, 0]))
    if masks_path != "-":
        check_masks("decode: mask pages", read_raw_tiff(masks_path), out[:, 1], True)


def cmd_recon(ckpt, x_path, recon_path):
    model = load_vae(ckpt)
    x = torch.from_numpy(np.load(x_path).astype(np.float64))
    with torch.no_grad():
        mean, _, skips = model.encoder(x)
        ref = model.decoder(mean, skips).numpy()
    got = np.load(recon_path)
    ok = got.shape == ref.shape and rel_error(got, ref) <= TOL
    report("predict --model vae: reconstruction", ok, f"{got.shape}, rel error {rel_error(got, ref):.1e}")


def cmd_same(recon_path, dec_path, masks_path):
    recon = np.load(recon_path)
    compare_pages("decode(encode(x)) = predict --model vae: images", read_raw_tiff(dec_path), to_u8(recon[:, 0]))
    if masks_path != "-":
        check_masks("decode(encode(x)) = predict --model vae: masks", read_raw_tiff(masks_path), recon[:, 1], False)


def cmd_sample(ddpm_path, vae_path, sampler, steps, eta, seed, count, ema, samples_path, masks_path):
    model, meta = load_ddpm(ddpm_path, ema)
    vae = load_vae(vae_path)
    steps, eta, seed, count = int(steps), float(eta), int(seed), int(count)
    shape = (count, int(meta["cfg.latent"]), int(meta["cfg.latent_h"]), int(meta["cfg.latent_w"]))
    per = shape[1] * shape[2] * shape[3]

    def noise(stream):  # sample i's values at offset i * per: the whole run's stream, in order
        return torch.from_numpy(philox_normal(seed, stream, count * per).astype(np.float64).reshape(shape))

    def unet(x, t):
        return model(x, torch.full((x.shape[0],), float(t)))

    train, pred = int(meta["cfg.timesteps"]), meta["cfg.prediction"]
    ac = alphas_cumprod(meta["cfg.schedule"], train)
    x, states = noise(0), []
    with torch.no_grad():
        if sampler == "dpm++2m":
            x = dpmpp_2m(ac, pred, train, steps, x, unet, states)
        else:
            step_noise = [None] + [noise(1 + k) for k in range(steps)]
            x = (ddpm(ac, pred, train, steps, x, unet, step_noise, states) if sampler == "ddpm" else
                 ddim(ac, pred, train, steps, eta, x, unet, step_noise, states))
        out = vae.generate(x / float(meta["state.latent_scale"])).numpy()
    compare_pages(f"sample {sampler} {steps} steps: image pages", read_raw_tiff(samples_path), to_u8(out[:, 0]))
    if masks_path != "-":
        check_masks(f"sample {sampler}: mask pages", read_raw_tiff(masks_path), out[:, 1], False)


def cmd_unet(ddpm_path, x_path, t, ema, out_path):
    model, _ = load_ddpm(ddpm_path, ema)
    x = torch.from_numpy(np.load(x_path).astype(np.float64))
    with torch.no_grad():
        ref = model(x, torch.full((x.shape[0],), float(t))).numpy()
    got = np.load(out_path)
    ok = got.shape == ref.shape and rel_error(got, ref) <= TOL
    report(f"predict --model ddpm --t {t}", ok, f"{got.shape}, rel error {rel_error(got, ref):.1e}")


def outline(img, mask):
    """RGB pages: gray, with mask pixels that have a 4-neighbour outside the mask in red."""
    m = mask > 0
    inside = np.pad(m, ((0, 0), (1, 1), (1, 1)), constant_values=True)  # the image border is no edge
    edge = m & ~(inside[:, :-2, 1:-1] & inside[:, 2:, 1:-1] & inside[:, 1:-1, :-2] & inside[:, 1:-1, 2:])
    rgb = np.stack([img, img, img], axis=-1)
    rgb[edge] = (255, 0, 0)
    return rgb


def cmd_grid(samples_path, masks_path, grid_path):
    pages = read_raw_tiff(samples_path)[:64]
    n, h, w = pages.shape
    tiles = pages[..., None] if masks_path == "-" else outline(pages, read_raw_tiff(masks_path)[:64])
    want = grid_rows(tiles.tobytes(), n, h, w, tiles.shape[-1], int(np.ceil(np.sqrt(n))))
    gw, gh, colour, got = read_png(grid_path)
    ok = (gh, gw * tiles.shape[-1]) == (len(want), len(want[0])) and colour == (0 if masks_path == "-" else 2)
    ok = ok and all(bytes(g) == bytes(e) for g, e in zip(got, want))
    report("grid.png: the pages laid out" + ("" if masks_path == "-" else " with the mask outlines"), ok,
           f"{gh}x{gw}, colour type {colour}, {n} tiles of {h}x{w}")


def main():
    commands = {"images": cmd_images, "latents": cmd_latents, "encode": cmd_encode, "decode": cmd_decode,
                "recon": cmd_recon, "same": cmd_same, "sample": cmd_sample, "unet": cmd_unet,
                "grid": cmd_grid}
    args = sys.argv[1:] + ["+"]
    while args:
        end = args.index("+")
        commands[args[0]](*args[1:end])
        args = args[end + 1:]
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
