/* Convolution building blocks shared by cpu/conv2d.c, cpu/conv_direct.c and
 * cpu/conv_transpose2d.c (internal to cpu/). A transposed convolution is the data
 * gradient of the convolution that maps its output back onto its input, so both
 * operators run on these functions. Shapes are validated; every function except
 * conv_gemm_forward with beta 0 accumulates. */
#ifndef SDSEG_CPU_CONV_H
#define SDSEG_CPU_CONV_H

#include "cpu.h"
#include "gemm.h"
#include "simd.h"

/* y = conv(x, w) + b (beta 0) or y += conv(x, w) + b (beta 1); b may be NULL. */
void conv_gemm_forward(void *ctx, const Conv2dShape *s, real *y, const real *x, const real *w, const real *b,
                       real beta);
/* dx += the input gradient of conv(x, w) for output gradient dy; uses the ctx scratch. */
void conv_gemm_backward_data(void *ctx, const Conv2dShape *s, real *dx, const real *dy, const real *w);
/* dw += the weight gradient of conv(x, w) for output gradient dy. */
void conv_gemm_backward_weight(const Conv2dShape *s, real *dw, const real *dy, const real *x);

#if CPU_AVX512
/* The direct stride-1 convolution (cpu/conv_direct.c): whether it takes shape s, and
 * y = beta*y + conv(x) (+ bias) with the weights as a GEMM operand L(c_out, K). */
int conv_direct_applies(const Conv2dShape *s);
void conv_direct_forward(void *ctx, const Conv2dShape *s, const GemmSource *weights, real *y, const real *x,
                         const real *bias, real beta);
#endif

/* y[i, c, :] = b[c] (0 when b is NULL) over n images of c channels of hw values. */
void channel_fill(int n, int c, size_t hw, real *y, const real *b);
/* db[c] += sum of dy[i, c, :] over images and positions. */
void channel_bias_grad(int n, int c, size_t hw, real *db, const real *dy);

#endif
