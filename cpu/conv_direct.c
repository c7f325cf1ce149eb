/* Direct stride-1 convolution for AVX-512 (float32): no column matrix at all.
 *
 * The GEMM path packs col(x), nine shifted copies of the image for a 3x3 kernel, and
 * each copy feeds only c_out multiply-adds per value: with 64 channels the packing costs
 * a fifth of the time. Here the vector lanes run over 16 or 32 output channels (the
 * weights, packed once per call) and the broadcast operand comes straight from a
 * zero-padded copy of the image: for 12 consecutive output positions of a row and tap
 * (c, ky, kx), the 12 inputs are consecutive in the padded row. Each block of (positions,
 * channels) is transposed in registers on its way into the NCHW output. */
#include "conv.h"

#if CPU_AVX512

#define POS 12 /* output positions per block (broadcast side) */
#define DEPTH GEMM_MAX_DEPTH /* taps per block, so a slice of weights (<= 32 KiB) stays in L1 */

static int imin(int a, int b) { return a < b ? a : b; }

/* Stride 1, rows of at least two blocks, and 16 to 64 output channels: from 128 on the
 * packed GEMM amortizes its packing well enough and wins on two threads (as measured on
 * the project's AVX-512 Xeon, reports/bench-ops-cpu.md). */
int conv_direct_applies(const Conv2dShape *s)
{
    return s->stride_h == 1 && s->stride_w == 1 && s->c_out >= 16 && s->c_out <= 64 && s->w_out >= 2 * POS;
}

/* Output channels per block: two vectors, or one below 32 channels. */
static int block_channels(const Conv2dShape *s) { return s->c_out >= 32 ? 32 : 16; }

/* Where one block's result goes, and what it adds to. */
typedef struct {
    float *y;      /* y[channel 0 of the block][position 0 of the block] */
    long ldy;      /* distance between channels */
    int m, n;      /* valid positions (<= POS) and channels (<= 16 per vector) */
    int first;     /* first depth block: y = beta*y + bias + sum, else y += sum */
    float beta;
    const float *bias; /* of the block's channel 0, or NULL */
} Block;

/* 16 channels (acc[i] = position i) into y, transposed. */
static inline void store_half(__m512 acc[16], const Block *b, int c0)
{
    transpose16(acc); /* acc[c] = the positions of channel c0 + c */
    __mmask16 keep = (__mmask16)((1u << b->m) - 1);
    for (int c = 0; c < 16 && c0 + c < b->n; c++) {
        float *yc = b->y + (c0 + c) * b->ldy;
        __m512 old = _mm512_maskz_loadu_ps(keep, yc);
        if (b->first) {
            old = b->beta == 0 ? _mm512_setzero_ps() : _mm512_mul_ps(_mm512_set1_ps(b->beta), old);
            if (b->bias) old = _mm512_add_ps(old, _mm512_set1_ps(b->bias[c0 + c]));
        }
        _mm512_mask_storeu_ps(yc, keep, _mm512_add_ps(acc[c], old));
    }
}

/* ROWS positions x NV vectors of channels over kc taps: x[off[k] + i] times wt[k][..]. */
static inline __attribute__((always_inline)) void block_rows(const int rows, const int nv, int kc,
                                                             const float *restrict x, const long *restrict off,
                                                             const float *restrict wt, const Block *b)
{
    __m512 acc[2][POS];
    for (int v = 0; v < nv; v++)
        for (int i = 0; i < rows; i++) acc[v][i] = _mm512_setzero_ps();
    for (int k = 0; k < kc; k++, wt += 16 * nv) {
        const float *xk = x + off[k];
        __m512 w[2];
        for (int v = 0; v < nv; v++) w[v] = _mm512_load_ps(wt + 16 * v);
        for (int i = 0; i < rows; i++) {
            __m512 xi = _mm512_set1_ps(xk[i]);
            for (int v = 0; v < nv; v++) acc[v][i] = _mm512_fmadd_ps(xi, w[v], acc[v][i]);
        }
    }
    for (int v = 0; v < nv; v++) {
        __m512 t[16];
        for (int i = 0; i < 16; i++) t[i] = i < rows ? acc[v][i] : _mm512_setzero_ps();
        store_half(t, b, 16 * v);
    }
}

/* Instances: one or two vectors of channels, a full block of positions or the short
 * one at the end of a row. */
typedef void (*BlockFn)(int kc, const float *x, const long *off, const float *wt, const Block *b);
#define BLOCK_FN(name, rows, nv)                                                        \
    static void name(int kc, const float *x, const long *off, const float *wt, const Block *b) \
    {                                                                                   \
        block_rows(rows, nv, kc, x, off, wt, b);                                        \
    }
BLOCK_FN(block_4x16, POS / 3, 1)
BLOCK_FN(block_8x16, POS * 2 / 3, 1)
BLOCK_FN(block_12x16, POS, 1)
BLOCK_FN(block_4x32, POS / 3, 2)
BLOCK_FN(block_8x32, POS * 2 / 3, 2)
BLOCK_FN(block_12x32, POS, 2)

static void block(int nv, int kc, const float *x, const long *off, const float *wt, const Block *b)
{
    static const BlockFn fns[2][3] = {{block_4x16, block_8x16, block_12x16}, {block_4x32, block_8x32, block_12x32}};
    int size = b->m > POS * 2 / 3 ? 2 : b->m > POS / 3 ? 1 : 0;
    fns[nv - 1][size](kc, x, off, wt, b);
}

/* ------------------------------------------------------------ the pass over one image */

typedef struct {
    const Conv2dShape *s;
    int hp, wp, K;      /* padded image size, taps x channels */
    int cw;             /* channels per block, 16 or 32 */
    const float *xp;    /* padded image [c_in][hp][wp] */
    const float *wpack; /* weights: [channel block][K][cw] */
    const float *bias;
    float beta;
} Pass;

/* Copy channel c of x into the middle of its zero-padded plane. */
static void pad_channel(const Pass *p, const float *x, float *xp, int c)
{
    const Conv2dShape *s = p->s;
    float *dst = xp + (size_t)c * p->hp * p->wp;
    const float *src = x + (size_t)c * s->h * s->w;
    for (int r = 0; r < p->hp; r++) {
        float *row = dst + (size_t)r * p->wp;
        int iy = r - s->pad_top;
        for (int j = 0; j < p->wp; j++) row[j] = 0;
        if (iy < 0 || iy >= s->h) continue;
        for (int j = 0; j < s->w; j++) row[s->pad_left + j] = src[(size_t)iy * s->w + j];
    }
}

/* off[k] = where tap row p0 + k reads the padded image, relative to the output position. */
static void tap_offsets(const Pass *p, int p0, int kc, long *off)
{
    const Conv2dShape *s = p->s;
    int taps = s->kh * s->kw;
    for (int k = 0; k < kc; k++) {
        int c = (p0 + k) / taps, t = (p0 + k) % taps;
        off[k] = ((long)c * p->hp + t / s->kw) * p->wp + t % s->kw;
    }
}

/* Output rows [oy0, oy1) of the block of channels from c0, all taps. Each slice of
 * weights serves all positions of the rows before the next slice is read. */
static void output_rows(const Pass *p, float *y, int c0, int oy0, int oy1)
{
    const Conv2dShape *s = p->s;
    long P = (long)s->h_out * s->w_out, off[DEPTH];
    for (int p0 = 0; p0 < p->K; p0 += DEPTH) {
        int kc = imin(DEPTH, p->K - p0);
        tap_offsets(p, p0, kc, off);
        const float *wt = p->wpack + ((size_t)c0 * p->K + (size_t)p0 * p->cw);
        for (int oy = oy0; oy < oy1; oy++)
            for (int ox = 0; ox < s->w_out; ox += POS) {
                Block b = {y + c0 * P + (long)oy * s->w_out + ox, P, imin(POS, s->w_out - ox),
                           imin(p->cw, s->c_out - c0), p0 == 0, p->beta, p->bias ? p->bias + c0 : NULL};
                block(p->cw / 16, kc, p->xp + (long)oy * p->wp + ox, off, wt, &b);
            }
    }
}

/* The weights as blocks of cw channels by all K taps, from the GEMM operand's packer. */
static void pack_weights(const Pass *p, const GemmSource *w, float *wpack)
{
    int c_out = p->s->c_out, K = p->K, cw = p->cw;
#pragma omp for schedule(static)
    for (int c0 = 0; c0 < c_out; c0 += cw)
        for (int p0 = 0; p0 < K; p0 += DEPTH)
            w->pack(w, c0, imin(cw, c_out - c0), p0, imin(DEPTH, K - p0), cw, wpack + (size_t)c0 * K + (size_t)p0 * cw);
}

void conv_direct_forward(void *ctx, const Conv2dShape *s, const GemmSource *weights, real *y, const real *x,
                         const real *bias, real beta)
{
    int K = s->c_in * s->kh * s->kw, cw = block_channels(s), cblocks = (s->c_out + cw - 1) / cw;
    int rows_per_group = imin(s->h_out, (16 * POS + s->w_out - 1) / s->w_out);
    int groups = (s->h_out + rows_per_group - 1) / rows_per_group;
    Pass p = {.s = s, .hp = s->h + s->pad_top + s->pad_bottom, .wp = s->w + s->pad_left + s->pad_right, .K = K,
              .cw = cw, .bias = bias, .beta = beta};
    size_t wlen = (size_t)cblocks * cw * K, xlen = (size_t)s->c_in * p.hp * p.wp;
    /* the last block of a row may read up to POS values past its row: slack at the end */
    float *wpack = cpu_scratch(ctx, wlen + xlen + POS), *xp = wpack + wlen;
    for (int i = 0; i < POS; i++) xp[xlen + i] = 0;
    p.wpack = wpack;
    p.xp = xp;
#pragma omp parallel
    {
        pack_weights(&p, weights, wpack);
        for (int i = 0; i < s->n; i++) {
            const float *xi = x + (size_t)i * s->c_in * s->h * s->w;
            float *yi = y + (size_t)i * s->c_out * s->h_out * s->w_out;
#pragma omp for schedule(static)
            for (int c = 0; c < s->c_in; c++) pad_channel(&p, xi, xp, c);
            /* units of cw channels x enough rows for 16 blocks of positions, row groups in
             * order (the threads share the image rows in cache), handed out on demand so
             * that a thread slowed by other processes takes fewer */
#pragma omp for schedule(dynamic, 1)
            for (int u = 0; u < cblocks * groups; u++) {
                int oy0 = u / cblocks * rows_per_group;
                output_rows(&p, yi, u % cblocks * cw, oy0, imin(s->h_out, oy0 + rows_per_group));
            }
        }
    }
}

#endif
