/* The GEMM driver behind cpu_gemm and the implicit-GEMM convolutions (internal to cpu/).
 *
 * C[M,N] = alpha * L_A L_B^T + beta * C, where L_A is the M x K "left" matrix op(A) and
 * L_B the N x K matrix op(B)^T. Both operands are described by a GemmSource that packs a
 * block of its logical matrix itself, so a convolution can pack straight from the image
 * (implicit im2col) instead of materializing the column matrix. */
#ifndef SDSEG_CPU_GEMM_H
#define SDSEG_CPU_GEMM_H

#include <stddef.h>

#include "../core/real.h"

/* Packs are never deeper than GEMM_MAX_DEPTH or wider than GEMM_MAX_WIDTH rows. */
#define GEMM_MAX_DEPTH 256
#define GEMM_MAX_WIDTH 32

typedef struct GemmSource GemmSource;

/* Pack logical rows [r0, r0+rows) x depth [p0, p0+kc) into panels of `width` rows each:
 * dst[(panel * kc + k) * width + r] = L(r0 + panel*width + r, p0 + k), the rows past
 * `rows` in the last panel zero-filled. */
typedef void (*GemmPack)(const GemmSource *s, int r0, int rows, int p0, int kc, int width, real *dst);

struct GemmSource {
    GemmPack pack;
    const real *data;
    int ld;           /* row stride of data */
    const void *geom; /* extra description for implicit operands (convolution geometry) */
};

/* A plain row-major matrix as a logical operand: L(r, p) = data[r*ld + p], or
 * data[p*ld + r] when transposed. */
GemmSource gemm_matrix(const real *data, int ld, int transposed);

/* One panel from `rows` (<= width) source rows of stride ld, kc values each:
 * dst[k*width + r] = src[r*ld + k], rows past `rows` zero. */
void gemm_pack_panel(const real *src, size_t ld, int rows, int kc, int width, real *dst);

/* The blocked, packed, OpenMP-parallel product on two sources, plus row_bias[i] on every
 * row i of C when row_bias is not NULL. Runs single-threaded when called from inside a
 * parallel region. */
void gemm_run(int M, int N, int K, real alpha, const GemmSource *a, const GemmSource *b, real beta, real *C,
              int ldc, const real *row_bias);

#endif
