/* How real do synthetic tiles look: distances between a set of real and a set of fake
 * tiles, all in double precision (implemented in core/fidelity.c).
 *
 *   on feature vectors (one row of d values per tile, from a fixed network):
 *     Frechet distance  |mu1 - mu2|^2 + tr(S1 + S2 - 2 sqrtm(S1^1/2 S2 S1^1/2))
 *     KID               unbiased MMD^2 with the kernel (x.y/d + 1)^3, averaged over random
 *                       subsets (Binkowski et al. 2018), with its standard deviation
 *   on the pixels (8-bit grey tiles of N x N, N a power of two):
 *     histogram         1-Wasserstein distance in grey levels between the two pooled
 *                       256-bin histograms, with their L1 and symmetric chi-square distances
 *     spectrum          RMS difference of log10 power over radii 1..N/2 between the two
 *                       sets' mean radially averaged power spectra */
#ifndef SDSEG_FIDELITY_H
#define SDSEG_FIDELITY_H

#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------ feature statistics */

typedef struct {
    int d;
    long n;
    double *mean; /* [d] */
    double *cov;  /* [d][d], unbiased (divided by n - 1), as numpy.cov */
} FeatStats;

/* Mean and covariance of n >= 2 rows of d finite values (row-major [n][d]). */
int feat_stats(const double *x, long n, int d, FeatStats *s);
void feat_stats_free(FeatStats *s);

/* Eigen-decomposition of the symmetric [n][n] matrix a (overwritten): eigenvalues to w
 * (unsorted), and on return row i of a is the unit eigenvector of w[i]. Householder
 * tridiagonalization and implicit QL (EISPACK's tred2/tql2), O(n^3): about a second for
 * n = 1024 where Jacobi rotations take a minute. SD_ERR on a non-finite entry or if QL
 * does not converge. */
int sym_eigen(int n, double *a, double *w);

/* Frechet distance between the Gaussians N(a->mean, a->cov) and N(b->mean, b->cov). */
int frechet_distance(const FeatStats *a, const FeatStats *b, double *fd);

/* ------------------------------------------------------------ kernel inception distance */

/* Unbiased MMD^2 between rows ix[0..m) of x and rows iy[0..m) of y (row-major, d columns),
 * kernel k(u, v) = (u.v / d + 1)^3: the means of k over pairs i != j within each sample,
 * minus twice the mean over all m^2 cross pairs. m >= 2. */
double mmd2_poly(const double *x, const long *ix, const double *y, const long *iy, long m, int d);

typedef struct {
    int subsets;   /* number of subsets drawn (>= 1) */
    long max_size; /* subset size = min(nx, ny, max_size); 1000 in the literature */
    uint64_t seed; /* subsets are drawn without replacement from Philox streams */
} KidOpts;

typedef struct {
    double mean, std; /* over the subsets; std divides by the count (numpy's default) */
    long size;        /* subset size used */
} KidScore;

/* KID of x [nx][d] against y [ny][d]. When nx = ny <= max_size every subset is the whole
 * of both sets, so the score does not depend on the seed and std = 0 (up to rounding). */
int kid(const double *x, long nx, const double *y, long ny, int d, const KidOpts *o, KidScore *out);

/* ------------------------------------------------------------ pixel statistics */

#define FID_LEVELS 256 /* grey levels of 8-bit tiles */
/* log10 of a mean ring power below this (in units of (grey/255)^2) is taken at the floor:
 * constant tiles have no power at all; one grey level of noise is ~1e-5. */
#define FID_POWER_FLOOR 1e-12

/* Per set: the pooled histogram and the summed ring spectra of every tile added. */
typedef struct {
    int tile;                /* N */
    long count;              /* tiles added */
    double hist[FID_LEVELS]; /* pixel counts per grey level */
    double *spectrum;        /* [N/2 + 1]: sum over tiles of the mean power at radius r */
} ImageStats;

/* tile: a power of two in 2..4096. */
int image_stats_init(ImageStats *s, int tile);
/* Add `count` tiles [count][N][N] (spectra in parallel over tiles). */
int image_stats_add(ImageStats *s, const uint8_t *tiles, long count);
void image_stats_free(ImageStats *s);

/* Doubles of workspace tile_spectrum needs for an n x n tile. */
size_t tile_spectrum_work(int n);
/* Radially averaged power spectrum of one n x n tile (n a power of two): the tile as
 * grey/255 with its mean removed, 2-D DFT F, power |F(u,v)|^2 / n^2 (so the mean power over
 * all frequencies is the tile's variance), averaged over each ring of frequencies whose
 * radius sqrt(u^2 + v^2) (u, v in -n/2..n/2-1) rounds to r, for r = 0..n/2 -> ring[r]. */
void tile_spectrum(const uint8_t *tile, int n, double *work, double *ring);

typedef struct {
    double w1;   /* 1-Wasserstein (earth mover's) distance in grey levels: sum |CDF_a - CDF_b| */
    double l1;   /* sum |p_a - p_b|, in [0, 2] */
    double chi2; /* 1/2 sum (p_a - p_b)^2 / (p_a + p_b), in [0, 1] */
} HistDistance;

/* Distances between two histograms of FID_LEVELS counts (each normalized to sum 1; each
 * must have a positive total). */
HistDistance hist_distance(const double *a, const double *b);

/* RMS over r = 1..nr-1 of log10 a[r] - log10 b[r] (mean ring powers, floored at
 * FID_POWER_FLOOR); nr = N/2 + 1, so the radii run 1..N/2. */
double spectrum_distance(const double *a, const double *b, int nr);

/* Histogram and spectrum distances between two sets of the same tile size. */
int image_stats_compare(const ImageStats *a, const ImageStats *b, HistDistance *hist, double *spectrum);

#endif
