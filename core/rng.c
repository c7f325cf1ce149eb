#include "rng.h"

#include <math.h>

#include "philox.h"

void rng_fill_uniform(float *x, size_t n, float lo, float hi, uint64_t seed, uint64_t stream, uint64_t offset)
{
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++)
        x[i] = lo + (hi - lo) * philox_uniform(seed, stream, offset + i);
}

void rng_fill_normal(float *x, size_t n, float mean, float std, uint64_t seed, uint64_t stream, uint64_t offset)
{
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++)
        x[i] = mean + std * philox_normal(seed, stream, offset + i);
}

void rng_fill_uniform_f64(double *x, size_t n, double lo, double hi, uint64_t seed, uint64_t stream, uint64_t offset)
{
    for (size_t i = 0; i < n; i++)
        x[i] = lo + (hi - lo) * (double)philox_uniform(seed, stream, offset + i);
}

void rng_fill_normal_f64(double *x, size_t n, double mean, double std, uint64_t seed, uint64_t stream, uint64_t offset)
{
    for (size_t i = 0; i < n; i++)
        x[i] = mean + std * (double)philox_normal(seed, stream, offset + i);
}
