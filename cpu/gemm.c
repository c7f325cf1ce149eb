/* SGEMM for the CPU reference (BLIS-style, after Goto & van de Geijn).
 *
 * Each thread owns a tile of C. Within it: for each NC-wide column block and KC-deep
 * slice, the B slice is packed into NR-wide panels (kept in L2/L3); for each MC-high row
 * block the A slice is packed into MR-high panels (kept in L2); the micro-kernel then
 * multiplies one A panel by one B panel (the B panel stays in L1 across the row loop)
 * with an MR x NR block of C held in registers. Packing goes through GemmSource, so the
 * convolutions feed image data straight into the panels. */
#include "gemm.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "../core/err.h"
#include "cpu.h"
#include "simd.h"

#if CPU_AVX512
#define GEMM_SIMD 1
typedef __m512 vec;
#define VW 16
#define MR 12
#define vzero() _mm512_setzero_ps()
#define vload(p) _mm512_load_ps(p)
#define vloadu(p) _mm512_loadu_ps(p)
#define vstoreu(p, v) _mm512_storeu_ps(p, v)
#define vstore(p, v) _mm512_store_ps(p, v)
#define vset1(x) _mm512_set1_ps(x)
#define vfma(a, b, c) _mm512_fmadd_ps(a, b, c)
#define vmul(a, b) _mm512_mul_ps(a, b)
#elif defined(__AVX2__) && defined(__FMA__) && !defined(SDSEG_DOUBLE)
#include <immintrin.h>
#define GEMM_SIMD 1
typedef __m256 vec;
#define VW 8
#define MR 6
#define vzero() _mm256_setzero_ps()
#define vload(p) _mm256_load_ps(p)
#define vloadu(p) _mm256_loadu_ps(p)
#define vstoreu(p, v) _mm256_storeu_ps(p, v)
#define vstore(p, v) _mm256_store_ps(p, v)
#define vset1(x) _mm256_set1_ps(x)
#define vfma(a, b, c) _mm256_fmadd_ps(a, b, c)
#define vmul(a, b) _mm256_mul_ps(a, b)
#else
/* Portable path (and the float64 build): plain loops the compiler may vectorize. */
#define GEMM_SIMD 0
#define MR 4
#define VW (32 / (int)sizeof(real))
#endif

#define NV 2          /* vectors per micro-tile row */
#define NR (NV * VW)  /* micro-tile width */
/* Cache blocking (in elements): a KC x NR panel of B (32 KiB for float) stays in L1, an
 * MC x KC block of A in L2, a KC x NC slice of B in L2/L3. */
#define KC GEMM_MAX_DEPTH
#define MC (MR * 20)
#define NC (NR * 32)
_Static_assert(MR <= GEMM_MAX_WIDTH && NR <= GEMM_MAX_WIDTH, "panel widths above GEMM_MAX_WIDTH");

static int imin(int a, int b) { return a < b ? a : b; }

/* --------------------------------------------------------------- packing */

#if CPU_AVX512
/* 16 columns of up to 16 source rows (missing rows read as 0) into 16 panel rows of
 * `lanes` values each. */
static void transpose_block(const real *src, size_t ld, int rows, real *dst, int width, int lanes)
{
    __m512 r[16];
    for (int i = 0; i < 16; i++) r[i] = i < rows ? _mm512_loadu_ps(src + i * ld) : _mm512_setzero_ps();
    transpose16(r);
    __mmask16 keep = (__mmask16)((1u << lanes) - 1);
    for (int k = 0; k < 16; k++) _mm512_mask_storeu_ps(dst + (size_t)k * width, keep, r[k]);
}
#endif

void gemm_pack_panel(const real *src, size_t ld, int rows, int kc, int width, real *dst)
{
    int k0 = 0;
#if CPU_AVX512
    for (; k0 + 16 <= kc; k0 += 16)
        for (int r0 = 0; r0 < width; r0 += 16)
            transpose_block(src + (r0 < rows ? (size_t)r0 * ld : 0) + k0, ld, rows - r0, dst + (size_t)k0 * width + r0,
                            width, imin(16, width - r0));
#endif
    for (int k = k0; k < kc; k++) {
        real *d = dst + (size_t)k * width;
        for (int r = 0; r < rows; r++) d[r] = src[(size_t)r * ld + k];
        for (int r = rows; r < width; r++) d[r] = 0;
    }
}

/* L(r, p) = data[r*ld + p]: each panel interleaves `width` rows, k by k. */
static void pack_rows(const GemmSource *s, int r0, int rows, int p0, int kc, int width, real *dst)
{
    for (int pr = 0; pr < rows; pr += width, dst += (size_t)kc * width)
        gemm_pack_panel(s->data + (size_t)(r0 + pr) * s->ld + p0, s->ld, imin(width, rows - pr), kc, width, dst);
}

/* L(r, p) = data[p*ld + r]: each panel row is a contiguous run of the source. The source
 * is read row by row, across all panels, for the sake of the TLB and the prefetcher. */
static void pack_cols(const GemmSource *s, int r0, int rows, int p0, int kc, int width, real *dst)
{
    for (int k = 0; k < kc; k++) {
        const real *src = s->data + (size_t)(p0 + k) * s->ld + r0;
        for (int pr = 0; pr < rows; pr += width) {
            int w = imin(width, rows - pr);
            real *d = dst + ((size_t)(pr / width) * kc + k) * width;
            memcpy(d, src + pr, (size_t)w * sizeof(real));
            memset(d + w, 0, (size_t)(width - w) * sizeof(real));
        }
    }
}

GemmSource gemm_matrix(const real *data, int ld, int transposed)
{
    GemmSource s = {.pack = transposed ? pack_cols : pack_rows, .data = data, .ld = ld};
    return s;
}

/* --------------------------------------------------------------- micro-kernels */

/* C[m x n] = alpha * tile + beta * C (beta == 0 overwrites, ignoring what C held);
 * element (i, j) of C at c[i*rs + j*cs]. */
static void update_c(const real *tile, real *c, int rs, int cs, real alpha, real beta, int m, int n)
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            real v = alpha * tile[i * NR + j], *cij = c + (size_t)i * rs + (size_t)j * cs;
            *cij = beta == 0 ? v : v + beta * *cij;
        }
}

#if GEMM_SIMD
/* ROWS x NR block: a is an MR-row panel (only its first ROWS rows are used), b an NR panel. */
static inline __attribute__((always_inline)) void kernel_rows(const int rows, int kc, const real *restrict a,
                                                              const real *restrict b, real *c, int rs, int cs,
                                                              real alpha, real beta, int m, int n)
{
    vec acc[MR][NV];
    for (int i = 0; i < rows && i < m; i++) { /* C is needed at the end: fetch it meanwhile */
        __builtin_prefetch(c + (size_t)i * rs, 1, 3);
        __builtin_prefetch(c + (size_t)i * rs + NR - 1, 1, 3);
    }
    for (int i = 0; i < rows; i++)
        for (int v = 0; v < NV; v++) acc[i][v] = vzero();
#pragma GCC unroll 2
    for (int k = 0; k < kc; k++, a += MR, b += NR) {
        vec b0 = vload(b), b1 = vload(b + VW);
        for (int i = 0; i < rows; i++) {
            vec ai = vset1(a[i]);
            acc[i][0] = vfma(ai, b0, acc[i][0]);
            acc[i][1] = vfma(ai, b1, acc[i][1]);
        }
    }
    vec va = vset1(alpha), vb = vset1(beta);
    if (n == NR && cs == 1) {
        for (int i = 0; i < rows; i++) {
            if (i >= m) break;
            real *ci = c + (size_t)i * rs;
            for (int v = 0; v < NV; v++)
                vstoreu(ci + v * VW, beta == 0 ? vmul(va, acc[i][v]) : vfma(va, acc[i][v], vmul(vb, vloadu(ci + v * VW))));
        }
        return;
    }
    _Alignas(64) real tile[MR * NR];
    for (int i = 0; i < rows; i++)
        for (int v = 0; v < NV; v++) vstore(tile + i * NR + v * VW, acc[i][v]);
    update_c(tile, c, rs, cs, alpha, beta, m, n);
}

/* Three instances so that a short last row panel does not pay for a full MR rows. */
static void kernel_full(int kc, const real *a, const real *b, real *c, int rs, int cs, real alpha, real beta, int m,
                        int n)
{
    kernel_rows(MR, kc, a, b, c, rs, cs, alpha, beta, m, n);
}

static void kernel_two_thirds(int kc, const real *a, const real *b, real *c, int rs, int cs, real alpha, real beta,
                              int m, int n)
{
    kernel_rows(MR * 2 / 3, kc, a, b, c, rs, cs, alpha, beta, m, n);
}

static void kernel_third(int kc, const real *a, const real *b, real *c, int rs, int cs, real alpha, real beta, int m,
                         int n)
{
    kernel_rows(MR / 3, kc, a, b, c, rs, cs, alpha, beta, m, n);
}

static void micro_kernel(int kc, const real *a, const real *b, real *c, int rs, int cs, real alpha, real beta, int m,
                         int n)
{
    if (m > MR * 2 / 3)
        kernel_full(kc, a, b, c, rs, cs, alpha, beta, m, n);
    else if (m > MR / 3)
        kernel_two_thirds(kc, a, b, c, rs, cs, alpha, beta, m, n);
    else
        kernel_third(kc, a, b, c, rs, cs, alpha, beta, m, n);
}
#else
static void micro_kernel(int kc, const real *restrict a, const real *restrict b, real *c, int rs, int cs, real alpha,
                         real beta, int m, int n)
{
    real tile[MR * NR] = {0};
    for (int k = 0; k < kc; k++, a += MR, b += NR)
        for (int i = 0; i < MR; i++)
            for (int j = 0; j < NR; j++) tile[i * NR + j] += a[i] * b[j];
    update_c(tile, c, rs, cs, alpha, beta, m, n);
}
#endif

/* --------------------------------------------------------------- blocking */

/* C = alpha L_A L_B^T + beta C (+ bias) with element (i, j) of C at C[i*rs + j*cs];
 * bias[i] is added to row i, or bias[j] to column j when bias_on_columns. */
typedef struct {
    int M, N, K;
    real alpha, beta;
    const GemmSource *a, *b;
    real *C;
    int rs, cs;
    const real *bias;
    int bias_on_columns;
    int next_block; /* the next column block to hand out (shared by the threads) */
} GemmJob;

/* Packing buffers of the calling thread, kept for the life of the thread (OpenMP reuses
 * its threads, so this allocates once per thread). */
static real *thread_pack_buffer(void)
{
    static _Thread_local real *buf;
    if (!buf) {
        buf = aligned_alloc(64, ((size_t)MC * KC + (size_t)KC * NC) * sizeof(real));
        if (!buf) sd_die(3, "out of memory: GEMM packing buffers");
    }
    return buf;
}

/* Before the first K block of a micro-tile at (i0, j0): C = beta*C + bias, for the
 * kernel to accumulate onto with beta 1 while the tile is in L1. */
static void init_tile(const GemmJob *g, real *c, int i0, int j0, int m, int n)
{
    const real *bias = g->bias;
    real beta = g->beta;
    int rs = g->rs, cs = g->cs, on_columns = g->bias_on_columns;
    for (int i = 0; i < m; i++) {
        real *ci = c + (size_t)i * rs;
        if (!on_columns && cs == 1) { /* the common case, a row of contiguous values */
            real b = bias[i0 + i];
            if (beta == 0)
                for (int j = 0; j < n; j++) ci[j] = b;
            else
                for (int j = 0; j < n; j++) ci[j] = beta * ci[j] + b;
            continue;
        }
        for (int j = 0; j < n; j++) {
            real *cij = ci + (size_t)j * cs;
            *cij = (beta == 0 ? 0 : beta * *cij) + (on_columns ? bias[j0 + j] : bias[i0 + i]);
        }
    }
}

/* The MC x NC block at (ic, jc) for the K block starting at pc. */
static void macro_kernel(const GemmJob *g, int ic, int mc, int jc, int nc, int pc, int kc, const real *apack,
                         const real *bpack)
{
    int init = pc == 0 && g->bias;
    real beta = pc == 0 && !init ? g->beta : 1;
    for (int jr = 0; jr < nc; jr += NR)
        for (int ir = 0; ir < mc; ir += MR) {
            int m = imin(MR, mc - ir), n = imin(NR, nc - jr);
            real *c = g->C + (size_t)(ic + ir) * g->rs + (size_t)(jc + jr) * g->cs;
            if (init) init_tile(g, c, ic + ir, jc + jr, m, n);
            micro_kernel(kc, apack + (size_t)ir * kc, bpack + (size_t)jr * kc, c, g->rs, g->cs, g->alpha, beta, m, n);
        }
}

/* Rows [i0, i1) x columns [j0, j1) of C, all of K. */
static void gemm_tile(const GemmJob *g, int i0, int i1, int j0, int j1)
{
    real *apack = thread_pack_buffer(), *bpack = apack + (size_t)MC * KC;
    for (int jc = j0; jc < j1; jc += NC) {
        int nc = imin(NC, j1 - jc);
        for (int pc = 0; pc < g->K; pc += KC) {
            int kc = imin(KC, g->K - pc);
            g->b->pack(g->b, jc, nc, pc, kc, NR, bpack);
            for (int ic = i0; ic < i1; ic += MC) {
                int mc = imin(MC, i1 - ic);
                g->a->pack(g->a, ic, mc, pc, kc, MR, apack);
                macro_kernel(g, ic, mc, jc, nc, pc, kc, apack, bpack);
            }
        }
    }
}

static long ceil_div(long a, long b) { return (a + b - 1) / b; }

/* Threads as a tm x tn grid over C: the split with the least work per thread. Work is
 * the padded micro-tile area plus packing, an element packed costing about as much as
 * PACK_COST multiply-adds: A is packed again for each NC block of columns, B once. */
#define PACK_COST 32
static int grid_columns(int M, int N, int threads)
{
    double best = -1;
    int best_tn = 1;
    for (int tn = 1; tn <= threads; tn++) {
        if (threads % tn) continue;
        long rows = ceil_div(ceil_div(M, MR), threads / tn) * MR, cols = ceil_div(ceil_div(N, NR), tn) * NR;
        double work = (double)rows * cols + PACK_COST * ((double)rows * ceil_div(cols, NC) + cols);
        if (best < 0 || work <= best) best = work, best_tn = tn;
    }
    return best_tn;
}

/* Start of part `t` of `parts` when `n` items are split in units of `unit`. */
static int split_at(int n, int unit, int parts, int t)
{
    long units = ceil_div(n, unit);
    return imin(n, (int)(units * t / parts) * unit);
}

/* When every thread takes a share of the columns, the columns go out in blocks on
 * demand, so that a thread slowed down by other processes (the machine may be shared)
 * just takes fewer. Up to 4 blocks per thread, but none narrower than 16 NR where that
 * can be helped (each block packs A again) nor wider than NC. */
static void gemm_column_blocks(GemmJob *g, int threads)
{
    long blocks_per_thread = g->N / (16L * NR * threads);
    blocks_per_thread = blocks_per_thread < 1 ? 1 : blocks_per_thread > 4 ? 4 : blocks_per_thread;
    int width = imin(NC, (int)(ceil_div(ceil_div(g->N, blocks_per_thread * threads), NR) * NR));
    int blocks = (int)ceil_div(g->N, width);
    for (;;) {
        int u;
#pragma omp atomic capture
        u = g->next_block++;
        if (u >= blocks) break;
        gemm_tile(g, 0, g->M, u * width, imin(g->N, (u + 1) * width));
    }
}

static void gemm_thread(GemmJob *g, int t, int threads)
{
    int tn = grid_columns(g->M, g->N, threads), tm = threads / tn;
    if (tm == 1 && threads > 1) {
        gemm_column_blocks(g, threads);
        return;
    }
    int ti = t / tn, tj = t % tn;
    int i0 = split_at(g->M, MR, tm, ti), i1 = split_at(g->M, MR, tm, ti + 1);
    int j0 = split_at(g->N, NR, tn, tj), j1 = split_at(g->N, NR, tn, tj + 1);
    if (i0 < i1 && j0 < j1) gemm_tile(g, i0, i1, j0, j1);
}

/* The K = 0 product: C = beta*C (+ bias). */
static void scale_c(int M, int N, real beta, real *C, int ldc, const real *row_bias)
{
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            real *cij = C + (size_t)i * ldc + j;
            *cij = (beta == 0 ? 0 : beta * *cij) + (row_bias ? row_bias[i] : 0);
        }
}

void gemm_run(int M, int N, int K, real alpha, const GemmSource *a, const GemmSource *b, real beta, real *C, int ldc,
              const real *row_bias)
{
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        scale_c(M, N, beta, C, ldc, row_bias);
        return;
    }
    GemmJob g = {M, N, K, alpha, beta, a, b, C, ldc, 1, row_bias, 0, 0};
    /* A narrow C would leave most of each NR-wide micro-tile empty: compute C^T = L_B L_A^T
     * instead, so the long side runs along the vector lanes. */
    if (N <= NR / 2 && M > N) g = (GemmJob){N, M, K, alpha, beta, b, a, C, 1, ldc, row_bias, 1, 0};
    /* Below ~1 MFLOP the thread start-up costs more than it saves. */
    int parallel = !omp_in_parallel() && (double)M * N * K > 5e5;
#pragma omp parallel if (parallel)
    gemm_thread(&g, omp_get_thread_num(), omp_get_num_threads());
}

void cpu_gemm(int trans_a, int trans_b, int M, int N, int K, real alpha, const real *A, int lda, const real *B, int ldb,
              real beta, real *C, int ldc)
{
    /* L_A = op(A) is A as stored or transposed; L_B = op(B)^T is B transposed or as stored. */
    GemmSource a = gemm_matrix(A, lda, trans_a), b = gemm_matrix(B, ldb, !trans_b);
    gemm_run(M, N, K, alpha, &a, &b, beta, C, ldc, NULL);
}
