/* Optimizer steps, EMA and the sum of squares (reference), one pass over a flat buffer. */
#include <tgmath.h>

#include "cpu.h"

#define PAR_MIN 32768 /* below this many elements a loop runs on one thread */

/* torch.optim.SGD. With momentum == 0 torch keeps no buffer and ignores dampening:
 * w -= lr * g, and buf is not touched (it may be NULL then). */
void cpu_sgd_step(void *ctx, size_t n, real *w, const real *g, real *buf, float lr, float momentum, float dampening,
                  float weight_decay, int nesterov, long step)
{
    (void)ctx;
    const real mom = momentum, keep = 1 - dampening, wd = weight_decay;
    const int first = step == 1;
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        real d = g[i] + wd * w[i];
        if (mom != 0) {
            real b = first ? d : mom * buf[i] + keep * d;
            buf[i] = b;
            d = nesterov ? d + mom * b : b;
        }
        w[i] -= lr * d;
    }
}

/* torch.optim.Adam / AdamW (1.13, single-tensor path). */
void cpu_adam_step(void *ctx, size_t n, real *w, const real *g, real *m, real *v, float lr, float beta1, float beta2,
                   float eps, float weight_decay, int decoupled, long step)
{
    (void)ctx;
    const double bc1 = 1 - pow(beta1, (double)step), bc2 = 1 - pow(beta2, (double)step);
    const real step_size = (real)(lr / bc1), bc2_sqrt = (real)sqrt(bc2);
    const real b1 = beta1, b2 = beta2, wd = weight_decay;
    const real l2 = decoupled ? 0 : wd, shrink = decoupled ? 1 - lr * wd : 1;
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        real wi = w[i] * shrink, gi = g[i] + l2 * wi;
        real mi = b1 * m[i] + (1 - b1) * gi;
        real vi = b2 * v[i] + (1 - b2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        w[i] = wi - step_size * mi / (sqrt(vi) / bc2_sqrt + eps);
    }
}

void cpu_ema_update(void *ctx, size_t n, real *ema, const real *w, float decay)
{
    (void)ctx;
    const real d = decay, k = 1 - d;
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) ema[i] = d * ema[i] + k * w[i];
}

void cpu_sum_squares(void *ctx, size_t n, real *out, const real *x)
{
    (void)ctx;
    double sum = 0;
#pragma omp parallel for reduction(+ : sum) schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) sum += (double)x[i] * x[i];
    out[0] = (real)sum;
}
