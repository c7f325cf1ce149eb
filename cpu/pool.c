/* 2x2 pooling with stride 2 (reference). Odd sizes floor, as PyTorch: the last row or
 * column of an odd input is dropped (and receives no gradient). Planes (n*c) run in
 * parallel. */
#include <math.h>

#include "cpu.h"

/* Offset, within the 2x2 window at `x` (row stride w), of its maximum: the first in
 * raster order among equals, a NaN over any number (the rule of PyTorch's CPU kernel). */
static int window_argmax(const real *x, int w)
{
    const int offset[4] = {0, 1, w, w + 1};
    int best = 0;
    for (int k = 1; k < 4; k++) {
        real v = x[offset[k]];
        if (v > x[best] || isnan(v)) best = offset[k];
    }
    return best;
}

void cpu_max_pool2x2_forward(void *ctx, const ImageShape *s, real *y, const real *x)
{
    (void)ctx;
    int ho = s->h / 2, wo = s->w / 2;
    long planes = (long)s->n * s->c;
#pragma omp parallel for schedule(static)
    for (long p = 0; p < planes; p++) {
        const real *xp = x + p * s->h * s->w;
        real *yp = y + p * ho * wo;
        for (int i = 0; i < ho; i++)
            for (int j = 0; j < wo; j++) {
                const real *win = xp + 2 * i * s->w + 2 * j;
                yp[i * wo + j] = win[window_argmax(win, s->w)];
            }
    }
}

/* The gradient goes to the window's argmax, recomputed from the forward input. */
void cpu_max_pool2x2_backward(void *ctx, const ImageShape *s, real *dx, const real *dy, const real *x)
{
    (void)ctx;
    int ho = s->h / 2, wo = s->w / 2;
    long planes = (long)s->n * s->c;
#pragma omp parallel for schedule(static)
    for (long p = 0; p < planes; p++) {
        long base = p * s->h * s->w;
        const real *dyp = dy + p * ho * wo;
        for (int i = 0; i < ho; i++)
            for (int j = 0; j < wo; j++) {
                long at = base + 2 * i * s->w + 2 * j;
                dx[at + window_argmax(x + at, s->w)] += dyp[i * wo + j];
            }
    }
}

void cpu_avg_pool2x2_forward(void *ctx, const ImageShape *s, real *y, const real *x)
{
    (void)ctx;
    int ho = s->h / 2, wo = s->w / 2, w = s->w;
    long planes = (long)s->n * s->c;
#pragma omp parallel for schedule(static)
    for (long p = 0; p < planes; p++) {
        const real *xp = x + p * s->h * w;
        real *yp = y + p * ho * wo;
        for (int i = 0; i < ho; i++)
            for (int j = 0; j < wo; j++) {
                const real *win = xp + 2 * i * w + 2 * j;
                yp[i * wo + j] = (real)0.25 * (win[0] + win[1] + win[w] + win[w + 1]);
            }
    }
}

void cpu_avg_pool2x2_backward(void *ctx, const ImageShape *s, real *dx, const real *dy)
{
    (void)ctx;
    int ho = s->h / 2, wo = s->w / 2, w = s->w;
    long planes = (long)s->n * s->c;
#pragma omp parallel for schedule(static)
    for (long p = 0; p < planes; p++) {
        real *dxp = dx + p * s->h * w;
        const real *dyp = dy + p * ho * wo;
        for (int i = 0; i < ho; i++)
            for (int j = 0; j < wo; j++) {
                real g = (real)0.25 * dyp[i * wo + j];
                real *win = dxp + 2 * i * w + 2 * j;
                win[0] += g;
                win[1] += g;
                win[w] += g;
                win[w + 1] += g;
            }
    }
}
