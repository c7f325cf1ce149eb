/* Layer normalization (reference) over the last dimension of x [rows, dim]. It is
 * exactly group normalization of [n = rows, c = dim, hw = 1] with one group: statistics
 * per row, gamma/beta per element of the row; so it runs cpu/group_norm.c. */
#include "cpu.h"

static GroupNormShape as_group_norm(const LayerNormShape *s)
{
    GroupNormShape g = {.n = s->rows, .c = s->dim, .hw = 1, .groups = 1, .eps = s->eps};
    return g;
}

void cpu_layer_norm_forward(void *ctx, const LayerNormShape *s, real *y, const real *x, const real *gamma,
                            const real *beta, real *save_mean, real *save_rstd)
{
    GroupNormShape g = as_group_norm(s);
    cpu_group_norm_forward(ctx, &g, y, x, gamma, beta, save_mean, save_rstd);
}

void cpu_layer_norm_backward(void *ctx, const LayerNormShape *s, real *dx, real *dgamma, real *dbeta, const real *dy,
                             const real *x, const real *gamma, const real *save_mean, const real *save_rstd)
{
    GroupNormShape g = as_group_norm(s);
    cpu_group_norm_backward(ctx, &g, dx, dgamma, dbeta, dy, x, gamma, save_mean, save_rstd);
}
