/* linear (reference): y = x W^T + b on cpu_gemm; backward accumulates. */
#include "cpu.h"

void cpu_linear_forward(void *ctx, const LinearShape *s, real *y, const real *x, const real *w, const real *b)
{
    (void)ctx;
    cpu_gemm(0, 1, s->rows, s->out, s->in, 1, x, s->in, w, s->in, 0, y, s->out);
    if (!b) return;
#pragma omp parallel for schedule(static) if ((long)s->rows * s->out > 65536)
    for (int r = 0; r < s->rows; r++)
        for (int o = 0; o < s->out; o++) y[(size_t)r * s->out + o] += b[o];
}

/* db[o] += sum over rows of dy[r, o], in double, a block of columns per thread so that
 * the rows are read along their length. */
#define BIAS_BLOCK 64
static void bias_grad(const LinearShape *s, real *db, const real *dy)
{
#pragma omp parallel for schedule(static) if ((long)s->rows * s->out > 65536)
    for (int o0 = 0; o0 < s->out; o0 += BIAS_BLOCK) {
        int nb = s->out - o0 < BIAS_BLOCK ? s->out - o0 : BIAS_BLOCK;
        double acc[BIAS_BLOCK] = {0};
        for (int r = 0; r < s->rows; r++)
            for (int o = 0; o < nb; o++) acc[o] += dy[(size_t)r * s->out + o0 + o];
        for (int o = 0; o < nb; o++) db[o0 + o] += (real)acc[o];
    }
}

void cpu_linear_backward(void *ctx, const LinearShape *s, real *dx, real *dw, real *db, const real *dy, const real *x,
                         const real *w)
{
    (void)ctx;
    if (dx) cpu_gemm(0, 0, s->rows, s->in, s->out, 1, dy, s->out, w, s->in, 1, dx, s->in);
    if (dw) cpu_gemm(1, 0, s->out, s->in, s->rows, 1, dy, s->out, x, s->in, 1, dw, s->in);
    if (db) bias_grad(s, db, dy);
}
