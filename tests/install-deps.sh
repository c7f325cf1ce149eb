#!/bin/sh
# Install the Debian packages sdseg needs. Idempotent; uses sudo when not root.
set -e
PKGS="build-essential libtiff-dev libtiff-tools gnuplot-nox python3-numpy python3-torch clang libclang-rt-14-dev"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
missing=""
for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
    echo "installing:$missing"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
fi
