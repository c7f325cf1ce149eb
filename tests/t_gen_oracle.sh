#!/bin/sh
# The generative models against PyTorch re-implementations of their modules and autograd
# (tests/gen_oracle.py): small diffusion U-Nets and VAEs in the seed, improved and mixed
# configs load strictly from the C checkpoints; their forward outputs, the tape backward's
# gradients (every parameter and the input), VAE generation, the seed VAE's training loss
# and a DDIM run with the seed U-Net match.
set -eu
B=${BUILD:-build}
PY=${PY:-/usr/bin/python3}
DIR="$B/gen_oracle"
rm -rf "$DIR"
"$B/tests/t_gen_models" dump "$DIR"
"$PY" tests/gen_oracle.py "$DIR"
