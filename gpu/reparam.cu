/* The VAE's reparameterization z = mean + exp(clamp(logvar, -30, 20) / 2) * eps and its
 * backward (ops/ops.h): one thread per element; NULL gradients are skipped. */
#include "internal.h"

#define LOGVAR_MIN -30.0f
#define LOGVAR_MAX 20.0f

struct ReparamForward {
    real *z;
    const real *mean, *logvar, *eps;
    __device__ void operator()(size_t i) const
    {
        float lv = fminf(fmaxf(logvar[i], LOGVAR_MIN), LOGVAR_MAX);
        z[i] = mean[i] + expf(0.5f * lv) * eps[i];
    }
};

/* dz/dlogvar = eps * exp(lv/2) / 2 inside the clamp range (bounds included, as
 * torch.clamp's gradient), 0 outside. */
struct ReparamLogvarGrad {
    real *dlogvar;
    const real *dz, *logvar, *eps;
    __device__ void operator()(size_t i) const
    {
        float lv = logvar[i];
        if (lv >= LOGVAR_MIN && lv <= LOGVAR_MAX) dlogvar[i] += dz[i] * eps[i] * 0.5f * expf(0.5f * lv);
    }
};

void gpu_reparameterize_forward(void *ctx, size_t n, real *z, const real *mean, const real *logvar, const real *eps)
{
    launch_foreach(gctx(ctx), n, ReparamForward{z, mean, logvar, eps});
}

void gpu_reparameterize_backward(void *ctx, size_t n, real *dmean, real *dlogvar, const real *dz,
                                 const real *logvar, const real *eps)
{
    if (dmean) gpu_axpy(ctx, n, 1.0f, dz, dmean);
    if (dlogvar) launch_foreach(gctx(ctx), n, ReparamLogvarGrad{dlogvar, dz, logvar, eps});
}
