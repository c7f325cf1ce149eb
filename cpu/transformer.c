/* Transformer pieces (reference): GeGLU and the sinusoidal timestep embedding. */
#include <math.h>
#include <omp.h>

#include "cpu.h"

/* GeGLU: row r of x is [a | g] (dim each); y = a * gelu_erf(g). The GELU itself is the
 * activation operator's (cpu/act.c), applied one row at a time. */
void cpu_geglu_forward(void *ctx, int rows, int dim, real *y, const real *x)
{
#pragma omp parallel for schedule(static) if ((long)rows * dim > 32768)
    for (int r = 0; r < rows; r++) {
        const real *a = x + (long)r * 2 * dim;
        real *yr = y + (long)r * dim;
        cpu_act_forward(ctx, ACT_GELU_ERF, 0, (size_t)dim, yr, a + dim);
        for (int i = 0; i < dim; i++) yr[i] *= a[i];
    }
}

/* da += dy * gelu(g); dg += (dy * a) * gelu'(g), with one row of scratch per thread. */
void cpu_geglu_backward(void *ctx, int rows, int dim, real *dx, const real *dy, const real *x)
{
    real *scratch = cpu_scratch(ctx, (size_t)dim * omp_get_max_threads());
#pragma omp parallel for schedule(static) if ((long)rows * dim > 32768)
    for (int r = 0; r < rows; r++) {
        const real *a = x + (long)r * 2 * dim, *g = a + dim, *dyr = dy + (long)r * dim;
        real *da = dx + (long)r * 2 * dim, *dg = da + dim;
        real *tmp = scratch + (long)omp_get_thread_num() * dim;
        cpu_act_forward(ctx, ACT_GELU_ERF, 0, (size_t)dim, tmp, g);
        for (int i = 0; i < dim; i++) {
            da[i] += dyr[i] * tmp[i];
            tmp[i] = dyr[i] * a[i];
        }
        cpu_act_backward(ctx, ACT_GELU_ERF, 0, (size_t)dim, dg, tmp, g);
    }
}

/* y[b] = [cos(t f_0), .., cos(t f_{half-1}), sin(t f_0), ..], f_i = 10000^(-i/half).
 * Arguments reach ~1000 rad, so they are formed in double: in float the phase alone
 * would be off by up to ~6e-5. An odd dim leaves one column, set to zero (diffusers). */
void cpu_timestep_embedding(void *ctx, int n, int dim, real *y, const real *t)
{
    (void)ctx;
    int half = dim / 2;
    for (int b = 0; b < n; b++) {
        real *yb = y + (long)b * dim;
        for (int i = 0; i < half; i++) {
            double phase = (double)t[b] * exp(-log(10000.0) * i / half);
            yb[i] = (real)cos(phase);
            yb[half + i] = (real)sin(phase);
        }
        if (dim % 2) yb[dim - 1] = 0;
    }
}
