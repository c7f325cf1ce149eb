/* The OpenMP C reference backend: cpu_<op> for every operator of ops/ops.h. */
#ifndef SDSEG_CPU_H
#define SDSEG_CPU_H

#include "../ops/ops.h"

SDSEG_OPS(SDSEG_CPU_PROTO)

/* The CPU context: a growable scratch buffer for im2col and similar temporaries. */
typedef struct {
    real *scratch;
    size_t scratch_len; /* in reals */
} CpuCtx;

void *cpu_ctx_create(void);
void cpu_ctx_destroy(void *ctx);
/* Scratch of at least n reals, valid until the next call (one op at a time per ctx). */
real *cpu_scratch(void *ctx, size_t n);
/* The CPU backend table with a fresh context; free with cpu_ctx_destroy(be.ctx). */
Backend cpu_backend(void);

/* The SGEMM everything dense is built on (row-major, like cblas):
 * C[M,N] = alpha * op(A)[M,K] op(B)[K,N] + beta * C, op = transpose when trans_* != 0.
 * lda/ldb/ldc are the row strides of A, B, C as stored. */
void cpu_gemm(int trans_a, int trans_b, int M, int N, int K, real alpha,
              const real *A, int lda, const real *B, int ldb, real beta, real *C, int ldc);

#endif
