/* sdseg info: check and describe a TIFF stack or a tile dataset. */
#include <stdio.h>
#include <string.h>

#include "../core/err.h"
#include "../core/tiff.h"
#include "../core/tiles.h"
#include "cli.h"

static int is_tiles(const char *path)
{
    size_t n = strlen(path);
    if (n >= 6 && !strcmp(path + n - 6, ".tiles")) return 1;
    char magic[8] = {0};
    FILE *f = fopen(path, "rb");
    if (f) {
        if (fread(magic, 1, sizeof magic, f) != sizeof magic) magic[0] = 0;
        fclose(f);
    }
    return !memcmp(magic, "SDTILES", 8);
}

static int describe_tiles(const char *path)
{
    TileSet ts;
    if (tileset_open(path, &ts)) return SD_ERR;
    TileMeta m;
    tileset_meta(&ts, &m);
    size_t pixels = (size_t)ts.count * ts.h * ts.w, fg = 0;
    for (size_t i = 0; ts.mask && i < pixels; i++) fg += ts.mask[i];
    printf("%s: tile dataset v%d, split %s, %d tiles of %d x %d, stride %d x %d, checksum ok\n", path,
           TILES_VERSION, m.split, ts.count, ts.h, ts.w, m.stride_y, m.stride_x);
    printf("  source %s (%d pages of %d x %d, %d-bit)\n", m.image_source, m.src_pages, m.src_h, m.src_w,
           m.src_bits);
    if (ts.mask) printf("  masks %s, foreground %.2f%%\n", m.mask_source, 100.0 * (double)fg / (double)pixels);
    else printf("  no masks (image-only dataset)\n");
    tileset_close(&ts);
    return SD_OK;
}

static int describe_tiff(const char *path)
{
    Stack s;
    if (tiff_read_stack(path, &s)) return SD_ERR;
    size_t n = (size_t)s.pages * s.h * s.w;
    double lo = s.data[0], hi = s.data[0], sum = 0;
    for (size_t i = 0; i < n; i++) {
        lo = s.data[i] < lo ? s.data[i] : lo;
        hi = s.data[i] > hi ? s.data[i] : hi;
        sum += s.data[i];
    }
    printf("%s: TIFF stack, %d pages of %d x %d, %d-bit; values (scaled) min %.4f max %.4f mean %.4f\n", path,
           s.pages, s.h, s.w, s.bits, lo, hi, sum / (double)n);
    stack_free(&s);
    return SD_OK;
}

int cmd_info(int argc, char **argv)
{
    const char *in = NULL;
    const CliOpt opts[] = {
        {"in", CLI_STR, &in, "a TIFF stack or a .tiles dataset", 1},
        {NULL, 0, NULL, NULL, 0},
    };
    int st = cli_parse(argc, argv, "Read a TIFF stack or tile dataset completely, validate it and describe it.", opts);
    if (st != CLI_RUN) return st;
    if ((is_tiles(in) ? describe_tiles(in) : describe_tiff(in)) != SD_OK) return cli_fail(argv[0], 2);
    return 0;
}
