/* Host emulation of the CUDA backend (make test-gpu-emu): stands in for gpu/internal.h
 * when the gpu/ operator files are compiled by g++ instead of nvcc.
 *
 * Kernels run on CPU threads: every launch (rewritten by the Makefile from kernel<<<grid,
 * block, smem, stream>>>(args) into emu_launch(grid, block, smem, stream, [&]{...}))
 * starts blockDim threads that run the grid's blocks one after another, with real
 * barriers for __syncthreads and warp shuffles; launch_foreach runs serially. Device
 * memory is host memory, so AddressSanitizer sees every out-of-bounds access of a
 * kernel. cuBLAS and cuDNN are replaced by reference implementations of their documented
 * semantics (tests/gpu_emu/runtime.cpp), which also check the arguments (leading
 * dimensions, float32 convolutions in FMA math, workspace sizes).
 *
 * What this cannot show: timing, races between blocks (they run in sequence), and the
 * real libraries' behaviour; that is what make test-gpu on a GPU is for. */
#ifndef SDSEG_GPU_EMU_INTERNAL_H
#define SDSEG_GPU_EMU_INTERNAL_H

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cudnn.h>
#include <functional>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vector>

extern "C" {
#include "../core/err.h"
}
#include "../gpu/gpu.h"

#undef __device__
#undef __global__
#undef __shared__
#undef __forceinline__
#define __device__
#define __global__ static
#define __shared__ static /* blocks run one at a time */
#define __forceinline__ inline

static inline float __fadd_rn(float a, float b) { return a + b; } /* the host does not contract */
static inline float __fmul_rn(float a, float b) { return a * b; }

void emu_check(int failed, const char *call, const char *file, int line);
#define CUDA_CHECK(call) emu_check((call) != cudaSuccess, #call, __FILE__, __LINE__)
#define CUDNN_CHECK(call) emu_check((call) != CUDNN_STATUS_SUCCESS, #call, __FILE__, __LINE__)
#define CUBLAS_CHECK(call) emu_check((call) != CUBLAS_STATUS_SUCCESS, #call, __FILE__, __LINE__)
#define LAUNCH_CHECK() ((void)0)

/* ------------------------------------------------------------ launches */
extern thread_local dim3 threadIdx, blockIdx;
extern dim3 blockDim, gridDim;
void emu_run(dim3 grid, dim3 block, const std::function<void()> &kernel);
template <class F> static inline void emu_launch(dim3 grid, dim3 block, size_t smem, cudaStream_t stream, F kernel)
{
    (void)smem;
    (void)stream;
    emu_run(grid, block, kernel);
}
void __syncthreads();
double emu_shuffle(double v, int xor_mode, int arg);
template <class T> static inline T __shfl_down_sync(unsigned, T v, int d) { return (T)emu_shuffle(v, 0, d); }
template <class T> static inline T __shfl_xor_sync(unsigned, T v, int d) { return (T)emu_shuffle(v, 1, d); }

/* ------------------------------------------------------------ context and workspace */
typedef struct ConvCache ConvCache;
typedef struct GpuCtx {
    int device, sm, fast;
    cudaStream_t stream;
    cudnnHandle_t cudnn;
    cublasHandle_t cublas;
    ConvCache *conv;
    std::vector<void *> *scratch; /* ws_take's blocks, newest last */
} GpuCtx;

static inline GpuCtx *gctx(void *ctx) { return (GpuCtx *)ctx; }
void *ws_take(GpuCtx *g, size_t bytes);
void ws_release_to(GpuCtx *g, size_t mark);

struct ArenaScope {
    GpuCtx *g;
    size_t mark;
    explicit ArenaScope(GpuCtx *ctx) : g(ctx), mark(ctx->scratch->size()) {}
    ~ArenaScope() { ws_release_to(g, mark); }
    ArenaScope(const ArenaScope &) = delete;
    ArenaScope &operator=(const ArenaScope &) = delete;
};

template <class T> static inline T *ws_array(GpuCtx *g, size_t n) { return (T *)ws_take(g, n * sizeof(T)); }

#define BLOCK 256
#define MAX_GRID 65535u

static inline unsigned grid_for(size_t n, unsigned block = BLOCK)
{
    size_t b = (n + block - 1) / block;
    if (b < 1) b = 1;
    return b > MAX_GRID ? MAX_GRID : (unsigned)b;
}

template <class F> static inline void launch_foreach(GpuCtx *g, size_t n, F f)
{
    (void)g;
    for (size_t i = 0; i < n; i++) f(i);
}

template <class T> static inline T cast_to(float v);
template <> inline float cast_to<float>(float v) { return v; }
template <> inline __nv_bfloat16 cast_to<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
static inline float to_float(float v) { return v; }
static inline float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }

/* ------------------------------------------------------------ as gpu/internal.h */
cudaDataType_t operand_type(const GpuCtx *g);
const void *gpu_operand(GpuCtx *g, const float *x, size_t n);
const void *gpu_operand_as(GpuCtx *g, int bf16, const float *x, size_t n);
const void *operand_at(cudaDataType_t type, const void *base, size_t i);
void gpu_gemm(GpuCtx *g, cudaDataType_t type, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
              float alpha, const void *A, int lda, long long stride_a, const void *B, int ldb, long long stride_b,
              float beta, float *C, int ldc, long long stride_c, int batch);
void gpu_conv_cache_free(GpuCtx *g);

#endif
