/* Host-side fills from the Philox streams of philox.h (OpenMP-parallel).
 * Value i of buffer x is value (offset + i) of stream (seed, stream). */
#ifndef SDSEG_RNG_H
#define SDSEG_RNG_H

#include <stddef.h>
#include <stdint.h>

void rng_fill_uniform(float *x, size_t n, float lo, float hi, uint64_t seed, uint64_t stream, uint64_t offset);
void rng_fill_normal(float *x, size_t n, float mean, float std, uint64_t seed, uint64_t stream, uint64_t offset);
/* Same fills into double buffers (tests in float64). */
void rng_fill_uniform_f64(double *x, size_t n, double lo, double hi, uint64_t seed, uint64_t stream, uint64_t offset);
void rng_fill_normal_f64(double *x, size_t n, double mean, double std, uint64_t seed, uint64_t stream, uint64_t offset);

#endif
