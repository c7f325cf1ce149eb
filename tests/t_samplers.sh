#!/bin/sh
# The samplers against an independent float64 PyTorch implementation (tests/sampler_oracle.py):
# same x_T, same noise, same test model -> same trajectory within 1e-5 relative.
set -eu
B=${BUILD:-build}
PY=${PY:-/usr/bin/python3}
DIR="$B/sampler_oracle"
rm -rf "$DIR"
"$B/tests/t_samplers" dump "$DIR"
"$PY" tests/sampler_oracle.py "$DIR"
