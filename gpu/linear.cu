/* Matrix products through cuBLAS (cublasGemmEx), and the linear layer y = x W^T + b.
 *
 * Row-major tensors are handed to column-major cuBLAS as their transposes: a row-major
 * [r, c] matrix is a column-major [c, r] one with leading dimension c. Checked mode:
 * float32 operands, CUBLAS_COMPUTE_32F in the default math mode (no TF32). Fast mode:
 * bf16 copies of both operands (in workspace), float32 output and accumulation. The
 * bias gradient is a deterministic column sum in double. */
#include "reduce.h"

template <class T> struct ConvertTo {
    T *dst;
    const real *src;
    __device__ void operator()(size_t i) const { dst[i] = cast_to<T>(src[i]); }
};

cudaDataType_t operand_type(const GpuCtx *g) { return g->fast ? CUDA_R_16BF : CUDA_R_32F; }

const void *gpu_operand_as(GpuCtx *g, int bf16, const float *x, size_t n)
{
    if (!bf16) return x;
    __nv_bfloat16 *b = ws_array<__nv_bfloat16>(g, n);
    launch_foreach(g, n, ConvertTo<__nv_bfloat16>{b, x});
    return b;
}

const void *gpu_operand(GpuCtx *g, const float *x, size_t n) { return gpu_operand_as(g, g->fast, x, n); }

const void *operand_at(cudaDataType_t type, const void *base, size_t i)
{
    return (const char *)base + i * (type == CUDA_R_16BF ? sizeof(__nv_bfloat16) : sizeof(float));
}

void gpu_gemm(GpuCtx *g, cudaDataType_t type, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
              float alpha, const void *A, int lda, long long stride_a, const void *B, int ldb, long long stride_b,
              float beta, float *C, int ldc, long long stride_c, int batch)
{
    if (batch == 1)
        CUBLAS_CHECK(cublasGemmEx(g->cublas, ta, tb, m, n, k, &alpha, A, type, lda, B, type, ldb, &beta, C, CUDA_R_32F,
                                  ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    else
        CUBLAS_CHECK(cublasGemmStridedBatchedEx(g->cublas, ta, tb, m, n, k, &alpha, A, type, lda, stride_a, B, type,
                                                ldb, stride_b, &beta, C, CUDA_R_32F, ldc, stride_c, batch,
                                                CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

/* ------------------------------------------------------------ linear */

struct AddRowBias {
    int out;
    real *y;
    const real *b;
    __device__ void operator()(size_t i) const { y[i] += b[i % out]; }
};

/* db[j] += sum over rows of dy[r, j] */
struct BiasGrad {
    int out;
    const real *dy;
    real *db;
    __device__ void add(long long r, int j, double *acc) const { acc[0] += dy[(size_t)r * out + j]; }
    __device__ void done(long long j, const double *acc) const { db[j] += (float)acc[0]; }
};

void gpu_linear_forward(void *ctx, const LinearShape *s, real *y, const real *x, const real *w, const real *b)
{
    GpuCtx *g = gctx(ctx);
    ArenaScope scope(g);
    cudaDataType_t t = operand_type(g);
    const void *xo = gpu_operand(g, x, (size_t)s->rows * s->in), *wo = gpu_operand(g, w, (size_t)s->out * s->in);
    /* y^T [out, rows] = W [out, in] x^T [in, rows] */
    gpu_gemm(g, t, CUBLAS_OP_T, CUBLAS_OP_N, s->out, s->rows, s->in, 1.0f, wo, s->in, 0, xo, s->in, 0, 0.0f, y, s->out,
             0, 1);
    if (b) launch_foreach(g, (size_t)s->rows * s->out, AddRowBias{s->out, y, b});
}

void gpu_linear_backward(void *ctx, const LinearShape *s, real *dx, real *dw, real *db, const real *dy, const real *x,
                         const real *w)
{
    GpuCtx *g = gctx(ctx);
    ArenaScope scope(g);
    cudaDataType_t t = operand_type(g);
    const void *dyo = (dx || dw) ? gpu_operand(g, dy, (size_t)s->rows * s->out) : NULL;
    if (dx) { /* dx^T [in, rows] += W^T [in, out] dy^T [out, rows] */
        const void *wo = gpu_operand(g, w, (size_t)s->out * s->in);
        gpu_gemm(g, t, CUBLAS_OP_N, CUBLAS_OP_N, s->in, s->rows, s->out, 1.0f, wo, s->in, 0, dyo, s->out, 0, 1.0f, dx,
                 s->in, 0, 1);
    }
    if (dw) { /* dW^T [in, out] += x^T [in, rows] dy [rows, out] */
        const void *xo = gpu_operand(g, x, (size_t)s->rows * s->in);
        gpu_gemm(g, t, CUBLAS_OP_N, CUBLAS_OP_T, s->in, s->out, s->rows, 1.0f, xo, s->in, 0, dyo, s->out, 0, 1.0f, dw,
                 s->in, 0, 1);
    }
    if (db) column_reduce<1>(g, s->rows, s->out, BiasGrad{s->out, dy, db});
}
