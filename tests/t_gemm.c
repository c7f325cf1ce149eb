/* cpu_gemm against a naive float64 triple loop: all four transpose combinations, sizes
 * around and across the micro-tile and cache-block edges, alpha/beta (beta = 0 must
 * overwrite even NaN), padded leading dimensions, and columns outside C left untouched.
 * The error of each element is measured against its floating-point error scale
 * sum_k |alpha a b| + |beta c|, and must stay within the float32 dot-product bound. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "../core/rng.h"
#include "../cpu/cpu.h"

typedef struct {
    int ta, tb, M, N, K;
    float alpha, beta;
    int pad; /* extra leading-dimension padding of A, B and C */
} GemmCase;

/* Element (i, k) of op(X) for X stored row-major with stride ld. */
static double op_at(const float *x, int ld, int trans, int i, int k)
{
    return trans ? x[(size_t)k * ld + i] : x[(size_t)i * ld + k];
}

static float *random_matrix(size_t n, uint64_t stream)
{
    float *x = malloc(n * sizeof *x + 1);
    if (!x) exit(3);
    rng_fill_uniform(x, n, -1, 1, 7, stream, 0);
    return x;
}

/* Worst scaled error of one case; the sentinel padding column must keep its value. */
static double run_case(const GemmCase *g)
{
    int lda = (g->ta ? g->M : g->K) + g->pad, ldb = (g->tb ? g->K : g->N) + g->pad, ldc = g->N + g->pad;
    size_t an = (size_t)(g->ta ? g->K : g->M) * lda, bn = (size_t)(g->tb ? g->N : g->K) * ldb,
           cn = (size_t)g->M * ldc;
    float *A = random_matrix(an, 1), *B = random_matrix(bn, 2), *C = random_matrix(cn, 3);
    float *C0 = malloc(cn * sizeof *C0 + 1);
    if (!C0) exit(3);
    if (g->beta == 0)
        for (size_t i = 0; i < cn; i++) C[i] = NAN; /* beta == 0 must not read C */
    for (size_t i = 0; i < cn; i++) C0[i] = C[i];
    cpu_gemm(g->ta, g->tb, g->M, g->N, g->K, g->alpha, A, lda, B, ldb, g->beta, C, ldc);
    double worst = 0;
    for (int i = 0; i < g->M; i++) {
        for (int j = 0; j < g->N; j++) {
            double ref = 0, scale = 0;
            for (int k = 0; k < g->K; k++) {
                double p = op_at(A, lda, g->ta, i, k) * op_at(B, ldb, g->tb, k, j);
                ref += p;
                scale += fabs(p);
            }
            double c0 = g->beta == 0 ? 0 : C0[(size_t)i * ldc + j];
            ref = g->alpha * ref + g->beta * c0;
            scale = fabs(g->alpha) * scale + fabs(g->beta * c0) + DBL_MIN;
            double e = fabs(C[(size_t)i * ldc + j] - ref) / scale;
            if (!(e <= worst)) worst = isnan(e) ? INFINITY : e;
        }
        for (int j = g->N; j < ldc; j++)
            if (!(C[(size_t)i * ldc + j] == C0[(size_t)i * ldc + j] || (isnan(C[(size_t)i * ldc + j]) && g->beta == 0)))
                worst = INFINITY;
    }
    free(A), free(B), free(C), free(C0);
    return worst;
}

int main(void)
{
    static const int sizes[][3] = {{1, 1, 1},   {7, 7, 7},     {1, 63, 130}, {63, 1, 7},   {130, 63, 1},
                                   {13, 33, 9}, {25, 31, 257}, {63, 130, 64}, {300, 16, 70}, {40, 9, 600},
                                   {250, 2100, 300}};
    static const float ab[][2] = {{1, 0}, {0.5f, 1}, {-1.5f, 0.25f}};
    int failed = 0, count = 0;
    double worst_all = 0;
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++)
        for (int t = 0; t < 4; t++) {
            /* the largest case once per transpose pair, with beta != 0 */
            int big = s == sizeof sizes / sizeof *sizes - 1;
            for (size_t v = big ? 2 : 0; v < sizeof ab / sizeof *ab; v++) {
                GemmCase g = {t >> 1, t & 1, sizes[s][0], sizes[s][1], sizes[s][2], ab[v][0], ab[v][1], (int)v * 3};
                double e = run_case(&g), tol = 2.0 * FLT_EPSILON * (g.K + 2);
                count++;
                if (!(e <= worst_all)) worst_all = e;
                if (!(e <= tol)) {
                    failed++;
                    printf("FAIL gemm ta=%d tb=%d M=%d N=%d K=%d alpha=%g beta=%g pad=%d: error %.3e > %.3e\n", g.ta,
                           g.tb, g.M, g.N, g.K, g.alpha, g.beta, g.pad, e, tol);
                }
            }
        }
    printf("gemm: %d cases, worst scaled error %.3e, %d failed\n", count, worst_all, failed);
    return failed ? 1 : 0;
}
