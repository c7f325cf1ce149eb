/* Group normalization (reference). With NCHW, the cpg = c/groups channels of one
 * (sample, group) are one contiguous block of cpg*hw values: statistics per block in
 * double, OpenMP across blocks; the dgamma/dbeta reductions run across channel blocks.
 * cpu/layer_norm.c reuses these functions (layer norm = group norm with hw = 1, groups = 1). */
#include <tgmath.h>

#include "cpu.h"

#define CHANNEL_BLOCK 16 /* channels per task of the dgamma/dbeta reduction */

/* Mean and biased variance of p[0..len), two passes in double. */
static void block_stats(const real *p, size_t len, double *mean, double *var)
{
    double sum = 0;
    for (size_t j = 0; j < len; j++) sum += p[j];
    double m = sum / (double)len, sq = 0;
    for (size_t j = 0; j < len; j++) sq += (p[j] - m) * (p[j] - m);
    *mean = m;
    *var = sq / (double)len;
}

void cpu_group_norm_forward(void *ctx, const GroupNormShape *s, real *y, const real *x, const real *gamma,
                            const real *beta, real *save_mean, real *save_rstd)
{
    (void)ctx;
    const int cpg = s->c / s->groups, blocks = s->n * s->groups;
    const size_t len = (size_t)cpg * s->hw;
#pragma omp parallel for schedule(static)
    for (int b = 0; b < blocks; b++) {
        const size_t off = (size_t)b * len;
        double mean, var;
        block_stats(x + off, len, &mean, &var);
        const real m = (real)mean, rstd = (real)(1.0 / sqrt(var + s->eps));
        save_mean[b] = m;
        save_rstd[b] = rstd;
        for (int k = 0; k < cpg; k++) {
            const int ch = (b % s->groups) * cpg + k;
            const real scale = rstd * gamma[ch], shift = beta[ch];
            const size_t o = off + (size_t)k * s->hw;
            for (int j = 0; j < s->hw; j++) y[o + j] = (x[o + j] - m) * scale + shift;
        }
    }
}

/* dgamma[ch] += sum dy*xhat, dbeta[ch] += sum dy over samples and positions. */
static void group_norm_param_grads(const GroupNormShape *s, real *dgamma, real *dbeta, const real *dy,
                                   const real *x, const real *save_mean, const real *save_rstd)
{
    const int cpg = s->c / s->groups;
#pragma omp parallel for schedule(static)
    for (int c0 = 0; c0 < s->c; c0 += CHANNEL_BLOCK) {
        const int c1 = c0 + CHANNEL_BLOCK < s->c ? c0 + CHANNEL_BLOCK : s->c;
        double sg[CHANNEL_BLOCK] = {0}, sb[CHANNEL_BLOCK] = {0};
        for (int i = 0; i < s->n; i++)
            for (int ch = c0; ch < c1; ch++) {
                const int b = i * s->groups + ch / cpg;
                const real m = save_mean[b], rstd = save_rstd[b];
                const size_t o = ((size_t)i * s->c + ch) * s->hw;
                for (int j = 0; j < s->hw; j++) {
                    sb[ch - c0] += dy[o + j];
                    sg[ch - c0] += dy[o + j] * ((x[o + j] - m) * rstd);
                }
            }
        for (int ch = c0; ch < c1; ch++) {
            if (dgamma) dgamma[ch] += (real)sg[ch - c0];
            if (dbeta) dbeta[ch] += (real)sb[ch - c0];
        }
    }
}

/* dx of one block: with g = dy*gamma, dx = rstd * (g - mean(g) - xhat * mean(g * xhat)). */
static void group_norm_block_dx(const GroupNormShape *s, int b, real *dx, const real *dy, const real *x,
                                const real *gamma, real m, real rstd)
{
    const int cpg = s->c / s->groups, ch0 = (b % s->groups) * cpg;
    const size_t len = (size_t)cpg * s->hw, off = (size_t)b * len;
    double sum_g = 0, sum_gx = 0;
    for (int k = 0; k < cpg; k++) {
        const size_t o = off + (size_t)k * s->hw;
        for (int j = 0; j < s->hw; j++) {
            real g = dy[o + j] * gamma[ch0 + k];
            sum_g += g;
            sum_gx += g * ((x[o + j] - m) * rstd);
        }
    }
    const real mg = (real)(sum_g / (double)len), mgx = (real)(sum_gx / (double)len);
    for (int k = 0; k < cpg; k++) {
        const size_t o = off + (size_t)k * s->hw;
        const real gam = gamma[ch0 + k];
        for (int j = 0; j < s->hw; j++)
            dx[o + j] += rstd * (dy[o + j] * gam - mg - (x[o + j] - m) * rstd * mgx);
    }
}

void cpu_group_norm_backward(void *ctx, const GroupNormShape *s, real *dx, real *dgamma, real *dbeta, const real *dy,
                             const real *x, const real *gamma, const real *save_mean, const real *save_rstd)
{
    (void)ctx;
    if (dgamma || dbeta) group_norm_param_grads(s, dgamma, dbeta, dy, x, save_mean, save_rstd);
    if (!dx) return;
    const int blocks = s->n * s->groups;
#pragma omp parallel for schedule(static)
    for (int b = 0; b < blocks; b++) group_norm_block_dx(s, b, dx, dy, x, gamma, save_mean[b], save_rstd[b]);
}
