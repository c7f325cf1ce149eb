/* The VAE's reparameterization (reference): z = mean + exp(clamp(logvar, -30, 20) / 2) * eps.
 * Backward: dmean += dz; dlogvar += dz * eps * exp(logvar / 2) / 2 where logvar lies in
 * [-30, 20] (bounds included, as torch.clamp's gradient), nothing where it was clamped. */
#include <tgmath.h>

#include "cpu.h"

#define LOGVAR_MIN -30
#define LOGVAR_MAX 20
#define PAR_MIN 32768 /* below this many elements a loop runs on one thread */

void cpu_reparameterize_forward(void *ctx, size_t n, real *z, const real *mean, const real *logvar, const real *eps)
{
    (void)ctx;
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        real lv = fmin(fmax(logvar[i], (real)LOGVAR_MIN), (real)LOGVAR_MAX);
        z[i] = mean[i] + exp((real)0.5 * lv) * eps[i];
    }
}

void cpu_reparameterize_backward(void *ctx, size_t n, real *dmean, real *dlogvar, const real *dz,
                                 const real *logvar, const real *eps)
{
    if (dmean) cpu_axpy(ctx, n, 1, dz, dmean);
    if (!dlogvar) return;
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        real lv = logvar[i];
        if (lv >= LOGVAR_MIN && lv <= LOGVAR_MAX) dlogvar[i] += dz[i] * eps[i] * (real)0.5 * exp((real)0.5 * lv);
    }
}
