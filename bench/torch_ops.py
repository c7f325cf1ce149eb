"""`make bench-ops`: our CPU convolutions beside PyTorch's, shape by shape.

Usage: /usr/bin/python3 bench/torch_ops.py BENCH_OPS OUT.csv

For every shape that `BENCH_OPS --list` names (the seed U-Net's convolutions), runs
`BENCH_OPS <tmp.csv> <label>` for our times, then the same shape through torch on the CPU
with the same thread count, float32, batch 1: forward under no_grad, backward as
autograd.grad of (x, weight, bias) for a random output gradient. The two sides alternate
shape by shape, so that a change in the load of a shared machine hits both alike. Times
are the best of 3 to 10 repetitions on both sides. Prints the side-by-side table with
the ratio torch_time / our_time (above 1: we are faster) of the wall-clock times, and of
the process CPU times of forward + backward, and writes it all to OUT.csv.
"""
import csv
import os
import subprocess
import sys
import tempfile
import time

import torch
import torch.nn.functional as F


def best_ms(fn, reps=10, budget=1.0):
    """(best wall-clock ms, best process CPU ms) of 3 to `reps` runs."""
    wall, cpu, start = float("inf"), float("inf"), time.perf_counter()
    for i in range(reps):
        if i >= 3 and time.perf_counter() - start > budget:
            break
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall = min(wall, time.perf_counter() - t)
        cpu = min(cpu, time.process_time() - c)
    return wall * 1e3, cpu * 1e3


def time_torch(row):
    c_in, c_out, hw, k = (int(row[key]) for key in ("c_in", "c_out", "hw", "k"))
    x = torch.rand(1, c_in, hw, hw) * 2 - 1
    b = torch.rand(c_out) * 2 - 1
    if row["op"] == "convT":
        w = torch.rand(c_in, c_out, k, k) * 2 - 1
        op = lambda x, w, b: F.conv_transpose2d(x, w, b, stride=2)
    else:
        w = torch.rand(c_out, c_in, k, k) * 2 - 1
        op = lambda x, w, b: F.conv2d(x, w, b, padding=k // 2)
    with torch.no_grad():
        op(x, w, b)  # warm-up
        fwd = best_ms(lambda: op(x, w, b))
    x.requires_grad_(True)
    w.requires_grad_(True)
    b.requires_grad_(True)
    y = op(x, w, b)
    dy = torch.randn_like(y)
    grads = lambda: torch.autograd.grad(y, (x, w, b), dy, retain_graph=True)
    grads()  # warm-up
    bwd = best_ms(grads, budget=2.0)
    return fwd, bwd


def time_ours(bench, label, tmp):
    out = subprocess.run([bench, tmp, label], check=True, capture_output=True, text=True).stdout
    rows = list(csv.DictReader(open(tmp)))
    assert len(rows) == 1, f"{label}: bench_ops gave {len(rows)} rows"
    return out.splitlines()[0], rows[0]


def print_row(row, of, ob, tf, tb, cpu_ratio):
    flop, peak = float(row["flop_fwd"]), float(row["peak_gflops"])
    pk = lambda f, b: 100 * 3 * flop / ((f + b) * 1e6) / peak  # forward + backward (2x) flops
    print(f"{row['net']:4} {row['input']:5} {row['layer']:13} {row['op']:5} {row['c_in']:>5} {row['c_out']:>5} "
          f"{row['hw']:>4} | {of:9.3f} {ob:9.3f} {pk(of, ob):5.1f}% | {tf:9.3f} {tb:9.3f} {pk(tf, tb):5.1f}% | "
          f"{tf / of:6.2f} {tb / ob:6.2f} {(tf + tb) / (of + ob):7.2f} {cpu_ratio:7.2f}", flush=True)


def main():
    bench, out_csv = sys.argv[1], sys.argv[2]
    labels = subprocess.run([bench, "--list"], check=True, capture_output=True, text=True).stdout.split("\n")
    labels = [label for label in labels if label]
    fd, tmp = tempfile.mkstemp(suffix=".csv")
    os.close(fd)
    rows, totals, head = [], {}, None
    for label in labels:
        peak_line, row = time_ours(bench, label, tmp)
        if head is None:
            torch.set_num_threads(int(row["threads"]))
            print(peak_line)
            print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads, float32; x = torch time / our "
                  f"time (> 1: ours faster) of the wall-clock times, and 'cpu x' of the process CPU times of "
                  f"forward + backward; %peak of forward + backward")
            head = (f"{'net':4} {'input':5} {'layer':13} {'op':5} {'c_in':>5} {'c_out':>5} {'hw':>4} | "
                    f"{'ours fwd':>9} {'bwd':>9} {'%peak':>6} | {'torch fwd':>9} {'bwd':>9} {'%peak':>6} | "
                    f"{'fwd x':>6} {'bwd x':>6} {'total x':>7} {'cpu x':>7}")
            print(head)
        (tf, tf_cpu), (tb, tb_cpu) = time_torch(row)
        of, ob = float(row["fwd_ms"]), float(row["bwd_ms"])
        ours_cpu = float(row["fwd_cpu_ms"]) + float(row["bwd_cpu_ms"])
        cpu_ratio = (tf_cpu + tb_cpu) / ours_cpu
        row.update(torch_fwd_ms=f"{tf:.4f}", torch_bwd_ms=f"{tb:.4f}", torch_fwd_cpu_ms=f"{tf_cpu:.4f}",
                   torch_bwd_cpu_ms=f"{tb_cpu:.4f}", ratio_fwd=f"{tf / of:.3f}", ratio_bwd=f"{tb / ob:.3f}",
                   ratio_total=f"{(tf + tb) / (of + ob):.3f}", ratio_total_cpu=f"{cpu_ratio:.3f}")
        rows.append(row)
        print_row(row, of, ob, tf, tb, cpu_ratio)
        t = totals.setdefault((row["net"], row["input"]), [0.0] * 4)
        for i, v in enumerate((of + ob, tf + tb, ours_cpu, tf_cpu + tb_cpu)):
            t[i] += int(row["count"]) * v
    os.unlink(tmp)
    print("whole network, all convolutions forward + backward (each shape times its count):")
    for (net, inp), (ours, theirs, ours_cpu, theirs_cpu) in totals.items():
        print(f"  {net} input {inp}: ours {ours:9.2f} ms, torch {theirs:9.2f} ms, ratio {theirs / ours:.2f}"
              f" (CPU time: ours {ours_cpu:9.2f} ms, torch {theirs_cpu:9.2f} ms, ratio {theirs_cpu / ours_cpu:.2f})")
    with open(out_csv + ".tmp", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        writer.writeheader()
        writer.writerows(rows)
    os.replace(out_csv + ".tmp", out_csv)
    print(f"wrote {out_csv}")


if __name__ == "__main__":
    main()
