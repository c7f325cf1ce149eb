/* Tile-dataset files.
 *
 * Format, version 1. All integers little-endian; the header is 1024 bytes:
 *
 *   offset size  field
 *      0     8   magic "SDTILES\0"
 *      8     4   version (1)
 *     12     4   header size in bytes (1024)
 *     16     4   count: number of tiles (>= 1)
 *     20     4   tile height h
 *     24     4   tile width w
 *     28     4   stride y   (tile placement step in the source slice)
 *     32     4   stride x
 *     36     4   flags: bit 0 = a mask array is present
 *     40     4   source pages
 *     44     4   source page height
 *     48     4   source page width
 *     52     4   source bits per sample
 *     56     8   file size in bytes
 *     64     8   checksum: FNV-1a 64 over the whole file, these 8 bytes taken as zero
 *     72     8   split name, NUL-padded: "train", "val" or "all"
 *     80   256   image source file name, NUL-terminated
 *    336   256   mask source file name, NUL-terminated ("" without masks)
 *    592   256   normalization note, NUL-terminated (text, see NORM_NOTE)
 *    848   176   zero
 *   1024         image  [count][h][w] uint8, exactly the source pixels (8-bit sources)
 *                mask   [count][h][w] uint8 in {0,1}       (only when flag bit 0)
 *                zero padding to a multiple of 64 bytes
 *                slice  [count] int32: source page of each tile
 *                origin [count][2] int32: (y, x) of the tile's top-left corner
 *                (end of file == file size)
 *
 * tileset_open maps the file read-only and checks everything before handing out
 * pointers: magic, version, sizes, the exact file size, the checksum, masks in {0,1},
 * slices and origins inside the source. */
#include "tiles.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "fileio.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "tile datasets are mapped in place: a little-endian host is required"
#endif

#define HEADER_BYTES 1024
#define MAX_SIDE 8192
#define MAX_COUNT (1 << 26)
#define NORM_NOTE                                                                                                 \
    "uint8 pixels as in the source; segmentation reads x/255 in [0,1], the generative models (x/255-0.5)/0.5 " \
    "in [-1,1]; masks are 0/1 (source > 127 for 8-bit, > 0.5 otherwise)"

static const char MAGIC[8] = "SDTILES";

enum {
    OFF_VERSION = 8, OFF_HEADER = 12, OFF_COUNT = 16, OFF_H = 20, OFF_W = 24, OFF_STRIDE_Y = 28,
    OFF_STRIDE_X = 32, OFF_FLAGS = 36, OFF_PAGES = 40, OFF_SRC_H = 44, OFF_SRC_W = 48, OFF_BITS = 52,
    OFF_FILE_BYTES = 56, OFF_CHECKSUM = 64, OFF_SPLIT = 72, OFF_IMAGE_SRC = 80, OFF_MASK_SRC = 336,
    OFF_NOTE = 592, NAME_BYTES = 256, SPLIT_BYTES = 8,
};

typedef struct {
    size_t mask, slice, origin, end; /* byte offsets of the arrays and the file size */
} Layout;

static Layout layout_of(size_t count, size_t h, size_t w, int has_mask)
{
    Layout l;
    size_t pixels = count * h * w;
    l.mask = HEADER_BYTES + pixels;
    l.slice = (l.mask + (has_mask ? pixels : 0) + 63) & ~(size_t)63;
    l.origin = l.slice + 4 * count;
    l.end = l.origin + 8 * count;
    return l;
}

static uint64_t fnv1a(uint64_t h, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

#define FNV_OFFSET 0xcbf29ce484222325ULL

uint64_t tiles_checksum(const uint8_t *file, size_t len)
{
    static const uint8_t zero[8];
    uint64_t h = fnv1a(FNV_OFFSET, file, OFF_CHECKSUM);
    h = fnv1a(h, zero, 8);
    return fnv1a(h, file + OFF_CHECKSUM + 8, len - OFF_CHECKSUM - 8);
}

static uint32_t get32(const uint8_t *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t get64(const uint8_t *p) { return get32(p) | (uint64_t)get32(p + 4) << 32; }
static void put32(uint8_t *p, uint32_t v) { for (int k = 0; k < 4; k++) p[k] = (uint8_t)(v >> 8 * k); }
static void put64(uint8_t *p, uint64_t v) { put32(p, (uint32_t)v), put32(p + 4, (uint32_t)(v >> 32)); }

static void put_text(uint8_t *p, size_t cap, const char *s)
{
    if (s) strncpy((char *)p, s, cap - 1); /* header was zeroed: stays NUL-terminated */
}

/* ---- writing ---- */

static void fill_header(uint8_t *hd, const TileSet *ts, const TileMeta *m, const Layout *l)
{
    memset(hd, 0, HEADER_BYTES);
    memcpy(hd, MAGIC, 8);
    const uint32_t fields[][2] = {
        {OFF_VERSION, TILES_VERSION}, {OFF_HEADER, HEADER_BYTES}, {OFF_COUNT, (uint32_t)ts->count},
        {OFF_H, (uint32_t)ts->h}, {OFF_W, (uint32_t)ts->w}, {OFF_STRIDE_Y, (uint32_t)m->stride_y},
        {OFF_STRIDE_X, (uint32_t)m->stride_x}, {OFF_FLAGS, ts->mask != NULL}, {OFF_PAGES, (uint32_t)m->src_pages},
        {OFF_SRC_H, (uint32_t)m->src_h}, {OFF_SRC_W, (uint32_t)m->src_w}, {OFF_BITS, (uint32_t)m->src_bits},
    };
    for (size_t k = 0; k < sizeof fields / sizeof fields[0]; k++) put32(hd + fields[k][0], fields[k][1]);
    put64(hd + OFF_FILE_BYTES, l->end);
    put_text(hd + OFF_SPLIT, SPLIT_BYTES, m->split);
    put_text(hd + OFF_IMAGE_SRC, NAME_BYTES, m->image_source);
    put_text(hd + OFF_MASK_SRC, NAME_BYTES, m->mask_source);
    put_text(hd + OFF_NOTE, NAME_BYTES, NORM_NOTE);
}

static int check_meta(const TileSet *ts, const TileMeta *m)
{
    if (ts->count < 1 || ts->count > MAX_COUNT) return sd_fail("tile count %d out of range", ts->count);
    if (ts->h < 1 || ts->w < 1 || ts->h > MAX_SIDE || ts->w > MAX_SIDE)
        return sd_fail("tile size %d x %d out of range", ts->h, ts->w);
    if (m->src_pages < 1 || m->src_h < ts->h || m->src_w < ts->w) return sd_fail("tile metadata inconsistent");
    return SD_OK;
}

int tileset_write(const char *path, const TileSet *ts, const TileMeta *meta)
{
    if (check_meta(ts, meta)) return SD_ERR;
    Layout l = layout_of((size_t)ts->count, (size_t)ts->h, (size_t)ts->w, ts->mask != NULL);
    size_t pixels = (size_t)ts->count * ts->h * ts->w;
    /* Assemble the file image in memory: the checksum sits in the header. */
    uint8_t *file = calloc(1, l.end);
    if (!file) return sd_fail("%s: out of memory for %zu bytes", path, l.end);
    fill_header(file, ts, meta, &l);
    memcpy(file + HEADER_BYTES, ts->image, pixels);
    if (ts->mask) memcpy(file + l.mask, ts->mask, pixels);
    memcpy(file + l.slice, ts->slice, 4 * (size_t)ts->count);
    memcpy(file + l.origin, ts->origin, 8 * (size_t)ts->count);
    put64(file + OFF_CHECKSUM, tiles_checksum(file, l.end));
    AtomicFile af;
    int rc = atomic_open(&af, path);
    if (rc == SD_OK) {
        if (fwrite(file, 1, l.end, af.f) == l.end) rc = atomic_commit(&af);
        else {
            rc = sd_fail("%s: write failed: %s", path, strerror(errno));
            atomic_abort(&af);
        }
    }
    free(file);
    return rc;
}

/* ---- reading ---- */

static int text_ok(const uint8_t *p, size_t cap) { return memchr(p, 0, cap) != NULL; }

static int check_header(const char *path, const uint8_t *hd, size_t len)
{
    if (memcmp(hd, MAGIC, 8) != 0) return sd_fail("%s: not a tile dataset (bad magic)", path);
    uint32_t version = get32(hd + OFF_VERSION);
    if (version != TILES_VERSION)
        return sd_fail("%s: tile dataset version %u is not supported (expected %d)", path, version, TILES_VERSION);
    uint32_t count = get32(hd + OFF_COUNT), h = get32(hd + OFF_H), w = get32(hd + OFF_W);
    uint32_t flags = get32(hd + OFF_FLAGS);
    if (get32(hd + OFF_HEADER) != HEADER_BYTES) return sd_fail("%s: bad header size field", path);
    if (count < 1 || count > MAX_COUNT) return sd_fail("%s: bad tile count %u in header", path, count);
    if (h < 1 || w < 1 || h > MAX_SIDE || w > MAX_SIDE)
        return sd_fail("%s: bad tile size %u x %u in header", path, h, w);
    if (flags > 1) return sd_fail("%s: unknown flags 0x%x in header", path, flags);
    if (get32(hd + OFF_PAGES) < 1 || get32(hd + OFF_SRC_H) < h || get32(hd + OFF_SRC_W) < w ||
        get32(hd + OFF_SRC_H) > (1u << 20) || get32(hd + OFF_SRC_W) > (1u << 20) || get32(hd + OFF_PAGES) > (1u << 30))
        return sd_fail("%s: bad source dimensions in header", path);
    if (!text_ok(hd + OFF_SPLIT, SPLIT_BYTES) || !text_ok(hd + OFF_IMAGE_SRC, NAME_BYTES) ||
        !text_ok(hd + OFF_MASK_SRC, NAME_BYTES) || !text_ok(hd + OFF_NOTE, NAME_BYTES))
        return sd_fail("%s: unterminated text field in header", path);
    Layout l = layout_of(count, h, w, (int)flags);
    if (get64(hd + OFF_FILE_BYTES) != l.end) return sd_fail("%s: header file size disagrees with its counts", path);
    if (len != l.end)
        return sd_fail("%s: %s (%zu bytes, header says %zu)", path, len < l.end ? "truncated" : "trailing bytes", len,
                       l.end);
    return SD_OK;
}

/* Masks exactly 0/1; every tile inside its source page. */
static int check_arrays(const char *path, const uint8_t *file, const TileSet *ts)
{
    uint32_t pages = get32(file + OFF_PAGES), src_h = get32(file + OFF_SRC_H), src_w = get32(file + OFF_SRC_W);
    if (ts->mask) {
        size_t pixels = (size_t)ts->count * ts->h * ts->w;
        for (size_t i = 0; i < pixels; i++)
            if (ts->mask[i] > 1)
                return sd_fail("%s: mask value %u in tile %zu is not 0/1", path, ts->mask[i],
                               i / ((size_t)ts->h * ts->w));
    }
    for (int t = 0; t < ts->count; t++) {
        int32_t s = ts->slice[t], y = ts->origin[2 * t], x = ts->origin[2 * t + 1];
        if (s < 0 || (uint32_t)s >= pages || y < 0 || x < 0 || (uint32_t)y + (uint32_t)ts->h > src_h ||
            (uint32_t)x + (uint32_t)ts->w > src_w)
            return sd_fail("%s: tile %d lies outside its source (slice %d, origin %d,%d)", path, t, s, y, x);
    }
    return SD_OK;
}

static int validate_map(const char *path, const uint8_t *file, size_t len, TileSet *ts)
{
    if (check_header(path, file, len)) return SD_ERR;
    if (get64(file + OFF_CHECKSUM) != tiles_checksum(file, len))
        return sd_fail("%s: checksum mismatch (the file is corrupt)", path);
    ts->count = (int)get32(file + OFF_COUNT);
    ts->h = (int)get32(file + OFF_H);
    ts->w = (int)get32(file + OFF_W);
    Layout l = layout_of((size_t)ts->count, (size_t)ts->h, (size_t)ts->w, (int)get32(file + OFF_FLAGS));
    ts->image = file + HEADER_BYTES;
    ts->mask = get32(file + OFF_FLAGS) ? file + l.mask : NULL;
    ts->slice = (const int32_t *)(const void *)(file + l.slice);
    ts->origin = (const int32_t *)(const void *)(file + l.origin);
    return check_arrays(path, file, ts);
}

int tileset_open(const char *path, TileSet *ts)
{
    memset(ts, 0, sizeof *ts);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return sd_fail("cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return sd_fail("%s: not a regular file", path);
    }
    size_t len = (size_t)st.st_size;
    if (len < HEADER_BYTES) {
        close(fd);
        return sd_fail("%s: truncated (%zu bytes, smaller than the header)", path, len);
    }
    void *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return sd_fail("%s: cannot map: %s", path, strerror(errno));
    if (validate_map(path, map, len, ts)) {
        munmap(map, len);
        memset(ts, 0, sizeof *ts);
        return SD_ERR;
    }
    ts->map = map;
    ts->map_len = len;
    return SD_OK;
}

void tileset_meta(const TileSet *ts, TileMeta *meta)
{
    const uint8_t *hd = ts->map;
    *meta = (TileMeta){.stride_y = (int)get32(hd + OFF_STRIDE_Y), .stride_x = (int)get32(hd + OFF_STRIDE_X),
                       .src_pages = (int)get32(hd + OFF_PAGES), .src_h = (int)get32(hd + OFF_SRC_H),
                       .src_w = (int)get32(hd + OFF_SRC_W), .src_bits = (int)get32(hd + OFF_BITS),
                       .split = (const char *)hd + OFF_SPLIT, .image_source = (const char *)hd + OFF_IMAGE_SRC,
                       .mask_source = ts->mask ? (const char *)hd + OFF_MASK_SRC : NULL};
}

void tileset_close(TileSet *ts)
{
    if (ts->map) munmap(ts->map, ts->map_len);
    memset(ts, 0, sizeof *ts);
}
