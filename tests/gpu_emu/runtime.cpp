/* Host emulation of the CUDA backend (see internal.h here): kernel launches on CPU
 * threads, cuBLAS and cuDNN as reference implementations of their documented
 * semantics, and the backend's table with host memory. */
#include "internal.h"

#include <barrier>
#include <memory>
#include <mutex>
#include <thread>

/* ------------------------------------------------------------ launches
 * A launch starts blockDim threads; they run the blocks of the grid in order. A block's
 * barriers count only the threads still in it (a thread that returns drops out), and
 * are renewed for the next block by the completion step of the between-blocks barrier. */
thread_local dim3 threadIdx, blockIdx;
dim3 blockDim, gridDim;

typedef struct {
    std::unique_ptr<std::barrier<>> block;
    std::vector<std::unique_ptr<std::barrier<>>> warp;
    double lanes[32][32]; /* shuffle exchange: [warp][lane] */
} BlockSync;

static BlockSync sync_state;
static thread_local int my_thread;

static void renew_sync(int threads)
{
    sync_state.block = std::make_unique<std::barrier<>>(threads);
    sync_state.warp.clear();
    for (int w = 0; w < threads / 32; w++) sync_state.warp.push_back(std::make_unique<std::barrier<>>(32));
}

static dim3 block_at(const dim3 &grid, unsigned long b)
{
    return dim3((unsigned)(b % grid.x), (unsigned)(b / grid.x % grid.y), (unsigned)(b / ((unsigned long)grid.x * grid.y)));
}

void emu_run(dim3 grid, dim3 block, const std::function<void()> &kernel)
{
    int threads = (int)(block.x * block.y * block.z);
    if (threads % 32 || threads > 1024) sd_die(3, "emu: a block of %d threads", threads);
    blockDim = block;
    gridDim = grid;
    unsigned long blocks = (unsigned long)grid.x * grid.y * grid.z;
    renew_sync(threads);
    auto next_block = [threads]() noexcept { renew_sync(threads); };
    std::barrier<decltype(next_block)> between(threads, next_block);
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; t++)
        pool.emplace_back([&, t] {
            my_thread = t;
            threadIdx = dim3(t % block.x, t / block.x % block.y, t / (block.x * block.y));
            for (unsigned long b = 0; b < blocks; b++) {
                blockIdx = block_at(grid, b);
                kernel();
                sync_state.warp[t / 32]->arrive_and_drop();
                sync_state.block->arrive_and_drop();
                between.arrive_and_wait();
            }
        });
    for (auto &t : pool) t.join();
}

void __syncthreads() { sync_state.block->arrive_and_wait(); }

/* Every lane of the warp publishes v, then reads its source lane's value (its own when
 * the source is outside the warp, as __shfl_down_sync). */
double emu_shuffle(double v, int xor_mode, int arg)
{
    int lane = my_thread % 32, warp = my_thread / 32;
    std::barrier<> &bar = *sync_state.warp[warp];
    sync_state.lanes[warp][lane] = v;
    bar.arrive_and_wait();
    int src = xor_mode ? lane ^ arg : lane + arg;
    double r = src < 32 ? sync_state.lanes[warp][src] : v;
    bar.arrive_and_wait();
    return r;
}

void emu_check(int failed, const char *call, const char *file, int line)
{
    if (failed) sd_die(3, "%s:%d: %s failed (emulation)", file, line, call);
}

/* ------------------------------------------------------------ workspace */

void *ws_take(GpuCtx *g, size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p) sd_die(3, "emu: out of memory");
    memset(p, 0xA5, bytes); /* garbage, as fresh device memory */
    g->scratch->push_back(p);
    return p;
}

void ws_release_to(GpuCtx *g, size_t mark)
{
    while (g->scratch->size() > mark) {
        free(g->scratch->back());
        g->scratch->pop_back();
    }
}

/* ------------------------------------------------------------ cuBLAS: C = alpha op(A) op(B) + beta C, column-major */

static double element(const void *p, cudaDataType t, long long i)
{
    if (t == CUDA_R_32F) return ((const float *)p)[i];
    if (t == CUDA_R_16BF) return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
    sd_die(3, "emu: gemm operand type %d", (int)t);
}

static size_t type_size(cudaDataType t) { return t == CUDA_R_32F ? 4 : 2; }

static void gemm_one(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, float alpha, const void *A,
                     cudaDataType at, int lda, const void *B, cudaDataType bt, int ldb, float beta, float *C, int ldc)
{
    if (lda < (ta == CUBLAS_OP_N ? m : k) || ldb < (tb == CUBLAS_OP_N ? k : n) || ldc < m)
        sd_die(3, "emu: gemm leading dimensions %d %d %d too small for m=%d n=%d k=%d", lda, ldb, ldc, m, n, k);
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
            double acc = 0;
            for (int l = 0; l < k; l++) {
                double a = ta == CUBLAS_OP_N ? element(A, at, i + (long long)l * lda) : element(A, at, l + (long long)i * lda);
                double b = tb == CUBLAS_OP_N ? element(B, bt, l + (long long)j * ldb) : element(B, bt, j + (long long)l * ldb);
                acc += a * b;
            }
            float *c = C + i + (long long)j * ldc;
            *c = (float)(alpha * acc + (beta == 0 ? 0.0 : beta * *c)); /* beta 0: C is not read (may be NaN) */
        }
}

static void gemm_types(cudaDataType at, cudaDataType bt, cudaDataType ct, cublasComputeType_t compute)
{
    if (at != bt || ct != CUDA_R_32F || compute != CUBLAS_COMPUTE_32F) sd_die(3, "emu: unexpected gemm types");
}

extern "C" cublasStatus_t cublasGemmEx(cublasHandle_t, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                                       const void *alpha, const void *A, cudaDataType at, int lda, const void *B,
                                       cudaDataType bt, int ldb, const void *beta, void *C, cudaDataType ct, int ldc,
                                       cublasComputeType_t compute, cublasGemmAlgo_t)
{
    gemm_types(at, bt, ct, compute);
    gemm_one(ta, tb, m, n, k, *(const float *)alpha, A, at, lda, B, bt, ldb, *(const float *)beta, (float *)C, ldc);
    return CUBLAS_STATUS_SUCCESS;
}

extern "C" cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t, cublasOperation_t ta, cublasOperation_t tb, int m,
                                                     int n, int k, const void *alpha, const void *A, cudaDataType at,
                                                     int lda, long long sa, const void *B, cudaDataType bt, int ldb,
                                                     long long sb, const void *beta, void *C, cudaDataType ct, int ldc,
                                                     long long sc, int batch, cublasComputeType_t compute,
                                                     cublasGemmAlgo_t)
{
    gemm_types(at, bt, ct, compute);
    for (int b = 0; b < batch; b++)
        gemm_one(ta, tb, m, n, k, *(const float *)alpha, (const char *)A + b * sa * type_size(at), at, lda,
                 (const char *)B + b * sb * type_size(bt), bt, ldb, *(const float *)beta, (float *)C + b * sc, ldc);
    return CUBLAS_STATUS_SUCCESS;
}

/* ------------------------------------------------------------ cuDNN legacy convolution */

struct cudnnTensorStruct {
    cudnnDataType_t type;
    int n, c, h, w;
};
struct cudnnFilterStruct {
    cudnnDataType_t type;
    int k, c, h, w;
};
struct cudnnConvolutionStruct {
    int pad_h, pad_w, stride_h, stride_w;
    cudnnMathType_t math;
};

#define EMU_WS_BYTES 4096 /* what the emulated deterministic algorithm asks for */

extern "C" {
cudnnStatus_t cudnnCreateTensorDescriptor(cudnnTensorDescriptor_t *d)
{
    *d = new cudnnTensorStruct();
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroyTensorDescriptor(cudnnTensorDescriptor_t d)
{
    delete d;
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnCreateFilterDescriptor(cudnnFilterDescriptor_t *d)
{
    *d = new cudnnFilterStruct();
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroyFilterDescriptor(cudnnFilterDescriptor_t d)
{
    delete d;
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnCreateConvolutionDescriptor(cudnnConvolutionDescriptor_t *d)
{
    *d = new cudnnConvolutionStruct();
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroyConvolutionDescriptor(cudnnConvolutionDescriptor_t d)
{
    delete d;
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetTensor4dDescriptor(cudnnTensorDescriptor_t d, cudnnTensorFormat_t f, cudnnDataType_t t, int n,
                                         int c, int h, int w)
{
    if (f != CUDNN_TENSOR_NCHW) return CUDNN_STATUS_NOT_SUPPORTED;
    *d = {t, n, c, h, w};
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetFilter4dDescriptor(cudnnFilterDescriptor_t d, cudnnDataType_t t, cudnnTensorFormat_t f, int k,
                                         int c, int h, int w)
{
    if (f != CUDNN_TENSOR_NCHW) return CUDNN_STATUS_NOT_SUPPORTED;
    *d = {t, k, c, h, w};
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetConvolution2dDescriptor(cudnnConvolutionDescriptor_t d, int ph, int pw, int u, int v, int dh,
                                              int dw, cudnnConvolutionMode_t mode, cudnnDataType_t compute)
{
    if (dh != 1 || dw != 1 || mode != CUDNN_CROSS_CORRELATION || compute != CUDNN_DATA_FLOAT)
        return CUDNN_STATUS_NOT_SUPPORTED;
    *d = {ph, pw, u, v, CUDNN_DEFAULT_MATH};
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetConvolutionMathType(cudnnConvolutionDescriptor_t d, cudnnMathType_t m)
{
    d->math = m;
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnGetConvolution2dForwardOutputDim(const cudnnConvolutionDescriptor_t c,
                                                    const cudnnTensorDescriptor_t x, const cudnnFilterDescriptor_t w,
                                                    int *n, int *k, int *h, int *wo)
{
    *n = x->n;
    *k = w->k;
    *h = (x->h + 2 * c->pad_h - w->h) / c->stride_h + 1;
    *wo = (x->w + 2 * c->pad_w - w->w) / c->stride_w + 1;
    return CUDNN_STATUS_SUCCESS;
}
}

/* Heuristics: a non-deterministic algorithm without workspace first, then a
 * deterministic one that wants EMU_WS_BYTES, both in the descriptor's math type (as
 * cuDNN reports). EMU_NO_BF16_RECT=1 makes bf16 non-square filters unsupported, to
 * exercise the backend's float32 fallback. */
template <class Perf> static void heuristics(const cudnnConvolutionStruct *c, const cudnnFilterStruct *w, int wanted,
                                             int *got, Perf *perf)
{
    int refuse = w->type == CUDNN_DATA_BFLOAT16 && w->h != w->w && getenv("EMU_NO_BF16_RECT");
    *got = wanted < 2 ? wanted : 2;
    for (int i = 0; i < *got; i++) {
        memset(&perf[i], 0, sizeof perf[i]);
        perf[i].algo = (decltype(perf[i].algo))i;
        perf[i].status = refuse ? CUDNN_STATUS_NOT_SUPPORTED : CUDNN_STATUS_SUCCESS;
        perf[i].memory = i ? EMU_WS_BYTES : 0;
        perf[i].determinism = i ? CUDNN_DETERMINISTIC : CUDNN_NON_DETERMINISTIC;
        perf[i].mathType = c->math;
    }
}

extern "C" {
cudnnStatus_t cudnnGetConvolutionForwardAlgorithm_v7(cudnnHandle_t, const cudnnTensorDescriptor_t,
                                                     const cudnnFilterDescriptor_t w,
                                                     const cudnnConvolutionDescriptor_t c,
                                                     const cudnnTensorDescriptor_t, const int wanted, int *got,
                                                     cudnnConvolutionFwdAlgoPerf_t *perf)
{
    heuristics(c, w, wanted, got, perf);
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnGetConvolutionBackwardDataAlgorithm_v7(cudnnHandle_t, const cudnnFilterDescriptor_t w,
                                                          const cudnnTensorDescriptor_t,
                                                          const cudnnConvolutionDescriptor_t c,
                                                          const cudnnTensorDescriptor_t, const int wanted, int *got,
                                                          cudnnConvolutionBwdDataAlgoPerf_t *perf)
{
    heuristics(c, w, wanted, got, perf);
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnGetConvolutionBackwardFilterAlgorithm_v7(cudnnHandle_t, const cudnnTensorDescriptor_t,
                                                            const cudnnTensorDescriptor_t,
                                                            const cudnnConvolutionDescriptor_t c,
                                                            const cudnnFilterDescriptor_t w, const int wanted, int *got,
                                                            cudnnConvolutionBwdFilterAlgoPerf_t *perf)
{
    heuristics(c, w, wanted, got, perf);
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnGetConvolutionForwardWorkspaceSize(cudnnHandle_t, const cudnnTensorDescriptor_t,
                                                      const cudnnFilterDescriptor_t,
                                                      const cudnnConvolutionDescriptor_t,
                                                      const cudnnTensorDescriptor_t, cudnnConvolutionFwdAlgo_t a,
                                                      size_t *bytes)
{
    *bytes = a ? EMU_WS_BYTES : 0;
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnGetConvolutionBackwardDataWorkspaceSize(cudnnHandle_t, const cudnnFilterDescriptor_t,
                                                           const cudnnTensorDescriptor_t,
                                                           const cudnnConvolutionDescriptor_t,
                                                           const cudnnTensorDescriptor_t,
                                                           cudnnConvolutionBwdDataAlgo_t a, size_t *bytes)
{
    *bytes = a ? EMU_WS_BYTES : 0;
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnGetConvolutionBackwardFilterWorkspaceSize(cudnnHandle_t, const cudnnTensorDescriptor_t,
                                                             const cudnnTensorDescriptor_t,
                                                             const cudnnConvolutionDescriptor_t,
                                                             const cudnnFilterDescriptor_t,
                                                             cudnnConvolutionBwdFilterAlgo_t a, size_t *bytes)
{
    *bytes = a ? EMU_WS_BYTES : 0;
    return CUDNN_STATUS_SUCCESS;
}
}

static double load(const void *p, cudnnDataType_t t, size_t i)
{
    return t == CUDNN_DATA_FLOAT ? ((const float *)p)[i] : __bfloat162float(((const __nv_bfloat16 *)p)[i]);
}

/* out = alpha*acc + beta*out; bf16 outputs are only ever overwritten by the backend. */
static void store(void *p, cudnnDataType_t t, size_t i, float alpha, double acc, float beta)
{
    if (t == CUDNN_DATA_FLOAT) {
        float *f = (float *)p + i;
        *f = (float)(alpha * acc + (beta == 0 ? 0.0 : beta * *f));
        return;
    }
    if (beta != 0) sd_die(3, "emu: accumulation into a bf16 convolution output");
    ((__nv_bfloat16 *)p)[i] = __float2bfloat16_rn((float)(alpha * acc));
}

/* Every (output, input, filter) index triple that meets in the cross-correlation. */
template <class F>
static void correlate(const cudnnTensorStruct *x, const cudnnFilterStruct *w, const cudnnConvolutionStruct *c,
                      const cudnnTensorStruct *y, F visit)
{
    if (x->c != w->c || y->c != w->k || x->n != y->n || x->type != w->type || y->type != w->type)
        sd_die(3, "emu: convolution descriptors do not match");
    for (int n = 0; n < y->n; n++)
        for (int k = 0; k < y->c; k++)
            for (int p = 0; p < y->h; p++)
                for (int q = 0; q < y->w; q++)
                    for (int ch = 0; ch < x->c; ch++)
                        for (int r = 0; r < w->h; r++)
                            for (int s = 0; s < w->w; s++) {
                                int ih = p * c->stride_h - c->pad_h + r, iw = q * c->stride_w - c->pad_w + s;
                                if (ih < 0 || ih >= x->h || iw < 0 || iw >= x->w) continue;
                                visit((((size_t)n * y->c + k) * y->h + p) * y->w + q,
                                      (((size_t)n * x->c + ch) * x->h + ih) * x->w + iw,
                                      (((size_t)k * w->c + ch) * w->h + r) * w->w + s);
                            }
}

/* Checks common to the three directions: TF32 must stay off for float32, and the
 * workspace must be what the algorithm asked for. cuDNN scribbles over it. */
static void check_call(const cudnnConvolutionStruct *c, cudnnDataType_t t, int algo, void *ws, size_t bytes)
{
    if (t == CUDNN_DATA_FLOAT && c->math != CUDNN_FMA_MATH) sd_die(3, "emu: float32 convolution without FMA math");
    if (bytes < (size_t)(algo ? EMU_WS_BYTES : 0) || (bytes && !ws)) sd_die(3, "emu: convolution workspace too small");
    if (bytes) memset(ws, 0x5A, bytes);
}

static size_t tensor_count(const cudnnTensorStruct *t) { return (size_t)t->n * t->c * t->h * t->w; }

extern "C" {
cudnnStatus_t cudnnConvolutionForward(cudnnHandle_t, const void *alpha, const cudnnTensorDescriptor_t xd, const void *x,
                                      const cudnnFilterDescriptor_t wd, const void *w,
                                      const cudnnConvolutionDescriptor_t cd, cudnnConvolutionFwdAlgo_t algo, void *ws,
                                      size_t ws_bytes, const void *beta, const cudnnTensorDescriptor_t yd, void *y)
{
    check_call(cd, xd->type, algo, ws, ws_bytes);
    std::vector<double> acc(tensor_count(yd), 0.0);
    correlate(xd, wd, cd, yd, [&](size_t yi, size_t xi, size_t wi) { acc[yi] += load(x, xd->type, xi) * load(w, wd->type, wi); });
    for (size_t i = 0; i < acc.size(); i++) store(y, yd->type, i, *(const float *)alpha, acc[i], *(const float *)beta);
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnConvolutionBackwardData(cudnnHandle_t, const void *alpha, const cudnnFilterDescriptor_t wd,
                                           const void *w, const cudnnTensorDescriptor_t dyd, const void *dy,
                                           const cudnnConvolutionDescriptor_t cd, cudnnConvolutionBwdDataAlgo_t algo,
                                           void *ws, size_t ws_bytes, const void *beta,
                                           const cudnnTensorDescriptor_t dxd, void *dx)
{
    check_call(cd, dxd->type, algo, ws, ws_bytes);
    std::vector<double> acc(tensor_count(dxd), 0.0);
    correlate(dxd, wd, cd, dyd, [&](size_t yi, size_t xi, size_t wi) { acc[xi] += load(dy, dyd->type, yi) * load(w, wd->type, wi); });
    for (size_t i = 0; i < acc.size(); i++) store(dx, dxd->type, i, *(const float *)alpha, acc[i], *(const float *)beta);
    return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnConvolutionBackwardFilter(cudnnHandle_t, const void *alpha, const cudnnTensorDescriptor_t xd,
                                             const void *x, const cudnnTensorDescriptor_t dyd, const void *dy,
                                             const cudnnConvolutionDescriptor_t cd,
                                             cudnnConvolutionBwdFilterAlgo_t algo, void *ws, size_t ws_bytes,
                                             const void *beta, const cudnnFilterDescriptor_t dwd, void *dw)
{
    check_call(cd, xd->type, algo, ws, ws_bytes);
    std::vector<double> acc((size_t)dwd->k * dwd->c * dwd->h * dwd->w, 0.0);
    correlate(xd, dwd, cd, dyd, [&](size_t yi, size_t xi, size_t wi) { acc[wi] += load(dy, dyd->type, yi) * load(x, xd->type, xi); });
    for (size_t i = 0; i < acc.size(); i++) store(dw, dwd->type, i, *(const float *)alpha, acc[i], *(const float *)beta);
    return CUDNN_STATUS_SUCCESS;
}
}

/* ------------------------------------------------------------ the backend: host memory */

static std::mutex memory_lock;
static GpuMemoryStats memory;

void *gpu_alloc(void *ctx, size_t bytes)
{
    (void)ctx;
    size_t *p = (size_t *)malloc(bytes + 16);
    if (!p) sd_die(3, "emu: out of memory");
    *p = bytes;
    std::lock_guard<std::mutex> hold(memory_lock);
    memory.allocations++;
    memory.current += bytes;
    if (memory.current > memory.peak) memory.peak = memory.current;
    return (char *)p + 16;
}

void gpu_release(void *ctx, void *p)
{
    (void)ctx;
    if (!p) return;
    std::lock_guard<std::mutex> hold(memory_lock);
    memory.allocations--;
    memory.current -= *(size_t *)((char *)p - 16);
    free((char *)p - 16);
}

void gpu_upload(void *, void *dst, const void *src, size_t bytes) { memcpy(dst, src, bytes); }
void gpu_download(void *, void *dst, const void *src, size_t bytes) { memcpy(dst, src, bytes); }
void gpu_copy(void *, void *dst, const void *src, size_t bytes) { memmove(dst, src, bytes); }
void gpu_zero(void *, void *p, size_t bytes) { memset(p, 0, bytes); }
void gpu_sync(void *) {}

extern "C" GpuMemoryStats gpu_memory_stats(void)
{
    std::lock_guard<std::mutex> hold(memory_lock);
    return memory;
}

extern "C" void gpu_memory_reset_peak(void) { memory.peak = memory.current; }

#define EMU_SET_OP(ret, name, args) be->name = gpu_##name;

extern "C" int gpu_backend_open(Backend *be, int fast)
{
    GpuCtx *g = (GpuCtx *)calloc(1, sizeof *g);
    if (!g) return sd_fail("emu: out of memory");
    g->fast = fast;
    g->sm = 90;
    g->scratch = new std::vector<void *>();
    be->name = "cuda";
    be->ctx = g;
    SDSEG_OPS(EMU_SET_OP)
    fprintf(stderr, "gpu_emu: the CUDA backend's kernels run on CPU threads (%s mode)\n", fast ? "bf16" : "float32");
    return SD_OK;
}

extern "C" void gpu_backend_close(Backend *be)
{
    GpuCtx *g = gctx(be->ctx);
    gpu_conv_cache_free(g);
    if (!g->scratch->empty()) sd_die(3, "emu: %zu workspace blocks still taken at close", g->scratch->size());
    delete g->scratch;
    free(g);
    be->ctx = NULL;
}
