/* Optimizers as one fused pass over the flat parameter buffer, the EMA of the weights,
 * and the sum of squares (for gradient-norm clipping). Always float32 master weights
 * and optimizer state, in both precision modes. */
#include <math.h>

#include "reduce.h"

/* torch.optim.SGD: d = g + wd*w; buf = step==1 ? d : momentum*buf + (1-dampening)*d;
 * w -= lr * (nesterov ? d + momentum*buf : buf). With momentum 0, as torch, w -= lr*d and
 * buf is not touched (it may be NULL). */
struct SgdStep {
    real *w, *buf;
    const real *g;
    float lr, momentum, dampening, weight_decay;
    int nesterov, first;
    __device__ void operator()(size_t i) const
    {
        float d = g[i] + weight_decay * w[i];
        if (momentum != 0) {
            float b = first ? d : momentum * buf[i] + (1.0f - dampening) * d;
            buf[i] = b;
            d = nesterov ? d + momentum * b : b;
        }
        w[i] -= lr * d;
    }
};

void gpu_sgd_step(void *ctx, size_t n, real *w, const real *g, real *buf, float lr, float momentum, float dampening,
                  float weight_decay, int nesterov, long step)
{
    launch_foreach(gctx(ctx), n, SgdStep{w, buf, g, lr, momentum, dampening, weight_decay, nesterov, step == 1});
}

/* Adam / AdamW with torch's update w -= (lr/bc1) * m / (sqrt(v)/sqrt(bc2) + eps); the
 * bias corrections are computed once on the host in double. */
struct AdamStep {
    real *w, *m, *v;
    const real *g;
    float beta1, beta2, eps, step_size, bc2_sqrt;
    float l2;    /* coupled weight decay (Adam): g += l2*w */
    float decay; /* decoupled (AdamW): w *= decay */
    __device__ void operator()(size_t i) const
    {
        float wi = w[i] * decay, gi = g[i] + l2 * wi;
        float mi = beta1 * m[i] + (1.0f - beta1) * gi;
        float vi = beta2 * v[i] + (1.0f - beta2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        w[i] = wi - step_size * mi / (sqrtf(vi) / bc2_sqrt + eps);
    }
};

void gpu_adam_step(void *ctx, size_t n, real *w, const real *g, real *m, real *v, float lr, float beta1, float beta2,
                   float eps, float weight_decay, int decoupled, long step)
{
    double bc1 = 1.0 - pow((double)beta1, (double)step), bc2 = 1.0 - pow((double)beta2, (double)step);
    AdamStep a = {w, m, v, g, beta1, beta2, eps, (float)(lr / bc1), (float)sqrt(bc2),
                  decoupled ? 0.0f : weight_decay, decoupled ? 1.0f - lr * weight_decay : 1.0f};
    launch_foreach(gctx(ctx), n, a);
}

struct EmaUpdate {
    real *ema;
    const real *w;
    float decay;
    __device__ void operator()(size_t i) const { ema[i] = decay * ema[i] + (1.0f - decay) * w[i]; }
};

void gpu_ema_update(void *ctx, size_t n, real *ema, const real *w, float decay)
{
    launch_foreach(gctx(ctx), n, EmaUpdate{ema, w, decay});
}

struct SumSquares {
    const real *x;
    real *out;
    __device__ void add(long long, long long i, double *acc) const { acc[0] += (double)x[i] * x[i]; }
    __device__ void done(long long, const double *acc) const { out[0] = (float)acc[0]; }
};

void gpu_sum_squares(void *ctx, size_t n, real *out, const real *x)
{
    segment_reduce<1>(gctx(ctx), 1, (long long)n, SumSquares{x, out});
}
