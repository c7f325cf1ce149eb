"""Independent check of `sdseg prep` output (used by tests/t_prep_real.sh).

Reads the source stacks from UNCOMPRESSED TIFFs (made by libtiff-tools' tiffcp -c none)
with its own minimal TIFF parser, reads the tile files with its own parser of the format
documented in core/tiles.c, and checks that every tile's pixels equal the source
exactly, that masks are (source > 127), and that the tiles cover every slice in the
expected grid once, split by slice range.

usage: check_tiles.py IMAGE_RAW.tif MASK_RAW.tif TILE STRIDE EXPECTED_TOTAL VAL_LO VAL_HI FILE.tiles...
(validation slices are VAL_LO <= s < VAL_HI; tiles every STRIDE, the last one flush with the edge)
"""
import struct
import sys

import numpy as np


def read_raw_tiff(path):
    data = open(path, "rb").read()
    end = {b"II": "<", b"MM": ">"}[data[:2]]
    assert struct.unpack(end + "H", data[2:4])[0] == 42, "classic TIFF expected"
    ifd = struct.unpack(end + "I", data[4:8])[0]
    pages = []
    while ifd:
        (n,) = struct.unpack(end + "H", data[ifd:ifd + 2])
        tags = {}
        for k in range(n):
            tag, typ, cnt, val = struct.unpack(end + "HHII", data[ifd + 2 + 12 * k:ifd + 14 + 12 * k])
            size = {3: 2, 4: 4}.get(typ)
            if size and cnt * size > 4:
                tags[tag] = struct.unpack(end + ("H" if typ == 3 else "I") * cnt, data[val:val + cnt * size])
            elif size == 2:
                tags[tag] = struct.unpack(end + "H" * cnt, data[ifd + 10 + 12 * k:ifd + 10 + 12 * k + 2 * cnt])
            else:
                tags[tag] = (val,)
        w, h = tags[256][0], tags[257][0]
        assert tags.get(259, (1,))[0] == 1 and tags[258][0] == 8, "uncompressed 8-bit expected"
        raw = b"".join(data[o:o + c] for o, c in zip(tags[273], tags[279]))
        pages.append(np.frombuffer(raw, np.uint8)[:h * w].reshape(h, w))
        ifd = struct.unpack(end + "I", data[ifd + 2 + 12 * n:ifd + 6 + 12 * n])[0]
    return np.stack(pages)


def read_tiles(path):
    data = open(path, "rb").read()
    assert data[:8] == b"SDTILES\0", path + ": bad magic"
    version, hbytes, count, h, w, sy, sx, flags = struct.unpack("<8I", data[8:40])
    assert version == 1 and hbytes == 1024 and flags in (0, 1)
    (file_bytes,) = struct.unpack("<Q", data[56:64])
    assert file_bytes == len(data), path + ": size field"
    n = count * h * w
    image = np.frombuffer(data, np.uint8, n, 1024).reshape(count, h, w)
    mask = np.frombuffer(data, np.uint8, n, 1024 + n).reshape(count, h, w) if flags else None
    at = (1024 + n * (1 + flags) + 63) // 64 * 64
    assert at + 12 * count == len(data), path + ": layout"
    slices = np.frombuffer(data, "<i4", count, at)
    origins = np.frombuffer(data, "<i4", 2 * count, at + 4 * count).reshape(count, 2)
    split = data[72:80].split(b"\0")[0].decode()
    return split, image, mask, slices, origins


def grid_origins(length, side, stride):
    pos = list(range(0, length - side + 1, stride))
    return pos + [length - side] if pos[-1] + side < length else pos


def main():
    image_raw, mask_raw = sys.argv[1:3]
    side, stride, total, val_lo, val_hi = map(int, sys.argv[3:8])
    src, src_mask = read_raw_tiff(image_raw), read_raw_tiff(mask_raw)
    assert src.shape == src_mask.shape
    pages, sh, sw = src.shape
    seen = set()
    for path in sys.argv[8:]:
        split, image, mask, slices, origins = read_tiles(path)
        for k in range(len(slices)):
            s, y, x = int(slices[k]), int(origins[k, 0]), int(origins[k, 1])
            assert (val_lo <= s < val_hi) == (split == "val"), f"{path}: slice {s} in split {split}"
            assert (s, y, x) not in seen, f"tile {(s, y, x)} twice"
            seen.add((s, y, x))
            if not np.array_equal(image[k], src[s, y:y + side, x:x + side]):
                sys.exit(f"FAIL: {path} tile {k} (slice {s}, origin {y},{x}): image pixels differ")
            if not np.array_equal(mask[k], (src_mask[s, y:y + side, x:x + side] > 127).astype(np.uint8)):
                sys.exit(f"FAIL: {path} tile {k}: mask differs")
    ys, xs = grid_origins(sh, side, stride), grid_origins(sw, side, stride)
    grid = {(s, y, x) for s in range(pages) for y in ys for x in xs}
    assert seen == grid, "tiles do not cover the slice grid exactly once"
    assert len(seen) == total, f"{len(seen)} tiles, expected {total}"
    print(f"ok: {len(seen)} image/mask tile pairs match the source pixels exactly ({pages} slices of {sh} x {sw})")


if __name__ == "__main__":  # tests/gen_cli_oracle.py imports read_raw_tiff
    main()
