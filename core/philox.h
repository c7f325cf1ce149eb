/* Counter-based Philox4x32-10 random numbers (Salmon et al., SC'11).
 *
 * A value is addressed by (seed, stream, index): there is no state to carry, so any
 * thread on any backend computes value i of a stream directly, and the CPU and the
 * CUDA code (which includes this same header) produce the same bits.
 *
 *   counter = (block lo, block hi, stream lo, stream hi), key = (seed lo, seed hi)
 *   uniform value i : word i%4 of block i/4, mapped to ((u >> 9) + 0.5) * 2^-23, in (0,1)
 *   normal value i  : Box-Muller on words (2k, 2k+1), k = i%2, of block i/2, computed in
 *                     double and rounded to float (r cos(2 pi u2)).
 * Uniform draws are bit-identical across backends; normal draws are too, except where
 * the device's double log/cos differ from glibc's by an ulp right at a float rounding
 * boundary (not observed, but not excluded by the math libraries' specifications). */
#ifndef SDSEG_PHILOX_H
#define SDSEG_PHILOX_H

#include <math.h>
#include <stdint.h>

#ifdef __CUDACC__
#define SD_HD __host__ __device__ __forceinline__
#else
#define SD_HD static inline
#endif

typedef struct { uint32_t v[4]; } philox_u32x4;

SD_HD philox_u32x4 philox4x32_10(uint64_t seed, uint64_t stream, uint64_t block)
{
    uint32_t c0 = (uint32_t)block, c1 = (uint32_t)(block >> 32);
    uint32_t c2 = (uint32_t)stream, c3 = (uint32_t)(stream >> 32);
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * c0;
        uint64_t p1 = (uint64_t)0xCD9E8D57u * c2;
        uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
        uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    philox_u32x4 r = {{c0, c1, c2, c3}};
    return r;
}

/* 23 bits, so that k + 0.5 is exact in float: with 24 bits every k >= 2^23 lost its
 * half in the rounding and the top value became 1.0f, outside (0,1). */
SD_HD float philox_u32_to_uniform(uint32_t u)
{
    return ((float)(u >> 9) + 0.5f) * (1.0f / 8388608.0f);
}

/* Uniform value `index` of (seed, stream), in (0,1). */
SD_HD float philox_uniform(uint64_t seed, uint64_t stream, uint64_t index)
{
    philox_u32x4 r = philox4x32_10(seed, stream, index >> 2);
    return philox_u32_to_uniform(r.v[index & 3]);
}

/* Standard normal value `index` of (seed, stream). */
SD_HD float philox_normal(uint64_t seed, uint64_t stream, uint64_t index)
{
    philox_u32x4 r = philox4x32_10(seed, stream, index >> 1);
    int k = (int)(index & 1) * 2;
    double u1 = philox_u32_to_uniform(r.v[k]);
    double u2 = philox_u32_to_uniform(r.v[k + 1]);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

#endif
