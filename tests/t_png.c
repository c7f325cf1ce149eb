/* The PNG writer (core/png.h): CRC-32 and Adler-32 on published check values and on
 * closed-form sums; gray and RGB images (stored-block boundaries included: image data of
 * exactly 65535 and 65536 bytes) and grids decoded by an independent decoder
 * (tests/png_check.py, Python's zlib) and compared pixel by pixel; one-line errors for
 * impossible images and unwritable paths, with no file left behind; the mask outline of the
 * sample grids on a hand-computed case. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/err.h"
#include "../core/png.h"
#include "check.h"

static char dir[] = "/tmp/sdseg-t_png-XXXXXX";
static FILE *manifest;

static const char *tmp(const char *name, const char *ext)
{
    static char path[256];
    snprintf(path, sizeof path, "%s/%s%s", dir, name, ext);
    return path;
}

/* A deterministic byte pattern. */
static uint8_t pattern(size_t i) { return (uint8_t)((i * 2654435761u) >> 13); }

static const uint8_t *bytes(const char *s) { return (const uint8_t *)s; }

static void test_checksums(void)
{
    /* the CRC-32 check value of the catalogue of CRCs, and the CRC every PNG's IEND carries */
    CHECK(png_crc32(0, bytes("123456789"), 9) == 0xcbf43926u);
    CHECK(png_crc32(0, bytes("IEND"), 4) == 0xae426082u);
    CHECK(png_crc32(0, bytes(""), 0) == 0);
    CHECK(png_crc32(png_crc32(0, bytes("1234"), 4), bytes("56789"), 5) == 0xcbf43926u);
    CHECK(png_adler32(1, bytes("Wikipedia"), 9) == 0x11e60398u);
    CHECK(png_adler32(png_adler32(1, bytes("Wiki"), 4), bytes("pedia"), 5) == 0x11e60398u);
    /* 100000 bytes of 255 (many 5552-byte runs): a = 1 + 255 n, b = n + 255 n (n + 1) / 2, mod 65521 */
    enum { N = 100000 };
    static uint8_t ff[N];
    memset(ff, 255, N);
    uint64_t a = (1 + 255ull * N) % 65521, b = ((uint64_t)N + 255ull * N * (N + 1) / 2) % 65521;
    CHECK(png_adler32(1, ff, N) == (uint32_t)(b << 16 | a));
}

/* Write the raw bytes beside the PNG and list both in the manifest for the decoder. */
static void save_case(const char *name, const uint8_t *data, size_t n, int h, int w, int c, int tiles, int cols)
{
    FILE *f = fopen(tmp(name, ".raw"), "wb");
    CHECK_MSG(f && fwrite(data, 1, n, f) == n, "cannot write %s", tmp(name, ".raw"));
    if (f) fclose(f);
    fprintf(manifest, "%s %d %d %d %d %d\n", name, h, w, c, tiles, cols);
}

static void image_case(const char *name, int h, int w, int c)
{
    size_t n = (size_t)h * w * c;
    uint8_t *px = malloc(n);
    for (size_t i = 0; i < n; i++) px[i] = pattern(i);
    px[0] = 0, px[n - 1] = 255;
    CHECK_MSG(png_write(tmp(name, ".png"), h, w, c, px) == SD_OK, "%s: %s", name, sd_last_error());
    save_case(name, px, n, h, w, c, 0, 0);
    free(px);
}

static void grid_case(const char *name, int n, int h, int w, int c, int cols)
{
    size_t len = (size_t)n * h * w * c;
    uint8_t *px = malloc(len);
    for (size_t i = 0; i < len; i++) px[i] = pattern(i + 7) & 0xfe; /* never white: a misplaced border shows */
    CHECK_MSG(png_write_grid(tmp(name, ".png"), n, h, w, c, px, cols) == SD_OK, "%s: %s", name, sd_last_error());
    save_case(name, px, len, h, w, c, n, cols);
    free(px);
}

static int decode_all(void)
{
    char cmd[512];
    const char *py = getenv("PY") ? getenv("PY") : "/usr/bin/python3";
    snprintf(cmd, sizeof cmd, "%s tests/png_check.py %s", py, dir);
    return system(cmd);
}

static void test_images(void)
{
    image_case("gray", 37, 53, 1);
    image_case("rgb", 19, 31, 3);
    image_case("pixel", 1, 1, 1);
    image_case("one_block", 255, 256, 1);  /* 255 rows of 1 + 256 bytes: exactly one full stored block */
    image_case("two_blocks", 256, 255, 1); /* 65536 bytes: a full block and a 1-byte final block */
    image_case("large_rgb", 300, 410, 3);  /* several blocks, boundaries inside scanlines */
    grid_case("grid_gray", 5, 6, 7, 1, 3); /* 2 rows, the last cell empty */
    grid_case("grid_rgb", 4, 9, 5, 3, 2);
    grid_case("grid_wide", 2, 4, 4, 1, 8); /* more columns than tiles: one row */
    fclose(manifest);
    manifest = NULL;
    CHECK_MSG(decode_all() == 0, "tests/png_check.py found differences (above)");
}

/* A 3x3 block inside the image: its 8 ring pixels are outline (the middle one of each side
 * only through the one neighbour outside), its centre is not; a bar 2 pixels wide along
 * the right border: only its left column is outline (the image border is no edge).
 * Hand-computed. */
static void test_outline(void)
{
    enum { H = 5, W = 7 };
    const uint8_t mask[H * W] = {
        0, 0, 0, 0, 0, 1, 1,
        0, 1, 1, 1, 0, 1, 1,
        0, 1, 1, 1, 0, 1, 1,
        0, 1, 1, 1, 0, 1, 1,
        0, 0, 0, 0, 0, 1, 1,
    };
    const uint8_t red[H * W] = {
        0, 0, 0, 0, 0, 1, 0,
        0, 1, 1, 1, 0, 1, 0,
        0, 1, 0, 1, 0, 1, 0,
        0, 1, 1, 1, 0, 1, 0,
        0, 0, 0, 0, 0, 1, 0,
    };
    uint8_t gray[H * W], rgb[H * W * 3];
    for (int i = 0; i < H * W; i++) gray[i] = (uint8_t)(10 * i + 1);
    png_outline_rgb(gray, mask, 1, H, W, rgb);
    int bad = 0;
    for (int i = 0; i < H * W; i++) {
        const uint8_t want[3] = {red[i] ? 255 : gray[i], red[i] ? 0 : gray[i], red[i] ? 0 : gray[i]};
        bad += memcmp(rgb + 3 * i, want, 3) != 0;
    }
    CHECK_MSG(bad == 0, "outline: %d of %d pixels wrong", bad, H * W);
}

static int file_exists(const char *path) { return access(path, F_OK) == 0; }

static void test_errors(void)
{
    uint8_t px[16] = {0};
    CHECK(png_write(tmp("two_ch", ".png"), 2, 2, 2, px) == SD_ERR && strstr(sd_last_error(), "channels"));
    CHECK(png_write(tmp("empty", ".png"), 0, 4, 1, px) == SD_ERR && !strchr(sd_last_error(), '\n'));
    CHECK(png_write_grid(tmp("nogrid", ".png"), 0, 2, 2, 1, px, 1) == SD_ERR);
    CHECK(png_write_grid(tmp("nocols", ".png"), 2, 2, 2, 1, px, 0) == SD_ERR);
    CHECK(png_write("/nonexistent-sdseg-dir/x.png", 2, 2, 1, px) == SD_ERR && strstr(sd_last_error(), "x.png"));
    CHECK(!file_exists(tmp("two_ch", ".png")) && !file_exists(tmp("empty", ".png")));
    char cmd[300];
    snprintf(cmd, sizeof cmd, "ls %s | grep -q '\\.tmp\\.'", dir);
    CHECK_MSG(system(cmd) != 0, "a temporary file was left in %s", dir);
}

int main(void)
{
    if (!mkdtemp(dir)) sd_die(1, "t_png: cannot create a temporary folder");
    manifest = fopen(tmp("manifest", ".txt"), "w");
    if (!manifest) sd_die(1, "t_png: cannot write the manifest");
    test_checksums();
    test_images();
    test_outline();
    test_errors();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) printf("warning: could not remove %s\n", dir);
    return check_exit("t_png");
}
