#include "tiling.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

/* The window never drops below this, so pixels covered only by tile borders (slice
 * edges) still have a positive total weight to normalize by. */
#define WINDOW_FLOOR 1e-3

/* The tile layout of one slice; every slice of a stack shares it. */
typedef struct {
    int tile, h, w, ny, nx;
    int *oy, *ox;  /* tile origins along each axis (negative when reflect-padded) */
    float *win;    /* [tile] 1-D window */
    float *wsum;   /* [h*w] summed 2-D window weights */
} Grid;

static int check_settings(const Tiling *t, int h, int w)
{
    if (t->tile < 1) return sd_fail("tile size must be positive (got %d)", t->tile);
    if (t->overlap < 0 || t->overlap >= t->tile)
        return sd_fail("tile overlap must be in [0, %d) for tile %d (got %d)", t->tile, t->tile, t->overlap);
    if (t->batch < 1) return sd_fail("tile batch must be positive (got %d)", t->batch);
    if (h < 1 || w < 1) return sd_fail("empty slice (%d x %d pixels)", h, w);
    return SD_OK;
}

static int axis_tiles(int n, int tile, int overlap)
{
    if (n <= tile) return 1;
    int stride = tile - overlap;
    return (n - tile + stride - 1) / stride + 1;
}

/* Origin of tile i of `count` along an axis of n pixels: spread evenly from 0 to n - tile
 * (so gaps never exceed tile - overlap), or centred when the axis is shorter than a tile. */
static int axis_origin(int i, int count, int n, int tile)
{
    if (n <= tile) return -((tile - n) / 2);
    long span = n - tile;
    return (int)((2 * i * span + (count - 1)) / (2 * (long)(count - 1)));
}

/* numpy's 'reflect' padding (edge not repeated), any distance from the slice. */
static int reflect(int i, int n)
{
    if (n == 1) return 0;
    int period = 2 * (n - 1);
    i %= period;
    if (i < 0) i += period;
    return i < n ? i : period - i;
}

long tiling_count(const Tiling *t, int h, int w)
{
    if (check_settings(t, h, w) != SD_OK) return SD_ERR;
    return (long)axis_tiles(h, t->tile, t->overlap) * axis_tiles(w, t->tile, t->overlap);
}

static void extract_tile(const Grid *g, const float *slice, int ty, int tx, float *dst)
{
    for (int y = 0; y < g->tile; y++) {
        const float *row = slice + (size_t)reflect(g->oy[ty] + y, g->h) * g->w;
        for (int x = 0; x < g->tile; x++) dst[(size_t)y * g->tile + x] = row[reflect(g->ox[tx] + x, g->w)];
    }
}

/* slice += window * src over the part of tile (ty, tx) inside the slice. */
static void accumulate_tile(const Grid *g, const float *src, int ty, int tx, float *slice)
{
    for (int y = 0; y < g->tile; y++) {
        int py = g->oy[ty] + y;
        if (py < 0 || py >= g->h) continue;
        for (int x = 0; x < g->tile; x++) {
            int px = g->ox[tx] + x;
            if (px < 0 || px >= g->w) continue;
            slice[(size_t)py * g->w + px] += g->win[y] * g->win[x] * src[(size_t)y * g->tile + x];
        }
    }
}

static void grid_free(Grid *g)
{
    free(g->oy);
    free(g->ox);
    free(g->win);
    free(g->wsum);
}

/* Window and its sum over all tiles, accumulated exactly as the outputs will be. */
static int grid_weights(Grid *g)
{
    size_t tt = (size_t)g->tile * g->tile;
    float *ones = malloc(tt * sizeof *ones);
    g->win = malloc((size_t)g->tile * sizeof *g->win);
    g->wsum = calloc((size_t)g->h * g->w, sizeof *g->wsum);
    if (!ones || !g->win || !g->wsum) {
        free(ones);
        return sd_fail("out of memory for the tile window (%d x %d slice)", g->h, g->w);
    }
    for (int i = 0; i < g->tile; i++) {
        double s = sin(M_PI * (i + 0.5) / g->tile);
        g->win[i] = (float)fmax(s * s, WINDOW_FLOOR);
    }
    for (size_t i = 0; i < tt; i++) ones[i] = 1.0f;
    for (int ty = 0; ty < g->ny; ty++)
        for (int tx = 0; tx < g->nx; tx++) accumulate_tile(g, ones, ty, tx, g->wsum);
    free(ones);
    return SD_OK;
}

static int grid_init(Grid *g, const Tiling *t, int h, int w)
{
    memset(g, 0, sizeof *g);
    if (check_settings(t, h, w) != SD_OK) return SD_ERR;
    g->tile = t->tile;
    g->h = h;
    g->w = w;
    g->ny = axis_tiles(h, t->tile, t->overlap);
    g->nx = axis_tiles(w, t->tile, t->overlap);
    g->oy = malloc((size_t)g->ny * sizeof *g->oy);
    g->ox = malloc((size_t)g->nx * sizeof *g->ox);
    if (!g->oy || !g->ox) return sd_fail("out of memory for the tile grid");
    for (int i = 0; i < g->ny; i++) g->oy[i] = axis_origin(i, g->ny, h, t->tile);
    for (int i = 0; i < g->nx; i++) g->ox[i] = axis_origin(i, g->nx, w, t->tile);
    return grid_weights(g);
}

/* Tile k of the stack: page, row and column of the grid. */
static void tile_position(const Grid *g, long k, long *page, int *ty, int *tx)
{
    long per_page = (long)g->ny * g->nx;
    *page = k / per_page;
    *ty = (int)(k % per_page / g->nx);
    *tx = (int)(k % g->nx);
}

static int run_batches(const Grid *g, const Tiling *t, long total, const float *in, TileFn fn, void *user,
                       float *out, float *tin, float *tout)
{
    size_t slice = (size_t)g->h * g->w, tt = (size_t)g->tile * g->tile;
    for (long k0 = 0; k0 < total; k0 += t->batch) {
        int n = (int)(total - k0 < t->batch ? total - k0 : t->batch);
        long page;
        int ty, tx;
        for (int i = 0; i < n; i++) {
            tile_position(g, k0 + i, &page, &ty, &tx);
            extract_tile(g, in + page * slice, ty, tx, tin + i * tt);
        }
        if (fn(user, n, tin, tout) != SD_OK) return SD_ERR;
        for (int i = 0; i < n; i++) {
            tile_position(g, k0 + i, &page, &ty, &tx);
            accumulate_tile(g, tout + i * tt, ty, tx, out + page * slice);
        }
        if (t->progress) t->progress(t->progress_user, k0 + n, total);
    }
    return SD_OK;
}

int tiling_run(const Tiling *t, int pages, int h, int w, const float *in, TileFn fn, void *user, float *out)
{
    Grid g;
    if (pages < 1) return sd_fail("no slices to tile");
    if (grid_init(&g, t, h, w) != SD_OK) {
        grid_free(&g);
        return SD_ERR;
    }
    size_t slice = (size_t)h * w, tt = (size_t)t->tile * t->tile;
    float *tin = malloc((size_t)t->batch * tt * sizeof *tin);
    float *tout = malloc((size_t)t->batch * tt * sizeof *tout);
    int rc = tin && tout ? SD_OK : sd_fail("out of memory for a batch of %d tiles", t->batch);
    if (rc == SD_OK) {
        memset(out, 0, (size_t)pages * slice * sizeof *out);
        rc = run_batches(&g, t, (long)pages * g.ny * g.nx, in, fn, user, out, tin, tout);
    }
    for (long p = 0; rc == SD_OK && p < pages; p++)
        for (size_t i = 0; i < slice; i++) out[p * slice + i] /= g.wsum[i];
    free(tin);
    free(tout);
    grid_free(&g);
    return rc;
}
