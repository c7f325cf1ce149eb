/* sdseg prep: cut an image stack (and its mask stack) into tiles, split by slice ranges
 * into DIR/train.tiles and DIR/val.tiles (format: core/tiles.c). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../core/err.h"
#include "../core/tiff.h"
#include "../core/tiles.h"
#include "cli.h"

#define MAX_ORIGINS 4096 /* tile positions per side */

typedef struct {
    int tile, stride;
    int val_lo, val_hi; /* validation slices [lo, hi) */
    int ny, nx;         /* tiles per slice along y and x */
    float mask_thr;     /* mask value above which a pixel is foreground */
    int ys[MAX_ORIGINS], xs[MAX_ORIGINS];
} Layout;

/* Tile origins along a side: every `stride`, the last one flush with the edge so the
 * whole slice is covered (1024 with tile 256, stride 256 -> 0, 256, 512, 768). */
static int origins(int side, int tile, int stride, int *pos, int cap)
{
    int n = 0;
    for (int p = 0; p + tile <= side && n < cap; p += stride) pos[n++] = p;
    if (n > 0 && pos[n - 1] + tile < side && n < cap) pos[n++] = side - tile;
    return n;
}

/* "A:B" -> [A, B); "auto"/N for --val-last. */
static int parse_split(const char *cmd, const char *slices, const char *last, int pages, Layout *L)
{
    if (slices && strcmp(last, "auto") != 0)
        return cli_usage_error(cmd, "give --val-slices or --val-last, not both");
    if (slices) {
        char tail;
        if (sscanf(slices, "%d:%d%c", &L->val_lo, &L->val_hi, &tail) != 2 || L->val_lo < 0 ||
            L->val_hi <= L->val_lo || L->val_hi > pages)
            return cli_usage_error(cmd, "--val-slices '%s' is not A:B with 0 <= A < B <= %d", slices, pages);
        return 0;
    }
    char *end;
    long n = strcmp(last, "auto") == 0 ? (pages + 2) / 5 : strtol(last, &end, 10);
    if (strcmp(last, "auto") != 0 && (*end || end == last || n < 0 || n >= pages))
        return cli_usage_error(cmd, "--val-last '%s' must be 0..%d (the stack has %d slices)", last, pages - 1, pages);
    L->val_lo = pages - (int)n;
    L->val_hi = pages;
    return 0;
}

/* 8-bit pixels: exactly the source for 8-bit stacks, rounded otherwise. */
static uint8_t to_u8(float v) { return (uint8_t)lrintf(fminf(fmaxf(v, 0.0f), 1.0f) * 255.0f); }

/* Masks: > 0.5 of full scale (> 127 for 8-bit); stacks holding only 0 and 1 as
 * integers are label images and use > 0. */
static float mask_threshold(const Stack *m)
{
    if (m->bits == 32) return 0.5f;
    float top = 0, unit = 1.0f / (float)((1 << m->bits) - 1);
    size_t n = (size_t)m->pages * m->h * m->w;
    for (size_t i = 0; i < n; i++) top = fmaxf(top, m->data[i]);
    return top > 0 && top <= unit * 1.5f ? 0.0f : 0.5f;
}

typedef struct {
    TileSet set;
    uint8_t *image, *mask;
    int32_t *slice, *origin;
} Tiles;

static void tiles_free(Tiles *t) { free(t->image), free(t->mask), free(t->slice), free(t->origin); }

static void cut_slice(const Stack *img, const Stack *msk, int s, const Layout *L, Tiles *t, int *at)
{
    size_t tt = (size_t)L->tile * L->tile;
    for (int a = 0; a < L->ny; a++)
        for (int b = 0; b < L->nx; b++, (*at)++) {
            int k = *at;
            t->slice[k] = s, t->origin[2 * k] = L->ys[a], t->origin[2 * k + 1] = L->xs[b];
            for (int r = 0; r < L->tile; r++) {
                size_t src = ((size_t)s * img->h + L->ys[a] + r) * img->w + L->xs[b];
                for (int c = 0; c < L->tile; c++) {
                    t->image[k * tt + (size_t)r * L->tile + c] = to_u8(img->data[src + c]);
                    if (msk) t->mask[k * tt + (size_t)r * L->tile + c] = msk->data[src + c] > L->mask_thr;
                }
            }
        }
}

/* Tiles of the slices in [lo, hi) (want_val) or outside it (!want_val). */
static int cut_split(const Stack *img, const Stack *msk, const Layout *L, int want_val, Tiles *t)
{
    memset(t, 0, sizeof *t);
    int slices = want_val ? L->val_hi - L->val_lo : img->pages - (L->val_hi - L->val_lo);
    int count = slices * L->ny * L->nx;
    size_t tt = (size_t)L->tile * L->tile;
    t->image = malloc((size_t)count * tt + 1);
    t->mask = msk ? malloc((size_t)count * tt + 1) : NULL;
    t->slice = malloc(sizeof(int32_t) * ((size_t)count + 1));
    t->origin = malloc(2 * sizeof(int32_t) * ((size_t)count + 1));
    if (!t->image || (msk && !t->mask) || !t->slice || !t->origin) return sd_fail("out of memory for %d tiles", count);
    int at = 0;
    for (int s = 0; s < img->pages; s++)
        if ((s >= L->val_lo && s < L->val_hi) == want_val) cut_slice(img, msk, s, L, t, &at);
    t->set = (TileSet){.count = count, .h = L->tile, .w = L->tile, .image = t->image, .mask = t->mask,
                       .slice = t->slice, .origin = t->origin};
    return SD_OK;
}

static int write_split(const char *dir, const char *name, const Stack *img, const Stack *msk, const Layout *L,
                       const char *image_src, const char *mask_src, char *path, size_t path_len)
{
    int want_val = !strcmp(name, "val");
    Tiles t;
    snprintf(path, path_len, "%s/%s.tiles", dir, name);
    int rc = cut_split(img, msk, L, want_val, &t);
    TileMeta meta = {.stride_y = L->stride, .stride_x = L->stride, .src_pages = img->pages, .src_h = img->h,
                     .src_w = img->w, .src_bits = img->bits, .split = name, .image_source = image_src,
                     .mask_source = mask_src};
    if (rc == SD_OK) rc = tileset_write(path, &t.set, &meta);
    if (rc == SD_OK)
        printf("prep: %-5s %4d tiles (%d per slice) -> %s\n", name, t.set.count, L->ny * L->nx, path);
    tiles_free(&t);
    return rc;
}

static int check_pair(const char *image_path, const Stack *img, const char *mask_path, const Stack *msk)
{
    if (msk->pages != img->pages || msk->h != img->h || msk->w != img->w)
        return sd_fail("image %s is %d pages of %d x %d but mask %s is %d pages of %d x %d", image_path, img->pages,
                       img->h, img->w, mask_path, msk->pages, msk->h, msk->w);
    return SD_OK;
}

static int make_dir(const char *dir)
{
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) return sd_fail("cannot create %s: %s", dir, strerror(errno));
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) return sd_fail("%s is not a directory", dir);
    return SD_OK;
}

typedef struct {
    const char *image, *mask, *out, *val_slices, *val_last;
    int tile, stride;
} PrepArgs;

static int run(const char *cmd, const PrepArgs *a, const Stack *img, const Stack *msk)
{
    Layout L = {.tile = a->tile, .stride = a->stride ? a->stride : a->tile};
    if (L.tile > img->h || L.tile > img->w)
        return cli_usage_error(cmd, "tile %d is larger than the %d x %d slices", L.tile, img->h, img->w);
    if ((img->h - L.tile) / L.stride + 2 > MAX_ORIGINS || (img->w - L.tile) / L.stride + 2 > MAX_ORIGINS)
        return cli_usage_error(cmd, "stride %d is too small for %d x %d slices", L.stride, img->h, img->w);
    L.ny = origins(img->h, L.tile, L.stride, L.ys, MAX_ORIGINS);
    L.nx = origins(img->w, L.tile, L.stride, L.xs, MAX_ORIGINS);
    int st = parse_split(cmd, a->val_slices, a->val_last, img->pages, &L);
    if (st) return st;
    if (L.val_hi - L.val_lo == img->pages)
        return cli_usage_error(cmd, "the validation range leaves no training slices");
    if ((double)img->pages * L.ny * L.nx * L.tile * L.tile > 1.6e10)
        return cli_usage_error(cmd, "stride %d makes too many tiles", L.stride);
    L.mask_thr = msk ? mask_threshold(msk) : 0;
    if (msk && L.mask_thr == 0) printf("prep: the masks hold 0/1 labels: values > 0 are foreground\n");
    char path[4200];
    if (make_dir(a->out) || write_split(a->out, "train", img, msk, &L, a->image, a->mask, path, sizeof path))
        return cli_fail(cmd, 1);
    snprintf(path, sizeof path, "%s/val.tiles", a->out);
    if (L.val_hi == L.val_lo) {
        if (remove(path) == 0) printf("prep: removed the stale %s (no validation slices asked for)\n", path);
        return 0;
    }
    if (write_split(a->out, "val", img, msk, &L, a->image, a->mask, path, sizeof path)) return cli_fail(cmd, 1);
    printf("prep: validation = slices %d:%d of %d\n", L.val_lo, L.val_hi, img->pages);
    return 0;
}

int cmd_prep(int argc, char **argv)
{
    PrepArgs a = {.val_last = "auto", .tile = 256};
    const CliOpt opts[] = {
        {"image", CLI_STR, &a.image, "image stack (TIFF: 8/16-bit, float32 or RGB)", 1},
        {"mask", CLI_STR, &a.mask, "mask stack, same pages and size (> 127 or > 0.5 -> 1); omit for images only", 0},
        {"out", CLI_STR, &a.out, "output directory for train.tiles and val.tiles", 1},
        {"tile", CLI_INT, &a.tile, "tile side in pixels", 0},
        {"stride", CLI_INT, &a.stride, "step between tiles (0 = the tile side: no overlap)", 0},
        {"val-slices", CLI_STR, &a.val_slices, "validation = slices A:B (0-based, B excluded)", 0},
        {"val-last", CLI_STR, &a.val_last, "validation = the last N slices (auto: a fifth; 0: none)", 0},
        {NULL, 0, NULL, NULL, 0},
    };
    int st = cli_parse(argc, argv, "Cut TIFF stacks into tiles split by slice ranges (the seed: 1024 x 768 -> 12 "
                                   "tiles of 256 x 256 per slice).", opts);
    if (st != CLI_RUN) return st;
    if (a.tile < 8 || a.tile > 8192 || a.stride < 0 || a.stride > 8192)
        return cli_usage_error(argv[0], "--tile must be 8..8192 and --stride 0..8192");
    Stack img, msk = {0};
    if (tiff_read_stack(a.image, &img)) return cli_fail(argv[0], 2);
    if (a.mask && (tiff_read_stack(a.mask, &msk) || check_pair(a.image, &img, a.mask, &msk))) {
        stack_free(&img), stack_free(&msk);
        return cli_fail(argv[0], 2);
    }
    st = run(argv[0], &a, &img, a.mask ? &msk : NULL);
    stack_free(&img);
    stack_free(&msk);
    return st;
}
