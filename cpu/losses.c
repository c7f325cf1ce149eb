/* Losses (reference): reductions over all n elements in double, the loss written to
 * loss[0]; backward accumulates scale * dloss/dinput. */
#include <tgmath.h>

#include "cpu.h"

#define PAR_MIN 32768 /* below this many elements a loop runs on one thread */

void cpu_mse_forward(void *ctx, size_t n, real *loss, const real *pred, const real *target)
{
    (void)ctx;
    double sum = 0;
#pragma omp parallel for reduction(+ : sum) schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        double d = (double)pred[i] - target[i];
        sum += d * d;
    }
    loss[0] = (real)(sum / (double)n);
}

void cpu_mse_backward(void *ctx, size_t n, real scale, real *dpred, const real *pred, const real *target)
{
    (void)ctx;
    const real k = (real)(2.0 * scale / (double)n);
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) dpred[i] += k * (pred[i] - target[i]);
}

void cpu_kl_gauss_forward(void *ctx, size_t n, real *loss, const real *mean, const real *logvar)
{
    (void)ctx;
    double sum = 0;
#pragma omp parallel for reduction(+ : sum) schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        double m = mean[i], lv = logvar[i];
        sum += 1 + lv - m * m - exp(lv);
    }
    loss[0] = (real)(-0.5 * sum / (double)n);
}

void cpu_kl_gauss_backward(void *ctx, size_t n, real scale, real *dmean, real *dlogvar, const real *mean,
                           const real *logvar)
{
    (void)ctx;
    const real k = (real)(scale / (double)n);
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        if (dmean) dmean[i] += k * mean[i];
        if (dlogvar) dlogvar[i] += k * (real)0.5 * (exp(logvar[i]) - 1);
    }
}

void cpu_bce_logits_forward(void *ctx, size_t n, real *loss, const real *logits, const real *target)
{
    (void)ctx;
    double sum = 0;
#pragma omp parallel for reduction(+ : sum) schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        double x = logits[i];
        sum += fmax(x, 0) - x * target[i] + log1p(exp(-fabs(x)));
    }
    loss[0] = (real)(sum / (double)n);
}

/* d/dx = sigmoid(x) - t, with sigmoid evaluated without overflow for either sign. */
void cpu_bce_logits_backward(void *ctx, size_t n, real scale, real *dlogits, const real *logits, const real *target)
{
    (void)ctx;
    const real k = (real)(scale / (double)n);
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        real x = logits[i], e = exp(-fabs(x));
        real sig = x >= 0 ? 1 / (1 + e) : e / (1 + e);
        dlogits[i] += k * (sig - target[i]);
    }
}

/* The three sums soft Dice and IoU are made of: sum(p*t), sum(p), sum(t). */
typedef struct { double pt, p, t; } OverlapSums;

static OverlapSums overlap_sums(size_t n, const real *prob, const real *target)
{
    double pt = 0, p = 0, t = 0;
#pragma omp parallel for reduction(+ : pt, p, t) schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        pt += (double)prob[i] * target[i];
        p += prob[i];
        t += target[i];
    }
    OverlapSums s = {pt, p, t};
    return s;
}

void cpu_soft_dice_forward(void *ctx, size_t n, real smooth, real *loss, const real *prob, const real *target)
{
    (void)ctx;
    OverlapSums s = overlap_sums(n, prob, target);
    loss[0] = (real)(1 - (2 * s.pt + smooth) / (s.p + s.t + smooth));
}

/* With num = 2I + s, den = P + T + s: dL/dp_i = (num - 2 t_i den) / den^2. */
void cpu_soft_dice_backward(void *ctx, size_t n, real smooth, real scale, real *dprob, const real *prob,
                            const real *target)
{
    (void)ctx;
    OverlapSums s = overlap_sums(n, prob, target);
    const double num = 2 * s.pt + smooth, den = s.p + s.t + smooth;
    const real a = (real)(scale * num / (den * den)), b = (real)(scale * 2 / den);
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) dprob[i] += a - b * target[i];
}

void cpu_soft_iou_forward(void *ctx, size_t n, real smooth, real *loss, const real *prob, const real *target)
{
    (void)ctx;
    OverlapSums s = overlap_sums(n, prob, target);
    loss[0] = (real)(1 - (s.pt + smooth) / (s.p + s.t - s.pt + smooth));
}

/* With num = I + s, den = P + T - I + s: dL/dp_i = (num (1 - t_i) - t_i den) / den^2. */
void cpu_soft_iou_backward(void *ctx, size_t n, real smooth, real scale, real *dprob, const real *prob,
                           const real *target)
{
    (void)ctx;
    OverlapSums s = overlap_sums(n, prob, target);
    const double num = s.pt + smooth, den = s.p + s.t - s.pt + smooth;
    const real a = (real)(scale * num / (den * den)), b = (real)(scale * (num + den) / (den * den));
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) dprob[i] += a - b * target[i];
}
