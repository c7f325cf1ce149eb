/* Batch normalization (reference): statistics per channel over (n, hw), accumulated in
 * double; OpenMP across channels. */
#include <tgmath.h>

#include "cpu.h"

/* Mean and biased variance of channel ch, two passes in double. */
static void channel_stats(const BatchNormShape *s, const real *x, int ch, double *mean, double *var)
{
    const size_t chw = (size_t)s->c * s->hw;
    double sum = 0;
    for (int i = 0; i < s->n; i++) {
        const real *p = x + i * chw + (size_t)ch * s->hw;
        for (int j = 0; j < s->hw; j++) sum += p[j];
    }
    const double count = (double)s->n * s->hw;
    double m = sum / count, sq = 0;
    for (int i = 0; i < s->n; i++) {
        const real *p = x + i * chw + (size_t)ch * s->hw;
        for (int j = 0; j < s->hw; j++) sq += (p[j] - m) * (p[j] - m);
    }
    *mean = m;
    *var = sq / count;
}

/* y = (x - mean) * rstd * gamma + beta over channel ch. */
static void channel_normalize(const BatchNormShape *s, real *y, const real *x, int ch, real mean, real rstd,
                              real gamma, real beta)
{
    const size_t chw = (size_t)s->c * s->hw;
    const real k = rstd * gamma;
    for (int i = 0; i < s->n; i++) {
        size_t off = i * chw + (size_t)ch * s->hw;
        for (int j = 0; j < s->hw; j++) y[off + j] = (x[off + j] - mean) * k + beta;
    }
}

void cpu_batch_norm_forward_train(void *ctx, const BatchNormShape *s, real *y, const real *x, const real *gamma,
                                  const real *beta, real *save_mean, real *save_rstd, real *running_mean,
                                  real *running_var)
{
    (void)ctx;
    const double count = (double)s->n * s->hw, m = s->momentum;
#pragma omp parallel for schedule(static)
    for (int ch = 0; ch < s->c; ch++) {
        double mean, var;
        channel_stats(s, x, ch, &mean, &var);
        double rstd = 1.0 / sqrt(var + s->eps);
        save_mean[ch] = (real)mean;
        save_rstd[ch] = (real)rstd;
        /* running_var takes the unbiased variance (shape check guarantees count >= 2) */
        running_mean[ch] = (real)((1 - m) * running_mean[ch] + m * mean);
        running_var[ch] = (real)((1 - m) * running_var[ch] + m * var * count / (count - 1));
        channel_normalize(s, y, x, ch, (real)mean, (real)rstd, gamma[ch], beta[ch]);
    }
}

void cpu_batch_norm_forward_eval(void *ctx, const BatchNormShape *s, real *y, const real *x, const real *gamma,
                                 const real *beta, const real *running_mean, const real *running_var)
{
    (void)ctx;
#pragma omp parallel for schedule(static)
    for (int ch = 0; ch < s->c; ch++) {
        real rstd = (real)(1.0 / sqrt((double)running_var[ch] + s->eps));
        channel_normalize(s, y, x, ch, running_mean[ch], rstd, gamma[ch], beta[ch]);
    }
}

/* sum(dy) and sum(dy * xhat) of channel ch, in double. */
static void channel_grad_sums(const BatchNormShape *s, const real *dy, const real *x, int ch, real mean, real rstd,
                              double *sum_dy, double *sum_dy_xhat)
{
    const size_t chw = (size_t)s->c * s->hw;
    double a = 0, b = 0;
    for (int i = 0; i < s->n; i++) {
        size_t off = i * chw + (size_t)ch * s->hw;
        for (int j = 0; j < s->hw; j++) {
            a += dy[off + j];
            b += dy[off + j] * ((x[off + j] - mean) * rstd);
        }
    }
    *sum_dy = a;
    *sum_dy_xhat = b;
}

/* Training-mode backward (the batch statistics depend on x):
 * dx = gamma * rstd * (dy - mean(dy) - xhat * mean(dy * xhat)). */
void cpu_batch_norm_backward(void *ctx, const BatchNormShape *s, real *dx, real *dgamma, real *dbeta, const real *dy,
                             const real *x, const real *gamma, const real *save_mean, const real *save_rstd)
{
    (void)ctx;
    const size_t chw = (size_t)s->c * s->hw;
    const double count = (double)s->n * s->hw;
#pragma omp parallel for schedule(static)
    for (int ch = 0; ch < s->c; ch++) {
        const real mean = save_mean[ch], rstd = save_rstd[ch];
        double sum_dy, sum_dy_xhat;
        channel_grad_sums(s, dy, x, ch, mean, rstd, &sum_dy, &sum_dy_xhat);
        if (dgamma) dgamma[ch] += (real)sum_dy_xhat;
        if (dbeta) dbeta[ch] += (real)sum_dy;
        if (!dx) continue;
        const real k = gamma[ch] * rstd, mdy = (real)(sum_dy / count), mdyx = (real)(sum_dy_xhat / count);
        for (int i = 0; i < s->n; i++) {
            size_t off = i * chw + (size_t)ch * s->hw;
            for (int j = 0; j < s->hw; j++) {
                real xhat = (x[off + j] - mean) * rstd;
                dx[off + j] += k * (dy[off + j] - mdy - xhat * mdyx);
            }
        }
    }
}
