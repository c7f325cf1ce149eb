/* Elementwise operators, pooling and resampling, channel plumbing, FiLM, token
 * transposes, GeGLU and the timestep embedding. Semantics: ops/ops.h (backward
 * accumulates; NULL gradients are skipped). One thread per output element unless
 * said otherwise; pooling and upsampling windows are disjoint, so no atomics. */
#include "reduce.h"

/* ------------------------------------------------------------ activations */

#define SQRT_2_OVER_PI 0.7978845608028654f
#define INV_SQRT_2PI 0.3989422804014327f
#define GELU_TANH_C 0.044715f

__device__ static float gelu_erf(float x) { return 0.5f * x * (1.0f + erff(x * (float)M_SQRT1_2)); }

__device__ static float gelu_erf_derivative(float x)
{
    float cdf = 0.5f * (1.0f + erff(x * (float)M_SQRT1_2));
    return cdf + x * expf(-0.5f * x * x) * INV_SQRT_2PI;
}

__device__ static float act_value(Act act, float slope, float x)
{
    switch (act) {
    case ACT_RELU: return x > 0 ? x : 0.0f;
    case ACT_LEAKY_RELU: return x > 0 ? x : slope * x;
    case ACT_SILU: return x / (1.0f + expf(-x));
    case ACT_GELU_ERF: return gelu_erf(x);
    case ACT_GELU_TANH: return 0.5f * x * (1.0f + tanhf(SQRT_2_OVER_PI * (x + GELU_TANH_C * x * x * x)));
    case ACT_SIGMOID: return 1.0f / (1.0f + expf(-x));
    case ACT_TANH: return tanhf(x);
    }
    return 0;
}

__device__ static float act_derivative(Act act, float slope, float x)
{
    switch (act) {
    case ACT_RELU: return x > 0 ? 1.0f : 0.0f;
    case ACT_LEAKY_RELU: return x > 0 ? 1.0f : slope;
    case ACT_SILU: {
        float s = 1.0f / (1.0f + expf(-x));
        return s * (1.0f + x * (1.0f - s));
    }
    case ACT_GELU_ERF: return gelu_erf_derivative(x);
    case ACT_GELU_TANH: {
        float th = tanhf(SQRT_2_OVER_PI * (x + GELU_TANH_C * x * x * x));
        return 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * SQRT_2_OVER_PI * (1.0f + 3.0f * GELU_TANH_C * x * x);
    }
    case ACT_SIGMOID: {
        float s = 1.0f / (1.0f + expf(-x));
        return s * (1.0f - s);
    }
    case ACT_TANH: {
        float t = tanhf(x);
        return 1.0f - t * t;
    }
    }
    return 0;
}

struct ActForward {
    Act act;
    float slope;
    real *y;
    const real *x;
    __device__ void operator()(size_t i) const { y[i] = act_value(act, slope, x[i]); }
};

struct ActBackward {
    Act act;
    float slope;
    real *dx;
    const real *dy, *x;
    __device__ void operator()(size_t i) const { dx[i] += dy[i] * act_derivative(act, slope, x[i]); }
};

void gpu_act_forward(void *ctx, Act act, float slope, size_t n, real *y, const real *x)
{
    launch_foreach(gctx(ctx), n, ActForward{act, slope, y, x});
}

void gpu_act_backward(void *ctx, Act act, float slope, size_t n, real *dx, const real *dy, const real *x)
{
    if (dx) launch_foreach(gctx(ctx), n, ActBackward{act, slope, dx, dy, x});
}

/* ------------------------------------------------------------ arithmetic */

struct Add {
    real *y;
    const real *a, *b;
    __device__ void operator()(size_t i) const { y[i] = a[i] + b[i]; }
};

struct Axpy {
    float alpha;
    const real *x;
    real *y;
    __device__ void operator()(size_t i) const { y[i] += alpha * x[i]; }
};

struct Scale {
    float alpha;
    real *x;
    __device__ void operator()(size_t i) const { x[i] *= alpha; }
};

void gpu_add_forward(void *ctx, size_t n, real *y, const real *a, const real *b)
{
    launch_foreach(gctx(ctx), n, Add{y, a, b});
}

void gpu_axpy(void *ctx, size_t n, real alpha, const real *x, real *y) { launch_foreach(gctx(ctx), n, Axpy{alpha, x, y}); }

void gpu_scale(void *ctx, size_t n, real alpha, real *x) { launch_foreach(gctx(ctx), n, Scale{alpha, x}); }

/* ------------------------------------------------------------ 2x2 pooling (floor for odd sizes) */

/* Output element i of [n, c, h/2, w/2]: its plane and the top-left input offset. */
struct PoolIndex {
    int h, w, ho, wo;
    __device__ size_t input_corner(size_t i) const
    {
        size_t plane = i / ((size_t)ho * wo);
        int r = (int)(i % ((size_t)ho * wo)), oy = r / wo, ox = r % wo;
        return plane * h * w + (size_t)(2 * oy) * w + 2 * ox;
    }
};

/* Offset of the window maximum from the corner: the first in raster order among equals,
 * a NaN over any number (as PyTorch and cpu/pool.c). */
__device__ static int argmax2x2(const real *p, int w)
{
    int off[4] = {0, 1, w, w + 1}, best = 0;
    for (int k = 1; k < 4; k++)
        if (p[off[k]] > p[best] || isnan(p[off[k]])) best = off[k];
    return best;
}

struct MaxPoolForward {
    PoolIndex ix;
    real *y;
    const real *x;
    __device__ void operator()(size_t i) const
    {
        const real *p = x + ix.input_corner(i);
        y[i] = p[argmax2x2(p, ix.w)];
    }
};

struct MaxPoolBackward {
    PoolIndex ix;
    real *dx;
    const real *dy, *x;
    __device__ void operator()(size_t i) const
    {
        size_t c = ix.input_corner(i);
        dx[c + argmax2x2(x + c, ix.w)] += dy[i];
    }
};

struct AvgPoolForward {
    PoolIndex ix;
    real *y;
    const real *x;
    __device__ void operator()(size_t i) const
    {
        const real *p = x + ix.input_corner(i);
        y[i] = (p[0] + p[1] + p[ix.w] + p[ix.w + 1]) * 0.25f;
    }
};

struct AvgPoolBackward {
    PoolIndex ix;
    real *dx;
    const real *dy;
    __device__ void operator()(size_t i) const
    {
        real *p = dx + ix.input_corner(i);
        float g = dy[i] * 0.25f;
        p[0] += g;
        p[1] += g;
        p[ix.w] += g;
        p[ix.w + 1] += g;
    }
};

static PoolIndex pool_index(const ImageShape *s) { return PoolIndex{s->h, s->w, s->h / 2, s->w / 2}; }
static size_t pool_outputs(const ImageShape *s) { return (size_t)s->n * s->c * (s->h / 2) * (s->w / 2); }

void gpu_max_pool2x2_forward(void *ctx, const ImageShape *s, real *y, const real *x)
{
    launch_foreach(gctx(ctx), pool_outputs(s), MaxPoolForward{pool_index(s), y, x});
}

void gpu_max_pool2x2_backward(void *ctx, const ImageShape *s, real *dx, const real *dy, const real *x)
{
    if (dx) launch_foreach(gctx(ctx), pool_outputs(s), MaxPoolBackward{pool_index(s), dx, dy, x});
}

void gpu_avg_pool2x2_forward(void *ctx, const ImageShape *s, real *y, const real *x)
{
    launch_foreach(gctx(ctx), pool_outputs(s), AvgPoolForward{pool_index(s), y, x});
}

void gpu_avg_pool2x2_backward(void *ctx, const ImageShape *s, real *dx, const real *dy)
{
    if (dx) launch_foreach(gctx(ctx), pool_outputs(s), AvgPoolBackward{pool_index(s), dx, dy});
}

/* ------------------------------------------------------------ 3x3 blur, reflect padding */

__device__ static int reflect(int q, int n) { return q < 0 ? -q : q >= n ? 2 * (n - 1) - q : q; }
__device__ static float blur_tap(int a) { return a == 1 ? 0.5f : 0.25f; } /* [1 2 1]/4 at a = 0, 1, 2 */
__device__ static int floor_div(int a, int b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

struct BlurForward {
    int h, w, ho, wo, stride;
    real *y;
    const real *x;
    __device__ void operator()(size_t i) const
    {
        size_t plane = i / ((size_t)ho * wo);
        int r = (int)(i % ((size_t)ho * wo)), oy = r / wo, ox = r % wo;
        const real *p = x + plane * h * w;
        float acc = 0;
        for (int a = 0; a < 3; a++) {
            const real *row = p + (size_t)reflect(oy * stride + a - 1, h) * w;
            float racc = 0;
            for (int b = 0; b < 3; b++) racc += blur_tap(b) * row[reflect(ox * stride + b - 1, w)];
            acc += blur_tap(a) * racc;
        }
        y[i] = acc;
    }
};

/* The (output index, weight) pairs through which input position p of an axis of
 * length n reaches the blurred axis of length no: p itself and, at the borders, the
 * virtual positions that reflect onto it (-1 -> 1, n -> n-2). At most 6 pairs. */
__device__ static int blur_sources(int p, int n, int no, int stride, int *out, float *wt)
{
    int q[3], nq = 0, count = 0;
    q[nq++] = p;
    if (p == 1) q[nq++] = -1;
    if (p == n - 2) q[nq++] = n;
    for (int k = 0; k < nq; k++)
        for (int o = floor_div(q[k] - 1 + stride - 1, stride); o * stride <= q[k] + 1; o++) {
            if (o < 0 || o >= no) continue;
            out[count] = o;
            wt[count++] = blur_tap(q[k] - o * stride + 1);
        }
    return count;
}

/* Gather form of the transposed blur: every input pixel sums what it contributed to. */
struct BlurBackward {
    int h, w, ho, wo, stride;
    real *dx;
    const real *dy;
    __device__ void operator()(size_t i) const
    {
        size_t plane = i / ((size_t)h * w);
        int r = (int)(i % ((size_t)h * w)), py = r / w, px = r % w;
        int oy[6], ox[6];
        float wy[6], wx[6];
        int ny = blur_sources(py, h, ho, stride, oy, wy), nx = blur_sources(px, w, wo, stride, ox, wx);
        const real *g = dy + plane * ho * wo;
        float acc = 0;
        for (int a = 0; a < ny; a++) {
            float racc = 0;
            for (int b = 0; b < nx; b++) racc += wx[b] * g[(size_t)oy[a] * wo + ox[b]];
            acc += wy[a] * racc;
        }
        dx[i] += acc;
    }
};

void gpu_blur3x3_forward(void *ctx, const ImageShape *s, int stride, real *y, const real *x)
{
    int ho = blur3x3_out(s->h, stride), wo = blur3x3_out(s->w, stride);
    launch_foreach(gctx(ctx), (size_t)s->n * s->c * ho * wo, BlurForward{s->h, s->w, ho, wo, stride, y, x});
}

void gpu_blur3x3_backward(void *ctx, const ImageShape *s, int stride, real *dx, const real *dy)
{
    int ho = blur3x3_out(s->h, stride), wo = blur3x3_out(s->w, stride);
    if (dx) launch_foreach(gctx(ctx), (size_t)s->n * s->c * s->h * s->w, BlurBackward{s->h, s->w, ho, wo, stride, dx, dy});
}

/* ------------------------------------------------------------ nearest upsampling x2 */

struct UpsampleForward {
    int h, w;
    real *y;
    const real *x;
    __device__ void operator()(size_t i) const
    {
        size_t plane = i / ((size_t)4 * h * w);
        int r = (int)(i % ((size_t)4 * h * w)), oy = r / (2 * w), ox = r % (2 * w);
        y[i] = x[plane * h * w + (size_t)(oy / 2) * w + ox / 2];
    }
};

struct UpsampleBackward {
    int h, w;
    real *dx;
    const real *dy;
    __device__ void operator()(size_t i) const
    {
        size_t plane = i / ((size_t)h * w);
        int r = (int)(i % ((size_t)h * w)), py = r / w, px = r % w;
        const real *g = dy + plane * 4 * h * w + (size_t)(2 * py) * (2 * w) + 2 * px;
        dx[i] += g[0] + g[1] + g[2 * w] + g[2 * w + 1];
    }
};

void gpu_upsample2x_forward(void *ctx, const ImageShape *s, real *y, const real *x)
{
    launch_foreach(gctx(ctx), (size_t)s->n * s->c * 4 * s->h * s->w, UpsampleForward{s->h, s->w, y, x});
}

void gpu_upsample2x_backward(void *ctx, const ImageShape *s, real *dx, const real *dy)
{
    if (dx) launch_foreach(gctx(ctx), (size_t)s->n * s->c * s->h * s->w, UpsampleBackward{s->h, s->w, dx, dy});
}

/* ------------------------------------------------------------ concat along channels */

/* dst[n, c, hw] (+)= src[n, c_off + c, hw] for a slice of c channels of a tensor with
 * c_total channels (or the reverse with `scatter`): both directions of concat. */
struct ChannelSlice {
    int c, c_total, c_off, hw;
    __device__ size_t wide(size_t i) const
    {
        size_t per = (size_t)c * hw, ni = i / per, r = i % per;
        return (ni * c_total + c_off) * hw + r;
    }
};

struct ConcatForward {
    ChannelSlice sl;
    real *y;
    const real *src;
    __device__ void operator()(size_t i) const { y[sl.wide(i)] = src[i]; }
};

struct ConcatBackward {
    ChannelSlice sl;
    real *d;
    const real *dy;
    __device__ void operator()(size_t i) const { d[i] += dy[sl.wide(i)]; }
};

void gpu_concat_forward(void *ctx, int n, int ca, int cb, int hw, real *y, const real *a, const real *b)
{
    GpuCtx *g = gctx(ctx);
    launch_foreach(g, (size_t)n * ca * hw, ConcatForward{ChannelSlice{ca, ca + cb, 0, hw}, y, a});
    launch_foreach(g, (size_t)n * cb * hw, ConcatForward{ChannelSlice{cb, ca + cb, ca, hw}, y, b});
}

void gpu_concat_backward(void *ctx, int n, int ca, int cb, int hw, real *da, real *db, const real *dy)
{
    GpuCtx *g = gctx(ctx);
    if (da) launch_foreach(g, (size_t)n * ca * hw, ConcatBackward{ChannelSlice{ca, ca + cb, 0, hw}, da, dy});
    if (db) launch_foreach(g, (size_t)n * cb * hw, ConcatBackward{ChannelSlice{cb, ca + cb, ca, hw}, db, dy});
}

/* ------------------------------------------------------------ FiLM: y = x*(1+scale)+shift */

struct FilmForward {
    int hw;
    real *y;
    const real *x, *scale, *shift;
    __device__ void operator()(size_t i) const
    {
        size_t nc = i / hw;
        y[i] = x[i] * (1.0f + scale[nc]) + shift[nc];
    }
};

struct FilmInputGrad {
    int hw;
    real *dx;
    const real *dy, *scale;
    __device__ void operator()(size_t i) const { dx[i] += dy[i] * (1.0f + scale[i / hw]); }
};

/* Per (sample, channel): dscale += sum dy*x, dshift += sum dy. */
struct FilmParamGrad {
    int hw;
    const real *dy, *x;
    real *dscale, *dshift;
    __device__ void add(long long row, long long i, double *acc) const
    {
        size_t k = (size_t)row * hw + i;
        acc[0] += (double)dy[k] * x[k];
        acc[1] += dy[k];
    }
    __device__ void done(long long row, const double *acc) const
    {
        if (dscale) dscale[row] += (float)acc[0];
        if (dshift) dshift[row] += (float)acc[1];
    }
};

void gpu_film_forward(void *ctx, int n, int c, int hw, real *y, const real *x, const real *scale, const real *shift)
{
    launch_foreach(gctx(ctx), (size_t)n * c * hw, FilmForward{hw, y, x, scale, shift});
}

void gpu_film_backward(void *ctx, int n, int c, int hw, real *dx, real *dscale, real *dshift, const real *dy,
                       const real *x, const real *scale)
{
    GpuCtx *g = gctx(ctx);
    if (dx) launch_foreach(g, (size_t)n * c * hw, FilmInputGrad{hw, dx, dy, scale});
    if (dscale || dshift) segment_reduce<2>(g, (long long)n * c, hw, FilmParamGrad{hw, dy, x, dscale, dshift});
}

/* ------------------------------------------------------------ token transposes */

#define TILE 32

/* dst[b][j][i] (+)= src[b][i][j] for src [batch][rows][cols], through a shared tile so
 * both reads and writes are coalesced. */
__global__ void transpose_kernel(real *dst, const real *src, int rows, int cols, int accumulate)
{
    __shared__ float tile[TILE][TILE + 1];
    size_t base = (size_t)blockIdx.z * rows * cols;
    int c0 = blockIdx.x * TILE, r0 = blockIdx.y * TILE;
    for (int k = threadIdx.y; k < TILE; k += blockDim.y) {
        int r = r0 + k, c = c0 + threadIdx.x;
        if (r < rows && c < cols) tile[k][threadIdx.x] = src[base + (size_t)r * cols + c];
    }
    __syncthreads();
    for (int k = threadIdx.y; k < TILE; k += blockDim.y) {
        int c = c0 + k, r = r0 + threadIdx.x;
        if (r >= rows || c >= cols) continue;
        real *d = dst + base + (size_t)c * rows + r;
        *d = accumulate ? *d + tile[threadIdx.x][k] : tile[threadIdx.x][k];
    }
}

static void transpose(GpuCtx *g, int batch, int rows, int cols, real *dst, const real *src, int accumulate)
{
    dim3 grid((cols + TILE - 1) / TILE, (rows + TILE - 1) / TILE, batch), block(TILE, 8);
    transpose_kernel<<<grid, block, 0, g->stream>>>(dst, src, rows, cols, accumulate);
    LAUNCH_CHECK();
}

void gpu_nchw_to_nlc_forward(void *ctx, int n, int c, int hw, real *y, const real *x)
{
    transpose(gctx(ctx), n, c, hw, y, x, 0);
}

void gpu_nchw_to_nlc_backward(void *ctx, int n, int c, int hw, real *dx, const real *dy)
{
    if (dx) transpose(gctx(ctx), n, hw, c, dx, dy, 1);
}

void gpu_nlc_to_nchw_forward(void *ctx, int n, int c, int hw, real *y, const real *x)
{
    transpose(gctx(ctx), n, hw, c, y, x, 0);
}

void gpu_nlc_to_nchw_backward(void *ctx, int n, int c, int hw, real *dx, const real *dy)
{
    if (dx) transpose(gctx(ctx), n, c, hw, dx, dy, 1);
}

/* ------------------------------------------------------------ GeGLU: y = a * gelu_erf(g) */

struct GegluForward {
    int dim;
    real *y;
    const real *x;
    __device__ void operator()(size_t i) const
    {
        const real *row = x + (i / dim) * 2 * dim;
        int j = (int)(i % dim);
        y[i] = row[j] * gelu_erf(row[dim + j]);
    }
};

struct GegluBackward {
    int dim;
    real *dx;
    const real *dy, *x;
    __device__ void operator()(size_t i) const
    {
        size_t off = (i / dim) * 2 * dim;
        int j = (int)(i % dim);
        float a = x[off + j], gate = x[off + dim + j];
        dx[off + j] += dy[i] * gelu_erf(gate);
        dx[off + dim + j] += dy[i] * a * gelu_erf_derivative(gate);
    }
};

void gpu_geglu_forward(void *ctx, int rows, int dim, real *y, const real *x)
{
    launch_foreach(gctx(ctx), (size_t)rows * dim, GegluForward{dim, y, x});
}

void gpu_geglu_backward(void *ctx, int rows, int dim, real *dx, const real *dy, const real *x)
{
    if (dx) launch_foreach(gctx(ctx), (size_t)rows * dim, GegluBackward{dim, dx, dy, x});
}

/* ------------------------------------------------------------ timestep embedding */

/* In double: t*f reaches ~1000 radians, where a float angle would already be off by
 * ~1e-4. An odd dim leaves its last column zero. */
struct TimestepEmbedding {
    int dim, half;
    real *y;
    const real *t;
    __device__ void operator()(size_t i) const
    {
        size_t ni = i / dim;
        int j = (int)(i % dim);
        if (j >= 2 * half) {
            y[i] = 0;
            return;
        }
        int k = j < half ? j : j - half;
        double angle = (double)t[ni] * exp(-log(10000.0) * k / half);
        y[i] = (float)(j < half ? cos(angle) : sin(angle));
    }
};

void gpu_timestep_embedding(void *ctx, int n, int dim, real *y, const real *t)
{
    launch_foreach(gctx(ctx), (size_t)n * dim, TimestepEmbedding{dim, dim / 2, y, t});
}
