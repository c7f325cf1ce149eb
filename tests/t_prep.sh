#!/bin/sh
# `sdseg prep` on a phantom with overlapping tiles (128, stride 96: origins 0, 96, 128
# per side, the last flush with the edge) and a validation range in the middle
# (slices 4:8): pixels and masks checked against the source by tests/check_tiles.py,
# which decodes the TIFFs (via tiffcp -c none) and the tile files with its own code.
set -u
B=${BUILD:-build}
PY=${PY:-/usr/bin/python3}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
"$B/sdseg" phantom --out "$T/p.tif" --mask-out "$T/m.tif" --pages 16 --height 256 --width 256 --seed 5 > /dev/null &&
    "$B/sdseg" prep --image "$T/p.tif" --mask "$T/m.tif" --out "$T/ds" --tile 128 --stride 96 --val-slices 4:8 &&
    tiffcp -c none "$T/p.tif" "$T/p_raw.tif" && tiffcp -c none "$T/m.tif" "$T/m_raw.tif" ||
    { echo "FAIL: phantom/prep/tiffcp"; exit 1; }
"$PY" tests/check_tiles.py "$T/p_raw.tif" "$T/m_raw.tif" 128 96 144 4 8 "$T/ds/train.tiles" "$T/ds/val.tiles"
