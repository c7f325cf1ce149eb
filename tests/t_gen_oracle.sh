#!/bin/sh
# The generative models' forward passes against PyTorch re-implementations of the seed's
# modules (tests/gen_oracle.py): the C checkpoint loads strictly, the outputs match.
set -eu
B=${BUILD:-build}
PY=${PY:-/usr/bin/python3}
DIR="$B/gen_oracle"
rm -rf "$DIR"
"$B/tests/t_gen_models" dump "$DIR"
"$PY" tests/gen_oracle.py "$DIR"
