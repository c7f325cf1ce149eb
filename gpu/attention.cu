/* Multi-head self-attention core: batched GEMMs through cuBLAS (one strided batch over
 * the heads per sample) and warp-per-row softmax kernels.
 *
 * qkv [n, len, 3C] holds q | k | v; head j of each uses columns j*hd .. (j+1)*hd - 1,
 * so within a sample consecutive heads are hd apart: that is the batch stride. Seen by
 * column-major cuBLAS, a head's q (row-major [len, hd], row stride 3C) is the matrix
 * q^T [hd, len] with leading dimension 3C, and probs[b, j] (row-major [len_q, len_k]) is
 * P^T [len_k, len_q] with leading dimension len.
 *
 * Precision: the two products that feed the softmax and its backward, S = QK^T and
 * dP = dO V^T, stay float32 in both modes: exp() turns an absolute logit error into the
 * same relative error of every probability, and dS = P (dP - sum P dP) cancels nearly
 * equal numbers where the softmax is peaked, so bf16 operands there would cost whole
 * percents. The other products (PV, P^T dO, dS K, dS^T Q) take bf16 operands in fast
 * mode. */
#include <math.h>

#include "internal.h"

#define WARP 32
#define ROWS_PER_BLOCK (BLOCK / WARP)

__device__ __forceinline__ float warp_max_f(float v)
{
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

__device__ __forceinline__ float warp_sum_f(float v)
{
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* In place, one warp per row of `len` scores: p = exp(s - max) / sum. */
__global__ void softmax_rows_kernel(real *p, long long rows, int len)
{
    long long row = (long long)blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / WARP;
    int lane = threadIdx.x % WARP;
    if (row >= rows) return;
    real *r = p + row * len;
    float m = -INFINITY;
    for (int j = lane; j < len; j += WARP) m = fmaxf(m, r[j]);
    m = warp_max_f(m);
    float sum = 0;
    for (int j = lane; j < len; j += WARP) {
        float e = expf(r[j] - m);
        r[j] = e;
        sum += e;
    }
    float inv = 1.0f / warp_sum_f(sum);
    for (int j = lane; j < len; j += WARP) r[j] *= inv;
}

/* In place, one warp per row: ds = p * (dp - sum(dp * p)). */
__global__ void softmax_backward_rows_kernel(real *dp, const real *p, long long rows, int len)
{
    long long row = (long long)blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / WARP;
    int lane = threadIdx.x % WARP;
    if (row >= rows) return;
    real *d = dp + row * len;
    const real *q = p + row * len;
    float dot = 0;
    for (int j = lane; j < len; j += WARP) dot += d[j] * q[j];
    dot = warp_sum_f(dot);
    for (int j = lane; j < len; j += WARP) d[j] = q[j] * (d[j] - dot);
}

static unsigned row_blocks(long long rows) { return (unsigned)((rows + ROWS_PER_BLOCK - 1) / ROWS_PER_BLOCK); }

/* Offsets of sample b's q, k, v (in elements of qkv). */
typedef struct {
    size_t q, k, v;
} QkvAt;

static QkvAt qkv_at(const AttnShape *s, int b)
{
    size_t c = (size_t)s->heads * s->head_dim, base = (size_t)b * s->len * 3 * c;
    QkvAt at = {base, base + c, base + 2 * c};
    return at;
}

void gpu_attention_forward(void *ctx, const AttnShape *s, real *out, real *probs, const real *qkv)
{
    GpuCtx *g = gctx(ctx);
    ArenaScope scope(g);
    int len = s->len, hd = s->head_dim, c = s->heads * hd, ld = 3 * c;
    size_t plane = (size_t)len * len;
    float scale = (float)(1.0 / sqrt((double)hd));
    cudaDataType_t t = operand_type(g);
    const void *qkvo = gpu_operand(g, qkv, (size_t)s->n * len * ld);
    for (int b = 0; b < s->n; b++) {
        ArenaScope per_sample(g);
        QkvAt at = qkv_at(s, b);
        real *p = probs + (size_t)b * s->heads * plane;
        /* P^T [len_k, len_q] = scale * K Q^T, in float32 */
        gpu_gemm(g, CUDA_R_32F, CUBLAS_OP_T, CUBLAS_OP_N, len, len, hd, scale, qkv + at.k, ld, hd, qkv + at.q, ld, hd,
                 0.0f, p, len, (long long)plane, s->heads);
        long long rows = (long long)s->heads * len;
        softmax_rows_kernel<<<row_blocks(rows), BLOCK, 0, g->stream>>>(p, rows, len);
        LAUNCH_CHECK();
        /* out^T [hd, len_q] = V^T P^T */
        const void *po = gpu_operand(g, p, (size_t)s->heads * plane);
        gpu_gemm(g, t, CUBLAS_OP_N, CUBLAS_OP_N, hd, len, len, 1.0f, operand_at(t, qkvo, at.v), ld, hd, po, len,
                 (long long)plane, 0.0f, out + (size_t)b * len * c, c, hd, s->heads);
    }
}

void gpu_attention_backward(void *ctx, const AttnShape *s, real *dqkv, const real *dout, const real *qkv,
                            const real *probs)
{
    if (!dqkv) return;
    GpuCtx *g = gctx(ctx);
    ArenaScope scope(g);
    int len = s->len, hd = s->head_dim, c = s->heads * hd, ld = 3 * c;
    size_t plane = (size_t)len * len;
    float scale = (float)(1.0 / sqrt((double)hd));
    cudaDataType_t t = operand_type(g);
    const void *qkvo = gpu_operand(g, qkv, (size_t)s->n * len * ld);
    const void *douto = gpu_operand(g, dout, (size_t)s->n * len * c);
    for (int b = 0; b < s->n; b++) {
        ArenaScope per_sample(g);
        QkvAt at = qkv_at(s, b);
        const real *p = probs + (size_t)b * s->heads * plane, *dob = dout + (size_t)b * len * c;
        const void *po = gpu_operand(g, p, (size_t)s->heads * plane), *dobo = operand_at(t, douto, (size_t)b * len * c);
        /* dV^T [hd, len_k] += dO^T P */
        gpu_gemm(g, t, CUBLAS_OP_N, CUBLAS_OP_T, hd, len, len, 1.0f, dobo, c, hd, po, len, (long long)plane, 1.0f,
                 dqkv + at.v, ld, hd, s->heads);
        /* dP^T [len_k, len_q] = V dO^T in float32, then dS = softmax backward, in place */
        real *ds = ws_array<real>(g, (size_t)s->heads * plane);
        gpu_gemm(g, CUDA_R_32F, CUBLAS_OP_T, CUBLAS_OP_N, len, len, hd, 1.0f, qkv + at.v, ld, hd, dob, c, hd, 0.0f, ds,
                 len, (long long)plane, s->heads);
        long long rows = (long long)s->heads * len;
        softmax_backward_rows_kernel<<<row_blocks(rows), BLOCK, 0, g->stream>>>(ds, p, rows, len);
        LAUNCH_CHECK();
        const void *dso = gpu_operand(g, ds, (size_t)s->heads * plane);
        /* dQ^T [hd, len_q] += scale * K^T dS^T;  dK^T [hd, len_k] += scale * Q^T dS */
        gpu_gemm(g, t, CUBLAS_OP_N, CUBLAS_OP_N, hd, len, len, scale, operand_at(t, qkvo, at.k), ld, hd, dso, len,
                 (long long)plane, 1.0f, dqkv + at.q, ld, hd, s->heads);
        gpu_gemm(g, t, CUBLAS_OP_N, CUBLAS_OP_T, hd, len, len, scale, operand_at(t, qkvo, at.q), ld, hd, dso, len,
                 (long long)plane, 1.0f, dqkv + at.k, ld, hd, s->heads);
    }
}
