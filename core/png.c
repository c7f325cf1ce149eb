#include "png.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "fileio.h"

#define STORED_MAX 65535u       /* the most bytes one stored deflate block holds */
#define CHUNK_MAX 0x7fffffffull /* the largest chunk length PNG allows */

/* CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), four bits at a time:
 * entry i is the CRC register after shifting the nibble i through. */
static const uint32_t crc_nibble[16] = {
    0x00000000, 0x1db71064, 0x3b6e20c8, 0x26d930ac, 0x76dc4190, 0x6b6b51f4, 0x4db26158, 0x5005713c,
    0xedb88320, 0xf00f9344, 0xd6d6a3e8, 0xcb61b38c, 0x9b64c2b0, 0x86d3d2d4, 0xa00ae278, 0xbdbdf21c,
};

uint32_t png_crc32(uint32_t crc, const uint8_t *data, size_t n)
{
    uint32_t c = ~crc;
    for (size_t i = 0; i < n; i++) {
        c ^= data[i];
        c = (c >> 4) ^ crc_nibble[c & 15];
        c = (c >> 4) ^ crc_nibble[c & 15];
    }
    return ~c;
}

uint32_t png_adler32(uint32_t adler, const uint8_t *data, size_t n)
{
    const uint32_t mod = 65521;
    uint32_t a = adler & 0xffff, b = adler >> 16;
    while (n) {
        size_t run = n < 5552 ? n : 5552; /* the longest run whose sums cannot overflow 32 bits */
        for (size_t i = 0; i < run; i++) {
            a += data[i];
            b += a;
        }
        a %= mod;
        b %= mod;
        data += run;
        n -= run;
    }
    return b << 16 | a;
}

static void put_be32(uint8_t *b, uint32_t v)
{
    b[0] = (uint8_t)(v >> 24), b[1] = (uint8_t)(v >> 16), b[2] = (uint8_t)(v >> 8), b[3] = (uint8_t)v;
}

/* A chunk being written: length and type first, the CRC over type and data last. Write
 * errors are caught by atomic_commit (the stream's error flag). */
typedef struct {
    FILE *f;
    uint32_t crc;
} Chunk;

static void chunk_begin(Chunk *c, FILE *f, const char *type, uint32_t len)
{
    uint8_t head[8];
    put_be32(head, len);
    memcpy(head + 4, type, 4);
    fwrite(head, 1, sizeof head, f);
    c->f = f;
    c->crc = png_crc32(0, head + 4, 4);
}

static void chunk_put(Chunk *c, const uint8_t *data, size_t n)
{
    fwrite(data, 1, n, c->f);
    c->crc = png_crc32(c->crc, data, n);
}

static void chunk_end(Chunk *c)
{
    uint8_t tail[4];
    put_be32(tail, c->crc);
    fwrite(tail, 1, sizeof tail, c->f);
}

/* The image data as stored deflate blocks inside a chunk: the bytes are cut into blocks
 * of at most STORED_MAX as they come; `left` counts those still to come, so the block
 * holding the last one is marked final. */
typedef struct {
    Chunk *chunk;
    uint64_t left;
    uint32_t in_block; /* bytes still to come in the current block */
    uint32_t adler;    /* of all the uncompressed bytes */
} StoredStream;

static void stored_put(StoredStream *s, const uint8_t *data, size_t n)
{
    s->adler = png_adler32(s->adler, data, n);
    while (n) {
        if (!s->in_block) {
            uint32_t len = s->left < STORED_MAX ? (uint32_t)s->left : STORED_MAX;
            uint8_t head[5] = {s->left == len, len & 0xff, len >> 8, ~len & 0xff, (~len >> 8) & 0xff};
            chunk_put(s->chunk, head, sizeof head);
            s->in_block = len;
        }
        size_t k = n < s->in_block ? n : s->in_block;
        chunk_put(s->chunk, data, k);
        data += k, n -= k;
        s->in_block -= (uint32_t)k;
        s->left -= k;
    }
}

static void write_header(FILE *f, int h, int w, int channels)
{
    static const uint8_t signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    fwrite(signature, 1, sizeof signature, f);
    uint8_t ihdr[13] = {0};
    put_be32(ihdr, (uint32_t)w);
    put_be32(ihdr + 4, (uint32_t)h);
    ihdr[8] = 8;                       /* bits per sample */
    ihdr[9] = channels == 3 ? 2 : 0;   /* colour type: RGB or gray; compression, filter, interlace 0 */
    Chunk c;
    chunk_begin(&c, f, "IHDR", sizeof ihdr);
    chunk_put(&c, ihdr, sizeof ihdr);
    chunk_end(&c);
}

/* One IDAT chunk: a zlib stream (header 78 01: deflate, 32 KiB window, no preset
 * dictionary) of stored blocks over the scanlines, each led by filter type 0 (none). */
static void write_data(FILE *f, int h, int w, int channels, const uint8_t *pixels, uint64_t raw, uint32_t zlen)
{
    static const uint8_t zlib_head[2] = {0x78, 0x01}, filter_none = 0;
    Chunk c;
    chunk_begin(&c, f, "IDAT", zlen);
    chunk_put(&c, zlib_head, sizeof zlib_head);
    StoredStream s = {&c, raw, 0, 1};
    size_t row = (size_t)w * channels;
    for (int y = 0; y < h; y++) {
        stored_put(&s, &filter_none, 1);
        stored_put(&s, pixels + (size_t)y * row, row);
    }
    uint8_t adler[4];
    put_be32(adler, s.adler);
    chunk_put(&c, adler, sizeof adler);
    chunk_end(&c);
}

int png_write(const char *path, int h, int w, int channels, const uint8_t *pixels)
{
    if (h < 1 || w < 1 || (channels != 1 && channels != 3))
        return sd_fail("%s: cannot write a %dx%d PNG of %d channels (1 or 3)", path, h, w, channels);
    uint64_t raw = (uint64_t)h * (1 + (uint64_t)w * channels);
    uint64_t zlen = 2 + raw + 5 * ((raw + STORED_MAX - 1) / STORED_MAX) + 4;
    if (zlen > CHUNK_MAX) return sd_fail("%s: a %dx%d image is too large for this PNG writer", path, h, w);
    AtomicFile af;
    if (atomic_open(&af, path) != SD_OK) return SD_ERR;
    write_header(af.f, h, w, channels);
    write_data(af.f, h, w, channels, pixels, raw, (uint32_t)zlen);
    Chunk end;
    chunk_begin(&end, af.f, "IEND", 0);
    chunk_end(&end);
    return atomic_commit(&af);
}

void png_outline_rgb(const uint8_t *gray, const uint8_t *masks, int n, int h, int w, uint8_t *rgb)
{
    for (int i = 0; i < n; i++) {
        const uint8_t *m = masks + (size_t)i * h * w;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                size_t k = (size_t)y * w + x, j = (size_t)i * h * w + k;
                int edge = m[k] && ((y > 0 && !m[k - w]) || (y + 1 < h && !m[k + w]) || (x > 0 && !m[k - 1]) ||
                                    (x + 1 < w && !m[k + 1]));
                rgb[3 * j] = edge ? 255 : gray[j];
                rgb[3 * j + 1] = rgb[3 * j + 2] = edge ? 0 : gray[j];
            }
    }
}

int png_write_grid(const char *path, int n, int h, int w, int channels, const uint8_t *tiles, int cols)
{
    if (n < 1 || cols < 1 || h < 1 || w < 1 || (channels != 1 && channels != 3))
        return sd_fail("%s: cannot lay out %d tiles of %dx%dx%d in %d columns", path, n, h, w, channels, cols);
    if (cols > n) cols = n;
    const int b = PNG_GRID_BORDER, rows = (n + cols - 1) / cols;
    int64_t gh = (int64_t)rows * (h + b) + b, gw = (int64_t)cols * (w + b) + b;
    if (gh > INT_MAX || gw > INT_MAX)
        return sd_fail("%s: a grid of %dx%d tiles of %dx%d is too large", path, rows, cols, h, w);
    size_t tile_row = (size_t)w * channels, grid_row = (size_t)gw * channels;
    uint8_t *grid = malloc((size_t)gh * grid_row);
    if (!grid) return sd_fail("%s: out of memory for a %lldx%lld grid", path, (long long)gh, (long long)gw);
    memset(grid, 255, (size_t)gh * grid_row);
    for (int i = 0; i < n; i++) {
        size_t top = (size_t)(i / cols) * (h + b) + b, left = (size_t)(i % cols) * (w + b) + b;
        for (int y = 0; y < h; y++)
            memcpy(grid + (top + y) * grid_row + left * channels, tiles + ((size_t)i * h + y) * tile_row, tile_row);
    }
    int rc = png_write(path, (int)gh, (int)gw, channels, grid);
    free(grid);
    return rc;
}
