/* The CUDA backend: its context (device, stream, cuDNN and cuBLAS handles, workspace
 * arena, precision mode), the Backend table and the memory operators. */
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

#define CUBLAS_WORKSPACE_BYTES ((size_t)32 << 20) /* NVIDIA's recommendation for Hopper */

/* ------------------------------------------------------------ checked calls */

void gpu_fail_cuda(cudaError_t e, const char *call, const char *file, int line)
{
    sd_die(3, "%s:%d: %s failed: %s (%s)", file, line, call, cudaGetErrorString(e), cudaGetErrorName(e));
}

void gpu_fail_cudnn(cudnnStatus_t s, const char *call, const char *file, int line)
{
    char detail[256] = "";
    cudnnGetLastErrorString(detail, sizeof detail);
    sd_die(3, "%s:%d: %s failed: %s%s%s", file, line, call, cudnnGetErrorString(s), detail[0] ? ": " : "", detail);
}

void gpu_fail_cublas(cublasStatus_t s, const char *call, const char *file, int line)
{
    sd_die(3, "%s:%d: %s failed: %s (%s)", file, line, call, cublasGetStatusString(s), cublasGetStatusName(s));
}

/* ------------------------------------------------------------ memory operators */

void *gpu_alloc(void *ctx, size_t bytes)
{
    (void)ctx;
    return gpu_mem_alloc(bytes, "tensor");
}

void gpu_release(void *ctx, void *p)
{
    if (!p) return;
    CUDA_CHECK(cudaStreamSynchronize(gctx(ctx)->stream)); /* kernels queued on p finish first */
    gpu_mem_free(p);
}

/* Transfers wait for completion, so the caller may reuse or free the host buffer and
 * read downloaded data at once. */
void gpu_upload(void *ctx, void *dst, const void *host_src, size_t bytes)
{
    GpuCtx *g = gctx(ctx);
    CUDA_CHECK(cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, g->stream));
    CUDA_CHECK(cudaStreamSynchronize(g->stream));
}

void gpu_download(void *ctx, void *host_dst, const void *src, size_t bytes)
{
    GpuCtx *g = gctx(ctx);
    CUDA_CHECK(cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, g->stream));
    CUDA_CHECK(cudaStreamSynchronize(g->stream));
}

/* Like the CPU's memmove: overlapping ranges (undefined for cudaMemcpy) go through
 * workspace. */
void gpu_copy(void *ctx, void *dst, const void *src, size_t bytes)
{
    GpuCtx *g = gctx(ctx);
    const char *d = (const char *)dst, *s = (const char *)src;
    if (bytes == 0 || d == s) return;
    if (d < s + bytes && s < d + bytes) {
        ArenaScope scope(g);
        void *tmp = ws_take(g, bytes);
        CUDA_CHECK(cudaMemcpyAsync(tmp, src, bytes, cudaMemcpyDeviceToDevice, g->stream));
        src = tmp;
    }
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, g->stream));
}

void gpu_zero(void *ctx, void *p, size_t bytes)
{
    CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, gctx(ctx)->stream));
}

void gpu_sync(void *ctx) { CUDA_CHECK(cudaStreamSynchronize(gctx(ctx)->stream)); }

/* ------------------------------------------------------------ opening and closing */

/* fast mode needs bf16 tensor cores (sm_80+); say once per process when it falls back. */
static int effective_fast(int fast, int sm, const char *device_name)
{
    static int noticed;
    if (!fast || sm >= 80) return fast;
    if (!noticed)
        fprintf(stderr, "sdseg: %s (sm_%d) has no bf16 tensor cores: fast mode falls back to float32\n", device_name,
                sm);
    noticed = 1;
    return 0;
}

static int open_libraries(GpuCtx *g)
{
    if (cudnnGetVersion() / 10000 != CUDNN_MAJOR)
        return sd_fail("cuDNN %zu is loaded, but sdseg was built against cuDNN %d", cudnnGetVersion(), CUDNN_MAJOR);
    cudnnStatus_t ds = cudnnCreate(&g->cudnn);
    if (ds != CUDNN_STATUS_SUCCESS) return sd_fail("cannot initialize cuDNN: %s", cudnnGetErrorString(ds));
    cublasStatus_t bs = cublasCreate(&g->cublas);
    if (bs != CUBLAS_STATUS_SUCCESS) return sd_fail("cannot initialize cuBLAS: %s", cublasGetStatusString(bs));
    CUDNN_CHECK(cudnnSetStream(g->cudnn, g->stream));
    CUBLAS_CHECK(cublasSetStream(g->cublas, g->stream));
    /* float32 products stay float32: CUBLAS_COMPUTE_32F (linear.cu) in the default math
     * mode never uses TF32; fast mode passes bf16 operands explicitly */
    CUBLAS_CHECK(cublasSetMathMode(g->cublas, CUBLAS_DEFAULT_MATH));
    g->cublas_ws = gpu_mem_alloc(CUBLAS_WORKSPACE_BYTES, "cuBLAS workspace");
    CUBLAS_CHECK(cublasSetWorkspace(g->cublas, g->cublas_ws, CUBLAS_WORKSPACE_BYTES));
    return SD_OK;
}

static void close_context(GpuCtx *g)
{
    if (g->stream) arena_release_all(g);
    gpu_conv_cache_free(g);
    if (g->cublas) CUBLAS_CHECK(cublasDestroy(g->cublas));
    if (g->cudnn) CUDNN_CHECK(cudnnDestroy(g->cudnn));
    gpu_mem_free(g->cublas_ws);
    if (g->stream) CUDA_CHECK(cudaStreamDestroy(g->stream));
    free(g);
}

#define GPU_SET_OP(ret, name, args) be->name = gpu_##name;

extern "C" int gpu_backend_open(Backend *be, int fast)
{
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) return sd_fail("no usable CUDA device: %s", cudaGetErrorString(e));
    if (count == 0) return sd_fail("no CUDA device found");
    GpuCtx *g = (GpuCtx *)calloc(1, sizeof *g);
    if (!g) return sd_fail("out of memory creating the CUDA context");
    cudaDeviceProp prop;
    CUDA_CHECK(cudaGetDevice(&g->device));
    CUDA_CHECK(cudaGetDeviceProperties(&prop, g->device));
    g->sm = prop.major * 10 + prop.minor;
    g->fast = effective_fast(fast, g->sm, prop.name);
    e = cudaStreamCreateWithFlags(&g->stream, cudaStreamNonBlocking);
    if (e != cudaSuccess) {
        sd_fail("cannot use CUDA device %d (%s): %s", g->device, prop.name, cudaGetErrorString(e));
        free(g);
        return SD_ERR;
    }
    if (open_libraries(g)) {
        close_context(g);
        return SD_ERR;
    }
    be->name = "cuda";
    be->ctx = g;
    SDSEG_OPS(GPU_SET_OP)
    return SD_OK;
}

extern "C" void gpu_backend_close(Backend *be)
{
    if (!be || !be->ctx) return;
    close_context(gctx(be->ctx));
    be->ctx = NULL;
}
