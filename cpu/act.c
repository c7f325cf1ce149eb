/* Elementwise activations (reference). Backward reads the forward input x. */
#include <math.h>

#include "cpu.h"

static real act_value(Act act, real slope, real x)
{
    switch (act) {
    case ACT_RELU: return x > 0 ? x : 0;
    case ACT_LEAKY_RELU: return x > 0 ? x : slope * x;
    case ACT_SILU: return x / (1 + exp(-x));
    case ACT_GELU_ERF: return (real)0.5 * x * (1 + erf(x * (real)M_SQRT1_2));
    case ACT_GELU_TANH: {
        real k = (real)0.7978845608028654; /* sqrt(2/pi) */
        return (real)0.5 * x * (1 + tanh(k * (x + (real)0.044715 * x * x * x)));
    }
    case ACT_SIGMOID: return 1 / (1 + exp(-x));
    case ACT_TANH: return tanh(x);
    }
    return 0;
}

static real act_derivative(Act act, real slope, real x)
{
    switch (act) {
    case ACT_RELU: return x > 0 ? 1 : 0;
    case ACT_LEAKY_RELU: return x > 0 ? 1 : slope;
    case ACT_SILU: {
        real s = 1 / (1 + exp(-x));
        return s * (1 + x * (1 - s));
    }
    case ACT_GELU_ERF: {
        real cdf = (real)0.5 * (1 + erf(x * (real)M_SQRT1_2));
        real pdf = exp((real)-0.5 * x * x) * (real)0.3989422804014327; /* 1/sqrt(2 pi) */
        return cdf + x * pdf;
    }
    case ACT_GELU_TANH: {
        real k = (real)0.7978845608028654, c = (real)0.044715;
        real th = tanh(k * (x + c * x * x * x));
        return (real)0.5 * (1 + th) + (real)0.5 * x * (1 - th * th) * k * (1 + 3 * c * x * x);
    }
    case ACT_SIGMOID: {
        real s = 1 / (1 + exp(-x));
        return s * (1 - s);
    }
    case ACT_TANH: {
        real t = tanh(x);
        return 1 - t * t;
    }
    }
    return 0;
}

void cpu_act_forward(void *ctx, Act act, float slope, size_t n, real *y, const real *x)
{
    (void)ctx;
#pragma omp parallel for schedule(static) if (n > 32768)
    for (size_t i = 0; i < n; i++) y[i] = act_value(act, slope, x[i]);
}

void cpu_act_backward(void *ctx, Act act, float slope, size_t n, real *dx, const real *dy, const real *x)
{
    (void)ctx;
#pragma omp parallel for schedule(static) if (n > 32768)
    for (size_t i = 0; i < n; i++) dx[i] += dy[i] * act_derivative(act, slope, x[i]);
}
