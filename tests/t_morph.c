/* core/morph against hand-labelled masks (4/8/3-D connectivity, holes, small objects)
 * and region measurements against closed forms: a filled rectangle (exact moments,
 * perimeter 2(a+b)-4 through the border pixel centres), a disk, a rotated ellipse, an
 * L-shape whose convex hull is counted by hand, and straight lines. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/err.h"
#include "../core/morph.h"
#include "check.h"

static int same_labels(const int32_t *got, const int32_t *want, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (got[i] != want[i]) {
            fprintf(stderr, "label %zu: got %d, want %d\n", i, (int)got[i], (int)want[i]);
            return 0;
        }
    return 1;
}

static void check_connectivity_2d(void)
{
    const uint8_t mask[20] = {1, 1, 0, 0, 0,
                              0, 0, 1, 0, 0,
                              0, 0, 0, 0, 1,
                              1, 0, 0, 0, 1};
    const int32_t four[20] = {1, 1, 0, 0, 0,
                              0, 0, 2, 0, 0,
                              0, 0, 0, 0, 3,
                              4, 0, 0, 0, 3};
    const int32_t eight[20] = {1, 1, 0, 0, 0,
                               0, 0, 1, 0, 0,
                               0, 0, 0, 0, 2,
                               3, 0, 0, 0, 2};
    int32_t lab[20];
    int count;
    CHECK(morph_label(mask, 1, 4, 5, 4, 0, lab, &count) == SD_OK);
    CHECK(count == 4);
    CHECK(same_labels(lab, four, 20));
    CHECK(morph_label(mask, 1, 4, 5, 8, 0, lab, &count) == SD_OK);
    CHECK(count == 3);
    CHECK(same_labels(lab, eight, 20));
    CHECK(morph_label(mask, 1, 4, 5, 6, 0, lab, &count) == SD_ERR);
}

/* Slices of 3x3: (0,0) | (0,0) and (2,2) | (1,1). */
static void check_connectivity_3d(void)
{
    const uint8_t mask[27] = {1, 0, 0, 0, 0, 0, 0, 0, 0,
                              1, 0, 0, 0, 0, 0, 0, 0, 1,
                              0, 0, 0, 0, 1, 0, 0, 0, 0};
    const int32_t flat[27] = {1, 0, 0, 0, 0, 0, 0, 0, 0,
                              2, 0, 0, 0, 0, 0, 0, 0, 3,
                              0, 0, 0, 0, 4, 0, 0, 0, 0};
    const int32_t faces[27] = {1, 0, 0, 0, 0, 0, 0, 0, 0,
                               1, 0, 0, 0, 0, 0, 0, 0, 2,
                               0, 0, 0, 0, 3, 0, 0, 0, 0};
    int32_t lab[27], corners[27];
    for (int i = 0; i < 27; i++) corners[i] = mask[i];
    int count;
    CHECK(morph_label(mask, 3, 3, 3, 8, 0, lab, &count) == SD_OK);
    CHECK(count == 4 && same_labels(lab, flat, 27));
    CHECK(morph_label(mask, 3, 3, 3, 4, 1, lab, &count) == SD_OK);
    CHECK(count == 3 && same_labels(lab, faces, 27));
    /* 26-connectivity: (2,1,1) touches both (1,0,0) and (1,2,2) by a corner. */
    CHECK(morph_label(mask, 3, 3, 3, 8, 1, lab, &count) == SD_OK);
    CHECK(count == 1 && same_labels(lab, corners, 27));
}

/* Page 0: a ring with a hole at (2,2); a ring whose hole (2,6) reaches the border only
 * diagonally (still a hole for 4-connected background); a bar on the bottom edge.
 * Page 1: a ring in the corner, hole (1,1). */
static void check_fill_holes(void)
{
    uint8_t mask[96] = {0, 0, 0, 0, 0, 0, 0, 0,
                        0, 1, 1, 1, 0, 1, 1, 1,
                        0, 1, 0, 1, 0, 1, 0, 1,
                        0, 1, 1, 1, 0, 1, 1, 0,
                        0, 0, 0, 0, 0, 0, 0, 0,
                        1, 1, 0, 0, 0, 0, 0, 0,
                        1, 1, 1, 0, 0, 0, 0, 0,
                        1, 0, 1, 0, 0, 0, 0, 0,
                        1, 1, 1, 0, 0, 0, 0, 0,
                        0, 0, 0, 0, 0, 0, 0, 0,
                        0, 0, 0, 0, 0, 0, 0, 0,
                        0, 0, 0, 0, 0, 0, 0, 0};
    uint8_t want[96];
    memcpy(want, mask, sizeof want);
    want[2 * 8 + 2] = want[2 * 8 + 6] = want[48 + 1 * 8 + 1] = 1;
    CHECK(morph_fill_holes(mask, 2, 6, 8) == SD_OK);
    CHECK(!memcmp(mask, want, sizeof want));
}

/* Objects of 1, 2 and 3 pixels, and two pairs touching diagonally (one 4-pixel object
 * in 8-connectivity, two 2-pixel objects in 4-connectivity). */
static void check_remove_small(void)
{
    const uint8_t mask[30] = {1, 0, 1, 1, 1, 0,
                              0, 0, 0, 0, 0, 0,
                              1, 1, 0, 0, 0, 0,
                              0, 0, 1, 1, 0, 1,
                              0, 0, 0, 0, 0, 1};
    uint8_t m[30], want[30];
    memcpy(m, mask, sizeof m);
    CHECK(morph_remove_small(m, 1, 5, 6, 8, 0, 4) == SD_OK);
    memset(want, 0, sizeof want);
    want[12] = want[13] = want[20] = want[21] = 1;
    CHECK(!memcmp(m, want, sizeof want));
    memcpy(m, mask, sizeof m);
    CHECK(morph_remove_small(m, 1, 5, 6, 4, 0, 3) == SD_OK);
    memcpy(want, mask, sizeof want);
    want[0] = want[12] = want[13] = want[20] = want[21] = want[23] = want[29] = 0;
    CHECK(!memcmp(m, want, sizeof want));
    /* Two slices with the same 2-pixel bar: 4 voxels in 3-D, 2 pixels per slice in 2-D. */
    const uint8_t bars[8] = {1, 1, 0, 0, 1, 1, 0, 0};
    memcpy(m, bars, 8);
    CHECK(morph_remove_small(m, 2, 2, 2, 4, 1, 4) == SD_OK);
    CHECK(!memcmp(m, bars, 8));
    CHECK(morph_remove_small(m, 2, 2, 2, 4, 0, 4) == SD_OK);
    CHECK(m[0] + m[1] + m[4] + m[5] == 0);
}

/* Labels 1 where inside(y, x) holds, in an h x w image; returns the single region. */
static Region measure_one(int h, int w, int (*inside)(double y, double x))
{
    int32_t *lab = calloc((size_t)h * w, sizeof *lab);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) lab[y * w + x] = inside(y, x);
    Region *r = NULL, one;
    long n = 0;
    memset(&one, 0, sizeof one);
    CHECK(morph_regions(lab, 1, h, w, 1, &r, &n) == SD_OK);
    CHECK(n == 1);
    if (n == 1) one = r[0];
    free(r);
    free(lab);
    return one;
}

static int rectangle(double y, double x) { return y >= 3 && y <= 8 && x >= 5 && x <= 14; }

/* Rows 3..8 (6), columns 5..14 (10): variances (6^2-1)/12 and (10^2-1)/12, no covariance. */
static void check_rectangle(void)
{
    Region r = measure_one(20, 30, rectangle);
    CHECK(r.id == 1 && r.slice == 0 && r.area == 60);
    CHECK_NEAR(r.cy, 5.5, 1e-12);
    CHECK_NEAR(r.cx, 9.5, 1e-12);
    CHECK(r.min_y == 3 && r.min_x == 5 && r.max_y == 9 && r.max_x == 15);
    CHECK_NEAR(r.equiv_diameter, sqrt(240 / M_PI), 1e-12);
    CHECK_NEAR(r.major_axis, 4 * sqrt(99.0 / 12), 1e-9);
    CHECK_NEAR(r.minor_axis, 4 * sqrt(35.0 / 12), 1e-9);
    CHECK_NEAR(r.eccentricity, sqrt(1 - 35.0 / 99), 1e-9);
    CHECK_NEAR(fabs(r.orientation), M_PI / 2, 1e-12);
    CHECK_NEAR(r.perimeter, 2 * (6 + 10) - 4, 1e-12);
    CHECK_NEAR(r.solidity, 1, 1e-12);
}

static int disk(double y, double x) { return (y - 50) * (y - 50) + (x - 60) * (x - 60) <= 20 * 20; }

/* Closed forms, loosely: the 4-neighbour perimeter estimator overshoots circles by about
 * 5 %, and skimage's convex image (hull of edge midpoints) lies inside the disk of radius
 * r + 1/2, so solidity >= about (r / (r + 1/2))^2 = 0.95. Exactly: the values that
 * scikit-image 0.26 regionprops gives for this same disk (checked once, recorded here). */
static void check_disk(void)
{
    Region r = measure_one(100, 120, disk);
    printf("disk r=20: area %ld (pi r^2 %.1f), perimeter %.2f (2 pi r %.2f), solidity %.4f\n", r.area,
           M_PI * 400, r.perimeter, 2 * M_PI * 20, r.solidity);
    CHECK(fabs(r.area - M_PI * 400) < 0.01 * M_PI * 400);
    CHECK_NEAR(r.cy, 50, 1e-12);
    CHECK_NEAR(r.cx, 60, 1e-12);
    CHECK(r.min_y == 30 && r.min_x == 40 && r.max_y == 71 && r.max_x == 81);
    CHECK_NEAR(r.equiv_diameter, 40, 0.4);
    CHECK_NEAR(r.eccentricity, 0, 1e-6);
    CHECK_NEAR(r.major_axis, r.minor_axis, 1e-9);
    CHECK_NEAR(r.perimeter, 2 * M_PI * 20, 0.06 * 2 * M_PI * 20);
    CHECK(r.solidity >= 0.94 && r.solidity <= 1);
    CHECK_NEAR(r.perimeter, 131.88225099390857, 1e-9);
    CHECK_NEAR(r.solidity, 1257.0 / 1305, 1e-12);
}

/* Semi-axes 30 and 12, the major axis along (dy, dx) = (cos 30deg, sin 30deg), so
 * skimage's orientation (angle from the row axis) is pi/6. A solid ellipse of semi-axes
 * A, B has second moments A^2/4, B^2/4 along its axes: axis lengths 2A, 2B. Perimeter
 * against Ramanujan's approximation (the estimator overshoots by a few %); then the
 * values of scikit-image 0.26 for this same digital ellipse. */
#define ELL_A 30.0
#define ELL_B 12.0
#define ELL_PHI (M_PI / 6)

static int ellipse(double y, double x)
{
    double dy = y - 60, dx = x - 70;
    double u = dy * cos(ELL_PHI) + dx * sin(ELL_PHI), v = -dy * sin(ELL_PHI) + dx * cos(ELL_PHI);
    return (u / ELL_A) * (u / ELL_A) + (v / ELL_B) * (v / ELL_B) <= 1;
}

static void check_ellipse(void)
{
    Region r = measure_one(120, 140, ellipse);
    double ramanujan = M_PI * (3 * (ELL_A + ELL_B) - sqrt((3 * ELL_A + ELL_B) * (ELL_A + 3 * ELL_B)));
    printf("ellipse 30x12 at 30deg: area %ld (%.1f), orientation %.4f (%.4f), eccentricity %.4f (%.4f), "
           "perimeter %.2f (%.2f), solidity %.4f\n",
           r.area, M_PI * ELL_A * ELL_B, r.orientation, ELL_PHI, r.eccentricity,
           sqrt(1 - ELL_B * ELL_B / (ELL_A * ELL_A)), r.perimeter, ramanujan, r.solidity);
    CHECK(fabs(r.area - M_PI * ELL_A * ELL_B) < 0.01 * M_PI * ELL_A * ELL_B);
    CHECK_NEAR(r.cy, 60, 1e-9);
    CHECK_NEAR(r.cx, 70, 1e-9);
    CHECK_NEAR(r.orientation, ELL_PHI, 0.005);
    CHECK_NEAR(r.eccentricity, sqrt(1 - ELL_B * ELL_B / (ELL_A * ELL_A)), 0.003);
    CHECK_NEAR(r.major_axis, 2 * ELL_A, 0.01 * 2 * ELL_A);
    CHECK_NEAR(r.minor_axis, 2 * ELL_B, 0.02 * 2 * ELL_B);
    CHECK_NEAR(r.perimeter, ramanujan, 0.06 * ramanujan);
    CHECK(r.solidity >= 0.94 && r.solidity <= 1);
    CHECK_NEAR(r.perimeter, 143.1959594928933, 1e-9);
    CHECK_NEAR(r.solidity, 1131.0 / 1163, 1e-12);
    CHECK_NEAR(r.orientation, 0.52422897720558, 1e-12);
    CHECK_NEAR(r.eccentricity, 0.9166162184777263, 1e-12);
    CHECK_NEAR(r.major_axis, 60.018105608649925, 1e-9);
    CHECK_NEAR(r.minor_axis, 23.99333712474114, 1e-9);
}

/* A vertical bar x = 1, y = 1..4 and a horizontal bar y = 4, x = 1..4 (7 pixels). The
 * hull of the pixels' edge midpoints is bounded by x - y <= 1/2 (from (y, x) = (1/2, 1)
 * to (4, 9/2)), x >= 1/2 and y <= 9/2: it covers the 1+2+3+4 = 10 pixel centres with
 * 1 <= x <= y <= 4. */
static int l_shape(double y, double x) { return (x == 1 && y >= 1 && y <= 4) || (y == 4 && x >= 1 && x <= 4); }

static void check_l_shape(void)
{
    Region r = measure_one(6, 6, l_shape);
    CHECK(r.area == 7);
    CHECK_NEAR(r.solidity, 0.7, 1e-12);
    CHECK_NEAR(r.cy, 22.0 / 7, 1e-12);
    CHECK_NEAR(r.cx, 13.0 / 7, 1e-12);
}

static int vertical(double y, double x) { return x == 2 && y >= 1 && y <= 7; }
static int horizontal(double y, double x) { return y == 2 && x >= 1 && x <= 7; }
static int diagonal(double y, double x) { return y == x && y >= 1 && y <= 7; }

/* Lines of 7 pixels: eccentricity 1; orientation 0 (along rows), pi/2 (along columns),
 * pi/4 for the main diagonal (skimage's test of np.eye). Perimeter by the weights: in a
 * straight run the inner pixels have code 1 + 2*2 = 5 (weight 1) and the ends code 3
 * (weight 0): 5; on the diagonal the inner ones 1 + 10*2 = 21 (sqrt 2), the ends 11 (0). */
static void check_lines(void)
{
    Region v = measure_one(9, 5, vertical), h = measure_one(5, 9, horizontal), d = measure_one(9, 9, diagonal);
    CHECK_NEAR(v.eccentricity, 1, 1e-12);
    CHECK_NEAR(v.orientation, 0, 1e-12);
    CHECK_NEAR(h.eccentricity, 1, 1e-12);
    CHECK_NEAR(fabs(h.orientation), M_PI / 2, 1e-12);
    CHECK_NEAR(d.orientation, M_PI / 4, 1e-12);
    CHECK_NEAR(v.perimeter, 5, 1e-12);
    CHECK_NEAR(h.perimeter, 5, 1e-12);
    CHECK_NEAR(d.perimeter, 5 * M_SQRT2, 1e-12);
    CHECK(v.solidity == 1 && d.solidity == 1);
}

/* One object across two slices (3-D labels) gives one row per slice, same id. */
static void check_regions_per_slice(void)
{
    const int32_t lab[18] = {0, 1, 1, 0, 0, 0, 2, 0, 0,
                             0, 0, 0, 0, 1, 0, 0, 0, 0};
    Region *r;
    long n;
    CHECK(morph_regions(lab, 2, 3, 3, 2, &r, &n) == SD_OK);
    CHECK(n == 3);
    if (n == 3) {
        CHECK(r[0].id == 1 && r[0].slice == 0 && r[0].area == 2);
        CHECK(r[1].id == 2 && r[1].slice == 0 && r[1].area == 1);
        CHECK(r[2].id == 1 && r[2].slice == 1 && r[2].area == 1);
        CHECK_NEAR(r[2].cy, 1, 0);
        CHECK_NEAR(r[2].cx, 1, 0);
    }
    free(r);
    CHECK(morph_regions(lab, 2, 3, 3, 1, &r, &n) == SD_ERR); /* label 2 > count */
}

int main(void)
{
    check_connectivity_2d();
    check_connectivity_3d();
    check_fill_holes();
    check_remove_small();
    check_rectangle();
    check_disk();
    check_ellipse();
    check_l_shape();
    check_lines();
    check_regions_per_slice();
    return check_exit("t_morph");
}
