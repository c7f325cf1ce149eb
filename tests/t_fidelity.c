/* The fidelity distances (core/fidelity.h) and the U-Net features (models/seg_features.h).
 *
 * Here, against cases worked out by hand or built with a known answer: eigenpairs of
 * Q diag(l) Q^T, the closed-form Frechet distance of Gaussians whose covariances share
 * their eigenvectors, FD of a set with itself, a two-point KID, histograms of constant and
 * two-level tiles, sinusoids whose spectra peak at a known radius, and spectra that differ
 * by a known factor. Then tests/fidelity_oracle.py recomputes, in float64 numpy/torch from
 * the inputs dumped here, FD on random sets (full-rank, rank-deficient n < d, and
 * low-rank subspaces), KID (whole sets, and given subsets), tile spectra (numpy.fft) and
 * the U-Net features (the PyTorch U-Net of tests/seg_oracle.py). Run from the repo root. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../core/err.h"
#include "../core/fidelity.h"
#include "../core/npy.h"
#include "../core/rng.h"
#include "../cpu/cpu.h"
#include "../models/seg_features.h"
#include "check.h"

static void must(int rc)
{
    if (rc) sd_die(1, "t_fidelity: %s", sd_last_error());
}

static double *normal(size_t n, uint64_t stream)
{
    double *x = malloc(n * sizeof *x);
    if (!x) sd_die(1, "t_fidelity: out of memory");
    rng_fill_normal_f64(x, n, 0, 1, 7, stream, 0);
    return x;
}

/* A random orthogonal d x d matrix: the product of three Householder reflectors. */
static double *orthogonal(int d, uint64_t stream)
{
    double *q = calloc((size_t)d * d, sizeof *q), *t = malloc((size_t)d * d * sizeof *t);
    double *v = normal(3 * (size_t)d, stream);
    for (int i = 0; i < d; i++) q[i * d + i] = 1;
    for (int r = 0; r < 3; r++) { /* q = (I - 2 u u^T / u.u) q */
        const double *u = v + r * d;
        double uu = 0;
        for (int i = 0; i < d; i++) uu += u[i] * u[i];
        for (int j = 0; j < d; j++) {
            double s = 0;
            for (int i = 0; i < d; i++) s += u[i] * q[i * d + j];
            for (int i = 0; i < d; i++) t[i * d + j] = q[i * d + j] - 2 * u[i] * s / uu;
        }
        memcpy(q, t, (size_t)d * d * sizeof *q);
    }
    free(t), free(v);
    return q;
}

/* out = Q diag(l) Q^T */
static void conjugate(int d, const double *q, const double *l, double *out)
{
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++) {
            double s = 0;
            for (int k = 0; k < d; k++) s += q[i * d + k] * l[k] * q[j * d + k];
            out[i * d + j] = s;
        }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* ------------------------------------------------------------ eigensolver */

static void test_eigen(void)
{
    enum { D = 12 };
    double l[D] = {-3, -1e-9, 0, 0, 0, 1e-12, 0.5, 2, 2, 2, 7, 100}; /* repeats, zeros, negatives */
    double *q = orthogonal(D, 1), a[D * D], orig[D * D], w[D], sorted[D];
    conjugate(D, q, l, a);
    memcpy(orig, a, sizeof a);
    must(sym_eigen(D, a, w));
    memcpy(sorted, w, sizeof w);
    qsort(sorted, D, sizeof *sorted, cmp_double);
    double err = 0, resid = 0, orth = 0;
    for (int i = 0; i < D; i++) err = fmax(err, fabs(sorted[i] - l[i]));
    for (int k = 0; k < D; k++) /* A v_k = w_k v_k, and the v_k orthonormal */
        for (int i = 0; i < D; i++) {
            double av = 0, vv = 0;
            for (int j = 0; j < D; j++) av += orig[i * D + j] * a[k * D + j], vv += a[k * D + j] * a[i * D + j];
            resid = fmax(resid, fabs(av - w[k] * a[k * D + i]));
            orth = fmax(orth, fabs(vv - (i == k)));
        }
    CHECK_MSG(err < 1e-12, "eigenvalues of Q diag(l) Q^T: max error %.3g", err);
    CHECK_MSG(resid < 1e-12, "eigenpairs: max |A v - w v| = %.3g", resid);
    CHECK_MSG(orth < 1e-13, "eigenvectors: max |V V^T - I| = %.3g", orth);
    double one = 5;
    must(sym_eigen(1, &one, w));
    CHECK_NEAR(w[0], 5, 0);
    double bad[4] = {1, NAN, NAN, 1};
    CHECK(sym_eigen(2, bad, w) == SD_ERR);
    free(q);
}

/* ------------------------------------------------------------ Frechet distance */

static FeatStats stats_of(int d, const double *mean, const double *cov)
{
    FeatStats s = {d, 100, malloc(d * sizeof(double)), malloc((size_t)d * d * sizeof(double))};
    memcpy(s.mean, mean, d * sizeof(double));
    memcpy(s.cov, cov, (size_t)d * d * sizeof(double));
    return s;
}

/* Covariances with common eigenvectors Q: S = Q diag(s^2) Q^T, so the product's root is
 * Q diag(s1 s2) Q^T and FD = |dmu|^2 + sum (s1 - s2)^2. Q = I is the diagonal case. */
static void fd_closed_form(int d, int rotate)
{
    double mu1[8] = {1, 2, 3, 4, -1, 0, 0.5, 2}, mu2[8] = {1, 0, 3, 5, 1, 0, 0, 2};
    double s1[8] = {1, 2, 0, 0.5, 3, 1, 0, 4}, s2[8] = {2, 2, 1, 0, 1, 0.1, 0, 1}; /* stds, with zeros */
    double v1[8], v2[8], c1[64], c2[64], want = 0, fd;
    double *q = rotate ? orthogonal(d, 2) : calloc(64, sizeof *q);
    for (int i = 0; i < d; i++) {
        v1[i] = s1[i] * s1[i], v2[i] = s2[i] * s2[i];
        want += (mu1[i] - mu2[i]) * (mu1[i] - mu2[i]) + (s1[i] - s2[i]) * (s1[i] - s2[i]);
        if (!rotate) q[i * d + i] = 1;
    }
    conjugate(d, q, v1, c1);
    conjugate(d, q, v2, c2);
    FeatStats a = stats_of(d, mu1, c1), b = stats_of(d, mu2, c2);
    must(frechet_distance(&a, &b, &fd));
    const char *what = rotate ? "rotated" : "diagonal";
    CHECK_MSG(fabs(fd - want) < 1e-9, "closed-form FD (%s): %.12g, want %.12g", what, fd, want);
    must(frechet_distance(&b, &a, &fd));
    CHECK_MSG(fabs(fd - want) < 1e-9, "closed-form FD, sets swapped: %.12g, want %.12g", fd, want);
    feat_stats_free(&a), feat_stats_free(&b);
    free(q);
}

static void test_fd_self(void)
{
    enum { N = 200, D = 50 };
    double *x = normal(N * D, 3), fd;
    for (int i = 0; i < N * D; i++) x[i] = x[i] * (1 + i % D) + i % 7; /* unequal scales and means */
    FeatStats s;
    must(feat_stats(x, N, D, &s));
    double trace = 0;
    for (int i = 0; i < D; i++) trace += s.cov[i * D + i];
    must(frechet_distance(&s, &s, &fd));
    CHECK_MSG(fd <= 1e-10 * trace, "FD of a set with itself: %.3g (trace %.3g)", fd, trace);
    feat_stats_free(&s);
    x[5] = NAN;
    CHECK(feat_stats(x, N, D, &s) == SD_ERR);
    CHECK(feat_stats(x, 1, D, &s) == SD_ERR);
    free(x);
}

/* ------------------------------------------------------------ KID */

static void test_kid_hand(void)
{
    /* d = 1, x = {0, 0}, y = {1, 1}: k(0,0) = 1, k(1,1) = 8, k(0,1) = 1, so
     * MMD^2 = 1 (x pairs) + 8 (y pairs) - 2 * 1 (cross pairs) = 7. */
    double x[2] = {0, 0}, y[2] = {1, 1};
    long idx[2] = {0, 1};
    CHECK_NEAR(mmd2_poly(x, idx, y, idx, 2, 1), 7, 1e-15);
    /* Whole sets as subsets: the same score for every seed, std 0 (up to the rounding of
     * the threads' partial sums, which add up in any order). */
    enum { N = 40, D = 6 };
    double *a = normal(N * D, 4), *b = normal(N * D, 5);
    KidScore k1, k2;
    must(kid(a, N, b, N, D, &(KidOpts){5, 1000, 1}, &k1));
    must(kid(a, N, b, N, D, &(KidOpts){3, N, 99}, &k2));
    CHECK_MSG(k1.size == N && k1.std <= 1e-13 * fabs(k1.mean) && fabs(k1.mean - k2.mean) <= 1e-13 * fabs(k1.mean),
              "KID of whole sets: %.17g +- %.3g (seed 1), %.17g (seed 99)", k1.mean, k1.std, k2.mean);
    /* Subsets of 10 of 40: the draws differ, so do the scores. */
    must(kid(a, N, b, N, D, &(KidOpts){8, 10, 1}, &k1));
    CHECK(k1.size == 10 && k1.std > 0);
    CHECK(kid(a, 1, b, N, D, &(KidOpts){8, 10, 1}, &k1) == SD_ERR);
    free(a), free(b);
}

/* ------------------------------------------------------------ histograms */

static void fill_tile(uint8_t *t, int n, int first_half, int second_half)
{
    for (int i = 0; i < n * n; i++) t[i] = (uint8_t)(i < n * n / 2 ? first_half : second_half);
}

static void hist_case(int a1, int a2, int b1, int b2, double w1, double l1, double chi2)
{
    enum { N = 4 };
    uint8_t ta[N * N], tb[N * N];
    fill_tile(ta, N, a1, a2);
    fill_tile(tb, N, b1, b2);
    ImageStats a, b;
    must(image_stats_init(&a, N));
    must(image_stats_init(&b, N));
    must(image_stats_add(&a, ta, 1));
    must(image_stats_add(&b, tb, 1));
    HistDistance h;
    double spec;
    must(image_stats_compare(&a, &b, &h, &spec));
    CHECK_MSG(fabs(h.w1 - w1) < 1e-12 && fabs(h.l1 - l1) < 1e-12 && fabs(h.chi2 - chi2) < 1e-12,
              "histograms %d/%d vs %d/%d: W1 %g L1 %g chi2 %g, want %g %g %g", a1, a2, b1, b2, h.w1, h.l1, h.chi2, w1,
              l1, chi2);
    image_stats_free(&a), image_stats_free(&b);
}

static void test_hist(void)
{
    hist_case(37, 37, 200, 200, 163, 2, 1); /* constant tiles: W1 = the grey-level difference */
    hist_case(200, 200, 37, 37, 163, 2, 1);
    /* half the mass at 0 in both; the other half at 10 vs 20 moves 10 levels: W1 5, L1 1,
     * chi2 = 1/2 (0.25/0.5 + 0.25/0.5) = 0.5 */
    hist_case(0, 10, 0, 20, 5, 1, 0.5);
    /* half at 0 and half at 10 vs all at 5: every unit of mass moves 5 levels */
    hist_case(0, 10, 5, 5, 5, 2, 1);
    /* half at 0 and half at 255 vs all at 255: half the mass moves the whole range; chi2 =
     * 1/2 (0.25/0.5 + 0.25/1.5) = 1/3 */
    hist_case(0, 255, 255, 255, 127.5, 1, 1.0 / 3);
    hist_case(9, 250, 9, 250, 0, 0, 0);
}

/* ------------------------------------------------------------ spectra */

/* round(127.5 + 100 cos(2 pi (fy y + fx x) / n)): all its power sits at (fy, fx). */
static void wave(uint8_t *t, int n, int fy, int fx)
{
    for (int y = 0; y < n; y++)
        for (int x = 0; x < n; x++) t[y * n + x] = (uint8_t)lrint(127.5 + 100 * cos(2 * M_PI * (fy * y + fx * x) / n));
}

static void peak_case(int fy, int fx, int radius)
{
    enum { N = 64, NR = N / 2 + 1 };
    uint8_t t[N * N];
    double *work = malloc(tile_spectrum_work(N) * sizeof *work), ring[NR];
    wave(t, N, fy, fx);
    tile_spectrum(t, N, work, ring);
    int peak = 1;
    double second = 0;
    for (int r = 1; r < NR; r++)
        if (ring[r] > ring[peak]) peak = r;
    for (int r = 1; r < NR; r++)
        if (r != peak) second = fmax(second, ring[r]);
    CHECK_MSG(peak == radius && ring[peak] > 1e4 * second,
              "wave (%d, %d): spectrum peaks at radius %d (want %d), %.3g times the next ring", fy, fx, peak, radius,
              ring[peak] / second);
    free(work);
}

static void test_spectrum(void)
{
    peak_case(12, 0, 12);
    peak_case(0, 7, 7);
    peak_case(3, 4, 5); /* diagonal: radius sqrt(9 + 16) */
    peak_case(-6, 8, 10);
    enum { N = 32, T = 3 };
    uint8_t tiles[T * N * N];
    for (int i = 0; i < T * N * N; i++) tiles[i] = (uint8_t)(i * 2654435761u >> 24);
    ImageStats a, b;
    must(image_stats_init(&a, N));
    must(image_stats_init(&b, N));
    must(image_stats_add(&a, tiles, T));
    must(image_stats_add(&b, tiles, 1)); /* the same tiles in two batches */
    must(image_stats_add(&b, tiles + N * N, T - 1));
    HistDistance h;
    double spec;
    must(image_stats_compare(&a, &b, &h, &spec));
    CHECK_MSG(spec == 0 && h.w1 == 0, "identical sets: spectrum distance %g, W1 %g", spec, h.w1);
    image_stats_free(&a), image_stats_free(&b);
    CHECK(image_stats_init(&a, 48) == SD_ERR);
    /* Power 10x higher at every radius: RMS log10 ratio 1; radius 0 is not counted, and
     * zero power on both sides (constant tiles) is no difference. */
    double p[5] = {1e-3, 2, 3e-4, 5e-2, 1}, q[5] = {7, 20, 3e-3, 5e-1, 10}, z[5] = {0};
    CHECK_NEAR(spectrum_distance(p, q, 5), 1, 1e-12);
    CHECK_NEAR(spectrum_distance(z, z, 5), 0, 0);
}

/* ------------------------------------------------------------ the oracle cases */

static char root[] = "/tmp/sdseg_fidelity_XXXXXX";

static void save(const char *name, const void *data, int is_double, int ndim, const long *shape)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s.npy", root, name);
    must(npy_save(p, data, is_double, ndim, shape));
}

/* x [nx][d], y [ny][d] and the C Frechet distance as <name>_{x,y,fd}.npy */
static void dump_fd(const char *name, const double *x, long nx, const double *y, long ny, int d)
{
    char key[64];
    FeatStats a, b;
    double fd;
    must(feat_stats(x, nx, d, &a));
    must(feat_stats(y, ny, d, &b));
    must(frechet_distance(&a, &b, &fd));
    long sx[2] = {nx, d}, sy[2] = {ny, d}, one = 1;
    snprintf(key, sizeof key, "%s_x", name);
    save(key, x, 1, 2, sx);
    snprintf(key, sizeof key, "%s_y", name);
    save(key, y, 1, 2, sy);
    snprintf(key, sizeof key, "%s_fd", name);
    save(key, &fd, 1, 1, &one);
    feat_stats_free(&a), feat_stats_free(&b);
}

/* Rows of a rank-r subspace of R^d: z [n][r] times a random [r][d], plus an offset. */
static double *low_rank(long n, int r, int d, uint64_t stream)
{
    double *z = normal((size_t)n * r, stream), *w = normal((size_t)r * d, stream + 1);
    double *x = calloc((size_t)n * d, sizeof *x);
    for (long i = 0; i < n; i++)
        for (int j = 0; j < d; j++) {
            x[i * d + j] = 0.1 * j;
            for (int k = 0; k < r; k++) x[i * d + j] += z[i * r + k] * w[k * d + j];
        }
    free(z), free(w);
    return x;
}

static void dump_fd_cases(void)
{
    double *x = normal(300 * 24, 10), *y = normal(250 * 24, 11);
    for (int i = 0; i < 250 * 24; i++) y[i] = y[i] * (0.5 + (i % 24) / 12.0) + (i % 24 == 3) + 0.3 * y[i - i % 24];
    dump_fd("full", x, 300, y, 250, 24); /* non-commuting covariances */
    dump_fd("rankdef", x, 20, y, 40, 24); /* n = 20 < d = 24: rank 19 */
    free(x), free(y);
    x = low_rank(100, 5, 16, 12), y = low_rank(90, 7, 16, 14);
    dump_fd("subspace", x, 100, y, 90, 16);
    free(x), free(y);
}

/* KID of whole sets (the first NY rows of x against y: n <= subset size), and mmd2_poly
 * on given subsets of x and y. */
static void dump_kid_cases(void)
{
    enum { D = 10, NX = 80, NY = 50, M = 30 };
    double *x = normal(NX * D, 20), *y = normal(NY * D, 21), got[2];
    for (int i = 0; i < NY * D; i++) y[i] = 0.8 * y[i] + 0.2;
    KidScore k;
    must(kid(x, NY, y, NY, D, &(KidOpts){4, 1000, 3}, &k));
    got[0] = k.mean;
    long ix[M], iy[M], shape[2] = {NX, D}, m = M, two = 2;
    double fx[M], fy[M];
    for (int i = 0; i < M; i++) ix[i] = (i * 37 + 5) % NX, iy[i] = (i * 13 + 2) % NY, fx[i] = ix[i], fy[i] = iy[i];
    got[1] = mmd2_poly(x, ix, y, iy, M, D);
    save("kid_x", x, 1, 2, shape);
    shape[0] = NY;
    save("kid_y", y, 1, 2, shape);
    save("kid_ix", fx, 1, 1, &m);
    save("kid_iy", fy, 1, 1, &m);
    save("kid_got", got, 1, 1, &two);
    free(x), free(y);
}

static void dump_spectra(void)
{
    enum { N = 32, NR = N / 2 + 1, T = 2 };
    uint8_t t[T * N * N];
    double *work = malloc(tile_spectrum_work(N) * sizeof *work), px[T * N * N], ring[T * NR];
    float noise[N * N];
    rng_fill_uniform(noise, N * N, 0, 256, 30, 0, 0);
    for (int i = 0; i < N * N; i++) t[i] = (uint8_t)noise[i];
    wave(t + N * N, N, 3, -5);
    for (int i = 0; i < N * N; i++) t[N * N + i] = (uint8_t)((t[N * N + i] + t[i]) / 2); /* a wave in noise */
    for (int i = 0; i < T; i++) tile_spectrum(t + i * N * N, N, work, ring + i * NR);
    for (int i = 0; i < T * N * N; i++) px[i] = t[i];
    long st[3] = {T, N, N}, sr[2] = {T, NR};
    save("spectrum_tiles", px, 1, 3, st);
    save("spectrum_rings", ring, 1, 2, sr);
    free(work);
}

/* A width-2 U-Net with random batch-norm affines and statistics, saved; the features of
 * random tiles. */
static void dump_features(void)
{
    enum { W = 2, N = 32, B = 3 };
    Backend be = cpu_backend();
    SegUnet *m = seg_unet_create(&be, W, 1, N, N, 0, 0.01f);
    if (!m) sd_die(1, "t_fidelity: %s", sd_last_error());
    seg_unet_init(m, 5);
    const Params *p = &m->net.params;
    size_t at = p->group_begin[PARAM_NO_DECAY], n = p->group_begin[PARAM_NO_DECAY + 1] - at;
    be.fill_uniform(be.ctx, n, p->w + at, 0.5f, 1.5f, 5, 1000, 0);
    be.fill_uniform(be.ctx, p->buffers.numel, p->buf, 0.5f, 1.5f, 5, 1001, 0);
    char path[512];
    snprintf(path, sizeof path, "%s/unet.safetensors", root);
    CkptSection sec[] = {{"", &p->list, p->w}, {"", &p->buffers, p->buf}};
    StMeta meta[] = {{"model", SEG_UNET_MODEL}};
    must(ckpt_save(path, &be, sec, 2, meta, 1));
    seg_unet_free(m);

    SegFeatures *f = seg_features_load(path, &be, B, N);
    if (!f) sd_die(1, "t_fidelity: %s", sd_last_error());
    CHECK(f->dim == 24 * W);
    uint8_t t[B * N * N];
    double px[B * N * N], feat[B * 24 * W];
    float u[B * N * N];
    rng_fill_uniform(u, B * N * N, 0, 256, 31, 0, 0);
    for (int i = 0; i < B * N * N; i++) px[i] = t[i] = (uint8_t)u[i];
    must(seg_features_run(f, B, t, feat));
    long st[4] = {B, 1, N, N}, sf[2] = {B, f->dim};
    save("features_tiles", px, 1, 4, st);
    save("features", feat, 1, 2, sf);
    seg_features_free(f);
    CHECK(seg_features_load("/nonexistent.safetensors", &be, B, N) == NULL);
    cpu_ctx_destroy(be.ctx);
}

static int run_oracle(void)
{
    if (!mkdtemp(root)) sd_die(1, "t_fidelity: cannot create a temporary folder");
    dump_fd_cases();
    dump_kid_cases();
    dump_spectra();
    dump_features();
    char cmd[1024];
    const char *py = getenv("PY") ? getenv("PY") : "/usr/bin/python3";
    snprintf(cmd, sizeof cmd, "%s tests/fidelity_oracle.py %s", py, root);
    int failed = system(cmd) != 0;
    if (failed) fprintf(stderr, "t_fidelity: the oracle failed; its inputs are kept in %s\n", root);
    else snprintf(cmd, sizeof cmd, "rm -rf %s", root), failed = system(cmd) != 0;
    return failed;
}

int main(void)
{
    test_eigen();
    fd_closed_form(8, 0);
    fd_closed_form(8, 1);
    test_fd_self();
    test_kid_hand();
    test_hist();
    test_spectrum();
    CHECK_MSG(run_oracle() == 0, "tests/fidelity_oracle.py");
    return check_exit("t_fidelity");
}
