/* Elementwise arithmetic on flat buffers (reference). */
#include "cpu.h"

/* Below this many elements a parallel region costs more than it saves. */
#define ARITH_PAR_MIN 32768

void cpu_add_forward(void *ctx, size_t n, real *y, const real *a, const real *b)
{
    (void)ctx;
#pragma omp parallel for schedule(static) if (n > ARITH_PAR_MIN)
    for (size_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

void cpu_axpy(void *ctx, size_t n, real alpha, const real *x, real *y)
{
    (void)ctx;
#pragma omp parallel for schedule(static) if (n > ARITH_PAR_MIN)
    for (size_t i = 0; i < n; i++) y[i] += alpha * x[i];
}

void cpu_scale(void *ctx, size_t n, real alpha, real *x)
{
    (void)ctx;
#pragma omp parallel for schedule(static) if (n > ARITH_PAR_MIN)
    for (size_t i = 0; i < n; i++) x[i] *= alpha;
}
