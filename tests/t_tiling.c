/* core/tiling: identity round trips at awkward sizes, numpy-style reflect padding of
 * slices smaller than a tile, bounded seams when every tile is offset differently,
 * and error handling. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/err.h"
#include "../core/philox.h"
#include "../core/tiling.h"
#include "check.h"

static int identity(void *user, int n, const float *tiles, float *out)
{
    size_t tt = *(const int *)user;
    memcpy(out, tiles, (size_t)n * tt * tt * sizeof *out);
    return SD_OK;
}

/* Adds 0 or 1 to each tile, alternating in the order tiles arrive. */
typedef struct {
    int tile;
    long seen;
} Offsets;

static int add_offset(void *user, int n, const float *tiles, float *out)
{
    Offsets *o = user;
    size_t tt = (size_t)o->tile * o->tile;
    for (int i = 0; i < n; i++, o->seen++)
        for (size_t p = 0; p < tt; p++) out[i * tt + p] = tiles[i * tt + p] + (float)(o->seen % 2);
    return SD_OK;
}

static int failing(void *user, int n, const float *tiles, float *out)
{
    (void)user, (void)n, (void)tiles, (void)out;
    return sd_fail("callback failed on purpose");
}

static float *random_stack(int pages, int h, int w, uint64_t seed)
{
    size_t n = (size_t)pages * h * w;
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = philox_uniform(seed, 0, i);
    return x;
}

static void check_identity(int pages, int h, int w, int tile, int overlap, int batch)
{
    Tiling t = {tile, overlap, batch, NULL, NULL};
    size_t n = (size_t)pages * h * w;
    float *in = random_stack(pages, h, w, 7), *out = malloc(n * sizeof *out);
    CHECK(tiling_run(&t, pages, h, w, in, identity, &tile, out) == SD_OK);
    double err = 0;
    for (size_t i = 0; i < n; i++) err = fmax(err, fabs(out[i] - in[i]));
    printf("identity %dx%dx%d tile %d overlap %d batch %d: max error %.2g\n", pages, h, w, tile, overlap, batch,
           err);
    CHECK(err <= 1e-6);
    free(in);
    free(out);
}

/* A 2x3 slice in a 6x6 tile is centred (origin -2, -1) and padded like
 * np.pad(x, ((2, 2), (1, 2)), 'reflect'): rows 0 1 0 1 0 1, columns 1 0 1 2 1 0. */
static int capture(void *user, int n, const float *tiles, float *out)
{
    memcpy(user, tiles, 36 * sizeof(float));
    memcpy(out, tiles, (size_t)n * 36 * sizeof(float));
    return SD_OK;
}

static void check_reflect_padding(void)
{
    const float slice[6] = {0, 1, 2, 10, 11, 12};
    const float row0[6] = {1, 0, 1, 2, 1, 0}, row1[6] = {11, 10, 11, 12, 11, 10};
    const float *rows[6] = {row0, row1, row0, row1, row0, row1};
    float tile[36], out[6];
    Tiling t = {6, 2, 4, NULL, NULL};
    CHECK(tiling_count(&t, 2, 3) == 1);
    CHECK(tiling_run(&t, 1, 2, 3, slice, capture, tile, out) == SD_OK);
    int same = 1;
    for (int y = 0; y < 6; y++) same &= !memcmp(tile + 6 * y, rows[y], sizeof row0);
    CHECK(same);
    for (int i = 0; i < 6; i++) CHECK_NEAR(out[i], slice[i], 1e-5);
}

/* Largest jump between neighbouring pixels of (out - in) in one slice. */
static double max_jump(const float *in, const float *out, int h, int w)
{
    double jump = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            size_t i = (size_t)y * w + x;
            double d = out[i] - in[i];
            if (x + 1 < w) jump = fmax(jump, fabs(d - (out[i + 1] - in[i + 1])));
            if (y + 1 < h) jump = fmax(jump, fabs(d - (out[i + w] - in[i + w])));
        }
    return jump;
}

static double seam_jump(int h, int w, int tile, int overlap)
{
    Tiling t = {tile, overlap, 3, NULL, NULL};
    Offsets o = {tile, 0};
    float *in = random_stack(1, h, w, 11), *out = malloc((size_t)h * w * sizeof *out);
    CHECK(tiling_run(&t, 1, h, w, in, add_offset, &o, out) == SD_OK);
    double jump = max_jump(in, out, h, w);
    printf("offsets 0/1 per tile, %dx%d tile %d overlap %d: largest neighbour jump %.4f\n", h, w, tile, overlap,
           jump);
    free(in);
    free(out);
    return jump;
}

/* Without overlap the full 0/1 offset shows as a jump; with overlap the raised-cosine
 * blend spreads it. Two tiles of side 2v overlapping by v have weights cos^2 and sin^2
 * there, so the share moves like sin^2(pi (j + 1/2) / 2v), steepest step pi/(2v) per pixel
 * (tiles of side 3v are gentler: 0.085 against 0.098 at v = 16). Bound: that plus 10 %. */
static void check_seams(void)
{
    CHECK(seam_jump(128, 96, 32, 0) >= 0.99);
    CHECK(seam_jump(130, 101, 48, 16) <= 1.1 * M_PI / 32);
    CHECK(seam_jump(256, 256, 64, 32) <= 1.1 * M_PI / 64);
}

static void check_errors(void)
{
    float x[4] = {0}, y[4];
    int tile = 2;
    Tiling bad_overlap = {2, 2, 1, NULL, NULL}, bad_tile = {0, 0, 1, NULL, NULL}, bad_batch = {2, 0, 0, NULL, NULL};
    CHECK(tiling_run(&bad_overlap, 1, 2, 2, x, identity, &tile, y) == SD_ERR);
    CHECK(strstr(sd_last_error(), "overlap") != NULL);
    CHECK(tiling_run(&bad_tile, 1, 2, 2, x, identity, &tile, y) == SD_ERR);
    CHECK(tiling_run(&bad_batch, 1, 2, 2, x, identity, &tile, y) == SD_ERR);
    Tiling ok = {2, 0, 1, NULL, NULL};
    CHECK(tiling_run(&ok, 1, 0, 2, x, identity, &tile, y) == SD_ERR);
    CHECK(tiling_run(&ok, 1, 2, 2, x, failing, NULL, y) == SD_ERR);
    CHECK(strstr(sd_last_error(), "on purpose") != NULL);
}

int main(void)
{
    check_identity(2, 100, 77, 32, 8, 5);
    check_identity(1, 300, 260, 64, 16, 8);
    check_identity(1, 64, 64, 64, 0, 1);
    check_identity(3, 90, 70, 32, 0, 4);
    check_identity(2, 20, 13, 32, 0, 2);
    check_identity(1, 1, 40, 16, 4, 2);
    check_reflect_padding();
    check_seams();
    check_errors();
    return check_exit("t_tiling");
}
