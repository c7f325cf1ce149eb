/* conv2d (reference): implicit GEMM on the packed SGEMM of cpu/gemm.c.
 *
 * With K = c_in*kh*kw (one row per channel and kernel tap) and P = h_out*w_out:
 *   forward          Y[i] (c_out x P) = W (c_out x K) * col(x[i]) (K x P)
 *   weight gradient  dW += dY[i] * col(x[i])^T
 *   input gradient   stride 1: dx[i] += conv(dY[i], W flipped, channels swapped) with the
 *                    complementary padding (a full correlation);
 *                    otherwise col = W^T dY[i], chunk by chunk, scattered back (col2im).
 * col(x) is never stored: the GEMM packs its panels straight from the image, one tap row
 * segment at a time. A 1x1, stride-1, unpadded convolution is a plain matrix product. On
 * AVX-512, stride-1 products with 16 to 64 output channels skip the packing altogether
 * (cpu/conv_direct.c). */
#include <string.h>

#include "conv.h"

static int imin(int a, int b) { return a < b ? a : b; }
static int imax(int a, int b) { return a > b ? a : b; }

static int is_pointwise(const Conv2dShape *s)
{
    return s->kh == 1 && s->kw == 1 && s->stride_h == 1 && s->stride_w == 1 && s->pad_top == 0 &&
           s->pad_bottom == 0 && s->pad_left == 0 && s->pad_right == 0;
}

/* ------------------------------------------------------------ one tap, many positions */

/* Where a run of n output positions (ox, ox+1, ...) of output row oy meets the image
 * under tap (ky, kx): positions [lo, hi) read image row iy from column ix0 + lo*stride_w
 * on, the others fall in the zero padding. */
typedef struct {
    int lo, hi, iy, ix0;
} TapRun;

static inline TapRun tap_run(const Conv2dShape *s, int ky, int kx, int oy, int ox, int n)
{
    TapRun r = {n, n, oy * s->stride_h + ky - s->pad_top, ox * s->stride_w + kx - s->pad_left};
    if (r.iy < 0 || r.iy >= s->h) return r;
    int sw = s->stride_w, lo, hi;
    if (sw == 1) {
        lo = -r.ix0;
        hi = s->w - r.ix0;
    } else {
        lo = r.ix0 < 0 ? (-r.ix0 + sw - 1) / sw : 0;
        hi = r.ix0 < s->w ? (s->w - r.ix0 + sw - 1) / sw : 0;
    }
    r.lo = imin(imax(lo, 0), n);
    r.hi = imax(r.lo, imin(hi, n));
    return r;
}

/* col[i] = the image value under tap (ky, kx) at output position (oy, ox + i), i < n,
 * all in one output row (0 in the padding). */
static inline void gather_run(const Conv2dShape *s, const real *plane, int ky, int kx, int oy, int ox, int n,
                              real *restrict col)
{
    TapRun r = tap_run(s, ky, kx, oy, ox, n);
    int sw = s->stride_w;
    if (n == GEMM_MAX_WIDTH && r.lo == 0 && r.hi == n && sw == 1) { /* the common full panel row, inlined */
        memcpy(col, plane + ((long)r.iy * s->w + r.ix0), GEMM_MAX_WIDTH * sizeof(real));
        return;
    }
    for (int i = 0; i < r.lo; i++) col[i] = 0;
    if (r.hi > r.lo) {
        const real *src = plane + ((long)r.iy * s->w + r.ix0 + (long)r.lo * sw);
        if (sw == 1)
            for (int i = r.lo; i < r.hi; i++) col[i] = src[i - r.lo];
        else
            for (int i = r.lo; i < r.hi; i++) col[i] = src[(long)(i - r.lo) * sw];
    }
    for (int i = r.hi; i < n; i++) col[i] = 0;
}

/* The same for n positions from (oy, ox), across output rows. */
static void tap_gather(const Conv2dShape *s, const real *plane, int ky, int kx, int oy, int ox, int n,
                       real *restrict col)
{
    while (n > 0) {
        int len = imin(n, s->w_out - ox);
        gather_run(s, plane, ky, kx, oy, ox, len, col);
        col += len;
        n -= len;
        oy++;
        ox = 0;
    }
}

/* The inverse (col2im): image values under tap (ky, kx) += col[i] for n positions. */
static void tap_scatter(const Conv2dShape *s, real *plane, int ky, int kx, int oy, int ox, int n,
                        const real *restrict col)
{
    while (n > 0) {
        int len = imin(n, s->w_out - ox);
        TapRun r = tap_run(s, ky, kx, oy, ox, len);
        if (r.hi > r.lo) {
            real *dst = plane + ((long)r.iy * s->w + r.ix0 + (long)r.lo * s->stride_w);
            for (int i = r.lo; i < r.hi; i++) dst[(long)(i - r.lo) * s->stride_w] += col[i];
        }
        col += len;
        n -= len;
        oy++;
        ox = 0;
    }
}

/* Row p of col(x) is channel c, tap (ky, kx); stepping through rows without divisions. */
typedef struct {
    int c, ky, kx;
} TapRow;

static TapRow tap_row(const Conv2dShape *s, int p)
{
    int taps = s->kh * s->kw, t = p % taps;
    TapRow r = {p / taps, t / s->kw, t % s->kw};
    return r;
}

static void tap_row_next(const Conv2dShape *s, TapRow *r)
{
    if (++r->kx < s->kw) return;
    r->kx = 0;
    if (++r->ky < s->kh) return;
    r->ky = 0;
    r->c++;
}

/* ------------------------------------------------------------ implicit GEMM operands */

/* L(position, tap row) = col(x)^T: the forward's right operand, one panel of positions
 * at a time (all its tap rows are contiguous in the panel). */
static void pack_positions(const GemmSource *src, int r0, int rows, int p0, int kc, int width, real *dst)
{
    const Conv2dShape *s = src->geom;
    size_t plane = (size_t)s->h * s->w;
    for (int pr = 0; pr < rows; pr += width, dst += (size_t)kc * width) {
        int w = imin(width, rows - pr), oy = (r0 + pr) / s->w_out, ox = (r0 + pr) % s->w_out;
        int one_row = ox + w <= s->w_out;
        TapRow t = tap_row(s, p0);
        for (int k = 0; k < kc; k++, tap_row_next(s, &t)) {
            real *d = dst + (size_t)k * width;
            const real *xc = src->data + (size_t)t.c * plane;
            if (one_row)
                gather_run(s, xc, t.ky, t.kx, oy, ox, w, d);
            else
                tap_gather(s, xc, t.ky, t.kx, oy, ox, w, d);
            for (int r = w; r < width; r++) d[r] = 0;
        }
    }
}

/* L(tap row, position) = col(x): the weight gradient's right operand. Each panel's tap
 * rows are gathered contiguously, then transposed into the panel. */
static void pack_taps(const GemmSource *src, int r0, int rows, int p0, int kc, int width, real *dst)
{
    const Conv2dShape *s = src->geom;
    size_t plane = (size_t)s->h * s->w;
    int oy = p0 / s->w_out, ox = p0 % s->w_out;
    real tap_rows[GEMM_MAX_WIDTH * GEMM_MAX_DEPTH];
    for (int pr = 0; pr < rows; pr += width, dst += (size_t)kc * width) {
        int w = imin(width, rows - pr);
        TapRow t = tap_row(s, r0 + pr);
        for (int r = 0; r < w; r++, tap_row_next(s, &t))
            tap_gather(s, src->data + (size_t)t.c * plane, t.ky, t.kx, oy, ox, kc, tap_rows + (size_t)r * kc);
        gemm_pack_panel(tap_rows, kc, w, kc, width, dst);
    }
}

/* L(ci, co*taps + t) = w[co, ci, taps-1-t]: the weights of the data-gradient convolution
 * (flipped kernel, channels swapped) read in place; geom is the original convolution. */
static void pack_flipped_weights(const GemmSource *src, int r0, int rows, int p0, int kc, int width, real *dst)
{
    const Conv2dShape *s = src->geom;
    int taps = s->kh * s->kw;
    for (int pr = 0; pr < rows; pr += width, dst += (size_t)kc * width) {
        int w = imin(width, rows - pr), co = p0 / taps, t = p0 % taps;
        for (int k = 0; k < kc; k++) {
            const real *wk = src->data + ((size_t)co * s->c_in + r0 + pr) * taps + (taps - 1 - t);
            real *d = dst + (size_t)k * width;
            for (int r = 0; r < w; r++) d[r] = wk[(size_t)r * taps];
            for (int r = w; r < width; r++) d[r] = 0;
            if (++t == taps) t = 0, co++;
        }
    }
}

static GemmSource positions_source(const Conv2dShape *s, const real *x)
{
    if (is_pointwise(s)) return gemm_matrix(x, s->h * s->w, 1);
    GemmSource g = {.pack = pack_positions, .data = x, .geom = s};
    return g;
}

static GemmSource taps_source(const Conv2dShape *s, const real *x)
{
    if (is_pointwise(s)) return gemm_matrix(x, s->h * s->w, 0);
    GemmSource g = {.pack = pack_taps, .data = x, .geom = s};
    return g;
}

/* ------------------------------------------------------------ the three products */

/* y = beta*y + conv(x) (+ bias) with the weights as the left GEMM operand [c_out, K]. */
static void conv_product(void *ctx, const Conv2dShape *s, const GemmSource *weights, real *y, const real *x,
                         const real *bias, real beta)
{
#if CPU_AVX512
    if (conv_direct_applies(s)) {
        conv_direct_forward(ctx, s, weights, y, x, bias, beta);
        return;
    }
#endif
    (void)ctx;
    int K = s->c_in * s->kh * s->kw, P = s->h_out * s->w_out;
    for (int i = 0; i < s->n; i++) {
        GemmSource b = positions_source(s, x + (size_t)i * s->c_in * s->h * s->w);
        gemm_run(s->c_out, P, K, 1, weights, &b, beta, y + (size_t)i * s->c_out * P, P, bias);
    }
}

void conv_gemm_forward(void *ctx, const Conv2dShape *s, real *y, const real *x, const real *w, const real *b,
                       real beta)
{
    GemmSource a = gemm_matrix(w, s->c_in * s->kh * s->kw, 0);
    conv_product(ctx, s, &a, y, x, b, beta);
}

void conv_gemm_backward_weight(const Conv2dShape *s, real *dw, const real *dy, const real *x)
{
    int K = s->c_in * s->kh * s->kw, P = s->h_out * s->w_out;
    for (int i = 0; i < s->n; i++) {
        GemmSource a = gemm_matrix(dy + (size_t)i * s->c_out * P, P, 0);
        GemmSource b = taps_source(s, x + (size_t)i * s->c_in * s->h * s->w);
        gemm_run(s->c_out, K, P, 1, &a, &b, 1, dw, K, NULL);
    }
}

/* Stride 1 with padding below the kernel size: the input gradient is a convolution of dy
 * with the flipped kernel, channels swapped, and the complementary padding k-1-pad. */
static int data_grad_is_conv(const Conv2dShape *s)
{
    return s->stride_h == 1 && s->stride_w == 1 && s->pad_top < s->kh && s->pad_bottom < s->kh &&
           s->pad_left < s->kw && s->pad_right < s->kw;
}

static void backward_data_by_conv(void *ctx, const Conv2dShape *s, real *dx, const real *dy, const real *w)
{
    Conv2dShape f = {.n = s->n, .c_in = s->c_out, .h = s->h_out, .w = s->w_out, .c_out = s->c_in,
                     .kh = s->kh, .kw = s->kw, .stride_h = 1, .stride_w = 1,
                     .pad_top = s->kh - 1 - s->pad_top, .pad_bottom = s->kh - 1 - s->pad_bottom,
                     .pad_left = s->kw - 1 - s->pad_left, .pad_right = s->kw - 1 - s->pad_right,
                     .h_out = s->h, .w_out = s->w};
    GemmSource a = {.pack = pack_flipped_weights, .data = w, .geom = s};
    conv_product(ctx, &f, &a, dx, dy, NULL, 1);
}

/* col = W^T dY for a chunk of output positions at a time (bounded scratch), then col2im. */
static void backward_data_by_col2im(void *ctx, const Conv2dShape *s, real *dx, const real *dy, const real *w)
{
    int taps = s->kh * s->kw, K = s->c_in * taps, P = s->h_out * s->w_out;
    int chunk = imin(P, imax(256, (1 << 20) / K)); /* about 4 MiB of float scratch */
    size_t plane = (size_t)s->h * s->w;
    real *col = cpu_scratch(ctx, (size_t)K * chunk);
    GemmSource a = gemm_matrix(w, K, 1);
    for (int i = 0; i < s->n; i++) {
        const real *dyi = dy + (size_t)i * s->c_out * P;
        real *dxi = dx + (size_t)i * s->c_in * plane;
        for (int j0 = 0; j0 < P; j0 += chunk) {
            int nc = imin(chunk, P - j0);
            GemmSource b = gemm_matrix(dyi + j0, P, 1);
            gemm_run(K, nc, s->c_out, 1, &a, &b, 0, col, nc, NULL);
#pragma omp parallel for schedule(static) if ((long)K * nc > 32768)
            for (int c = 0; c < s->c_in; c++)
                for (int t = 0; t < taps; t++)
                    tap_scatter(s, dxi + (size_t)c * plane, t / s->kw, t % s->kw, j0 / s->w_out, j0 % s->w_out, nc,
                                col + ((size_t)c * taps + t) * nc);
        }
    }
}

void conv_gemm_backward_data(void *ctx, const Conv2dShape *s, real *dx, const real *dy, const real *w)
{
    if (data_grad_is_conv(s))
        backward_data_by_conv(ctx, s, dx, dy, w);
    else
        backward_data_by_col2im(ctx, s, dx, dy, w);
}

/* ------------------------------------------------------------ bias */

void channel_fill(int n, int c, size_t hw, real *y, const real *b)
{
#pragma omp parallel for schedule(static) if ((size_t)n * c * hw > 65536)
    for (long p = 0; p < (long)n * c; p++) {
        real v = b ? b[p % c] : 0, *row = y + (size_t)p * hw;
        for (size_t j = 0; j < hw; j++) row[j] = v;
    }
}

/* Sum in double, eight lanes at a time so the loop vectorizes. */
static double sum_values(const real *x, size_t n)
{
    double lane[8] = {0}, s = 0;
    size_t j = 0;
    for (; j + 8 <= n; j += 8)
        for (int k = 0; k < 8; k++) lane[k] += x[j + k];
    for (; j < n; j++) s += x[j];
    for (int k = 0; k < 8; k++) s += lane[k];
    return s;
}

void channel_bias_grad(int n, int c, size_t hw, real *db, const real *dy)
{
#pragma omp parallel for schedule(static) if ((size_t)n * c * hw > 65536)
    for (int ch = 0; ch < c; ch++) {
        double s = 0;
        for (int i = 0; i < n; i++) s += sum_values(dy + ((size_t)i * c + ch) * hw, hw);
        db[ch] += (real)s;
    }
}

/* ------------------------------------------------------------ the operator */

void cpu_conv2d_forward(void *ctx, const Conv2dShape *s, real *y, const real *x, const real *w, const real *b)
{
    conv_gemm_forward(ctx, s, y, x, w, b, 0);
}

void cpu_conv2d_backward(void *ctx, const Conv2dShape *s, real *dx, real *dw, real *db, const real *dy, const real *x,
                         const real *w)
{
    if (db) channel_bias_grad(s->n, s->c_out, (size_t)s->h_out * s->w_out, db, dy);
    if (dw) conv_gemm_backward_weight(s, dw, dy, x);
    if (dx) conv_gemm_backward_data(ctx, s, dx, dy, w);
}
