"""Float64 numpy/PyTorch references for the fidelity distances (tests/t_fidelity.c).

Usage: /usr/bin/python3 tests/fidelity_oracle.py DIR

DIR holds what the C test wrote (.npy, float64 unless said):
  {full,rankdef,subspace}_{x,y}.npy  feature sets [n, d];  *_fd.npy  the C Frechet distance
  kid_x, kid_y, kid_ix, kid_iy       features and the subset indices;  kid_got.npy  the C
                                     KID of kid_x[:len(kid_y)] against kid_y (whole sets)
                                     and mmd2_poly on rows kid_ix of kid_x, kid_iy of kid_y
  spectrum_tiles [t, n, n] (grey levels), spectrum_rings [t, n/2+1]  the C ring spectra
  unet.safetensors, features_tiles [b, 1, n, n], features [b, dim]  the C U-Net features

Frechet distances are recomputed with S1^1/2 from numpy's eigh and the eigenvalues of
S1^1/2 S2 S1^1/2 from eigvalsh (the formulation of core/fidelity.c, independently coded);
as pytorch-fid does, tr sqrtm(S1 S2) = sum sqrt(eig(S1 S2)) from the general eigensolver;
and for the rank-deficient sets in 40-digit arithmetic (mpmath), where the zero eigenvalues
are zero to 1e-40, so that the float64 error of the roots of rounding noise shows. Prints
one line per check; exit status 1 if any error exceeds its limit.
"""
import os
import sys

import mpmath
import numpy as np
import torch
import torch.nn.functional as F

sys.dont_write_bytecode = True  # no tests/__pycache__ from the import below
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from seg_oracle import SegUnet, read_safetensors  # noqa: E402  (the float64 PyTorch U-Net)

# Relative errors, C (double) against numpy (double): FD ~1e-15, except that numpy's roots
# of a rank-deficient covariance's zero eigenvalues (rounding noise ~1e-16 of the largest)
# add ~1e-9, which core/fidelity.c avoids (against 40 digits: ~1e-14); the general
# eigensolver's roots of S1 S2 are noisier still. Features: float32 C against float64 torch.
LIMITS = {"fd": 1e-7, "fd_general": 1e-5, "fd_exact": 1e-12, "kid": 1e-12, "spectrum": 1e-12, "features": 2e-5}
failures = []


def report(what, kind, err):
    ok = err <= LIMITS[kind]
    print(f"  {what:<52} {err:.2e}  {'ok' if ok else 'FAIL'} (limit {LIMITS[kind]:.0e})")
    if not ok:
        failures.append(what)


def rel_err(got, want):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"shape {got.shape} vs {want.shape}"
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-300))


def frechet_symmetric(x, y):
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    w, v = np.linalg.eigh(s1)
    root = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = root @ s2 @ root
    ev = np.linalg.eigvalsh((m + m.T) / 2)
    return ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(np.clip(ev, 0, None)).sum()


def frechet_general(x, y):
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    ev = np.linalg.eigvals(s1 @ s2).real
    return ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(np.clip(ev, 0, None)).sum()


def mp_stats(x):
    n, d = x.shape
    mu = [mpmath.fsum(mpmath.mpf(v) for v in x[:, j]) / n for j in range(d)]
    c = mpmath.matrix(d, d)
    for a in range(d):
        for b in range(a, d):
            c[a, b] = c[b, a] = mpmath.fsum((mpmath.mpf(p) - mu[a]) * (mpmath.mpf(q) - mu[b])
                                            for p, q in zip(x[:, a], x[:, b])) / (n - 1)
    return mu, c


def frechet_exact(x, y):
    """The symmetric formulation in 40-digit arithmetic."""
    with mpmath.workdps(40):
        (m1, c1), (m2, c2) = mp_stats(x), mp_stats(y)
        w, v = mpmath.eigsy(c1)
        root = v * mpmath.diag([mpmath.sqrt(max(e, 0)) for e in w]) * v.T
        m = root * c2 * root
        ev, _ = mpmath.eigsy((m + m.T) / 2)
        trace = mpmath.fsum(c1[i, i] + c2[i, i] for i in range(len(m1)))
        roots = mpmath.fsum(mpmath.sqrt(max(e, 0)) for e in ev)
        return float(mpmath.fsum((a - b) ** 2 for a, b in zip(m1, m2)) + trace - 2 * roots)


def check_fd(d, name):
    x, y = np.load(f"{d}/{name}_x.npy"), np.load(f"{d}/{name}_y.npy")
    got = np.load(f"{d}/{name}_fd.npy")[0]
    rank = np.linalg.matrix_rank(np.cov(x, rowvar=False)), np.linalg.matrix_rank(np.cov(y, rowvar=False))
    tag = f"FD {name} (n {len(x)}/{len(y)}, d {x.shape[1]}, ranks {rank[0]}/{rank[1]}) = {got:.6g}"
    report(tag, "fd", rel_err(got, frechet_symmetric(x, y)))
    report("  same, vs sum sqrt(eig(S1 S2))", "fd_general", rel_err(got, frechet_general(x, y)))
    if min(rank) < x.shape[1]:
        report("  same, vs 40 digits", "fd_exact", rel_err(got, frechet_exact(x, y)))


def mmd2_poly(x, y):
    d, m = x.shape[1], len(x)
    kxx, kyy, kxy = (x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3
    off = m * (m - 1)
    return (kxx.sum() - np.trace(kxx)) / off + (kyy.sum() - np.trace(kyy)) / off - 2 * kxy.mean()


def check_kid(d):
    x, y = np.load(f"{d}/kid_x.npy"), np.load(f"{d}/kid_y.npy")
    ix, iy = np.load(f"{d}/kid_ix.npy").astype(int), np.load(f"{d}/kid_iy.npy").astype(int)
    got = np.load(f"{d}/kid_got.npy")
    report(f"KID, whole sets of {len(y)} = {got[0]:.6g}", "kid", rel_err(got[0], mmd2_poly(x[: len(y)], y)))
    report(f"unbiased MMD^2 on given subsets of {len(ix)} = {got[1]:.6g}", "kid",
           rel_err(got[1], mmd2_poly(x[ix], y[iy])))


def rings(tile):
    n = tile.shape[0]
    t = tile / 255.0
    p = np.abs(np.fft.fft2(t - t.mean())) ** 2 / n**2
    f = np.fft.fftfreq(n) * n  # 0..n/2-1, then -n/2..-1
    r = np.rint(np.hypot(f[:, None], f[None, :])).astype(int)
    return np.array([p[r == k].mean() for k in range(n // 2 + 1)])


def check_spectra(d):
    tiles, got = np.load(f"{d}/spectrum_tiles.npy"), np.load(f"{d}/spectrum_rings.npy")
    for i, tile in enumerate(tiles):
        report(f"ring spectrum of tile {i} vs numpy.fft.fft2", "spectrum", rel_err(got[i], rings(tile)))


def check_features(d):
    weights, meta = read_safetensors(f"{d}/unet.safetensors")
    assert meta.get("model") == "seg_unet", f"metadata model = {meta.get('model')}"
    width = weights["enc.0.conv1.weight"].shape[0]
    model = SegUnet(width, 1e-3, 0.01)
    model.load_state_dict(weights, strict=False)
    model.eval()
    x = torch.from_numpy(np.load(f"{d}/features_tiles.npy")) / 255
    with torch.no_grad():
        for block in model.enc:
            deep = block(x)
            x = F.max_pool2d(deep, 2)
        bridge = model.bridge(x)
    want = torch.cat([deep.mean((2, 3)), bridge.mean((2, 3))], 1).numpy()
    got = np.load(f"{d}/features.npy")
    assert np.abs(want).max() > 0, "all features are zero: the case checks nothing"
    report(f"U-Net features (width {width}, GAP of enc.3 + bridge, {got.shape[1]}-d)", "features", rel_err(got, want))


def main():
    torch.set_default_dtype(torch.float64)
    d = sys.argv[1]
    for name in ("full", "rankdef", "subspace"):
        check_fd(d, name)
    check_kid(d)
    check_spectra(d)
    check_features(d)
    if failures:
        print(f"fidelity oracle: {len(failures)} checks failed")
        sys.exit(1)
    print("fidelity oracle: all checks passed")


if __name__ == "__main__":
    main()
