/* Channel plumbing (reference): concatenation, FiLM and the NCHW <-> token layouts. */
#include <string.h>

#include "cpu.h"

/* Below this many elements a parallel region costs more than it saves. */
#define PLUMB_PAR_MIN 32768

/* dst[i] += src[i] (accumulate) or dst[i] = src[i], for backward and forward alike. */
static void put(real *dst, const real *src, size_t n, int accumulate)
{
    if (!accumulate) {
        memcpy(dst, src, n * sizeof *dst);
        return;
    }
    for (size_t i = 0; i < n; i++) dst[i] += src[i];
}

void cpu_concat_forward(void *ctx, int n, int ca, int cb, int hw, real *y, const real *a, const real *b)
{
    (void)ctx;
    size_t la = (size_t)ca * hw, lb = (size_t)cb * hw;
#pragma omp parallel for schedule(static) if ((la + lb) * n > PLUMB_PAR_MIN)
    for (int i = 0; i < n; i++) {
        put(y + i * (la + lb), a + i * la, la, 0);
        put(y + i * (la + lb) + la, b + i * lb, lb, 0);
    }
}

void cpu_concat_backward(void *ctx, int n, int ca, int cb, int hw, real *da, real *db, const real *dy)
{
    (void)ctx;
    size_t la = (size_t)ca * hw, lb = (size_t)cb * hw;
#pragma omp parallel for schedule(static) if ((la + lb) * n > PLUMB_PAR_MIN)
    for (int i = 0; i < n; i++) {
        if (da) put(da + i * la, dy + i * (la + lb), la, 1);
        if (db) put(db + i * lb, dy + i * (la + lb) + la, lb, 1);
    }
}

/* y = x * (1 + scale) + shift with one (scale, shift) per (sample, channel). */
void cpu_film_forward(void *ctx, int n, int c, int hw, real *y, const real *x, const real *scale, const real *shift)
{
    (void)ctx;
    long planes = (long)n * c;
#pragma omp parallel for schedule(static) if (planes * hw > PLUMB_PAR_MIN)
    for (long p = 0; p < planes; p++) {
        real gain = 1 + scale[p], bias = shift[p];
        for (long k = p * hw; k < (p + 1) * hw; k++) y[k] = x[k] * gain + bias;
    }
}

void cpu_film_backward(void *ctx, int n, int c, int hw, real *dx, real *dscale, real *dshift, const real *dy,
                       const real *x, const real *scale)
{
    (void)ctx;
    long planes = (long)n * c;
#pragma omp parallel for schedule(static) if (planes * hw > PLUMB_PAR_MIN)
    for (long p = 0; p < planes; p++) {
        real gain = 1 + scale[p], sum_dy_x = 0, sum_dy = 0;
        for (long k = p * hw; k < (p + 1) * hw; k++) {
            if (dx) dx[k] += dy[k] * gain;
            sum_dy_x += dy[k] * x[k];
            sum_dy += dy[k];
        }
        if (dscale) dscale[p] += sum_dy_x;
        if (dshift) dshift[p] += sum_dy;
    }
}

/* Per sample, src [rows, cols] -> dst [cols, rows] (dst = or += src^T), in square
 * tiles so that both sides stay in cache. */
#define TRANSPOSE_TILE 32
static void transpose_samples(int n, int rows, int cols, real *dst, const real *src, int accumulate)
{
    int row_tiles = (rows + TRANSPOSE_TILE - 1) / TRANSPOSE_TILE;
    int col_tiles = (cols + TRANSPOSE_TILE - 1) / TRANSPOSE_TILE;
    long tiles = (long)n * row_tiles * col_tiles, plane = (long)rows * cols;
#pragma omp parallel for schedule(static) if (plane * n > PLUMB_PAR_MIN)
    for (long t = 0; t < tiles; t++) {
        long s = t / ((long)row_tiles * col_tiles);
        int r0 = (int)(t / col_tiles % row_tiles) * TRANSPOSE_TILE, c0 = (int)(t % col_tiles) * TRANSPOSE_TILE;
        const real *in = src + s * plane;
        real *out = dst + s * plane;
        for (int r = r0; r < r0 + TRANSPOSE_TILE && r < rows; r++)
            for (int c = c0; c < c0 + TRANSPOSE_TILE && c < cols; c++) {
                real v = in[(long)r * cols + c];
                out[(long)c * rows + r] = accumulate ? out[(long)c * rows + r] + v : v;
            }
    }
}

void cpu_nchw_to_nlc_forward(void *ctx, int n, int c, int hw, real *y, const real *x)
{
    (void)ctx;
    transpose_samples(n, c, hw, y, x, 0);
}

void cpu_nchw_to_nlc_backward(void *ctx, int n, int c, int hw, real *dx, const real *dy)
{
    (void)ctx;
    transpose_samples(n, hw, c, dx, dy, 1);
}

void cpu_nlc_to_nchw_forward(void *ctx, int n, int c, int hw, real *y, const real *x)
{
    (void)ctx;
    transpose_samples(n, hw, c, y, x, 0);
}

void cpu_nlc_to_nchw_backward(void *ctx, int n, int c, int hw, real *dx, const real *dy)
{
    (void)ctx;
    transpose_samples(n, c, hw, dx, dy, 1);
}
