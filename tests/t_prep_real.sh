#!/bin/sh
# `sdseg prep` on the real EPFL training stacks: 165 slices of 1024 x 768 -> 1,980 tile
# pairs whose pixels match the source exactly. The source is decoded independently
# (libtiff-tools' tiffcp to uncompressed TIFF, parsed by tests/check_tiles.py, which also
# parses the tile files itself). Skips when the data is absent.
set -u
B=${BUILD:-build}
PY=${PY:-/usr/bin/python3}
D=../shared/data/epfl-hippocampus
if [ ! -f "$D/training.tif" ] || [ ! -f "$D/training_groundtruth.tif" ]; then
    echo "skip: $D/training*.tif not present (the real-data check needs the EPFL stacks)"
    exit 0
fi
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
"$B/sdseg" prep --image "$D/training.tif" --mask "$D/training_groundtruth.tif" --out "$T/ds" --val-last 33 ||
    { echo "FAIL: sdseg prep"; exit 1; }
"$B/sdseg" info --in "$T/ds/train.tiles" > /dev/null || { echo "FAIL: train.tiles does not validate"; exit 1; }
tiffcp -c none "$D/training.tif" "$T/image.tif" && tiffcp -c none "$D/training_groundtruth.tif" "$T/mask.tif" ||
    { echo "FAIL: tiffcp"; exit 1; }
"$PY" tests/check_tiles.py "$T/image.tif" "$T/mask.tif" 256 256 1980 132 165 "$T/ds/train.tiles" "$T/ds/val.tiles"
