/* Internals shared by the CUDA sources in gpu/: the backend context, the checked-call macros,
 * the device-memory accountant and the workspace arena, launch helpers and the
 * operand/GEMM helpers of linear.cu. CUDA C++ only (included by .cu files). */
#ifndef SDSEG_GPU_INTERNAL_H
#define SDSEG_GPU_INTERNAL_H

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <cudnn.h>

extern "C" { /* the C parts of the project have no C++ guards of their own */
#include "../core/err.h"
}
#include "gpu.h"

static_assert(sizeof(real) == 4, "the CUDA backend stores float32: build it without SDSEG_DOUBLE");

/* ------------------------------------------------------------ checked calls
 * Every CUDA, cuDNN and cuBLAS call goes through one of these: a failure is a broken
 * device or a bug, not bad input, so it prints file, line, the call and the library's
 * message, then exits with status 3. */
void gpu_fail_cuda(cudaError_t e, const char *call, const char *file, int line);
void gpu_fail_cudnn(cudnnStatus_t s, const char *call, const char *file, int line);
void gpu_fail_cublas(cublasStatus_t s, const char *call, const char *file, int line);

#define CUDA_CHECK(call) \
    do { \
        cudaError_t e_ = (call); \
        if (e_ != cudaSuccess) gpu_fail_cuda(e_, #call, __FILE__, __LINE__); \
    } while (0)
#define CUDNN_CHECK(call) \
    do { \
        cudnnStatus_t s_ = (call); \
        if (s_ != CUDNN_STATUS_SUCCESS) gpu_fail_cudnn(s_, #call, __FILE__, __LINE__); \
    } while (0)
#define CUBLAS_CHECK(call) \
    do { \
        cublasStatus_t s_ = (call); \
        if (s_ != CUBLAS_STATUS_SUCCESS) gpu_fail_cublas(s_, #call, __FILE__, __LINE__); \
    } while (0)
/* After every kernel launch: catches bad launch configurations at their line. */
#define LAUNCH_CHECK() CUDA_CHECK(cudaGetLastError())

/* ------------------------------------------------------------ memory
 * The accountant (memory.cu): every device allocation of the backend goes through it. */
void *gpu_mem_alloc(size_t bytes, const char *what);
void gpu_mem_free(void *p);

/* The workspace arena: scratch memory for one operator call, taken with ws_take() and
 * given back when the ArenaScope of the outermost operator ends. Chunks are never
 * moved while in use; when an operator needed more than one chunk, they are merged
 * into one (after a stream sync) once the outermost scope closes. */
#define ARENA_MAX_CHUNKS 48
typedef struct {
    char *base[ARENA_MAX_CHUNKS];
    size_t size[ARENA_MAX_CHUNKS];
    int count; /* chunks allocated */
    int cur;   /* chunk being filled */
    size_t off; /* bytes used in chunk cur */
} Arena;

typedef struct ConvCache ConvCache; /* conv.cu */

typedef struct GpuCtx {
    int device, sm; /* sm = 10*major + minor */
    int fast;       /* bf16 operands for convolutions and matrix products */
    cudaStream_t stream;
    cudnnHandle_t cudnn;
    cublasHandle_t cublas;
    void *cublas_ws; /* cuBLAS workspace, from the accountant */
    Arena arena;
    ConvCache *conv;
} GpuCtx;

static inline GpuCtx *gctx(void *ctx) { return (GpuCtx *)ctx; }

void *ws_take(GpuCtx *g, size_t bytes);
void arena_release_all(GpuCtx *g);

/* Scratch taken inside the scope is returned when it ends (stack discipline). */
struct ArenaScope {
    GpuCtx *g;
    int cur;
    size_t off;
    explicit ArenaScope(GpuCtx *ctx) : g(ctx), cur(ctx->arena.cur), off(ctx->arena.off) {}
    ~ArenaScope();
    ArenaScope(const ArenaScope &) = delete;
    ArenaScope &operator=(const ArenaScope &) = delete;
};

template <class T> static inline T *ws_array(GpuCtx *g, size_t n) { return (T *)ws_take(g, n * sizeof(T)); }

/* ------------------------------------------------------------ launching */
#define BLOCK 256
#define MAX_GRID 65535u /* grid-stride loops cover the rest */

static inline unsigned grid_for(size_t n, unsigned block = BLOCK)
{
    size_t b = (n + block - 1) / block;
    if (b < 1) b = 1;
    return b > MAX_GRID ? MAX_GRID : (unsigned)b;
}

/* y = f(i) for every i < n: the elementwise workhorse. F is a functor struct with
 * __device__ void operator()(size_t i) const. */
template <class F> __global__ void foreach_kernel(size_t n, F f)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) f(i);
}

template <class F> static inline void launch_foreach(GpuCtx *g, size_t n, F f)
{
    if (n == 0) return;
    foreach_kernel<<<grid_for(n), BLOCK, 0, g->stream>>>(n, f);
    LAUNCH_CHECK();
}

/* float <-> storage type of an operand (float32, or bf16 in fast mode) */
template <class T> __device__ __forceinline__ T cast_to(float v);
template <> __device__ __forceinline__ float cast_to<float>(float v) { return v; }
template <> __device__ __forceinline__ __nv_bfloat16 cast_to<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }

/* ------------------------------------------------------------ matrix products (linear.cu)
 * Column-major GEMM as cuBLAS sees it, float32 output and accumulation. Operands are
 * float32 tensors, or bf16 copies made in workspace by gpu_operand in fast mode; `type`
 * says which (both A and B have it). */
cudaDataType_t operand_type(const GpuCtx *g); /* CUDA_R_16BF in fast mode, else CUDA_R_32F */
const void *gpu_operand(GpuCtx *g, const float *x, size_t n);
const void *gpu_operand_as(GpuCtx *g, int bf16, const float *x, size_t n); /* either type, by request */
const void *operand_at(cudaDataType_t type, const void *base, size_t i); /* element i */
void gpu_gemm(GpuCtx *g, cudaDataType_t type, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
              float alpha, const void *A, int lda, long long stride_a, const void *B, int ldb, long long stride_b,
              float beta, float *C, int ldc, long long stride_c, int batch);

void gpu_conv_cache_free(GpuCtx *g); /* conv.cu */

#endif
