/* TIFF stacks: round trips of the writers (exact pixels), and the reader on files that
 * libtiff writes here directly in other layouts (16-bit tiles, RGB contiguous and
 * planar, min-is-white, short strips with PackBits/LZW), checked against hand-computed
 * values; plus the one-line errors for mismatched pages and unsupported formats. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tiffio.h>
#include <unistd.h>

#include "../core/err.h"
#include "../core/tiff.h"
#include "check.h"

static char dir[] = "/tmp/sdseg-t_tiff-XXXXXX";

static const char *tmp(const char *name)
{
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return path;
}

/* A deterministic byte pattern. */
static uint8_t pattern(size_t i) { return (uint8_t)((i * 2654435761u) >> 13); }

static void test_u8_round_trip(void)
{
    const int pages = 3, h = 37, w = 53;
    size_t n = (size_t)pages * h * w;
    uint8_t *data = malloc(n);
    for (size_t i = 0; i < n; i++) data[i] = pattern(i);
    data[0] = 0, data[1] = 255;
    CHECK_MSG(tiff_write_u8(tmp("u8.tif"), pages, h, w, data) == SD_OK, "write u8: %s", sd_last_error());
    Stack s;
    CHECK_MSG(tiff_read_stack(tmp("u8.tif"), &s) == SD_OK, "read u8: %s", sd_last_error());
    CHECK_MSG(s.pages == pages && s.h == h && s.w == w && s.bits == 8, "u8 shape %d %d %d %d", s.pages, s.h, s.w, s.bits);
    size_t bad = 0;
    for (size_t i = 0; s.data && i < n; i++) bad += s.data[i] != (float)data[i] / 255.0f;
    CHECK_MSG(bad == 0, "u8 round trip: %zu pixels differ", bad);
    stack_free(&s);
    free(data);
}

static void test_f32_round_trip(void)
{
    const int pages = 2, h = 19, w = 31;
    size_t n = (size_t)pages * h * w;
    float *data = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) data[i] = (float)pattern(i) / 7.0f - 10.0f;
    data[0] = 1e-38f, data[1] = -3.5e30f, data[2] = 0.1f;
    CHECK_MSG(tiff_write_f32(tmp("f32.tif"), pages, h, w, data) == SD_OK, "write f32: %s", sd_last_error());
    Stack s;
    CHECK_MSG(tiff_read_stack(tmp("f32.tif"), &s) == SD_OK, "read f32: %s", sd_last_error());
    CHECK_MSG(s.pages == pages && s.h == h && s.w == w && s.bits == 32, "f32 shape");
    CHECK_MSG(s.data && memcmp(s.data, data, n * sizeof(float)) == 0, "f32 round trip not bit-exact");
    stack_free(&s);
    free(data);
}

/* ---- files written with libtiff directly ---- */

typedef struct {
    int bits, spp, planar, photometric, compression, tile, rows_per_strip;
} Layout;

static void set_tags(TIFF *t, const Layout *L, int h, int w)
{
    TIFFSetField(t, TIFFTAG_IMAGEWIDTH, w);
    TIFFSetField(t, TIFFTAG_IMAGELENGTH, h);
    TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, L->bits);
    TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, L->spp);
    TIFFSetField(t, TIFFTAG_PLANARCONFIG, L->planar);
    TIFFSetField(t, TIFFTAG_PHOTOMETRIC, L->photometric);
    TIFFSetField(t, TIFFTAG_COMPRESSION, L->compression);
    if (L->tile) {
        TIFFSetField(t, TIFFTAG_TILEWIDTH, L->tile);
        TIFFSetField(t, TIFFTAG_TILELENGTH, L->tile);
    } else {
        TIFFSetField(t, TIFFTAG_ROWSPERSTRIP, L->rows_per_strip);
    }
}

/* Sample c of pixel i of a page, as an integer of the layout's depth. */
static unsigned sample_of(const Layout *L, size_t i, int c)
{
    return (unsigned)((i * 40503u + (unsigned)c * 9973u) % (L->bits == 16 ? 65536u : 256u));
}

static void fill_block(const Layout *L, void *buf, int h, int w, int y0, int x0, int bh, int bw, int plane)
{
    int per_pixel = L->planar == PLANARCONFIG_CONTIG ? L->spp : 1;
    for (int r = 0; r < bh; r++)
        for (int c = 0; c < bw; c++)
            for (int k = 0; k < per_pixel; k++) {
                int y = y0 + r, x = x0 + c, ch = L->planar == PLANARCONFIG_CONTIG ? k : plane;
                unsigned v = y < h && x < w ? sample_of(L, (size_t)y * w + x, ch) : 0;
                size_t at = ((size_t)r * bw + c) * per_pixel + k;
                if (L->bits == 16) ((uint16_t *)buf)[at] = (uint16_t)v;
                else ((uint8_t *)buf)[at] = (uint8_t)v;
            }
}

static void write_libtiff(const char *path, const Layout *L, int h, int w)
{
    TIFF *t = TIFFOpen(path, "w");
    set_tags(t, L, h, w);
    int planes = L->planar == PLANARCONFIG_SEPARATE ? L->spp : 1;
    int bh = L->tile ? L->tile : L->rows_per_strip, bw = L->tile ? L->tile : w;
    void *buf = calloc((size_t)bh * bw * L->spp, 2);
    for (int p = 0; p < planes; p++)
        for (int y = 0; y < h; y += bh)
            for (int x = 0; x < w; x += bw) {
                fill_block(L, buf, h, w, y, x, bh, bw, p);
                int rows = y + bh <= h ? bh : h - y;
                int per_pixel = L->planar == PLANARCONFIG_CONTIG ? L->spp : 1;
                tmsize_t bytes = (tmsize_t)(L->tile ? bh : rows) * bw * per_pixel * (L->bits / 8);
                if (L->tile) TIFFWriteEncodedTile(t, TIFFComputeTile(t, x, y, 0, p), buf, bytes);
                else TIFFWriteEncodedStrip(t, TIFFComputeStrip(t, y, p), buf, bytes);
            }
    TIFFWriteDirectory(t);
    TIFFClose(t);
    free(buf);
}

static double expected(const Layout *L, size_t i)
{
    double full = L->bits == 16 ? 65535.0 : 255.0;
    if (L->photometric == PHOTOMETRIC_RGB)
        return (0.299 * sample_of(L, i, 0) + 0.587 * sample_of(L, i, 1) + 0.114 * sample_of(L, i, 2)) / full;
    double v = sample_of(L, i, 0) / full;
    return L->photometric == PHOTOMETRIC_MINISWHITE ? 1.0 - v : v;
}

static void check_layout(const char *name, const Layout *L)
{
    const int h = 45, w = 38;
    write_libtiff(tmp(name), L, h, w);
    Stack s;
    if (tiff_read_stack(tmp(name), &s) != SD_OK) {
        CHECK_MSG(0, "%s: %s", name, sd_last_error());
        return;
    }
    double worst = 0;
    for (size_t i = 0; i < (size_t)h * w; i++) worst = fmax(worst, fabs(s.data[i] - expected(L, i)));
    CHECK_MSG(s.pages == 1 && s.h == h && s.w == w && s.bits == L->bits, "%s: shape", name);
    CHECK_MSG(worst < 2e-6, "%s: max error %g", name, worst);
    stack_free(&s);
}

static void test_layouts(void)
{
    const Layout tiled16 = {16, 1, PLANARCONFIG_CONTIG, PHOTOMETRIC_MINISBLACK, COMPRESSION_LZW, 16, 0};
    const Layout rgb_contig = {8, 3, PLANARCONFIG_CONTIG, PHOTOMETRIC_RGB, COMPRESSION_ADOBE_DEFLATE, 0, 7};
    const Layout rgba_planar16 = {16, 4, PLANARCONFIG_SEPARATE, PHOTOMETRIC_RGB, COMPRESSION_NONE, 0, 10};
    const Layout white = {8, 1, PLANARCONFIG_CONTIG, PHOTOMETRIC_MINISWHITE, COMPRESSION_PACKBITS, 0, 4};
    const Layout gray_alpha_tiled = {8, 2, PLANARCONFIG_CONTIG, PHOTOMETRIC_MINISBLACK, COMPRESSION_NONE, 32, 0};
    check_layout("tiled16.tif", &tiled16);
    check_layout("rgb.tif", &rgb_contig);
    check_layout("rgba_planar16.tif", &rgba_planar16);
    check_layout("white.tif", &white);
    check_layout("gray_alpha_tiled.tif", &gray_alpha_tiled);
}

/* ---- errors ---- */

static void expect_error(const char *path, const char *needle)
{
    Stack s;
    int rc = tiff_read_stack(path, &s);
    CHECK_MSG(rc == SD_ERR && strstr(sd_last_error(), needle) && !strchr(sd_last_error(), '\n'),
          "%s: expected an error containing '%s', got rc %d '%s'", path, needle, rc, sd_last_error());
    CHECK_MSG(s.data == NULL, "%s: data left allocated after an error", path);
}

static void test_errors(void)
{
    /* two pages of different sizes */
    TIFF *t = TIFFOpen(tmp("sizes.tif"), "w");
    const Layout g = {8, 1, PLANARCONFIG_CONTIG, PHOTOMETRIC_MINISBLACK, COMPRESSION_NONE, 0, 1};
    uint8_t row[16] = {0};
    for (int p = 0; p < 2; p++) {
        set_tags(t, &g, 4, p ? 16 : 8);
        for (int y = 0; y < 4; y++) TIFFWriteScanline(t, row, y, 0);
        TIFFWriteDirectory(t);
    }
    TIFFClose(t);
    expect_error(tmp("sizes.tif"), "share one size");
    /* 1-bit bilevel */
    t = TIFFOpen(tmp("bilevel.tif"), "w");
    const Layout bi = {1, 1, PLANARCONFIG_CONTIG, PHOTOMETRIC_MINISBLACK, COMPRESSION_NONE, 0, 8};
    set_tags(t, &bi, 8, 8);
    for (int y = 0; y < 8; y++) TIFFWriteScanline(t, row, y, 0);
    TIFFClose(t);
    expect_error(tmp("bilevel.tif"), "1-bit samples are not supported");
    expect_error(tmp("missing.tif"), "cannot open");
    /* writers refuse nonsense and leave nothing behind */
    uint8_t px = 0;
    CHECK_MSG(tiff_write_u8(tmp("none.tif"), 0, 1, 1, &px) == SD_ERR && access(tmp("none.tif"), F_OK) != 0,
          "zero-page write accepted");
    CHECK_MSG(tiff_write_u8("/nonexistent-dir/x.tif", 1, 1, 1, &px) == SD_ERR, "write into a missing directory");
}

int main(void)
{
    if (!mkdtemp(dir)) return printf("FAIL: mkdtemp\n"), 1;
    test_u8_round_trip();
    test_f32_round_trip();
    test_layouts();
    test_errors();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) printf("warning: could not remove %s\n", dir);
    printf("t_tiff: %s\n", check_failures ? "FAILED" : "all checks passed");
    return check_failures != 0;
}
