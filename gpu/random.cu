/* Random fills from the Philox streams of core/philox.h: value i of the buffer is value
 * (offset + i) of (seed, stream), the same numbers as core/rng.c computes on the host.
 * The affine map is rounded exactly as the CPU's (no fused multiply-add), so uniform
 * fills are bit-identical across backends. */
#include "../core/philox.h"
#include "internal.h"

struct FillUniform {
    real *x;
    float lo, range;
    uint64_t seed, stream, offset;
    __device__ void operator()(size_t i) const
    {
        x[i] = __fadd_rn(lo, __fmul_rn(range, philox_uniform(seed, stream, offset + i)));
    }
};

struct FillNormal {
    real *x;
    float mean, std;
    uint64_t seed, stream, offset;
    __device__ void operator()(size_t i) const
    {
        x[i] = __fadd_rn(mean, __fmul_rn(std, philox_normal(seed, stream, offset + i)));
    }
};

void gpu_fill_uniform(void *ctx, size_t n, real *x, real lo, real hi, uint64_t seed, uint64_t stream, uint64_t offset)
{
    launch_foreach(gctx(ctx), n, FillUniform{x, lo, hi - lo, seed, stream, offset});
}

void gpu_fill_normal(void *ctx, size_t n, real *x, real mean, real std, uint64_t seed, uint64_t stream,
                     uint64_t offset)
{
    launch_foreach(gctx(ctx), n, FillNormal{x, mean, std, seed, stream, offset});
}
