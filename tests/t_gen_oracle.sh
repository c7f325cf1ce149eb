#!/bin/sh
# The generative models' forward passes, and the VAE's training loss and parameter
# gradients (the backward of models/layers.c's tape), against PyTorch re-implementations
# of the seed's modules and autograd (tests/gen_oracle.py): the C checkpoint loads
# strictly, the outputs and gradients match.
set -eu
B=${BUILD:-build}
PY=${PY:-/usr/bin/python3}
DIR="$B/gen_oracle"
rm -rf "$DIR"
"$B/tests/t_gen_models" dump "$DIR"
"$PY" tests/gen_oracle.py "$DIR"
