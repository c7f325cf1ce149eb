/* conv2d and conv_transpose2d through cuDNN 9 (legacy convolution API).
 *
 * Every call is phrased as one cuDNN convolution "input [n,c,h,w] * filter [k,c,r,s] ->
 * output [n,k,p,q]" with symmetric padding, run forward, backward-data or
 * backward-filter:
 *   conv2d            forward = fwd, dx = bwd-data, dw = bwd-filter;
 *   conv_transpose2d  is the backward-data of the convolution that maps its output
 *                     space to its input space: forward = bwd-data, dx = fwd,
 *                     dw = bwd-filter(dy, x); PyTorch's weight [c_in, c_out, k, k] is
 *                     exactly that convolution's filter [k=c_in, c=c_out, r, s].
 * Asymmetric padding (the seed VAE's pad-right/bottom-then-stride-2) is handled by an
 * explicit zero-pad of x into workspace and a convolution without padding; dx is then
 * computed for the padded input and cropped. (Cropping a symmetric-padded result would
 * not do: with stride 2 the sampling grid would shift by half a step.)
 *
 * Plans (descriptors and the algorithm of each direction) are made once per geometry
 * and precision and cached. Algorithms come from cuDNN's heuristics
 * (cudnnGet*Algorithm_v7: no trial runs, so nothing is allocated behind the accountant's
 * back): the first deterministic one that fits in CONV_WS_LIMIT bytes of workspace, in
 * checked mode only among FMA-math ones. Checked mode: float32 tensors, CUDNN_FMA_MATH
 * (on sm_80+ CUDNN_DEFAULT_MATH would allow TF32). Fast mode: bf16 copies of the
 * operands, float32 compute, a bf16 result in workspace that a kernel adds to the
 * float32 output together with the bias; a geometry cuDNN cannot run in bf16 runs in
 * float32 instead (said once). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reduce.h"

#define CONV_WS_LIMIT ((size_t)1 << 30)

typedef struct {
    int n, c, h, w;    /* input */
    int k, r, s;       /* filter */
    int stride_h, stride_w, pad_h, pad_w;
    int p, q;          /* output */
    int fast;          /* bf16 operands */
} ConvKey;

typedef enum { DIR_FWD, DIR_BWD_DATA, DIR_BWD_FILTER, DIR_COUNT } ConvDir;

typedef struct {
    int algo; /* cudnnConvolution{Fwd,BwdData,BwdFilter}Algo_t */
    cudnnMathType_t math;
    size_t ws_bytes;
} ConvAlgo;

typedef struct {
    ConvKey key;
    cudnnTensorDescriptor_t in, out;
    cudnnFilterDescriptor_t filter;
    cudnnConvolutionDescriptor_t conv;
    ConvAlgo algo[DIR_COUNT];
    int usable; /* an algorithm for every direction */
} ConvPlan;

struct ConvCache {
    ConvPlan **plan;
    int count, cap;
};

static const char *const DIR_NAME[DIR_COUNT] = {"forward", "backward-data", "backward-filter"};

/* ------------------------------------------------------------ algorithm choice */

/* The fields every cuDNN perf struct shares, copied out of the three types. */
typedef struct {
    int algo;
    cudnnStatus_t status;
    size_t memory;
    cudnnDeterminism_t determinism;
    cudnnMathType_t math;
} Candidate;

template <class Perf> static int candidates(const Perf *perf, int count, Candidate *out)
{
    for (int i = 0; i < count; i++)
        out[i] = Candidate{(int)perf[i].algo, perf[i].status, perf[i].memory, perf[i].determinism, perf[i].mathType};
    return count;
}

#define MAX_CANDIDATES 16

static int heuristic_candidates(GpuCtx *g, ConvPlan *pl, ConvDir dir, Candidate *out)
{
    int got = 0;
    if (dir == DIR_FWD) {
        cudnnConvolutionFwdAlgoPerf_t perf[MAX_CANDIDATES];
        CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(g->cudnn, pl->in, pl->filter, pl->conv, pl->out,
                                                           MAX_CANDIDATES, &got, perf));
        return candidates(perf, got, out);
    }
    if (dir == DIR_BWD_DATA) {
        cudnnConvolutionBwdDataAlgoPerf_t perf[MAX_CANDIDATES];
        CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(g->cudnn, pl->filter, pl->out, pl->conv, pl->in,
                                                                MAX_CANDIDATES, &got, perf));
        return candidates(perf, got, out);
    }
    cudnnConvolutionBwdFilterAlgoPerf_t perf[MAX_CANDIDATES];
    CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(g->cudnn, pl->in, pl->out, pl->conv, pl->filter,
                                                              MAX_CANDIDATES, &got, perf));
    return candidates(perf, got, out);
}

/* Checked mode must not run TF32: FMA math only. Fast mode takes any math type. */
static int math_allowed(const ConvKey *k, cudnnMathType_t m) { return k->fast || m == CUDNN_FMA_MATH; }

static const Candidate *pick_candidate(const ConvKey *k, const Candidate *c, int count)
{
    for (int pass = 0; pass < 2; pass++) /* deterministic first, then any */
        for (int i = 0; i < count; i++)
            if (c[i].status == CUDNN_STATUS_SUCCESS && c[i].memory <= CONV_WS_LIMIT && math_allowed(k, c[i].math) &&
                (pass == 1 || c[i].determinism == CUDNN_DETERMINISTIC))
                return &c[i];
    return NULL;
}

static size_t workspace_size(GpuCtx *g, ConvPlan *pl, ConvDir dir, int algo)
{
    size_t bytes = 0;
    if (dir == DIR_FWD)
        CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(g->cudnn, pl->in, pl->filter, pl->conv, pl->out,
                                                            (cudnnConvolutionFwdAlgo_t)algo, &bytes));
    else if (dir == DIR_BWD_DATA)
        CUDNN_CHECK(cudnnGetConvolutionBackwardDataWorkspaceSize(g->cudnn, pl->filter, pl->out, pl->conv, pl->in,
                                                                 (cudnnConvolutionBwdDataAlgo_t)algo, &bytes));
    else
        CUDNN_CHECK(cudnnGetConvolutionBackwardFilterWorkspaceSize(g->cudnn, pl->in, pl->out, pl->conv, pl->filter,
                                                                   (cudnnConvolutionBwdFilterAlgo_t)algo, &bytes));
    return bytes;
}

/* Fill pl->algo[dir]; 0 when cuDNN offers nothing suitable. */
static int choose_algo(GpuCtx *g, ConvPlan *pl, ConvDir dir)
{
    CUDNN_CHECK(cudnnSetConvolutionMathType(pl->conv, pl->key.fast ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH));
    Candidate c[MAX_CANDIDATES];
    const Candidate *best = pick_candidate(&pl->key, c, heuristic_candidates(g, pl, dir, c));
    if (!best) return 0;
    ConvAlgo *a = &pl->algo[dir];
    a->algo = best->algo;
    a->math = pl->key.fast ? best->math : CUDNN_FMA_MATH;
    CUDNN_CHECK(cudnnSetConvolutionMathType(pl->conv, a->math));
    a->ws_bytes = workspace_size(g, pl, dir, a->algo);
    return 1;
}

/* ------------------------------------------------------------ plans */

static void plan_descriptors(ConvPlan *pl)
{
    const ConvKey *k = &pl->key;
    cudnnDataType_t t = k->fast ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;
    CUDNN_CHECK(cudnnCreateTensorDescriptor(&pl->in));
    CUDNN_CHECK(cudnnCreateTensorDescriptor(&pl->out));
    CUDNN_CHECK(cudnnCreateFilterDescriptor(&pl->filter));
    CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&pl->conv));
    CUDNN_CHECK(cudnnSetTensor4dDescriptor(pl->in, CUDNN_TENSOR_NCHW, t, k->n, k->c, k->h, k->w));
    CUDNN_CHECK(cudnnSetTensor4dDescriptor(pl->out, CUDNN_TENSOR_NCHW, t, k->n, k->k, k->p, k->q));
    CUDNN_CHECK(cudnnSetFilter4dDescriptor(pl->filter, t, CUDNN_TENSOR_NCHW, k->k, k->c, k->r, k->s));
    CUDNN_CHECK(cudnnSetConvolution2dDescriptor(pl->conv, k->pad_h, k->pad_w, k->stride_h, k->stride_w, 1, 1,
                                                CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    int n, c, h, w;
    CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(pl->conv, pl->in, pl->filter, &n, &c, &h, &w));
    if (n != k->n || c != k->k || h != k->p || w != k->q)
        sd_die(3, "conv: cuDNN computes output %dx%dx%dx%d, expected %dx%dx%dx%d", n, c, h, w, k->n, k->k, k->p, k->q);
}

static ConvPlan *new_plan(GpuCtx *g, const ConvKey *key)
{
    ConvPlan *pl = (ConvPlan *)calloc(1, sizeof *pl);
    if (!pl) sd_die(3, "out of host memory for a convolution plan");
    pl->key = *key;
    plan_descriptors(pl);
    pl->usable = 1;
    for (int d = 0; d < DIR_COUNT; d++) pl->usable &= choose_algo(g, pl, (ConvDir)d);
    return pl;
}

static ConvPlan *cached_plan(GpuCtx *g, const ConvKey *key)
{
    ConvCache *cc = g->conv;
    if (!cc) {
        cc = g->conv = (ConvCache *)calloc(1, sizeof *cc);
        if (!cc) sd_die(3, "out of host memory for the convolution plans");
    }
    for (int i = 0; i < cc->count; i++)
        if (!memcmp(&cc->plan[i]->key, key, sizeof *key)) return cc->plan[i];
    if (cc->count == cc->cap) {
        cc->cap = cc->cap ? 2 * cc->cap : 32;
        cc->plan = (ConvPlan **)realloc(cc->plan, cc->cap * sizeof *cc->plan);
        if (!cc->plan) sd_die(3, "out of host memory for the convolution plans");
    }
    return cc->plan[cc->count++] = new_plan(g, key);
}

/* The plan for key. In fast mode, a geometry that cuDNN cannot run with bf16 in every
 * direction gets the float32 plan instead. */
static ConvPlan *conv_plan(GpuCtx *g, ConvKey key)
{
    static int noticed;
    ConvPlan *pl = cached_plan(g, &key);
    if (pl->usable) return pl;
    if (key.fast) {
        if (!noticed)
            fprintf(stderr, "sdseg: cuDNN has no bf16 algorithm for a %dx%d convolution of %dx%dx%dx%d: it runs in "
                            "float32 (said once)\n", key.r, key.s, key.n, key.c, key.h, key.w);
        noticed = 1;
        key.fast = 0;
        pl = cached_plan(g, &key);
        if (pl->usable) return pl;
    }
    for (int d = 0; d < DIR_COUNT; d++)
        if (!choose_algo(g, pl, (ConvDir)d))
            sd_die(3, "conv: cuDNN offers no %s algorithm for %dx%dx%dx%d * %dx%dx%dx%d (stride %d,%d pad %d,%d)",
                   DIR_NAME[d], key.n, key.c, key.h, key.w, key.k, key.c, key.r, key.s, key.stride_h, key.stride_w,
                   key.pad_h, key.pad_w);
    return pl;
}

void gpu_conv_cache_free(GpuCtx *g)
{
    ConvCache *cc = g->conv;
    if (!cc) return;
    for (int i = 0; i < cc->count; i++) {
        ConvPlan *pl = cc->plan[i];
        CUDNN_CHECK(cudnnDestroyTensorDescriptor(pl->in));
        CUDNN_CHECK(cudnnDestroyTensorDescriptor(pl->out));
        CUDNN_CHECK(cudnnDestroyFilterDescriptor(pl->filter));
        CUDNN_CHECK(cudnnDestroyConvolutionDescriptor(pl->conv));
        free(pl);
    }
    free(cc->plan);
    free(cc);
    g->conv = NULL;
}

/* ------------------------------------------------------------ running one direction
 * Operands are float or bf16 device buffers matching the plan's precision; `beta` 1
 * accumulates into the output (float32 outputs only). */

static void *plan_workspace(GpuCtx *g, ConvPlan *pl, ConvDir dir)
{
    const ConvAlgo *a = &pl->algo[dir];
    CUDNN_CHECK(cudnnSetConvolutionMathType(pl->conv, a->math));
    return a->ws_bytes ? ws_take(g, a->ws_bytes) : NULL;
}

static void run_fwd(GpuCtx *g, ConvPlan *pl, const void *in, const void *filter, void *out, float beta)
{
    ArenaScope scope(g);
    const ConvAlgo *a = &pl->algo[DIR_FWD];
    void *ws = plan_workspace(g, pl, DIR_FWD);
    float alpha = 1.0f;
    CUDNN_CHECK(cudnnConvolutionForward(g->cudnn, &alpha, pl->in, in, pl->filter, filter, pl->conv,
                                        (cudnnConvolutionFwdAlgo_t)a->algo, ws, a->ws_bytes, &beta, pl->out, out));
}

static void run_bwd_data(GpuCtx *g, ConvPlan *pl, const void *filter, const void *dout, void *din, float beta)
{
    ArenaScope scope(g);
    const ConvAlgo *a = &pl->algo[DIR_BWD_DATA];
    void *ws = plan_workspace(g, pl, DIR_BWD_DATA);
    float alpha = 1.0f;
    CUDNN_CHECK(cudnnConvolutionBackwardData(g->cudnn, &alpha, pl->filter, filter, pl->out, dout, pl->conv,
                                             (cudnnConvolutionBwdDataAlgo_t)a->algo, ws, a->ws_bytes, &beta, pl->in,
                                             din));
}

static void run_bwd_filter(GpuCtx *g, ConvPlan *pl, const void *in, const void *dout, void *dfilter, float beta)
{
    ArenaScope scope(g);
    const ConvAlgo *a = &pl->algo[DIR_BWD_FILTER];
    void *ws = plan_workspace(g, pl, DIR_BWD_FILTER);
    float alpha = 1.0f;
    CUDNN_CHECK(cudnnConvolutionBackwardFilter(g->cudnn, &alpha, pl->in, in, pl->out, dout, pl->conv,
                                               (cudnnConvolutionBwdFilterAlgo_t)a->algo, ws, a->ws_bytes, &beta,
                                               pl->filter, dfilter));
}

/* ------------------------------------------------------------ staging kernels */

/* dst [planes, ph, pw] = src [planes, h, w] placed at (top, left), zero around it, in
 * the operand type T. */
template <class T> struct PadInput {
    int h, w, ph, pw, top, left;
    T *dst;
    const real *src;
    __device__ void operator()(size_t i) const
    {
        size_t plane = i / ((size_t)ph * pw);
        int r = (int)(i % ((size_t)ph * pw)), y = r / pw - top, x = r % pw - left;
        float v = (y >= 0 && y < h && x >= 0 && x < w) ? src[plane * h * w + (size_t)y * w + x] : 0.0f;
        dst[i] = cast_to<T>(v);
    }
};

/* dst [planes, h, w] (+)= src [planes, sh, sw] cropped at (top, left), plus bias[plane %
 * c] when bias is not NULL: the last step of every computation that went through a
 * workspace result. */
template <class T> struct StoreOutput {
    int c, h, w, sh, sw, top, left, accumulate;
    real *dst;
    const T *src;
    const real *bias;
    __device__ void operator()(size_t i) const
    {
        size_t plane = i / ((size_t)h * w);
        int r = (int)(i % ((size_t)h * w)), y = r / w, x = r % w;
        float v = to_float(src[plane * sh * sw + (size_t)(y + top) * sw + x + left]);
        if (bias) v += bias[plane % c];
        dst[i] = accumulate ? dst[i] + v : v;
    }
};

/* x [planes, h, w] zero-padded to [planes, ph, pw] at (top, left), in workspace, bf16
 * or float32. */
static const void *stage_padded(GpuCtx *g, int bf16, const real *x, int planes, int h, int w, int ph, int pw, int top,
                                int left)
{
    size_t n = (size_t)planes * ph * pw;
    if (!bf16) {
        float *d = ws_array<float>(g, n);
        launch_foreach(g, n, PadInput<float>{h, w, ph, pw, top, left, d, x});
        return d;
    }
    __nv_bfloat16 *d = ws_array<__nv_bfloat16>(g, n);
    launch_foreach(g, n, PadInput<__nv_bfloat16>{h, w, ph, pw, top, left, d, x});
    return d;
}

/* A workspace result buffer for `n` values, bf16 or float32. */
static void *result_buffer(GpuCtx *g, int bf16, size_t n)
{
    return bf16 ? (void *)ws_array<__nv_bfloat16>(g, n) : (void *)ws_array<float>(g, n);
}

/* Where a workspace result goes: dst [planes, h, w], cut from src [planes, sh, sw] at
 * (top, left). */
typedef struct {
    int planes, c, h, w, sh, sw, top, left;
} Crop;

static Crop whole(int planes, int c, int h, int w)
{
    Crop k = {planes, c, h, w, h, w, 0, 0};
    return k;
}

static void store_output(GpuCtx *g, int bf16, real *dst, const void *src, Crop k, const real *bias, int accumulate)
{
    size_t n = (size_t)k.planes * k.h * k.w;
    if (bf16)
        launch_foreach(g, n, StoreOutput<__nv_bfloat16>{k.c, k.h, k.w, k.sh, k.sw, k.top, k.left, accumulate, dst,
                                                        (const __nv_bfloat16 *)src, bias});
    else
        launch_foreach(g, n, StoreOutput<float>{k.c, k.h, k.w, k.sh, k.sw, k.top, k.left, accumulate, dst,
                                                (const float *)src, bias});
}

struct AddChannelBias {
    int c, hw;
    real *y;
    const real *b;
    __device__ void operator()(size_t i) const { y[i] += b[(i / hw) % c]; }
};

/* db[ch] += sum of dy over (sample, position) */
struct ChannelBiasGrad {
    int c, hw;
    const real *dy;
    real *db;
    __device__ void add(long long ch, long long i, double *acc) const { acc[0] += dy[channel_term(ch, i, c, hw)]; }
    __device__ void done(long long ch, const double *acc) const { db[ch] += (float)acc[0]; }
};

static void bias_grad(GpuCtx *g, int n, int c, int hw, real *db, const real *dy)
{
    check_channel_terms("conv bias", n, hw);
    segment_reduce<1>(g, c, (long long)n * hw, ChannelBiasGrad{c, hw, dy, db});
}

/* ------------------------------------------------------------ the three directions, any precision */

/* out [n, k, p, q] (+)= conv(in, filter) (+ bias); accumulate = 0 overwrites. */
static void forward_into(GpuCtx *g, ConvPlan *pl, const void *in, const void *filter, real *out, const real *bias,
                         int accumulate)
{
    ArenaScope scope(g);
    const ConvKey *k = &pl->key;
    size_t n = (size_t)k->n * k->k * k->p * k->q;
    if (!k->fast) {
        run_fwd(g, pl, in, filter, out, accumulate ? 1.0f : 0.0f);
        if (bias) launch_foreach(g, n, AddChannelBias{k->k, k->p * k->q, out, bias});
        return;
    }
    void *tmp = result_buffer(g, 1, n);
    run_fwd(g, pl, in, filter, tmp, 0.0f);
    store_output(g, 1, out, tmp, whole(k->n * k->k, k->k, k->p, k->q), bias, accumulate);
}

/* din (+)= the input gradient of the plan's convolution, cut out of its [n, c, h, w] by
 * `crop`; accumulate = 0 overwrites (and then adds bias). */
static void backward_data_into(GpuCtx *g, ConvPlan *pl, const void *filter, const void *dout, real *din, Crop crop,
                               const real *bias, int accumulate)
{
    ArenaScope scope(g);
    const ConvKey *k = &pl->key;
    int direct = !k->fast && crop.h == k->h && crop.w == k->w;
    if (direct) {
        run_bwd_data(g, pl, filter, dout, din, accumulate ? 1.0f : 0.0f);
        if (bias) launch_foreach(g, (size_t)crop.planes * crop.h * crop.w, AddChannelBias{crop.c, crop.h * crop.w, din, bias});
        return;
    }
    void *tmp = result_buffer(g, k->fast, (size_t)k->n * k->c * k->h * k->w);
    run_bwd_data(g, pl, filter, dout, tmp, 0.0f);
    store_output(g, k->fast, din, tmp, crop, bias, accumulate);
}

/* dfilter += the filter gradient. */
static void backward_filter_into(GpuCtx *g, ConvPlan *pl, const void *in, const void *dout, real *dfilter)
{
    ArenaScope scope(g);
    const ConvKey *k = &pl->key;
    if (!k->fast) {
        run_bwd_filter(g, pl, in, dout, dfilter, 1.0f);
        return;
    }
    size_t count = (size_t)k->k * k->c * k->r * k->s;
    void *tmp = result_buffer(g, 1, count);
    run_bwd_filter(g, pl, in, dout, tmp, 0.0f);
    store_output(g, 1, dfilter, tmp, whole(1, 1, 1, (int)count), NULL, 1);
}

/* ------------------------------------------------------------ conv2d */

static int asymmetric(const Conv2dShape *s) { return s->pad_top != s->pad_bottom || s->pad_left != s->pad_right; }

/* The cuDNN convolution of a conv2d: with the padding folded into the input when it is
 * asymmetric. */
static ConvKey conv2d_key(const GpuCtx *g, const Conv2dShape *s)
{
    ConvKey k;
    memset(&k, 0, sizeof k); /* compared with memcmp */
    int asym = asymmetric(s);
    k.n = s->n;
    k.c = s->c_in;
    k.h = asym ? s->h + s->pad_top + s->pad_bottom : s->h;
    k.w = asym ? s->w + s->pad_left + s->pad_right : s->w;
    k.k = s->c_out;
    k.r = s->kh;
    k.s = s->kw;
    k.stride_h = s->stride_h;
    k.stride_w = s->stride_w;
    k.pad_h = asym ? 0 : s->pad_top;
    k.pad_w = asym ? 0 : s->pad_left;
    k.p = s->h_out;
    k.q = s->w_out;
    k.fast = g->fast;
    return k;
}

/* x as the plan's input operand: itself, its bf16 copy, or its padded copy. */
static const void *conv2d_input(GpuCtx *g, const Conv2dShape *s, const ConvPlan *pl, const real *x)
{
    const ConvKey *k = &pl->key;
    if (!asymmetric(s)) return gpu_operand_as(g, k->fast, x, (size_t)s->n * s->c_in * s->h * s->w);
    return stage_padded(g, k->fast, x, s->n * s->c_in, s->h, s->w, k->h, k->w, s->pad_top, s->pad_left);
}

static size_t conv2d_weights(const Conv2dShape *s) { return (size_t)s->c_out * s->c_in * s->kh * s->kw; }

void gpu_conv2d_forward(void *ctx, const Conv2dShape *s, real *y, const real *x, const real *w, const real *b)
{
    GpuCtx *g = gctx(ctx);
    ArenaScope scope(g);
    ConvPlan *pl = conv_plan(g, conv2d_key(g, s));
    const void *xin = conv2d_input(g, s, pl, x), *win = gpu_operand_as(g, pl->key.fast, w, conv2d_weights(s));
    forward_into(g, pl, xin, win, y, b, 0);
}

void gpu_conv2d_backward(void *ctx, const Conv2dShape *s, real *dx, real *dw, real *db, const real *dy, const real *x,
                         const real *w)
{
    GpuCtx *g = gctx(ctx);
    ArenaScope scope(g);
    if (db) bias_grad(g, s->n, s->c_out, s->h_out * s->w_out, db, dy);
    if (!dx && !dw) return;
    ConvPlan *pl = conv_plan(g, conv2d_key(g, s));
    const ConvKey *k = &pl->key;
    const void *dyin = gpu_operand_as(g, k->fast, dy, (size_t)s->n * s->c_out * s->h_out * s->w_out);
    if (dw) {
        ArenaScope staged(g);
        backward_filter_into(g, pl, conv2d_input(g, s, pl, x), dyin, dw);
    }
    if (dx) { /* the gradient of the (possibly padded) input, cropped to x */
        int asym = asymmetric(s);
        Crop crop = {s->n * s->c_in, s->c_in, s->h, s->w, k->h, k->w, asym ? s->pad_top : 0, asym ? s->pad_left : 0};
        backward_data_into(g, pl, gpu_operand_as(g, k->fast, w, conv2d_weights(s)), dyin, dx, crop, NULL, 1);
    }
}

/* ------------------------------------------------------------ conv_transpose2d */

/* The convolution from the transposed convolution's output space [n, c_out, h_out,
 * w_out] to its input space [n, c_in, h, w]. */
static ConvKey convt_key(const GpuCtx *g, const ConvT2dShape *s)
{
    ConvKey k;
    memset(&k, 0, sizeof k);
    k.n = s->n;
    k.c = s->c_out;
    k.h = s->h_out;
    k.w = s->w_out;
    k.k = s->c_in;
    k.r = k.s = s->k;
    k.stride_h = k.stride_w = s->stride;
    k.pad_h = k.pad_w = s->pad;
    k.p = s->h;
    k.q = s->w;
    k.fast = g->fast;
    return k;
}

static size_t convt_weights(const ConvT2dShape *s) { return (size_t)s->c_in * s->c_out * s->k * s->k; }

void gpu_conv_transpose2d_forward(void *ctx, const ConvT2dShape *s, real *y, const real *x, const real *w,
                                  const real *b)
{
    GpuCtx *g = gctx(ctx);
    ArenaScope scope(g);
    ConvPlan *pl = conv_plan(g, convt_key(g, s));
    int bf16 = pl->key.fast;
    const void *xin = gpu_operand_as(g, bf16, x, (size_t)s->n * s->c_in * s->h * s->w);
    const void *win = gpu_operand_as(g, bf16, w, convt_weights(s));
    backward_data_into(g, pl, win, xin, y, whole(s->n * s->c_out, s->c_out, s->h_out, s->w_out), b, 0);
}

void gpu_conv_transpose2d_backward(void *ctx, const ConvT2dShape *s, real *dx, real *dw, real *db, const real *dy,
                                   const real *x, const real *w)
{
    GpuCtx *g = gctx(ctx);
    ArenaScope scope(g);
    if (db) bias_grad(g, s->n, s->c_out, s->h_out * s->w_out, db, dy);
    if (!dx && !dw) return;
    ConvPlan *pl = conv_plan(g, convt_key(g, s));
    int bf16 = pl->key.fast;
    const void *dyin = gpu_operand_as(g, bf16, dy, (size_t)s->n * s->c_out * s->h_out * s->w_out);
    if (dw) {
        ArenaScope staged(g);
        backward_filter_into(g, pl, dyin, gpu_operand_as(g, bf16, x, (size_t)s->n * s->c_in * s->h * s->w), dw);
    }
    if (dx) /* dx += conv(dy, w): the plan's forward, accumulated */
        forward_into(g, pl, dyin, gpu_operand_as(g, bf16, w, convt_weights(s)), dx, NULL, 1);
}
