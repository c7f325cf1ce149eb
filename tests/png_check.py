"""An independent PNG decoder (the standard library's zlib) for tests/t_png.c.

Usage: /usr/bin/python3 tests/png_check.py DIR

DIR/manifest.txt lists one PNG a line: "name h w channels n cols". n = 0: a plain image
whose pixels are name.raw; otherwise a grid of the n tiles [n, h, w, channels] of
name.raw in `cols` columns, each cell framed by a 2-pixel white border, which this script
lays out itself. Every chunk's CRC, the IHDR fields, the zlib stream (with its Adler-32),
the filter bytes and the pixels must be right. Prints one line per file; exit 1 on any
failure.
"""
import os
import struct
import sys
import zlib

BORDER = 2


def read_png(path):
    """(width, height, colour type, pixel rows) of an 8-bit, non-interlaced PNG."""
    blob = open(path, "rb").read()
    assert blob[:8] == b"\x89PNG\r\n\x1a\n", "bad signature"
    pos, chunks = 8, []
    while pos < len(blob):
        (length,) = struct.unpack(">I", blob[pos:pos + 4])
        kind, data = blob[pos + 4:pos + 8], blob[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", blob[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + data), f"{kind} CRC mismatch"
        chunks.append((kind, data))
        pos += 12 + length
    assert chunks[0][0] == b"IHDR" and chunks[-1] == (b"IEND", b""), "IHDR first, empty IEND last"
    w, h, depth, colour, compression, filt, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (depth, compression, filt, interlace) == (8, 0, 0, 0), "8-bit, deflate, no interlace"
    assert colour in (0, 2), f"colour type {colour}"
    raw = zlib.decompress(b"".join(d for k, d in chunks if k == b"IDAT"))  # checks the Adler-32
    row = w * (3 if colour == 2 else 1)
    assert len(raw) == h * (row + 1), f"{len(raw)} bytes of image data for {h} rows of {row}"
    rows = [raw[y * (row + 1):(y + 1) * (row + 1)] for y in range(h)]
    assert all(r[0] == 0 for r in rows), "filter type 0 on every scanline"
    return w, h, colour, [r[1:] for r in rows]


def grid_rows(tiles, n, h, w, c, cols):
    """The expected grid, row by row, built directly from the tile bytes."""
    cols = min(cols, n)
    rows = (n + cols - 1) // cols
    gw = cols * (w + BORDER) + BORDER
    out = [bytearray(b"\xff" * gw * c) for _ in range(rows * (h + BORDER) + BORDER)]
    for i in range(n):
        top, left = (i // cols) * (h + BORDER) + BORDER, (i % cols) * (w + BORDER) + BORDER
        for y in range(h):
            src = tiles[((i * h) + y) * w * c:((i * h) + y + 1) * w * c]
            out[top + y][left * c:(left + w) * c] = src
    return out


def check(d, line):
    name, h, w, c, n, cols = line.split()
    h, w, c, n, cols = int(h), int(w), int(c), int(n), int(cols)
    data = open(os.path.join(d, name + ".raw"), "rb").read()
    want = grid_rows(data, n, h, w, c, cols) if n else [data[y * w * c:(y + 1) * w * c] for y in range(h)]
    gw, gh, colour, got = read_png(os.path.join(d, name + ".png"))
    assert (gh, gw) == (len(want), len(want[0]) // c), f"size {gh}x{gw}, want {len(want)}x{len(want[0]) // c}"
    assert colour == (2 if c == 3 else 0), f"colour type {colour} for {c} channels"
    bad = sum(a != b for g, e in zip(got, want) for a, b in zip(g, e))
    assert bad == 0, f"{bad} bytes differ"
    return f"{gh}x{gw}x{c}"


def main():
    d = sys.argv[1]
    failed = 0
    for line in open(os.path.join(d, "manifest.txt")):
        name = line.split()[0]
        try:
            print(f"  ok    {name}.png decodes: {check(d, line)}")
        except (AssertionError, zlib.error, struct.error, ValueError) as e:
            print(f"  FAIL  {name}.png: {e}")
            failed += 1
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
