/* The tile-dataset file and the loader: a write/open round trip, then determinism (same
 * seed -> identical batches whether prefetched or rebuilt, whatever the batch size),
 * per-epoch reshuffles that are permutations, masks exactly 0/1 after every
 * augmentation, masks moving with their images, and every augmentation switch having
 * an effect of the expected kind. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/augment.h"
#include "../core/dataset.h"
#include "../core/err.h"
#include "../core/tiles.h"
#include "check.h"

#define COUNT 10
#define SIDE 32
#define PIX (SIDE * SIDE)

/* Tile t: a disc of radius 5..9 (mask 1) at a tile-dependent place; image = 30 + 170 *
 * mask + a gradient, so the mask is recoverable from the image (image > 110/255). */
static void make_tiles(uint8_t *image, uint8_t *mask, int32_t *slice, int32_t *origin)
{
    for (int t = 0; t < COUNT; t++) {
        int cy = 8 + (t * 7) % 16, cx = 6 + (t * 11) % 20, r = 5 + t % 5;
        for (int y = 0; y < SIDE; y++)
            for (int x = 0; x < SIDE; x++) {
                int in = (y - cy) * (y - cy) + (x - cx) * (x - cx) <= r * r;
                mask[t * PIX + y * SIDE + x] = (uint8_t)in;
                image[t * PIX + y * SIDE + x] = (uint8_t)(30 + 170 * in + (x + 2 * y) / 8);
            }
        slice[t] = t / 2;
        origin[2 * t] = 0;
        origin[2 * t + 1] = (t % 2) * SIDE;
    }
}

static int write_and_open(const char *path, TileSet *ts)
{
    static uint8_t image[COUNT * PIX], mask[COUNT * PIX];
    static int32_t slice[COUNT], origin[2 * COUNT];
    make_tiles(image, mask, slice, origin);
    TileSet src = {.count = COUNT, .h = SIDE, .w = SIDE, .image = image, .mask = mask, .slice = slice,
                   .origin = origin};
    TileMeta meta = {.stride_y = SIDE, .stride_x = SIDE, .src_pages = COUNT / 2, .src_h = SIDE, .src_w = 2 * SIDE,
                     .src_bits = 8, .split = "train", .image_source = "synthetic", .mask_source = "synthetic"};
    if (tileset_write(path, &src, &meta) || tileset_open(path, ts)) return SD_ERR;
    CHECK_MSG(ts->count == COUNT && ts->h == SIDE && ts->w == SIDE, "reopened shape");
    CHECK_MSG(!memcmp(ts->image, image, sizeof image) && !memcmp(ts->mask, mask, sizeof mask), "reopened pixels");
    CHECK_MSG(!memcmp(ts->slice, slice, sizeof slice) && !memcmp(ts->origin, origin, sizeof origin), "reopened indices");
    return SD_OK;
}

/* Which tile an un-augmented [0,1] image is. */
static int identify(const TileSet *ts, const float *img)
{
    for (int t = 0; t < ts->count; t++) {
        int same = 1;
        for (int i = 0; i < PIX && same; i++) same = img[i] == (float)ts->image[t * PIX + i] / 255.0f;
        if (same) return t;
    }
    return -1;
}

/* Tile order of one epoch, from an un-augmented loader. */
static void epoch_order(const TileSet *ts, Loader *l, long epoch, int *order)
{
    static float img[COUNT * PIX];
    int at = 0;
    for (long b = 0; b < loader_batches(l); b++) {
        int n = loader_get(l, epoch, b, img, NULL);
        for (int k = 0; k < n; k++) order[at++] = identify(ts, img + k * PIX);
    }
}

static void test_order(const TileSet *ts)
{
    Loader *l = loader_create(ts, 3, NORM_UNIT, NULL, 42, 1, 0);
    CHECK_MSG(loader_batches(l) == 4, "batches with a partial last batch: %ld", loader_batches(l));
    int e0[COUNT], e1[COUNT], again[COUNT], seen[COUNT] = {0};
    epoch_order(ts, l, 0, e0);
    epoch_order(ts, l, 1, e1);
    epoch_order(ts, l, 0, again);
    for (int k = 0; k < COUNT; k++) seen[e0[k] >= 0 ? e0[k] : 0] += e0[k] >= 0;
    int perm = 1;
    for (int t = 0; t < COUNT; t++) perm &= seen[t] == 1;
    CHECK_MSG(perm, "epoch 0 is not a permutation of the tiles");
    CHECK_MSG(memcmp(e0, e1, sizeof e0) != 0, "epochs 0 and 1 have the same order");
    CHECK_MSG(memcmp(e0, again, sizeof e0) == 0, "epoch 0 order not reproducible");
    loader_destroy(l);
    l = loader_create(ts, 4, NORM_UNIT, NULL, 42, 0, 1);
    CHECK_MSG(loader_batches(l) == 2, "drop_last batches: %ld", loader_batches(l));
    int files[COUNT] = {0};
    epoch_order(ts, l, 3, files);
    int in_order = 1;
    for (int k = 0; k < 8; k++) in_order &= files[k] == k;
    CHECK_MSG(in_order, "shuffle=0 is not file order");
    float img[4 * PIX];
    CHECK_MSG(loader_get(l, 0, 2, img, NULL) < 0, "batch past the end accepted");
    loader_destroy(l);
}

static Augment everything(void)
{
    Augment a = augment_seed();
    a.rot90 = 1;
    a.elastic_alpha = 60, a.elastic_sigma = 4;
    a.brightness = 0.1f, a.contrast = 0.2f, a.gamma = 0.3f;
    a.noise_std = 0.05f, a.blur_sigma = 1.0f;
    return a;
}

/* Same seed: identical bytes, sequential (prefetched) or random access, any batch size. */
static void test_determinism(const TileSet *ts)
{
    Augment a = everything();
    Loader *seq = loader_create(ts, 2, NORM_SYMMETRIC, &a, 7, 1, 0);
    Loader *ran = loader_create(ts, 2, NORM_SYMMETRIC, &a, 7, 1, 0);
    Loader *five = loader_create(ts, 5, NORM_SYMMETRIC, &a, 7, 1, 0);
    static float s_img[COUNT * PIX], s_msk[COUNT * PIX], r_img[COUNT * PIX], r_msk[COUNT * PIX];
    static float f_img[COUNT * PIX], f_msk[COUNT * PIX];
    for (long e = 0; e < 3; e++) {
        for (long b = 0; b < 5; b++) loader_get(seq, e, b, s_img + b * 2 * PIX, s_msk + b * 2 * PIX);
        for (long b = 4; b >= 0; b--) loader_get(ran, e, b, r_img + b * 2 * PIX, r_msk + b * 2 * PIX);
        for (long b = 0; b < 2; b++) loader_get(five, e, b, f_img + b * 5 * PIX, f_msk + b * 5 * PIX);
        CHECK_MSG(!memcmp(s_img, r_img, sizeof s_img) && !memcmp(s_msk, r_msk, sizeof s_msk),
              "epoch %ld: prefetched and rebuilt batches differ", e);
        CHECK_MSG(!memcmp(s_img, f_img, sizeof s_img) && !memcmp(s_msk, f_msk, sizeof s_msk),
              "epoch %ld: batch size changed the tiles", e);
    }
    Loader *other = loader_create(ts, 2, NORM_SYMMETRIC, &a, 8, 1, 0);
    loader_get(other, 2, 4, r_img, r_msk);
    CHECK_MSG(memcmp(r_img, s_img + 8 * PIX, 2 * PIX * sizeof(float)) != 0, "seed 8 gave seed 7's batch");
    loader_destroy(seq), loader_destroy(ran), loader_destroy(five), loader_destroy(other);
}

/* One augmentation on tile t with (seed, stream); img in [0,1], mask 0/1. */
static void run_aug(const TileSet *ts, const Augment *a, int t, uint64_t stream, float *img, float *mask)
{
    static float scratch[3 * PIX];
    for (int i = 0; i < PIX; i++) img[i] = ts->image[t * PIX + i] / 255.0f, mask[i] = ts->mask[t * PIX + i];
    augment_tile(a, 99, stream, SIDE, SIDE, img, mask, scratch);
}

static int binary(const float *m)
{
    for (int i = 0; i < PIX; i++)
        if (m[i] != 0.0f && m[i] != 1.0f) return 0;
    return 1;
}

/* Pixels where the mask disagrees with the image thresholded between 30 and 200. */
static int misaligned(const float *img, const float *mask)
{
    int bad = 0;
    for (int i = 0; i < PIX; i++) bad += (img[i] > 115.0f / 255.0f) != (mask[i] == 1.0f);
    return bad;
}

typedef struct {
    const char *name;
    Augment a;
    int geometric;  /* moves the mask */
    int exact;      /* keeps the pixel values (a permutation) */
} Switch;

static void test_switches(const TileSet *ts)
{
    Augment base = augment_none();
    Switch sw[] = {
        {"flips", base, 1, 1}, {"rot90", base, 1, 1}, {"rotate", base, 1, 0}, {"shift", base, 1, 0},
        {"shear", base, 1, 0}, {"zoom", base, 1, 0}, {"elastic", base, 1, 0}, {"brightness", base, 0, 0},
        {"contrast", base, 0, 0}, {"gamma", base, 0, 0}, {"noise", base, 0, 0}, {"blur", base, 0, 0},
    };
    sw[0].a.flips = 1, sw[1].a.rot90 = 1, sw[2].a.rotate_deg = 90, sw[3].a.shift = 0.3f;
    sw[4].a.shear = 20, sw[5].a.zoom = 0.3f, sw[6].a.elastic_alpha = 80, sw[6].a.elastic_sigma = 4;
    sw[7].a.brightness = 0.2f, sw[8].a.contrast = 0.5f, sw[9].a.gamma = 0.5f, sw[10].a.noise_std = 0.1f;
    sw[11].a.blur_sigma = 2;
    float img[PIX], mask[PIX], ref[PIX], ref_mask[PIX];
    for (size_t k = 0; k < sizeof sw / sizeof sw[0]; k++) {
        int changed_img = 0, changed_mask = 0, all_binary = 1, worst_align = 0;
        for (int t = 0; t < COUNT; t++)
            for (uint64_t stream = 0; stream < 4; stream++) {
                run_aug(ts, &base, t, stream, ref, ref_mask);
                run_aug(ts, &sw[k].a, t, stream, img, mask);
                changed_img |= memcmp(img, ref, sizeof img) != 0;
                changed_mask |= memcmp(mask, ref_mask, sizeof mask) != 0;
                all_binary &= binary(mask);
                int bad = sw[k].geometric ? misaligned(img, mask) : 0;
                worst_align = bad > worst_align ? bad : worst_align;
            }
        CHECK_MSG(changed_img, "%s: no effect on the images", sw[k].name);
        CHECK_MSG(all_binary, "%s: mask not exactly 0/1", sw[k].name);
        CHECK_MSG(changed_mask == sw[k].geometric, "%s: mask %s", sw[k].name, changed_mask ? "changed" : "unchanged");
        /* exact permutations keep alignment perfectly; resampling may flip edge pixels */
        CHECK_MSG(worst_align <= (sw[k].exact ? 0 : PIX / 100), "%s: %d pixels where mask and image disagree",
              sw[k].name, worst_align);
    }
    Augment all = everything();
    int all_binary = 1;
    for (int t = 0; t < COUNT; t++) {
        run_aug(ts, &all, t, 5, img, mask);
        all_binary &= binary(mask);
    }
    CHECK_MSG(all_binary, "all augmentations together: mask not exactly 0/1");
}

/* Flips alone give one of the tile's four mirror images, pixel for pixel. */
static void test_flips_exact(const TileSet *ts)
{
    Augment a = augment_none();
    a.flips = 1;
    float img[PIX], mask[PIX];
    int kinds[4] = {0};
    for (uint64_t stream = 0; stream < 32; stream++) {
        run_aug(ts, &a, 3, stream, img, mask);
        int kind = -1;
        for (int f = 0; f < 4 && kind < 0; f++) {
            int same = 1;
            for (int y = 0; y < SIDE && same; y++)
                for (int x = 0; x < SIDE && same; x++) {
                    int sy = f & 2 ? SIDE - 1 - y : y, sx = f & 1 ? SIDE - 1 - x : x;
                    same = img[y * SIDE + x] == ts->image[3 * PIX + sy * SIDE + sx] / 255.0f &&
                           mask[y * SIDE + x] == ts->mask[3 * PIX + sy * SIDE + sx];
                }
            if (same) kind = f;
        }
        CHECK_MSG(kind >= 0, "stream %llu: flipped tile is no mirror image of the source", (unsigned long long)stream);
        if (kind >= 0) kinds[kind]++;
    }
    CHECK_MSG(kinds[0] && kinds[1] && kinds[2] && kinds[3], "32 draws did not produce all four flips: %d %d %d %d",
          kinds[0], kinds[1], kinds[2], kinds[3]);
}

static void test_normalization(const TileSet *ts)
{
    float unit[2 * PIX], sym[2 * PIX];
    Loader *u = loader_create(ts, 2, NORM_UNIT, NULL, 1, 0, 0);
    Loader *s = loader_create(ts, 2, NORM_SYMMETRIC, NULL, 1, 0, 0);
    loader_get(u, 0, 0, unit, NULL);
    loader_get(s, 0, 0, sym, NULL);
    int ok = 1;
    for (int i = 0; i < 2 * PIX; i++)
        ok &= unit[i] == ts->image[i] / 255.0f && fabsf(sym[i] - (2.0f * ts->image[i] / 255.0f - 1.0f)) < 1e-6f;
    CHECK_MSG(ok, "normalization is not x/255 and (x/255-0.5)/0.5");
    loader_destroy(u), loader_destroy(s);
}

int main(void)
{
    char path[] = "/tmp/sdseg-t_loader-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) return printf("FAIL: mkstemp\n"), 1;
    close(fd);
    TileSet ts;
    if (write_and_open(path, &ts)) {
        printf("FAIL: tile file round trip: %s\n", sd_last_error());
        remove(path);
        return 1;
    }
    test_order(&ts);
    test_determinism(&ts);
    test_switches(&ts);
    test_flips_exact(&ts);
    test_normalization(&ts);
    tileset_close(&ts);
    remove(path);
    printf("t_loader: %s\n", check_failures ? "FAILED" : "all checks passed");
    return check_failures != 0;
}
