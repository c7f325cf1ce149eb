/* Kernel benchmark of the CUDA backend (make bench-gpu).
 *
 *   bench_gpu [--out DIR] [--commit ID] [--quick]
 *
 * Times the operators on the seed networks' shapes: the segmentation U-Net's at batch 8
 * and 256x256, the diffusion U-Net's at batch 4 on 32x32/16x16/8x8 latents with 320, 640
 * and 1280 channels, attention over 1024 and 256 tokens, norms and elementwise operators
 * at those sizes, the optimizers over the models' parameter counts. Convolutions, linear
 * layers and attention run in both precision modes (float32 checked, bf16 fast), the rest
 * (mode-independent) once.
 *
 * Each time is the median of many runs after warm-up, each run bracketed by CUDA events
 * on the backend's stream. Achieved rates are FLOP/s for the products (2 per
 * multiply-add, backward = dx + dw = twice the forward) and GB/s of the minimal traffic
 * (every input read once, every output written once, accumulated outputs read and
 * written) for the rest; each is divided by the device's own ceiling MEASURED IN THE SAME
 * RUN: a 1 GiB device-to-device copy (bytes read + written), and 8192^3 cuBLAS GEMMs in
 * float32 (no TF32) and in bf16 with float32 accumulation (the fast mode's products).
 * Writes DIR/bench-gpu-<device>.csv and a gnuplot script for the chart (rendered by
 * `make bench-gpu`), prints the table and the accountant's peak device memory. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../gpu/internal.h"
extern "C" {
#include "../core/fileio.h"
}

#define MAX_ROWS 256
#define TARGET_SECONDS 0.25 /* timed runs per row: about this long, within [MIN_REPS, MAX_REPS] */
#define MIN_REPS 5
#define MAX_REPS 60
#define WARMUP 3

typedef struct {
    double copy_gbs, f32_tflops, bf16_tflops;
} Ceilings;

typedef struct {
    char mode[8], op[40], shape[64];
    double median_ms, min_ms;
    int reps, is_flops;
    double work; /* FLOPs or bytes per run */
    double ceiling; /* TFLOP/s or GB/s */
} Row;

typedef struct {
    Backend be;
    GpuCtx *g;
    int fast;
    Ceilings ceil;
    real *live[16];
    int nlive;
    uint64_t seed;
    int quick;
} Bench;

static Row rows[MAX_ROWS];
static int nrows;

/* ------------------------------------------------------------ timing */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* One run of fn bracketed by events on the backend's stream, in ms. */
template <class F> static float event_ms(GpuCtx *g, cudaEvent_t t0, cudaEvent_t t1, F &fn)
{
    float ms;
    CUDA_CHECK(cudaEventRecord(t0, g->stream));
    fn();
    CUDA_CHECK(cudaEventRecord(t1, g->stream));
    CUDA_CHECK(cudaEventSynchronize(t1));
    CUDA_CHECK(cudaEventElapsedTime(&ms, t0, t1));
    return ms;
}

/* Median and minimum over as many runs as fit in TARGET_SECONDS (after WARMUP). */
template <class F> static void time_runs(Bench *b, F fn, double *median, double *minimum, int *reps)
{
    cudaEvent_t t0, t1;
    CUDA_CHECK(cudaEventCreate(&t0));
    CUDA_CHECK(cudaEventCreate(&t1));
    double first = 0;
    for (int i = 0; i < WARMUP; i++) first = event_ms(b->g, t0, t1, fn);
    int n = (int)(TARGET_SECONDS * 1e3 / (first > 1e-3 ? first : 1e-3));
    n = n < MIN_REPS ? MIN_REPS : n > MAX_REPS ? MAX_REPS : n;
    if (b->quick) n = MIN_REPS;
    double t[MAX_REPS];
    for (int i = 0; i < n; i++) t[i] = event_ms(b->g, t0, t1, fn);
    qsort(t, n, sizeof *t, cmp_double);
    *median = n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
    *minimum = t[0];
    *reps = n;
    CUDA_CHECK(cudaEventDestroy(t0));
    CUDA_CHECK(cudaEventDestroy(t1));
}

/* Time fn and add a row; work is FLOPs (is_flops) or bytes. */
template <class F> static void record(Bench *b, const char *op, const char *shape, double work, int is_flops, F fn)
{
    if (nrows == MAX_ROWS) sd_die(3, "bench_gpu: more than %d rows", MAX_ROWS);
    Row *r = &rows[nrows++];
    snprintf(r->mode, sizeof r->mode, "%s", b->fast ? "fast" : "f32");
    snprintf(r->op, sizeof r->op, "%s", op);
    snprintf(r->shape, sizeof r->shape, "%s", shape);
    r->work = work;
    r->is_flops = is_flops;
    r->ceiling = is_flops ? (b->fast ? b->ceil.bf16_tflops : b->ceil.f32_tflops) : b->ceil.copy_gbs;
    time_runs(b, fn, &r->median_ms, &r->min_ms, &r->reps);
    double rate = work / (r->median_ms * 1e-3) / (is_flops ? 1e12 : 1e9);
    printf("%-5s %-28s %-34s %9.3f ms %9.2f %-7s %5.1f%%\n", r->mode, op, shape, r->median_ms, rate,
           is_flops ? "TFLOP/s" : "GB/s", 100 * rate / r->ceiling);
    fflush(stdout);
}

/* ------------------------------------------------------------ tensors */

static real *tensor(Bench *b, size_t n)
{
    if (b->nlive == 16) sd_die(3, "bench_gpu: too many live tensors");
    real *p = (real *)b->be.alloc(b->be.ctx, n * sizeof(real));
    b->be.fill_uniform(b->be.ctx, n, p, -1, 1, 99, b->seed++, 0);
    return b->live[b->nlive++] = p;
}

static void release_all(Bench *b)
{
    for (int i = 0; i < b->nlive; i++) b->be.release(b->be.ctx, b->live[i]);
    b->nlive = 0;
}

#define F4 4.0 /* bytes per float */

/* ------------------------------------------------------------ products: both modes */

static void bench_conv(Bench *b, int n, int cin, int hw, int cout, int k, int stride, int pad)
{
    Conv2dShape s = conv2d_shape(n, cin, hw, hw, cout, k, stride, pad);
    if (conv2d_shape_check(&s)) sd_die(3, "bench_gpu: %s", sd_last_error());
    size_t nx = (size_t)n * cin * hw * hw, ny = (size_t)n * cout * s.h_out * s.w_out, nw = (size_t)cout * cin * k * k;
    real *x = tensor(b, nx), *w = tensor(b, nw), *bias = tensor(b, cout), *y = tensor(b, ny);
    real *dx = tensor(b, nx), *dw = tensor(b, nw), *db = tensor(b, cout);
    double flops = 2.0 * ny * cin * k * k;
    char shape[64];
    snprintf(shape, sizeof shape, "n%d %d->%d %dx%d k%d s%d", n, cin, cout, hw, hw, k, stride);
    void *ctx = b->be.ctx;
    record(b, "conv2d_forward", shape, flops, 1, [&] { gpu_conv2d_forward(ctx, &s, y, x, w, bias); });
    record(b, "conv2d_backward", shape, 2 * flops, 1, [&] { gpu_conv2d_backward(ctx, &s, dx, dw, db, y, x, w); });
    release_all(b);
}

static void bench_convt(Bench *b, int n, int cin, int hw, int cout, int k, int stride, int pad)
{
    ConvT2dShape s = {n, cin, hw, hw, cout, k, stride, pad, 0, 0};
    if (conv_transpose2d_shape_check(&s)) sd_die(3, "bench_gpu: %s", sd_last_error());
    size_t nx = (size_t)n * cin * hw * hw, ny = (size_t)n * cout * s.h_out * s.w_out, nw = (size_t)cin * cout * k * k;
    real *x = tensor(b, nx), *w = tensor(b, nw), *bias = tensor(b, cout), *y = tensor(b, ny);
    real *dx = tensor(b, nx), *dw = tensor(b, nw), *db = tensor(b, cout);
    double flops = 2.0 * nx * cout * k * k;
    char shape[64];
    snprintf(shape, sizeof shape, "n%d %d->%d %dx%d k%d s%d", n, cin, cout, hw, hw, k, stride);
    void *ctx = b->be.ctx;
    record(b, "conv_transpose2d_forward", shape, flops, 1, [&] { gpu_conv_transpose2d_forward(ctx, &s, y, x, w, bias); });
    record(b, "conv_transpose2d_backward", shape, 2 * flops, 1,
           [&] { gpu_conv_transpose2d_backward(ctx, &s, dx, dw, db, y, x, w); });
    release_all(b);
}

static void bench_linear(Bench *b, int rows_, int in, int out)
{
    LinearShape s = {rows_, in, out};
    real *x = tensor(b, (size_t)rows_ * in), *w = tensor(b, (size_t)out * in), *bias = tensor(b, out);
    real *y = tensor(b, (size_t)rows_ * out), *dx = tensor(b, (size_t)rows_ * in), *dw = tensor(b, (size_t)out * in);
    real *db = tensor(b, out);
    double flops = 2.0 * rows_ * in * out;
    char shape[64];
    snprintf(shape, sizeof shape, "%dx%d -> %d", rows_, in, out);
    void *ctx = b->be.ctx;
    record(b, "linear_forward", shape, flops, 1, [&] { gpu_linear_forward(ctx, &s, y, x, w, bias); });
    record(b, "linear_backward", shape, 2 * flops, 1, [&] { gpu_linear_backward(ctx, &s, dx, dw, db, y, x, w); });
    release_all(b);
}

static void bench_attention(Bench *b, int n, int len, int c, int heads)
{
    AttnShape s = {n, len, heads, c / heads};
    size_t nqkv = (size_t)n * len * 3 * c, nout = (size_t)n * len * c, np = (size_t)n * heads * len * len;
    real *qkv = tensor(b, nqkv), *out = tensor(b, nout), *probs = tensor(b, np), *dqkv = tensor(b, nqkv);
    double flops = 4.0 * n * heads * (double)len * len * s.head_dim;
    char shape[64];
    snprintf(shape, sizeof shape, "n%d len%d c%d h%d", n, len, c, heads);
    void *ctx = b->be.ctx;
    record(b, "attention_forward", shape, flops, 1, [&] { gpu_attention_forward(ctx, &s, out, probs, qkv); });
    record(b, "attention_backward", shape, 2 * flops, 1, [&] { gpu_attention_backward(ctx, &s, dqkv, out, qkv, probs); });
    release_all(b);
}

static void bench_products(Bench *b)
{
    /* segmentation U-Net, batch 8, 256x256 */
    bench_conv(b, 8, 1, 256, 64, 3, 1, 1);
    bench_conv(b, 8, 64, 256, 64, 3, 1, 1);
    bench_conv(b, 8, 128, 128, 128, 3, 1, 1);
    bench_conv(b, 8, 256, 64, 256, 3, 1, 1);
    bench_conv(b, 8, 512, 32, 512, 3, 1, 1);
    bench_conv(b, 8, 1024, 16, 1024, 3, 1, 1);
    bench_conv(b, 8, 64, 256, 1, 1, 1, 0);
    bench_convt(b, 8, 1024, 16, 512, 2, 2, 0);
    bench_convt(b, 8, 128, 128, 64, 2, 2, 0);
    /* diffusion U-Net, batch 4 (also 8 at 320 channels, 2 for the widest), latents 32x32 .. 8x8 */
    bench_conv(b, 4, 32, 32, 320, 3, 1, 1);
    bench_conv(b, 4, 320, 32, 320, 3, 1, 1);
    bench_conv(b, 8, 320, 32, 320, 3, 1, 1);
    bench_conv(b, 4, 320, 32, 320, 3, 2, 1);
    bench_conv(b, 4, 640, 16, 640, 3, 1, 1);
    bench_conv(b, 4, 1280, 8, 1280, 3, 1, 1);
    bench_conv(b, 2, 2560, 8, 1280, 3, 1, 1);
    bench_conv(b, 4, 320, 32, 320, 1, 1, 0);
    /* transformer projections and attention (tokens = 4 x 1024 and 4 x 256) */
    bench_linear(b, 4096, 320, 960);
    bench_linear(b, 4096, 320, 2560);
    bench_linear(b, 4096, 1280, 320);
    bench_linear(b, 1024, 640, 5120);
    bench_attention(b, 4, 1024, 320, 8);
    bench_attention(b, 4, 256, 640, 8);
    bench_attention(b, 2, 1024, 512, 1); /* the VAE's single head at 32x32 */
}

/* ------------------------------------------------------------ bandwidth-bound operators: once */

static void bench_norms(Bench *b)
{
    void *ctx = b->be.ctx;
    char shape[64];
    { /* the segmentation U-Net's first BatchNorm */
        BatchNormShape s = {8, 64, 256 * 256, 1e-3f, 0.01f};
        size_t n = (size_t)s.n * s.c * s.hw;
        real *x = tensor(b, n), *y = tensor(b, n), *dx = tensor(b, n), *gamma = tensor(b, s.c), *beta = tensor(b, s.c);
        real *m = tensor(b, s.c), *r = tensor(b, s.c), *rm = tensor(b, s.c), *rv = tensor(b, s.c);
        real *dgamma = tensor(b, s.c), *dbeta = tensor(b, s.c);
        snprintf(shape, sizeof shape, "8x64x256x256");
        record(b, "batch_norm_forward_train", shape, 2 * F4 * n, 0,
               [&] { gpu_batch_norm_forward_train(ctx, &s, y, x, gamma, beta, m, r, rm, rv); });
        record(b, "batch_norm_backward", shape, 4 * F4 * n, 0,
               [&] { gpu_batch_norm_backward(ctx, &s, dx, dgamma, dbeta, y, x, gamma, m, r); });
        release_all(b);
    }
    int gn[2][4] = {{4, 320, 32 * 32, 8}, {4, 1280, 8 * 8, 8}};
    for (int i = 0; i < 2; i++) {
        GroupNormShape s = {gn[i][0], gn[i][1], gn[i][2], gn[i][3], 1e-5f};
        size_t n = (size_t)s.n * s.c * s.hw, ng = (size_t)s.n * s.groups;
        real *x = tensor(b, n), *y = tensor(b, n), *dx = tensor(b, n), *gamma = tensor(b, s.c), *beta = tensor(b, s.c);
        real *m = tensor(b, ng), *r = tensor(b, ng), *dgamma = tensor(b, s.c), *dbeta = tensor(b, s.c);
        snprintf(shape, sizeof shape, "%dx%dx%d groups %d", s.n, s.c, s.hw, s.groups);
        record(b, "group_norm_forward", shape, 2 * F4 * n, 0,
               [&] { gpu_group_norm_forward(ctx, &s, y, x, gamma, beta, m, r); });
        record(b, "group_norm_backward", shape, 4 * F4 * n, 0,
               [&] { gpu_group_norm_backward(ctx, &s, dx, dgamma, dbeta, y, x, gamma, m, r); });
        release_all(b);
    }
    int ln[2][2] = {{4096, 320}, {1024, 640}};
    for (int i = 0; i < 2; i++) {
        LayerNormShape s = {ln[i][0], ln[i][1], 1e-5f};
        size_t n = (size_t)s.rows * s.dim;
        real *x = tensor(b, n), *y = tensor(b, n), *dx = tensor(b, n), *gamma = tensor(b, s.dim);
        real *beta = tensor(b, s.dim), *m = tensor(b, s.rows), *r = tensor(b, s.rows);
        real *dgamma = tensor(b, s.dim), *dbeta = tensor(b, s.dim);
        snprintf(shape, sizeof shape, "%dx%d", s.rows, s.dim);
        record(b, "layer_norm_forward", shape, 2 * F4 * n, 0,
               [&] { gpu_layer_norm_forward(ctx, &s, y, x, gamma, beta, m, r); });
        record(b, "layer_norm_backward", shape, 4 * F4 * n, 0,
               [&] { gpu_layer_norm_backward(ctx, &s, dx, dgamma, dbeta, y, x, gamma, m, r); });
        release_all(b);
    }
}

static void bench_elementwise(Bench *b)
{
    void *ctx = b->be.ctx;
    { /* the segmentation U-Net's widest activation: 8x64x256x256 */
        ImageShape s = {8, 64, 256, 256};
        size_t n = (size_t)s.n * s.c * s.h * s.w;
        real *x = tensor(b, n), *y = tensor(b, n), *dx = tensor(b, n), *p = tensor(b, n / 4);
        const char *shape = "8x64x256x256";
        record(b, "act_forward relu", shape, 2 * F4 * n, 0, [&] { gpu_act_forward(ctx, ACT_RELU, 0, n, y, x); });
        record(b, "act_backward relu", shape, 4 * F4 * n, 0, [&] { gpu_act_backward(ctx, ACT_RELU, 0, n, dx, y, x); });
        record(b, "add_forward", shape, 3 * F4 * n, 0, [&] { gpu_add_forward(ctx, n, y, x, dx); });
        record(b, "max_pool2x2_forward", shape, 1.25 * F4 * n, 0, [&] { gpu_max_pool2x2_forward(ctx, &s, p, x); });
        record(b, "max_pool2x2_backward", shape, 1.75 * F4 * n, 0,
               [&] { gpu_max_pool2x2_backward(ctx, &s, dx, p, x); });
        record(b, "concat_forward", "8x(32+32)x256x256", 2 * F4 * n, 0,
               [&] { gpu_concat_forward(ctx, 8, 32, 32, 256 * 256, y, x, dx); });
        release_all(b);
    }
    { /* diffusion: 4x320x32x32 tokens and activations */
        int n_ = 4, c = 320, hw = 1024;
        size_t n = (size_t)n_ * c * hw;
        real *x = tensor(b, n), *y = tensor(b, n), *dx = tensor(b, n), *sc = tensor(b, (size_t)n_ * c);
        real *sh = tensor(b, (size_t)n_ * c), *dsc = tensor(b, (size_t)n_ * c), *dsh = tensor(b, (size_t)n_ * c);
        const char *shape = "4x320x32x32";
        record(b, "act_forward silu", shape, 2 * F4 * n, 0, [&] { gpu_act_forward(ctx, ACT_SILU, 0, n, y, x); });
        record(b, "act_forward gelu_erf", shape, 2 * F4 * n, 0, [&] { gpu_act_forward(ctx, ACT_GELU_ERF, 0, n, y, x); });
        record(b, "nchw_to_nlc_forward", shape, 2 * F4 * n, 0, [&] { gpu_nchw_to_nlc_forward(ctx, n_, c, hw, y, x); });
        record(b, "nchw_to_nlc_backward", shape, 3 * F4 * n, 0, [&] { gpu_nchw_to_nlc_backward(ctx, n_, c, hw, dx, y); });
        record(b, "film_forward", shape, 2 * F4 * n, 0, [&] { gpu_film_forward(ctx, n_, c, hw, y, x, sc, sh); });
        record(b, "film_backward", shape, 4 * F4 * n, 0,
               [&] { gpu_film_backward(ctx, n_, c, hw, dx, dsc, dsh, y, x, sc); });
        ImageShape img = {4, 320, 32, 32};
        size_t low_n = (size_t)4 * 1280 * 8 * 8; /* read once, written 4 times over */
        record(b, "blur3x3_forward s2", shape, 1.25 * F4 * n, 0, [&] { gpu_blur3x3_forward(ctx, &img, 2, y, x); });
        record(b, "blur3x3_backward s2", shape, 2.25 * F4 * n, 0, [&] { gpu_blur3x3_backward(ctx, &img, 2, dx, y); });
        ImageShape low = {4, 1280, 8, 8};
        record(b, "upsample2x_forward", "4x1280x8x8", 5 * F4 * low_n, 0,
               [&] { gpu_upsample2x_forward(ctx, &low, y, x); });
        release_all(b);
    }
    { /* GeGLU of the diffusion transformer at 320 channels: 4096 tokens x 2 x 1280 */
        int r = 4096, d = 1280;
        size_t n = (size_t)r * d;
        real *x = tensor(b, 2 * n), *y = tensor(b, n), *dx = tensor(b, 2 * n);
        record(b, "geglu_forward", "4096x(2x1280)", 3 * F4 * n, 0, [&] { gpu_geglu_forward(ctx, r, d, y, x); });
        record(b, "geglu_backward", "4096x(2x1280)", 7 * F4 * n, 0, [&] { gpu_geglu_backward(ctx, r, d, dx, y, x); });
        release_all(b);
    }
}

static void bench_losses_optim(Bench *b)
{
    void *ctx = b->be.ctx;
    {
        size_t n = (size_t)8 * 256 * 256;
        real *x = tensor(b, n), *t = tensor(b, n), *dx = tensor(b, n), *loss = tensor(b, 1);
        record(b, "bce_logits_forward", "8x1x256x256", 2 * F4 * n, 0, [&] { gpu_bce_logits_forward(ctx, n, loss, x, t); });
        record(b, "bce_logits_backward", "8x1x256x256", 4 * F4 * n, 0,
               [&] { gpu_bce_logits_backward(ctx, n, 1, dx, x, t); });
        record(b, "soft_dice_backward", "8x1x256x256", 4 * F4 * n, 0,
               [&] { gpu_soft_dice_backward(ctx, n, 1, 1, dx, x, t); });
        release_all(b);
    }
    { /* the segmentation U-Net's 31.0 M parameters; the VAE's 55.0 M */
        size_t seg = 31000000, vae = 55000000;
        real *w = tensor(b, vae), *g = tensor(b, vae), *m = tensor(b, vae), *v = tensor(b, vae), *out = tensor(b, 1);
        b->be.zero(ctx, v, vae * sizeof(real)); /* a valid second moment */
        record(b, "adam_step", "31.0M params", 7 * F4 * seg, 0,
               [&] { gpu_adam_step(ctx, seg, w, g, m, v, 1e-3f, 0.9f, 0.999f, 1e-8f, 1e-3f, 0, 10); });
        record(b, "sgd_step momentum", "55.0M params", 5 * F4 * vae, 0,
               [&] { gpu_sgd_step(ctx, vae, w, g, m, 1e-4f, 0.9f, 0, 0, 0, 10); });
        record(b, "ema_update", "55.0M params", 3 * F4 * vae, 0, [&] { gpu_ema_update(ctx, vae, m, w, 0.999f); });
        record(b, "sum_squares", "55.0M params", F4 * vae, 0, [&] { gpu_sum_squares(ctx, vae, out, g); });
        release_all(b);
    }
}

/* ------------------------------------------------------------ ceilings */

struct ToBf16 {
    __nv_bfloat16 *dst;
    const real *src;
    __device__ void operator()(size_t i) const { dst[i] = __float2bfloat16_rn(src[i]); }
};

static double gemm_tflops(Bench *b, int dim, int bf16)
{
    size_t n = (size_t)dim * dim;
    real *a = tensor(b, n), *c = tensor(b, n), *d = tensor(b, n);
    const void *A = a, *B = c;
    cudaDataType_t t = CUDA_R_32F;
    if (bf16) { /* bf16 copies (untimed) */
        __nv_bfloat16 *ha = (__nv_bfloat16 *)d, *hb = ha + n; /* both fit in d's 4n bytes */
        launch_foreach(b->g, n, ToBf16{ha, a});
        launch_foreach(b->g, n, ToBf16{hb, c});
        A = ha;
        B = hb;
        t = CUDA_R_16BF;
        d = a; /* the product goes over a, no longer needed */
    }
    double med, mn;
    int reps;
    float one = 1, zero = 0;
    time_runs(b, [&] {
        CUBLAS_CHECK(cublasGemmEx(b->g->cublas, CUBLAS_OP_N, CUBLAS_OP_N, dim, dim, dim, &one, A, t, dim, B, t, dim,
                                  &zero, d, CUDA_R_32F, dim, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    }, &med, &mn, &reps);
    release_all(b);
    return 2.0 * dim * dim * (double)dim / (med * 1e-3) / 1e12;
}

static void measure_ceilings(Bench *b)
{
    size_t bytes = (size_t)1 << 30;
    real *src = tensor(b, bytes / sizeof(real)), *dst = tensor(b, bytes / sizeof(real));
    double med, mn;
    int reps;
    time_runs(b, [&] { CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, b->g->stream)); }, &med,
              &mn, &reps);
    release_all(b);
    b->ceil.copy_gbs = 2.0 * bytes / (med * 1e-3) / 1e9;
    b->ceil.f32_tflops = gemm_tflops(b, 8192, 0);
    b->ceil.bf16_tflops = gemm_tflops(b, 8192, 1);
    printf("ceilings: device-to-device copy %.0f GB/s (read + write), GEMM 8192^3 float32 %.1f TFLOP/s, "
           "bf16 %.1f TFLOP/s\n",
           b->ceil.copy_gbs, b->ceil.f32_tflops, b->ceil.bf16_tflops);
}

/* ------------------------------------------------------------ output */

typedef struct {
    char device[256], slug[128], date[32], commit[64], command[512];
} RunInfo;

static void device_slug(const char *name, char *slug, size_t n)
{
    size_t k = 0;
    for (const char *p = name; *p && k + 1 < n; p++) {
        char c = *p;
        if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
        int alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (alnum) slug[k++] = c;
        else if (k && slug[k - 1] != '-') slug[k++] = '-';
    }
    while (k && slug[k - 1] == '-') k--;
    slug[k] = 0;
}

static int write_csv(const char *path, const RunInfo *ri)
{
    AtomicFile af;
    if (atomic_open(&af, path)) return SD_ERR;
    fprintf(af.f, "device,date,commit,command,mode,op,shape,median_ms,min_ms,reps,unit,achieved,ceiling,fraction\n");
    for (int i = 0; i < nrows; i++) {
        const Row *r = &rows[i];
        double rate = r->work / (r->median_ms * 1e-3) / (r->is_flops ? 1e12 : 1e9);
        fprintf(af.f, "%s,%s,%s,%s,%s,%s,%s,%.4f,%.4f,%d,%s,%.3f,%.3f,%.4f\n", ri->device, ri->date, ri->commit,
                ri->command, r->mode, r->op, r->shape, r->median_ms, r->min_ms, r->reps,
                r->is_flops ? "TFLOP/s" : "GB/s", rate, r->ceiling, rate / r->ceiling);
    }
    return atomic_commit(&af);
}

/* The chart: one bar per row, the fraction of the ceiling it reached, by mode. */
static int write_gnuplot(const char *path, const char *csv, const char *png, const RunInfo *ri)
{
    AtomicFile af;
    if (atomic_open(&af, path)) return SD_ERR;
    FILE *f = af.f;
    fprintf(f, "# sdseg bench-gpu chart: gnuplot %s\n# %s\n", path, ri->command);
    fprintf(f, "set terminal pngcairo noenhanced size 1800,1000 font \",9\"\nset output \"%s\"\n", png);
    fprintf(f, "set datafile separator \",\"\n");
    fprintf(f, "set title \"sdseg CUDA operators on %s, %s, commit %s: fraction of the ceilings measured in the "
               "same run\"\n",
            ri->device, ri->date, ri->commit);
    fprintf(f, "set ylabel \"achieved / ceiling (GEMM TFLOP/s of the mode for products, copy GB/s otherwise)\"\n");
    fprintf(f, "set yrange [0:1.1]\nset grid ytics\nset style fill solid 0.8 border -1\nset boxwidth 0.8\n");
    fprintf(f, "set xtics rotate by 90 right font \",7\"\nset bmargin 22\nset key top right\nset xrange [-1:*]\n");
    fprintf(f, "plot \"%s\" skip 1 using 0:(strcol(5) eq \"f32\" ? $14 : 1/0):xtic(strcol(6).\" \".strcol(7)) "
               "with boxes lc rgb \"#4472c4\" title \"float32 (checked)\", \\\n",
            csv);
    fprintf(f, "     \"\" skip 1 using 0:(strcol(5) eq \"fast\" ? $14 : 1/0) with boxes lc rgb \"#ed7d31\" "
               "title \"bf16 operands (fast)\"\n");
    return atomic_commit(&af);
}

static void run_info(RunInfo *ri, const char *commit, int argc, char **argv)
{
    cudaDeviceProp prop;
    int dev;
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
    snprintf(ri->device, sizeof ri->device, "%s", prop.name);
    for (char *p = ri->device; *p; p++)
        if (*p == ',') *p = ' '; /* CSV */
    device_slug(prop.name, ri->slug, sizeof ri->slug);
    time_t now = time(NULL);
    strftime(ri->date, sizeof ri->date, "%Y-%m-%d %H:%M UTC", gmtime(&now));
    snprintf(ri->commit, sizeof ri->commit, "%s", commit);
    size_t k = 0;
    ri->command[0] = 0;
    for (int i = 0; i < argc && k + 1 < sizeof ri->command; i++)
        k += snprintf(ri->command + k, sizeof ri->command - k, "%s%s", i ? " " : "", argv[i]);
    for (char *p = ri->command; *p; p++)
        if (*p == ',' || *p == '"') *p = ' ';
}

/* ------------------------------------------------------------ main */

static void open_mode(Bench *b, int fast)
{
    if (gpu_backend_open(&b->be, fast)) sd_die(1, "bench_gpu: %s", sd_last_error());
    b->g = gctx(b->be.ctx);
    b->fast = b->g->fast;
}

int main(int argc, char **argv)
{
    const char *out = "reports", *commit = "unknown";
    Bench b;
    memset(&b, 0, sizeof b);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
        else if (!strcmp(argv[i], "--commit") && i + 1 < argc) commit = argv[++i];
        else if (!strcmp(argv[i], "--quick")) b.quick = 1;
        else sd_die(2, "usage: bench_gpu [--out DIR] [--commit ID] [--quick]");
    }
    open_mode(&b, 0);
    RunInfo ri;
    run_info(&ri, commit, argc, argv);
    printf("sdseg bench-gpu on %s (sm_%d), %s, commit %s\n", ri.device, b.g->sm, ri.date, ri.commit);
    measure_ceilings(&b);
    Ceilings ceil = b.ceil;
    bench_products(&b);
    bench_norms(&b);
    bench_elementwise(&b);
    bench_losses_optim(&b);
    gpu_backend_close(&b.be);
    open_mode(&b, 1);
    b.ceil = ceil;
    if (b.fast) bench_products(&b);
    gpu_backend_close(&b.be);
    char csv[1024], gp[1024], png[1024];
    snprintf(csv, sizeof csv, "%s/bench-gpu-%s.csv", out, ri.slug);
    snprintf(gp, sizeof gp, "%s/bench-gpu-%s.gp", out, ri.slug);
    snprintf(png, sizeof png, "%s/bench-gpu-%s.png", out, ri.slug);
    if (write_csv(csv, &ri) || write_gnuplot(gp, csv, png, &ri)) sd_die(1, "bench_gpu: %s", sd_last_error());
    GpuMemoryStats m = gpu_memory_stats();
    printf("peak device memory (accountant): %.1f MiB\n", m.peak / 1048576.0);
    printf("wrote %s and %s (gnuplot %s renders %s)\n", csv, gp, gp, png);
    return 0;
}
