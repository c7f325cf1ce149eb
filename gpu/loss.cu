/* Losses: a deterministic double-precision sum over all n elements (gpu/reduce.h, one
 * segment), finished on the device so nothing waits for the host; backward is an
 * elementwise pass scaled by `scale`, accumulating into the gradient. */
#include "reduce.h"

/* ------------------------------------------------------------ mean squared error */

struct MseSum {
    const real *pred, *target;
    double n;
    real *loss;
    __device__ void add(long long, long long i, double *acc) const
    {
        double d = (double)pred[i] - target[i];
        acc[0] += d * d;
    }
    __device__ void done(long long, const double *acc) const { loss[0] = (float)(acc[0] / n); }
};

struct MseGrad {
    float k; /* 2 * scale / n */
    real *dpred;
    const real *pred, *target;
    __device__ void operator()(size_t i) const { dpred[i] += k * (pred[i] - target[i]); }
};

void gpu_mse_forward(void *ctx, size_t n, real *loss, const real *pred, const real *target)
{
    segment_reduce<1>(gctx(ctx), 1, (long long)n, MseSum{pred, target, (double)n, loss});
}

void gpu_mse_backward(void *ctx, size_t n, real scale, real *dpred, const real *pred, const real *target)
{
    if (dpred) launch_foreach(gctx(ctx), n, MseGrad{(float)(2.0 * scale / (double)n), dpred, pred, target});
}

/* ------------------------------------------------------------ KL divergence to N(0, 1) */

struct KlSum {
    const real *mean, *logvar;
    double n;
    real *loss;
    __device__ void add(long long, long long i, double *acc) const
    {
        double m = mean[i], lv = logvar[i];
        acc[0] += 1.0 + lv - m * m - exp(lv);
    }
    __device__ void done(long long, const double *acc) const { loss[0] = (float)(-0.5 * acc[0] / n); }
};

struct KlGrad {
    float k; /* scale / n */
    real *dmean, *dlogvar;
    const real *mean, *logvar;
    __device__ void operator()(size_t i) const
    {
        if (dmean) dmean[i] += k * mean[i];
        if (dlogvar) dlogvar[i] += 0.5f * k * (expf(logvar[i]) - 1.0f);
    }
};

void gpu_kl_gauss_forward(void *ctx, size_t n, real *loss, const real *mean, const real *logvar)
{
    segment_reduce<1>(gctx(ctx), 1, (long long)n, KlSum{mean, logvar, (double)n, loss});
}

void gpu_kl_gauss_backward(void *ctx, size_t n, real scale, real *dmean, real *dlogvar, const real *mean,
                           const real *logvar)
{
    if (dmean || dlogvar)
        launch_foreach(gctx(ctx), n, KlGrad{(float)(scale / (double)n), dmean, dlogvar, mean, logvar});
}

/* ------------------------------------------------------------ binary cross-entropy with logits */

struct BceSum {
    const real *logits, *target;
    double n;
    real *loss;
    __device__ void add(long long, long long i, double *acc) const
    {
        double x = logits[i], t = target[i];
        acc[0] += (x > 0 ? x : 0) - x * t + log1p(exp(-fabs(x)));
    }
    __device__ void done(long long, const double *acc) const { loss[0] = (float)(acc[0] / n); }
};

/* sigmoid(x) - t, with the sigmoid formed without overflow for either sign */
struct BceGrad {
    float k; /* scale / n */
    real *dlogits;
    const real *logits, *target;
    __device__ void operator()(size_t i) const
    {
        float x = logits[i], e = expf(-fabsf(x));
        float sig = x >= 0 ? 1.0f / (1.0f + e) : e / (1.0f + e);
        dlogits[i] += k * (sig - target[i]);
    }
};

void gpu_bce_logits_forward(void *ctx, size_t n, real *loss, const real *logits, const real *target)
{
    segment_reduce<1>(gctx(ctx), 1, (long long)n, BceSum{logits, target, (double)n, loss});
}

void gpu_bce_logits_backward(void *ctx, size_t n, real scale, real *dlogits, const real *logits, const real *target)
{
    if (dlogits) launch_foreach(gctx(ctx), n, BceGrad{(float)(scale / (double)n), dlogits, logits, target});
}

/* ------------------------------------------------------------ soft Dice and soft IoU */

/* sums[0..2] = sum(p*t), sum(p), sum(t); the loss too when `loss` is set. */
struct OverlapSums {
    const real *prob, *target;
    double smooth;
    int iou;
    double *sums;
    real *loss;
    __device__ void add(long long, long long i, double *acc) const
    {
        double p = prob[i], t = target[i];
        acc[0] += p * t;
        acc[1] += p;
        acc[2] += t;
    }
    __device__ void done(long long, const double *acc) const
    {
        for (int k = 0; k < 3; k++) sums[k] = acc[k];
        if (!loss) return;
        double inter = acc[0], total = acc[1] + acc[2];
        loss[0] = (float)(iou ? 1.0 - (inter + smooth) / (total - inter + smooth)
                              : 1.0 - (2.0 * inter + smooth) / (total + smooth));
    }
};

/* dprob += scale * d(loss)/dp_i, from the sums. Dice: loss = 1 - A/B with A = 2I+s,
 * B = P+T+s, dA = 2t, dB = 1. IoU: A = I+s, B = P+T-I+s, dA = t, dB = 1-t. */
struct OverlapGrad {
    float scale;
    double smooth;
    int iou;
    const double *sums;
    real *dprob;
    const real *target;
    __device__ void operator()(size_t i) const
    {
        double inter = sums[0], total = sums[1] + sums[2], t = target[i];
        double a = iou ? inter + smooth : 2.0 * inter + smooth;
        double b = iou ? total - inter + smooth : total + smooth;
        double da = iou ? t : 2.0 * t, db = iou ? 1.0 - t : 1.0;
        dprob[i] += (float)(-scale * (da * b - a * db) / (b * b));
    }
};

static void overlap_forward(void *ctx, size_t n, real smooth, real *loss, const real *prob, const real *target,
                            int iou)
{
    GpuCtx *g = gctx(ctx);
    ArenaScope scope(g);
    double *sums = ws_array<double>(g, 3);
    segment_reduce<3>(g, 1, (long long)n, OverlapSums{prob, target, smooth, iou, sums, loss});
}

static void overlap_backward(void *ctx, size_t n, real smooth, real scale, real *dprob, const real *prob,
                             const real *target, int iou)
{
    if (!dprob) return;
    GpuCtx *g = gctx(ctx);
    ArenaScope scope(g);
    double *sums = ws_array<double>(g, 3);
    segment_reduce<3>(g, 1, (long long)n, OverlapSums{prob, target, smooth, iou, sums, NULL});
    launch_foreach(g, n, OverlapGrad{scale, smooth, iou, sums, dprob, target});
}

void gpu_soft_dice_forward(void *ctx, size_t n, real smooth, real *loss, const real *prob, const real *target)
{
    overlap_forward(ctx, n, smooth, loss, prob, target, 0);
}

void gpu_soft_dice_backward(void *ctx, size_t n, real smooth, real scale, real *dprob, const real *prob,
                            const real *target)
{
    overlap_backward(ctx, n, smooth, scale, dprob, prob, target, 0);
}

void gpu_soft_iou_forward(void *ctx, size_t n, real smooth, real *loss, const real *prob, const real *target)
{
    overlap_forward(ctx, n, smooth, loss, prob, target, 1);
}

void gpu_soft_iou_backward(void *ctx, size_t n, real smooth, real scale, real *dprob, const real *prob,
                           const real *target)
{
    overlap_backward(ctx, n, smooth, scale, dprob, prob, target, 1);
}
