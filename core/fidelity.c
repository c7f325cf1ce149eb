/* Fidelity distances between sets of tiles (see fidelity.h). Everything is double. */
#include "fidelity.h"

#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "philox.h"

#define QL_MAX_ITER 100 /* per eigenvalue; QL converges in 2-3 on average */

static double dot(const double *a, const double *b, long n)
{
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (long i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* ------------------------------------------------------------ feature statistics */

void feat_stats_free(FeatStats *s)
{
    free(s->mean);
    free(s->cov);
    memset(s, 0, sizeof *s);
}

/* cov = xt xt^T / (n - 1) for the centred features xt [d][n] (rows contiguous, so every
 * entry is one contiguous dot product). */
static void covariance(const double *xt, long n, int d, double *cov)
{
#pragma omp parallel for schedule(dynamic, 4)
    for (int i = 0; i < d; i++)
        for (int j = i; j < d; j++)
            cov[(size_t)i * d + j] = cov[(size_t)j * d + i] =
                dot(xt + (size_t)i * n, xt + (size_t)j * n, n) / (double)(n - 1);
}

int feat_stats(const double *x, long n, int d, FeatStats *s)
{
    memset(s, 0, sizeof *s);
    if (n < 2 || d < 1) return sd_fail("feature statistics need at least 2 vectors of 1 value (got %ld of %d)", n, d);
    for (size_t i = 0; i < (size_t)n * d; i++)
        if (!isfinite(x[i])) return sd_fail("feature vector %ld holds a non-finite value", (long)(i / d));
    s->d = d, s->n = n;
    s->mean = calloc(d, sizeof *s->mean);
    s->cov = malloc((size_t)d * d * sizeof *s->cov);
    double *xt = malloc((size_t)n * d * sizeof *xt);
    if (!s->mean || !s->cov || !xt) {
        free(xt);
        feat_stats_free(s);
        return sd_fail("out of memory for the statistics of %ld %d-d features", n, d);
    }
    for (long t = 0; t < n; t++)
        for (int j = 0; j < d; j++) s->mean[j] += x[(size_t)t * d + j];
    for (int j = 0; j < d; j++) s->mean[j] /= (double)n;
    /* two passes (centre, then multiply): no cancellation of E[x^2] - E[x]^2 */
    for (long t = 0; t < n; t++)
        for (int j = 0; j < d; j++) xt[(size_t)j * n + t] = x[(size_t)t * d + j] - s->mean[j];
    covariance(xt, n, d, s->cov);
    free(xt);
    return SD_OK;
}

/* ------------------------------------------------------------ symmetric eigensolver
 * EISPACK's tred2 and tql2 as published in JAMA (public domain), with the eigenvector
 * matrix V stored transposed, V(r, c) = a[c n + r], so that every inner loop, which runs
 * down a column of V, walks contiguous memory. */
#define V(r, c) a[(size_t)(c) * n + (r)]

/* Householder step of tred2 that reduces row i; d holds row i of the partly reduced
 * matrix. Returns h, the squared norm scale of the reflector. */
static double householder_row(int n, double *a, double *d, double *e, int i, double scale)
{
    double h = 0;
    for (int k = 0; k < i; k++) {
        d[k] /= scale;
        h += d[k] * d[k];
    }
    double f = d[i - 1], g = f > 0 ? -sqrt(h) : sqrt(h);
    e[i] = scale * g;
    h -= f * g;
    d[i - 1] = f - g;
    for (int j = 0; j < i; j++) e[j] = 0;
    for (int j = 0; j < i; j++) { /* e = A u (lower triangle of A) */
        f = d[j];
        V(j, i) = f;
        g = e[j] + V(j, j) * f;
        for (int k = j + 1; k <= i - 1; k++) {
            g += V(k, j) * d[k];
            e[k] += V(k, j) * f;
        }
        e[j] = g;
    }
    f = 0;
    for (int j = 0; j < i; j++) {
        e[j] /= h;
        f += e[j] * d[j];
    }
    double hh = f / (h + h);
    for (int j = 0; j < i; j++) e[j] -= hh * d[j];
    for (int j = 0; j < i; j++) { /* A -= u e^T + e u^T; must run in order: d[j] is reused */
        f = d[j];
        g = e[j];
        for (int k = j; k <= i - 1; k++) V(k, j) -= f * e[k] + g * d[k];
        d[j] = V(i - 1, j);
        V(i, j) = 0;
    }
    return h;
}

/* Product of the Householder reflectors into V; the diagonal into d. */
static void accumulate_reflectors(int n, double *a, double *d)
{
    for (int i = 0; i < n - 1; i++) {
        V(n - 1, i) = V(i, i);
        V(i, i) = 1;
        double h = d[i + 1];
        if (h != 0) {
            for (int k = 0; k <= i; k++) d[k] = V(k, i + 1) / h;
            for (int j = 0; j <= i; j++) {
                double g = dot(&V(0, i + 1), &V(0, j), i + 1);
                for (int k = 0; k <= i; k++) V(k, j) -= g * d[k];
            }
        }
        for (int k = 0; k <= i; k++) V(k, i + 1) = 0;
    }
    for (int j = 0; j < n; j++) {
        d[j] = V(n - 1, j);
        V(n - 1, j) = 0;
    }
    V(n - 1, n - 1) = 1;
}

/* Symmetric -> tridiagonal (diagonal d, subdiagonal e[1..n-1]), V = the transformation. */
static void tred2(int n, double *a, double *d, double *e)
{
    for (int j = 0; j < n; j++) d[j] = V(n - 1, j);
    for (int i = n - 1; i > 0; i--) {
        double scale = 0, h = 0;
        for (int k = 0; k < i; k++) scale += fabs(d[k]);
        if (scale == 0) {
            e[i] = d[i - 1];
            for (int j = 0; j < i; j++) {
                d[j] = V(i - 1, j);
                V(i, j) = 0;
                V(j, i) = 0;
            }
        } else {
            h = householder_row(n, a, d, e, i, scale);
        }
        d[i] = h;
    }
    accumulate_reflectors(n, a, d);
    e[0] = 0;
}

/* One implicit QL sweep over the unreduced block l..m; f accumulates the shifts. */
static void ql_sweep(int n, double *a, double *d, double *e, int l, int m, double *f)
{
    double g = d[l], p = (d[l + 1] - g) / (2 * e[l]), r = hypot(p, 1);
    if (p < 0) r = -r;
    d[l] = e[l] / (p + r);
    d[l + 1] = e[l] * (p + r);
    double dl1 = d[l + 1], h = g - d[l];
    for (int i = l + 2; i < n; i++) d[i] -= h;
    *f += h;
    p = d[m];
    double c = 1, c2 = 1, c3 = 1, el1 = e[l + 1], s = 0, s2 = 0;
    for (int i = m - 1; i >= l; i--) {
        c3 = c2;
        c2 = c;
        s2 = s;
        g = c * e[i];
        h = c * p;
        r = hypot(p, e[i]);
        e[i + 1] = s * r;
        s = e[i] / r;
        c = p / r;
        p = c * d[i] - s * g;
        d[i + 1] = h + s * (c * g + s * d[i]);
        double *vi = &V(0, i), *vi1 = &V(0, i + 1);
        for (int k = 0; k < n; k++) { /* rotate eigenvector columns i, i+1 */
            h = vi1[k];
            vi1[k] = s * vi[k] + c * h;
            vi[k] = c * vi[k] - s * h;
        }
    }
    p = -s * s2 * c3 * el1 * e[l] / dl1;
    e[l] = s * p;
    d[l] = c * p;
}

/* Tridiagonal QL with implicit shifts: eigenvalues into d, eigenvectors into V. */
static int tql2(int n, double *a, double *d, double *e)
{
    for (int i = 1; i < n; i++) e[i - 1] = e[i];
    e[n - 1] = 0;
    double f = 0, tst1 = 0, eps = 0x1p-52;
    for (int l = 0; l < n; l++) {
        tst1 = fmax(tst1, fabs(d[l]) + fabs(e[l]));
        int m = l;
        while (m < n - 1 && fabs(e[m]) > eps * tst1) m++; /* e[n-1] = 0 ends the search */
        for (int iter = 0; m > l && fabs(e[l]) > eps * tst1; iter++) {
            if (iter == QL_MAX_ITER) return sd_fail("eigensolver: no convergence for eigenvalue %d of %d", l, n);
            ql_sweep(n, a, d, e, l, m, &f);
        }
        d[l] += f;
        e[l] = 0;
    }
    return SD_OK;
}
#undef V

int sym_eigen(int n, double *a, double *w)
{
    if (n < 1) return sd_fail("eigensolver: empty matrix");
    for (size_t i = 0; i < (size_t)n * n; i++)
        if (!isfinite(a[i])) return sd_fail("eigensolver: the %d x %d matrix holds a non-finite value", n, n);
    double *e = malloc((size_t)n * sizeof *e);
    if (!e) return sd_fail("out of memory for a %d x %d eigenproblem", n, n);
    tred2(n, a, w, e);
    int rc = tql2(n, a, w, e);
    free(e);
    return rc;
}

/* ------------------------------------------------------------ Frechet distance */

/* m = E s E^T with E = rows of eigenvectors ([d][d] each); t is scratch. */
static void rotate(int d, const double *e, const double *s, double *t, double *m)
{
#pragma omp parallel for schedule(static)
    for (int i = 0; i < d; i++) { /* t = E s, row by row */
        double *ti = t + (size_t)i * d;
        memset(ti, 0, (size_t)d * sizeof *ti);
        for (int k = 0; k < d; k++) {
            double eik = e[(size_t)i * d + k];
            const double *sk = s + (size_t)k * d;
#pragma omp simd
            for (int j = 0; j < d; j++) ti[j] += eik * sk[j];
        }
    }
#pragma omp parallel for schedule(static)
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++) m[(size_t)i * d + j] = dot(t + (size_t)i * d, e + (size_t)j * d, d);
}

/* Roots of the eigenvalues w of a symmetric positive semi-definite matrix, in place. The
 * zero eigenvalues of a rank-deficient matrix (n <= d features, or features confined to a
 * subspace) come out of the solver as rounding noise of about +-1e-16 of the largest, and
 * a root turns 1e-16 into 1e-8: eigenvalues within d * DBL_EPSILON * max |w| of zero,
 * which no double computation can tell from zero, are set to zero, negative ones too. */
static void psd_roots(int d, double *w)
{
    double big = 0;
    for (int i = 0; i < d; i++) big = fmax(big, fabs(w[i]));
    double tiny = d * DBL_EPSILON * big;
    for (int i = 0; i < d; i++) w[i] = w[i] > tiny ? sqrt(w[i]) : 0;
}

/* tr sqrtm(S1^1/2 S2 S1^1/2). With S1 = E^T diag(w) E, the matrix M = diag(sqrt w) E S2 E^T
 * diag(sqrt w) is orthogonally similar to S1^1/2 S2 S1^1/2 (same eigenvalues) and
 * symmetric positive semi-definite, so the trace of its root is the sum of the roots of its
 * eigenvalues (psd_roots for both decompositions). */
static int trace_sqrt_product(int d, const double *s1, const double *s2, double *out)
{
    size_t dd = (size_t)d * d;
    double *e = malloc(dd * sizeof *e), *t = malloc(dd * sizeof *t), *m = malloc(dd * sizeof *m);
    double *w = malloc((size_t)d * sizeof *w);
    int rc = e && t && m && w ? SD_OK : sd_fail("out of memory for %d x %d covariances", d, d);
    if (rc == SD_OK) {
        memcpy(e, s1, dd * sizeof *e);
        rc = sym_eigen(d, e, w);
    }
    if (rc == SD_OK) {
        psd_roots(d, w);
        rotate(d, e, s2, t, m);
        for (int i = 0; i < d; i++) /* scale, and symmetrize away the products' rounding */
            for (int j = 0; j <= i; j++)
                m[(size_t)i * d + j] = m[(size_t)j * d + i] =
                    w[i] * w[j] * 0.5 * (m[(size_t)i * d + j] + m[(size_t)j * d + i]);
        rc = sym_eigen(d, m, w);
    }
    if (rc == SD_OK) {
        psd_roots(d, w);
        *out = 0;
        for (int i = 0; i < d; i++) *out += w[i];
    }
    free(e), free(t), free(m), free(w);
    return rc;
}

int frechet_distance(const FeatStats *a, const FeatStats *b, double *fd)
{
    if (a->d != b->d) return sd_fail("Frechet distance of %d-d and %d-d features", a->d, b->d);
    int d = a->d;
    double trace_root;
    if (trace_sqrt_product(d, a->cov, b->cov, &trace_root)) return SD_ERR;
    double dist = 0;
    for (int i = 0; i < d; i++) {
        double dm = a->mean[i] - b->mean[i];
        dist += dm * dm + a->cov[(size_t)i * d + i] + b->cov[(size_t)i * d + i];
    }
    /* equal sets give 0 up to rounding, which may be a tiny negative */
    *fd = fmax(dist - 2 * trace_root, 0);
    return SD_OK;
}

/* ------------------------------------------------------------ kernel inception distance */

static double poly_kernel(const double *u, const double *v, int d)
{
    double t = dot(u, v, d) / d + 1;
    return t * t * t;
}

double mmd2_poly(const double *x, const long *ix, const double *y, const long *iy, long m, int d)
{
    double kxx = 0, kyy = 0, kxy = 0;
#pragma omp parallel for schedule(dynamic, 8) reduction(+ : kxx, kyy, kxy)
    for (long i = 0; i < m; i++) {
        const double *xi = x + (size_t)ix[i] * d, *yi = y + (size_t)iy[i] * d;
        for (long j = 0; j < m; j++) {
            const double *xj = x + (size_t)ix[j] * d, *yj = y + (size_t)iy[j] * d;
            if (j > i) { /* each unordered pair once, counted twice below */
                kxx += poly_kernel(xi, xj, d);
                kyy += poly_kernel(yi, yj, d);
            }
            kxy += poly_kernel(xi, yj, d);
        }
    }
    double pairs = (double)m * (double)(m - 1);
    return 2 * kxx / pairs + 2 * kyy / pairs - 2 * kxy / ((double)m * (double)m);
}

static int cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

/* The first m entries of perm become a uniform random m-subset of 0..n-1 (partial
 * Fisher-Yates), drawn from Philox stream (seed, stream), in increasing order: the sums
 * over a subset then do not depend on the draw's order, so that whole sets score the same
 * for every seed. */
static void draw_subset(long n, long m, uint64_t seed, uint64_t stream, long *perm)
{
    for (long i = 0; i < n; i++) perm[i] = i;
    for (long i = 0; i < m; i++) {
        uint32_t u = philox4x32_10(seed, stream, (uint64_t)i >> 2).v[i & 3];
        long j = i + (long)(((uint64_t)u * (uint64_t)(n - i)) >> 32); /* uniform in i..n-1 */
        long t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    qsort(perm, (size_t)m, sizeof *perm, cmp_long);
}

int kid(const double *x, long nx, const double *y, long ny, int d, const KidOpts *o, KidScore *out)
{
    if (nx < 2 || ny < 2) return sd_fail("KID needs at least 2 feature vectors per set (got %ld and %ld)", nx, ny);
    if (o->subsets < 1 || o->max_size < 2)
        return sd_fail("KID needs at least 1 subset of at least 2 (got %d of %ld)", o->subsets, o->max_size);
    long m = nx < ny ? nx : ny;
    if (m > o->max_size) m = o->max_size;
    long *px = malloc((size_t)nx * sizeof *px), *py = malloc((size_t)ny * sizeof *py);
    double *v = malloc((size_t)o->subsets * sizeof *v);
    if (!px || !py || !v) {
        free(px), free(py), free(v);
        return sd_fail("out of memory drawing KID subsets");
    }
    double sum = 0, sq = 0;
    for (int s = 0; s < o->subsets; s++) {
        draw_subset(nx, m, o->seed, 2 * (uint64_t)s, px);
        draw_subset(ny, m, o->seed, 2 * (uint64_t)s + 1, py);
        v[s] = mmd2_poly(x, px, y, py, m, d);
        sum += v[s];
    }
    out->mean = sum / o->subsets;
    for (int s = 0; s < o->subsets; s++) sq += (v[s] - out->mean) * (v[s] - out->mean);
    out->std = sqrt(sq / o->subsets);
    out->size = m;
    free(px), free(py), free(v);
    return SD_OK;
}

/* ------------------------------------------------------------ radially averaged spectra */

/* In-place radix-2 DFT of n complex values (n a power of two); cs[k], sn[k] =
 * cos, sin(2 pi k / n) for k < n/2. */
static void fft(double *re, double *im, int n, const double *cs, const double *sn)
{
    for (int i = 1, j = 0; i < n; i++) { /* bit-reversed order */
        int bit = n >> 1;
        for (; j & bit; bit >>= 1) j ^= bit;
        j ^= bit;
        if (i < j) {
            double t = re[i];
            re[i] = re[j], re[j] = t;
            t = im[i];
            im[i] = im[j], im[j] = t;
        }
    }
    for (int len = 2; len <= n; len <<= 1) /* butterflies, w = exp(-2 pi i k / len) */
        for (int i = 0; i < n; i += len)
            for (int k = 0; k < len / 2; k++) {
                double wr = cs[k * (n / len)], wi = -sn[k * (n / len)];
                int p = i + k, q = p + len / 2;
                double tr = re[q] * wr - im[q] * wi, ti = re[q] * wi + im[q] * wr;
                re[q] = re[p] - tr, im[q] = im[p] - ti;
                re[p] += tr, im[p] += ti;
            }
}

static void transpose(double *x, int n)
{
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) {
            double t = x[(size_t)i * n + j];
            x[(size_t)i * n + j] = x[(size_t)j * n + i];
            x[(size_t)j * n + i] = t;
        }
}

/* 2-D DFT of an n x n array: rows, transpose, rows. The result is the transposed
 * spectrum, which has the same ring averages. */
static void fft2(double *re, double *im, int n, double *cs, double *sn)
{
    for (int k = 0; k < n / 2; k++) {
        cs[k] = cos(2 * M_PI * k / n);
        sn[k] = sin(2 * M_PI * k / n);
    }
    for (int pass = 0; pass < 2; pass++) {
        for (int r = 0; r < n; r++) fft(re + (size_t)r * n, im + (size_t)r * n, n, cs, sn);
        if (pass == 0) transpose(re, n), transpose(im, n);
    }
}

size_t tile_spectrum_work(int n) { return 2 * (size_t)n * n + (size_t)n + (size_t)n / 2 + 1; }

void tile_spectrum(const uint8_t *tile, int n, double *work, double *ring)
{
    size_t px = (size_t)n * n;
    int nr = n / 2 + 1;
    double *re = work, *im = re + px, *cs = im + px, *sn = cs + n / 2, *count = sn + n / 2;
    double mean = 0;
    for (size_t i = 0; i < px; i++) mean += tile[i];
    mean /= (double)px * 255;
    for (size_t i = 0; i < px; i++) re[i] = tile[i] / 255.0 - mean, im[i] = 0;
    fft2(re, im, n, cs, sn);
    for (int r = 0; r < nr; r++) ring[r] = count[r] = 0;
    for (int u = 0; u < n; u++) {
        int fu = u < n / 2 ? u : u - n;
        for (int v = 0; v < n; v++) {
            int fv = v < n / 2 ? v : v - n;
            long r = lround(sqrt((double)(fu * fu + fv * fv))); /* never a tie: no root ends in .5 */
            if (r >= nr) continue;
            size_t i = (size_t)u * n + v;
            ring[r] += (re[i] * re[i] + im[i] * im[i]) / (double)px;
            count[r]++;
        }
    }
    for (int r = 0; r < nr; r++) ring[r] /= count[r]; /* (r, 0) is on every ring */
}

/* ------------------------------------------------------------ per-set pixel statistics */

int image_stats_init(ImageStats *s, int tile)
{
    memset(s, 0, sizeof *s);
    if (tile < 2 || tile > 4096 || (tile & (tile - 1)))
        return sd_fail("spectra need tiles of a power of two in 2..4096 pixels (got %d)", tile);
    s->tile = tile;
    s->spectrum = calloc((size_t)tile / 2 + 1, sizeof *s->spectrum);
    return s->spectrum ? SD_OK : sd_fail("out of memory");
}

void image_stats_free(ImageStats *s)
{
    free(s->spectrum);
    memset(s, 0, sizeof *s);
}

int image_stats_add(ImageStats *s, const uint8_t *tiles, long count)
{
    int n = s->tile, nr = n / 2 + 1, threads = omp_get_max_threads();
    size_t px = (size_t)n * n, wl = tile_spectrum_work(n);
    double *work = malloc((size_t)threads * wl * sizeof *work), *rings = malloc((size_t)count * nr * sizeof *rings);
    if (!work || !rings) {
        free(work), free(rings);
        return sd_fail("out of memory for the spectra of %ld tiles of %d x %d", count, n, n);
    }
    for (size_t i = 0; i < (size_t)count * px; i++) s->hist[tiles[i]]++;
#pragma omp parallel for schedule(dynamic)
    for (long t = 0; t < count; t++)
        tile_spectrum(tiles + (size_t)t * px, n, work + (size_t)omp_get_thread_num() * wl, rings + (size_t)t * nr);
    for (long t = 0; t < count; t++) /* in tile order: the sums do not depend on the threads */
        for (int r = 0; r < nr; r++) s->spectrum[r] += rings[(size_t)t * nr + r];
    s->count += count;
    free(work), free(rings);
    return SD_OK;
}

HistDistance hist_distance(const double *a, const double *b)
{
    double ta = 0, tb = 0, ca = 0, cb = 0;
    for (int k = 0; k < FID_LEVELS; k++) ta += a[k], tb += b[k];
    HistDistance h = {0, 0, 0};
    for (int k = 0; k < FID_LEVELS; k++) {
        double pa = a[k] / ta, pb = b[k] / tb;
        ca += pa, cb += pb;
        if (k < FID_LEVELS - 1) h.w1 += fabs(ca - cb); /* mass moved across level k + 1/2 */
        h.l1 += fabs(pa - pb);
        if (pa + pb > 0) h.chi2 += 0.5 * (pa - pb) * (pa - pb) / (pa + pb);
    }
    return h;
}

double spectrum_distance(const double *a, const double *b, int nr)
{
    double sum = 0;
    for (int r = 1; r < nr; r++) {
        double diff = log10(fmax(a[r], FID_POWER_FLOOR)) - log10(fmax(b[r], FID_POWER_FLOOR));
        sum += diff * diff;
    }
    return sqrt(sum / (nr - 1));
}

int image_stats_compare(const ImageStats *a, const ImageStats *b, HistDistance *hist, double *spectrum)
{
    if (a->tile != b->tile) return sd_fail("tiles of %d and %d pixels cannot be compared", a->tile, b->tile);
    if (a->count < 1 || b->count < 1) return sd_fail("an empty set of tiles has no statistics");
    int nr = a->tile / 2 + 1;
    double *mean = malloc(2 * (size_t)nr * sizeof *mean);
    if (!mean) return sd_fail("out of memory");
    for (int r = 0; r < nr; r++) {
        mean[r] = a->spectrum[r] / (double)a->count;
        mean[nr + r] = b->spectrum[r] / (double)b->count;
    }
    *hist = hist_distance(a->hist, b->hist);
    *spectrum = spectrum_distance(mean, mean + nr, nr);
    free(mean);
    return SD_OK;
}
