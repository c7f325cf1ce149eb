/* Resampling (reference): the 3x3 binomial blur used for anti-aliased downsampling and
 * nearest-neighbour 2x upsampling. Planes (n*c) run in parallel. */
#include "cpu.h"

/* Reflect padding of 1 (PyTorch's mode='reflect'): -1 -> 1, n -> n-2. Needs n >= 2. */
static int reflect(int i, int n) { return i < 0 ? -i : i >= n ? 2 * n - 2 - i : i; }

/* Binomial taps [1 2 1] / 4 per axis; the 2-D kernel is their outer product. */
static const real BLUR_TAP[3] = {(real)0.25, (real)0.5, (real)0.25};

/* Blurred value at output (oi, oj) of one h x w plane. */
static real blur_at(const real *x, int h, int w, int stride, int oi, int oj)
{
    real sum = 0;
    for (int a = 0; a < 3; a++) {
        const real *row = x + (long)reflect(oi * stride + a - 1, h) * w;
        real acc = 0;
        for (int b = 0; b < 3; b++) acc += BLUR_TAP[b] * row[reflect(oj * stride + b - 1, w)];
        sum += BLUR_TAP[a] * acc;
    }
    return sum;
}

void cpu_blur3x3_forward(void *ctx, const ImageShape *s, int stride, real *y, const real *x)
{
    (void)ctx;
    int ho = blur3x3_out(s->h, stride), wo = blur3x3_out(s->w, stride);
    long planes = (long)s->n * s->c;
#pragma omp parallel for schedule(static)
    for (long p = 0; p < planes; p++) {
        const real *xp = x + p * s->h * s->w;
        real *yp = y + p * ho * wo;
        for (int i = 0; i < ho; i++)
            for (int j = 0; j < wo; j++) yp[i * wo + j] = blur_at(xp, s->h, s->w, stride, i, j);
    }
}

/* The transpose of the forward: each output gradient is scattered back over its 3x3
 * taps (reflected taps land on the mirrored pixel, so edge pixels may receive twice). */
void cpu_blur3x3_backward(void *ctx, const ImageShape *s, int stride, real *dx, const real *dy)
{
    (void)ctx;
    int ho = blur3x3_out(s->h, stride), wo = blur3x3_out(s->w, stride);
    long planes = (long)s->n * s->c;
#pragma omp parallel for schedule(static)
    for (long p = 0; p < planes; p++) {
        real *dxp = dx + p * s->h * s->w;
        const real *dyp = dy + p * ho * wo;
        for (int i = 0; i < ho; i++)
            for (int j = 0; j < wo; j++)
                for (int a = 0; a < 3; a++) {
                    real *row = dxp + (long)reflect(i * stride + a - 1, s->h) * s->w;
                    real g = BLUR_TAP[a] * dyp[i * wo + j];
                    for (int b = 0; b < 3; b++) row[reflect(j * stride + b - 1, s->w)] += BLUR_TAP[b] * g;
                }
    }
}

void cpu_upsample2x_forward(void *ctx, const ImageShape *s, real *y, const real *x)
{
    (void)ctx;
    int h = s->h, w = s->w;
    long planes = (long)s->n * s->c;
#pragma omp parallel for schedule(static)
    for (long p = 0; p < planes; p++) {
        const real *xp = x + p * h * w;
        real *yp = y + p * 4 * h * w;
        for (int i = 0; i < 2 * h; i++)
            for (int j = 0; j < 2 * w; j++) yp[(long)i * 2 * w + j] = xp[(i / 2) * w + j / 2];
    }
}

void cpu_upsample2x_backward(void *ctx, const ImageShape *s, real *dx, const real *dy)
{
    (void)ctx;
    int h = s->h, w = s->w;
    long planes = (long)s->n * s->c;
#pragma omp parallel for schedule(static)
    for (long p = 0; p < planes; p++) {
        real *dxp = dx + p * h * w;
        const real *dyp = dy + p * 4 * h * w;
        for (int i = 0; i < h; i++)
            for (int j = 0; j < w; j++) {
                const real *win = dyp + (long)2 * i * 2 * w + 2 * j;
                dxp[i * w + j] += win[0] + win[1] + win[2 * w] + win[2 * w + 1];
            }
    }
}
