"""The PyTorch side of `make bench-models` and `make bench-models-gpu`: one case of
bench/bench_models.c, the same way.

Usage: python3 bench/torch_models.py CASE [--width N] [--batch N] [--size N] [--stack PxHxW]
                                      [--vae-width N] [--reps N] [--threads N] [--device cpu|cuda]
                                      [--mode eager|compile] [--precision fp32|bf16] [--channels-last]

CASE, options, defaults and the printed CSV row (BENCH_COLUMNS) are bench_models's; see the
top of bench/bench_models.c. The networks are the PyTorch modules the tests already verify
our C models against (tests/seg_oracle.py: segmentation U-Net; tests/gen_oracle.py: VAE and
diffusion U-Net, in the seed's own PyTorch style), here in float32 with PyTorch's default
initialisation. Training is what a PyTorch user of the seed recipe runs: train mode,
BCEWithLogitsLoss, torch.optim.Adam(lr 1e-3, eps 1e-7) with weight_decay 2e-3 on the
convolutions (the Keras l2(1e-3) penalty's gradient), zero_grad / backward / step.
Inference and forwards run under torch.no_grad() in eval mode. Sampling (sample-ddpm,
sample-ddim, sample-dpm++2m) is the loop a PyTorch user writes: tests/sampler_oracle.py's
re-implementations of diffusers' DDPM, DDIM (eta 0) and DPM-Solver++(2M) schedulers around
the diffusion U-Net, then the VAE decoder, both in their improved configs. FLOPs are counted by
forward hooks (2 x multiply-adds of convolutions, linear layers and attention products)
during the warm-up (seg-infer: one batch of tiles, scaled to the stack's tile count),
independently of the C side's count. The reported time is the best of the timed runs.

The defaults (CPU, eager, float32, NCHW) are what `make bench-models` compares against.
On a GPU (--device cuda; `make bench-models-gpu`) PyTorch gets its usual speed-ups: cuDNN
with its autotuner (cudnn.benchmark), bf16 autocast around the forward computations
(--precision bf16: convolutions and matrix products in bf16, the rest float32, as sdseg's
--fast), channels_last memory format for the models and their image inputs, and
torch.compile (--mode compile: the networks' top-level modules compiled in place with
Module.compile, Inductor's default mode). float32 is IEEE float32 (TF32 off), as sdseg
computes it. Every timed iteration lies between two torch.cuda.synchronize() calls; the
peak device memory is torch.cuda.max_memory_allocated() over the whole case. In compile
mode the FLOPs are counted in an eager warm-up before compiling, and the compilation with
COMPILE_WARMUPS further iterations is left out of the timing.
"""
import argparse
import os
import resource
import sys
import time

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import gen_oracle  # noqa: E402  (the oracles switch the default dtype to float64 on import)
import sampler_oracle  # noqa: E402
import seg_oracle  # noqa: E402

torch.set_default_dtype(torch.float32)

INFER_TILE, INFER_OVERLAP, WINDOW_FLOOR = 256, 64, 1e-3
SEED_SIZES = {"seg-train": (64, 8, 256), "seg-infer": (64, 8, INFER_TILE), "vae-forward": (128, 1, 256),
              "diffusion-forward": (320, 1, 32), "sample-ddpm": (320, 1, 256), "sample-ddim": (320, 1, 256),
              "sample-dpm++2m": (320, 1, 256)}
SAMPLER_STEPS = {"ddpm": 50, "ddim": 50, "dpm++2m": 20}  # bench_models's sampler_steps
SCHEDULE_STEPS = 1000
SEED_SLOPE = 0.3
COMPILE_WARMUPS = 2  # iterations after compiling, before timing: the first compiles, the second shows recompiles


# ------------------------------------------------------------------ FLOP counting

class FlopCounter:
    """Forward hooks adding 2 x multiply-adds of every conv, transposed conv, linear layer and
    attention product (gen_oracle.SelfAttention: q k^T and probs v) while attached."""

    def __init__(self, model):
        self.flop = 0.0
        self.handles = [m.register_forward_hook(self.hook) for m in model.modules()
                        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, gen_oracle.SelfAttention))]

    def hook(self, module, inputs, output):
        x = inputs[0]
        if isinstance(module, nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
            self.flop += 2.0 * output.numel() * k
        elif isinstance(module, nn.ConvTranspose2d):
            k = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
            self.flop += 2.0 * x.numel() * k
        elif isinstance(module, nn.Linear):
            self.flop += 2.0 * x.numel() * module.out_features
        else:  # attention over x [n, len, d]: two len x len x d products
            n, length, d = x.shape
            self.flop += 4.0 * n * length * length * d

    def detach(self):
        for h in self.handles:
            h.remove()


# ------------------------------------------------------------------ device, precision, layout

def setup_device(a):
    """Exits with a one-line message when the options cannot run here. cuda: float32 without
    TF32. (Not torch.set_default_device: its mode would tax every eager op.)"""
    if a.mode == "compile" and not hasattr(nn.Module, "compile"):
        sys.exit(f"torch_models: --mode compile needs PyTorch 2.2 or later (this is {torch.__version__})")
    if a.device != "cuda":
        return
    if not torch.cuda.is_available():
        built = f"built for CUDA {torch.version.cuda}" if torch.version.cuda else "built without CUDA"
        sys.exit(f"torch_models: --device cuda: PyTorch {torch.__version__} ({built}) finds no usable GPU")
    if hasattr(torch.backends, "fp32_precision"):  # PyTorch 2.9 and later
        torch.backends.cuda.matmul.fp32_precision = "ieee"
        torch.backends.cudnn.conv.fp32_precision = "ieee"
    else:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True  # fixed shapes: the warm-up pays for the autotuning
    torch.cuda.reset_peak_memory_stats()


def sync(a):
    """Wait for the GPU's queued work (timings must cover it)."""
    if a.device == "cuda":
        torch.cuda.synchronize()


def autocast(a):
    """bf16 autocast for --precision bf16 (a no-op context for fp32): put around forwards."""
    return torch.autocast(a.device, dtype=torch.bfloat16, enabled=a.precision == "bf16")


def place(a, x):
    """A model or 4-d tensor on the device, in channels_last memory format under --channels-last."""
    x = x.to(a.device)
    return x.to(memory_format=torch.channels_last) if a.channels_last else x


def peak_device_mib(a):
    return torch.cuda.max_memory_allocated() / 2 ** 20 if a.device == "cuda" else 0.0


def timed(a, fn):
    """Seconds fn takes, the device's queued work included."""
    sync(a)
    t = time.perf_counter()
    fn()
    sync(a)
    return time.perf_counter() - t


def compile_parts(parts, step):
    """The modules compiled in place, then COMPILE_WARMUPS steps (the first compiles them)."""
    for m in parts:
        m.compile()
    for _ in range(COMPILE_WARMUPS):
        step()


def time_iterations(a, model, step, parts, warm=None, warm_scale=1):
    """The warm-up (one step unless `warm`) with FLOP hooks, whose count times warm_scale is
    the per-iteration count; in compile mode, the modules `parts` compiled and exercised
    (untimed); then the timed runs."""
    counter = FlopCounter(model)
    seconds = timed(a, warm or step)
    counter.detach()
    print(f"{a.case}: warm-up {seconds:.2f} s", file=sys.stderr)
    if a.mode == "compile":
        seconds = timed(a, lambda: compile_parts(parts, step))
        print(f"{a.case}: compilation and {COMPILE_WARMUPS} iterations {seconds:.2f} s (not timed)", file=sys.stderr)
    seconds = []
    for i in range(a.reps):
        seconds.append(timed(a, step))
        print(f"{a.case}: iteration {i + 1}: {seconds[-1]:.3f} s", file=sys.stderr)
    return counter.flop * warm_scale, seconds


# ------------------------------------------------------------------ segmentation U-Net

def seg_train(a):
    model = place(a, seg_oracle.SegUnet(a.width, 1e-3, 0.01).train())  # Keras BN: eps 1e-3, momentum 0.99
    convs = [p for n, p in model.named_parameters() if ".bn" not in n]
    norms = [p for n, p in model.named_parameters() if ".bn" in n]
    opt = torch.optim.Adam([{"params": convs, "weight_decay": 2e-3}, {"params": norms, "weight_decay": 0}],
                           lr=1e-3, eps=1e-7)
    x = place(a, torch.rand(a.batch, 1, a.size, a.size))
    target = (torch.rand(a.batch, 1, a.size, a.size) < 0.07).float().to(a.device)
    loss_fn = nn.BCEWithLogitsLoss()

    def step():
        opt.zero_grad()
        with autocast(a):
            loss = loss_fn(model(x), target)
        loss.backward()
        opt.step()

    flop, seconds = time_iterations(a, model, step, [model])
    return a.batch, "images", 3 * flop, seconds


def axis_origins(n, tile, overlap):
    """Tile origins along an axis of n >= tile pixels, spread evenly as core/tiling.c does."""
    if n < tile:
        sys.exit(f"seg-infer: slices must be at least {tile} pixels on each side")
    stride = tile - overlap
    count = (n - tile + stride - 1) // stride + 1
    if count == 1:
        return [0]
    return [(2 * i * (n - tile) + count - 1) // (2 * (count - 1)) for i in range(count)]


def tile_spots(shape):
    """(page, y, x) of every tile of a stack, in the order core/tiling.c runs them."""
    pages, h, w = shape
    return [(p, y, x) for p in range(pages) for y in axis_origins(h, INFER_TILE, INFER_OVERLAP)
            for x in axis_origins(w, INFER_TILE, INFER_OVERLAP)]


def segment_stack(a, model, stack):
    """Overlapping tiles -> sigmoid probabilities blended with a raised-cosine window. The
    host stack goes to the device and the probabilities come back, as sdseg's do."""
    tile = INFER_TILE
    i = np.arange(tile)
    win = np.maximum(np.sin(np.pi * (i + 0.5) / tile) ** 2, WINDOW_FLOOR).astype(np.float32)
    win2 = torch.from_numpy(np.outer(win, win)).to(a.device)
    pages, h, w = stack.shape
    spots = tile_spots(stack.shape)
    images = torch.from_numpy(stack).to(a.device)
    out, wsum = torch.zeros(pages, h, w, device=a.device), torch.zeros(pages, h, w, device=a.device)
    with torch.no_grad():
        for k in range(0, len(spots), a.batch):
            chunk = spots[k:k + a.batch]
            tiles = place(a, torch.stack([images[p, y:y + tile, x:x + tile] for p, y, x in chunk])[:, None])
            with autocast(a):
                logits = model(tiles)
            probs = torch.sigmoid(logits.float())[:, 0]
            for (p, y, x), prob in zip(chunk, probs):
                out[p, y:y + tile, x:x + tile] += win2 * prob
                wsum[p, y:y + tile, x:x + tile] += win2
    return (out / wsum).cpu()


def seg_infer(a):
    pages, h, w = (int(v) for v in a.stack.split("x"))
    stack = np.random.default_rng(1).random((pages, h, w), dtype=np.float32)  # the work does not depend on it
    model = place(a, seg_oracle.SegUnet(a.width, 1e-3, 0.01).eval())

    def warm():  # one batch of tiles, as bench_models
        with torch.no_grad(), autocast(a):
            model(place(a, torch.rand(a.batch, 1, INFER_TILE, INFER_TILE, device=a.device)))

    flop, seconds = time_iterations(a, model, lambda: segment_stack(a, model, stack), [model], warm,
                                    len(tile_spots(stack.shape)) / a.batch)
    return stack.size / 1e6, "MP", flop, seconds


# ------------------------------------------------------------------ generative models

def unet_config(width, improved):
    """The seed's diffusion U-Net at base `width` (time embedding 320 -> 640, attention at the
    three upper levels) or the improved one as train-ddpm builds it (time embedding width ->
    2 width, attention at level 1, FiLM, pre-norm, blur, SiLU)."""
    cfg = {"in_ch": 32, "base": width, "levels": 4, "mult": [1, 2, 4, 4], "attn": [1, 1, 1, 0], "blocks": 2,
           "heads": 8, "time_in": 320, "time_dim": 640, "groups": 8, "time_film": 0, "pre_norm": 0, "antialias": 0,
           "act": "leaky_relu", "slope": SEED_SLOPE}
    if improved:
        cfg.update(attn=[0, 1, 0, 0], time_in=width, time_dim=2 * width, time_film=1, pre_norm=1, antialias=1,
                   act="silu")
    return cfg


def vae_config(width, improved):
    """The seed's VAE, or the improved one with a mask channel (GroupNorm groups min(32, width / 2))."""
    if improved:
        return {"in_ch": 2, "base": width, "latent": 32, "groups": min(32, width // 2), "skips": 0, "tanh_out": 1,
                "antialias": 1}
    return {"in_ch": 1, "base": width, "latent": 32, "groups": 32, "skips": 1, "tanh_out": 0, "antialias": 0}


def predict_noise(model, x, t):
    """Diffusion.forward with the timestep embedding in float32 (the oracle's is float64)."""
    half = model.time_in // 2
    angles = t[:, None] * torch.pow(10000, -torch.arange(half, dtype=torch.float32, device=t.device) / half)[None]
    time_emb = model.time_embedding(torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1))
    return model.final(model.unet(x, time_emb))


def vae_forward(a):
    model = place(a, gen_oracle.Vae(vae_config(a.width, False)).eval())
    x = place(a, torch.randn(a.batch, 1, a.size, a.size))

    def step():
        with torch.no_grad(), autocast(a):
            mean, _, skips = model.encoder(x)
            model.decoder(mean, skips)

    flop, seconds = time_iterations(a, model, step, [model.encoder, model.decoder])
    return a.batch, "images", flop, seconds


def diffusion_forward(a):
    model = place(a, gen_oracle.Diffusion(unet_config(a.width, False)).eval())
    x = place(a, torch.randn(a.batch, 32, a.size, a.size))
    t = torch.full((a.batch,), 500.0, device=a.device)

    def step():
        with torch.no_grad(), autocast(a):
            predict_noise(model, x, t)

    flop, seconds = time_iterations(a, model, step, list(model.children()))
    return a.batch, "images", flop, seconds


def sampling(a):
    """batch images from noise: the sampler's loop around the U-Net, then the VAE decoder."""
    kind = a.case[len("sample-"):]
    steps = SAMPLER_STEPS[kind]
    if a.size % 8:
        sys.exit(f"{a.case}: --size must be a multiple of 8, got {a.size}")
    unet = place(a, gen_oracle.Diffusion(unet_config(a.width, True)).eval())
    vae = place(a, gen_oracle.Vae(vae_config(a.vae_width, True)).eval())
    # on the host: the samplers' coefficients are host scalars (0-d tensors), as in diffusers
    ac = sampler_oracle.alphas_cumprod("scaled-linear", SCHEDULE_STEPS)
    shape = (a.batch, 32, a.size // 8, a.size // 8)

    def denoise(x, t):
        return predict_noise(unet, x, torch.full((a.batch,), float(t), device=a.device))

    def step():
        with torch.no_grad(), autocast(a):
            x, states = place(a, torch.randn(shape, device=a.device)), []  # the samplers record every state
            if kind == "ddpm":
                noise = torch.randn(steps + 1, *shape, device=a.device)
                z = sampler_oracle.ddpm(ac, "epsilon", SCHEDULE_STEPS, steps, x, denoise, noise, states)
            elif kind == "ddim":
                z = sampler_oracle.ddim(ac, "epsilon", SCHEDULE_STEPS, steps, 0.0, x, denoise, None, states)
            else:
                z = sampler_oracle.dpmpp_2m(ac, "epsilon", SCHEDULE_STEPS, steps, x, denoise, states)
            vae.generate(z)

    flop, seconds = time_iterations(a, nn.ModuleList([unet, vae]), step, list(unet.children()) + [vae.decoder])
    return a.batch, "images", flop, seconds


CASES = {"seg-train": seg_train, "seg-infer": seg_infer, "vae-forward": vae_forward,
         "diffusion-forward": diffusion_forward, "sample-ddpm": sampling, "sample-ddim": sampling,
         "sample-dpm++2m": sampling}


def main():
    p = argparse.ArgumentParser(description="PyTorch side of bench_models (one case, one CSV row)")
    p.add_argument("case", choices=sorted(CASES))
    for opt in ("width", "batch", "size"):
        p.add_argument(f"--{opt}", type=int)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--stack", default="1x768x1024", help="seg-infer: PAGESxHxW of a random stack")
    p.add_argument("--vae-width", type=int, default=128, help="sampling: the VAE's base width")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--mode", choices=("eager", "compile"), default="eager", help="compile: torch.compile")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32", help="bf16: autocast")
    p.add_argument("--channels-last", action="store_true", help="channels_last memory format")
    a = p.parse_args()
    for opt, seed in zip(("width", "batch", "size"), SEED_SIZES[a.case]):
        if getattr(a, opt) is None:
            setattr(a, opt, seed)
    setup_device(a)
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    fmt = "channels_last" if a.channels_last else "nchw"
    print(f"{a.case}: PyTorch {torch.__version__}, {a.device}, {torch.get_num_threads()} threads, {a.precision}, "
          f"{a.mode}, {fmt}", file=sys.stderr)
    items, unit, flop, seconds = CASES[a.case](a)
    sec = min(seconds)  # the least disturbed, as bench_models
    usage = resource.getrusage(resource.RUSAGE_SELF)
    rss = usage.ru_maxrss / 1024  # Linux reports KiB
    # BENCH_COLUMNS: impl,case,width,batch,size,items,unit,reps,seconds,rate,gflop,gflops,threads,peak_rss_mib,cpu_s,
    # device,precision,mode,layout,peak_device_mib
    print(f"torch,{a.case},{a.width},{a.batch},{a.size},{items:.6g},{unit},{a.reps},{sec:.6g},{items / sec:.6g},"
          f"{flop / 1e9:.6g},{flop / 1e9 / sec:.6g},{torch.get_num_threads()},{rss:.1f},"
          f"{usage.ru_utime + usage.ru_stime:.2f},{a.device},{a.precision},{a.mode},{fmt},{peak_device_mib(a):.1f}")


if __name__ == "__main__":
    main()
