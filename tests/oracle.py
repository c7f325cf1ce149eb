"""PyTorch oracle for the operator tests (Debian's python3-torch, float64).

Usage: /usr/bin/python3 tests/oracle.py DIR

For every case directory DIR/<case>/ written by `test_ops dump` (meta.txt, in*.npy,
dout*.npy) it looks up the operator in the OPS tables of tests/oracle_*.py, computes the
outputs and the gradients of sum_k <out_k, dout_k> with respect to the inputs marked in
`grad`, and writes ref_out<k>.npy and ref_din<i>.npy. The C test then compares.

An oracle function takes (params: dict of str, inputs: list of float64 tensors) and
returns the list of outputs. Inputs that need gradients already have requires_grad set.
"""
import glob
import importlib.util
import os
import sys

import numpy as np
import torch

torch.set_default_dtype(torch.float64)


def load_tables():
    ops = {}
    here = os.path.dirname(os.path.abspath(__file__))
    for path in sorted(glob.glob(os.path.join(here, "oracle_*.py"))):
        spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        for k, v in mod.OPS.items():
            assert k not in ops, f"operator {k} defined twice"
            ops[k] = v
    return ops


def read_meta(d):
    meta = {}
    with open(os.path.join(d, "meta.txt")) as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition(" ")
            meta[k] = v
    params = dict(kv.split("=", 1) for kv in meta.get("params", "").split())
    return meta, params


def run_case(d, ops):
    meta, params = read_meta(d)
    fn = ops.get(meta["op"])
    if fn is None:
        raise SystemExit(f"oracle: no PyTorch reference for operator '{meta['op']}' (case {meta['name']})")
    grad = int(meta["grad"])
    n_in = len(glob.glob(os.path.join(d, "in*.npy")))
    n_out = len(glob.glob(os.path.join(d, "dout*.npy")))
    xs = []
    for i in range(n_in):
        t = torch.from_numpy(np.load(os.path.join(d, f"in{i}.npy")).astype(np.float64))
        t.requires_grad_(bool(grad >> i & 1))
        xs.append(t)
    outs = fn(params, xs)
    assert len(outs) == n_out, f"{meta['name']}: oracle gave {len(outs)} outputs, C declares {n_out}"
    for k, y in enumerate(outs):
        np.save(os.path.join(d, f"ref_out{k}.npy"), y.detach().numpy().astype(np.float64))
    wanted = [x for i, x in enumerate(xs) if grad >> i & 1]
    if wanted:
        loss = sum((y * torch.from_numpy(np.load(os.path.join(d, f"dout{k}.npy")).astype(np.float64))).sum()
                   for k, y in enumerate(outs) if y.requires_grad)
        grads = torch.autograd.grad(loss, wanted, allow_unused=True)
        it = iter(grads)
        for i, x in enumerate(xs):
            if grad >> i & 1:
                g = next(it)
                g = torch.zeros_like(x) if g is None else g
                np.save(os.path.join(d, f"ref_din{i}.npy"), g.detach().numpy())


def main():
    ops = load_tables()
    dirs = sorted(d for d in glob.glob(os.path.join(sys.argv[1], "*")) if os.path.isdir(d))
    for d in dirs:
        run_case(d, ops)
    print(f"oracle: PyTorch {torch.__version__} computed {len(dirs)} cases")


if __name__ == "__main__":
    main()
