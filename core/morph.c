#include "morph.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

typedef struct {
    int pages, h, w, conn, link3d;
} Volume;

static int check_volume(const Volume *v)
{
    if (v->pages < 1 || v->h < 1 || v->w < 1) return sd_fail("empty mask (%d x %d x %d)", v->pages, v->h, v->w);
    if ((long)v->h * v->w > INT_MAX) return sd_fail("slice too large (%d x %d pixels)", v->h, v->w);
    if (v->conn != 4 && v->conn != 8) return sd_fail("connectivity must be 4 or 8 (got %d)", v->conn);
    return SD_OK;
}

/* ---- connected components: flood fill from each unlabelled foreground pixel ---- */

typedef struct {
    long *v;
    size_t n, cap;
} IndexStack;

static int push(IndexStack *s, long i)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 4096;
        long *v = realloc(s->v, cap * sizeof *v);
        if (!v) return sd_fail("out of memory while labelling objects");
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = i;
    return SD_OK;
}

/* Gives every unlabelled foreground neighbour of pixel i the label id and pushes it. */
static int visit_neighbours(const uint8_t *mask, const Volume *v, long i, int32_t id, int32_t *labels,
                            IndexStack *s)
{
    long plane = (long)v->h * v->w;
    int z = (int)(i / plane), y = (int)(i % plane / v->w), x = (int)(i % v->w);
    int reach_z = v->link3d ? 1 : 0;
    for (int dz = -reach_z; dz <= reach_z; dz++)
        for (int dy = -1; dy <= 1; dy++)
            for (int dx = -1; dx <= 1; dx++) {
                int steps = abs(dz) + abs(dy) + abs(dx);
                if (steps == 0 || (v->conn == 4 && steps > 1)) continue;
                if (z + dz < 0 || z + dz >= v->pages || y + dy < 0 || y + dy >= v->h || x + dx < 0 ||
                    x + dx >= v->w)
                    continue;
                long j = i + dz * plane + (long)dy * v->w + dx;
                if (!mask[j] || labels[j]) continue;
                labels[j] = id;
                if (push(s, j) != SD_OK) return SD_ERR;
            }
    return SD_OK;
}

static int flood(const uint8_t *mask, const Volume *v, long seed, int32_t id, int32_t *labels, IndexStack *s)
{
    labels[seed] = id;
    s->n = 0;
    if (push(s, seed) != SD_OK) return SD_ERR;
    while (s->n)
        if (visit_neighbours(mask, v, s->v[--s->n], id, labels, s) != SD_OK) return SD_ERR;
    return SD_OK;
}

static int label_volume(const uint8_t *mask, const Volume *v, int32_t *labels, int *count)
{
    size_t n = (size_t)v->pages * v->h * v->w;
    memset(labels, 0, n * sizeof *labels);
    IndexStack s = {0};
    int32_t next = 0;
    int rc = SD_OK;
    for (size_t i = 0; i < n && rc == SD_OK; i++) {
        if (!mask[i] || labels[i]) continue;
        rc = next == INT32_MAX ? sd_fail("more than %d objects", INT32_MAX) : flood(mask, v, (long)i, ++next, labels, &s);
    }
    free(s.v);
    *count = next;
    return rc;
}

int morph_label(const uint8_t *mask, int pages, int h, int w, int conn, int link3d, int32_t *labels, int *count)
{
    Volume v = {pages, h, w, conn, link3d};
    *count = 0;
    if (check_volume(&v) != SD_OK) return SD_ERR;
    return label_volume(mask, &v, labels, count);
}

/* ---- small objects and holes ---- */

static int remove_small_block(uint8_t *mask, const Volume *v, long min_area, int32_t *labels)
{
    int count;
    if (label_volume(mask, v, labels, &count) != SD_OK) return SD_ERR;
    long *area = calloc((size_t)count + 1, sizeof *area);
    if (!area) return sd_fail("out of memory for %d object areas", count);
    size_t n = (size_t)v->pages * v->h * v->w;
    for (size_t i = 0; i < n; i++) area[labels[i]]++;
    for (size_t i = 0; i < n; i++)
        if (labels[i] && area[labels[i]] < min_area) mask[i] = 0;
    free(area);
    return SD_OK;
}

int morph_remove_small(uint8_t *mask, int pages, int h, int w, int conn, int link3d, long min_area)
{
    Volume v = {pages, h, w, conn, link3d};
    if (check_volume(&v) != SD_OK) return SD_ERR;
    if (min_area <= 1) return SD_OK;
    Volume block = v; /* 2-D objects never cross slices: label one slice at a time */
    if (!link3d) block.pages = 1;
    size_t plane = (size_t)h * w;
    int32_t *labels = malloc(block.pages * plane * sizeof *labels);
    if (!labels) return sd_fail("out of memory for object labels (%d x %d x %d)", block.pages, h, w);
    int rc = SD_OK;
    for (int p = 0; p < pages && rc == SD_OK; p += block.pages)
        rc = remove_small_block(mask + p * plane, &block, min_area, labels);
    free(labels);
    return rc;
}

static int fill_slice(uint8_t *mask, const Volume *v, uint8_t *background, int32_t *labels)
{
    size_t n = (size_t)v->h * v->w;
    for (size_t i = 0; i < n; i++) background[i] = !mask[i];
    int count;
    if (label_volume(background, v, labels, &count) != SD_OK) return SD_ERR;
    uint8_t *outside = calloc((size_t)count + 1, 1);
    if (!outside) return sd_fail("out of memory for %d background regions", count);
    for (int x = 0; x < v->w; x++) outside[labels[x]] = outside[labels[n - v->w + x]] = 1;
    for (int y = 0; y < v->h; y++) outside[labels[(size_t)y * v->w]] = outside[labels[(size_t)y * v->w + v->w - 1]] = 1;
    for (size_t i = 0; i < n; i++)
        if (labels[i] && !outside[labels[i]]) mask[i] = 1;
    free(outside);
    return SD_OK;
}

int morph_fill_holes(uint8_t *mask, int pages, int h, int w)
{
    Volume v = {1, h, w, 4, 0};
    if (pages < 1) return sd_fail("empty mask (no slices)");
    if (check_volume(&v) != SD_OK) return SD_ERR;
    size_t plane = (size_t)h * w;
    uint8_t *background = malloc(plane);
    int32_t *labels = malloc(plane * sizeof *labels);
    int rc = background && labels ? SD_OK : sd_fail("out of memory for hole filling (%d x %d)", h, w);
    for (int p = 0; p < pages && rc == SD_OK; p++) rc = fill_slice(mask + p * plane, &v, background, labels);
    free(background);
    free(labels);
    return rc;
}

/* ---- measurements ---- */

/* The labels of one slice, and the region being measured. */
typedef struct {
    const int32_t *lab;
    int h, w;
    int32_t id;
} Slice;

static int inside(const Slice *s, int y, int x)
{
    return y >= 0 && y < s->h && x >= 0 && x < s->w && s->lab[(size_t)y * s->w + x] == s->id;
}

/* In the region and not in its erosion by the 4-neighbour cross (outside counts as 0). */
static int on_border(const Slice *s, int y, int x)
{
    return inside(s, y, x) &&
           !(inside(s, y - 1, x) && inside(s, y + 1, x) && inside(s, y, x - 1) && inside(s, y, x + 1));
}

/* skimage.measure.perimeter's weights, indexed by 1 + 2 (border 4-neighbours) +
 * 10 (border diagonal neighbours) of a border pixel. */
static double border_weight(int code)
{
    switch (code) {
    case 5: case 7: case 15: case 17: case 25: case 27: return 1.0;
    case 21: case 33: return M_SQRT2;
    case 13: case 23: return (1.0 + M_SQRT2) / 2.0;
    default: return 0.0;
    }
}

static double perimeter(const Slice *s, const int *pix, long n)
{
    double total = 0;
    for (long k = 0; k < n; k++) {
        int y = pix[k] / s->w, x = pix[k] % s->w;
        if (!on_border(s, y, x)) continue;
        int n4 = on_border(s, y - 1, x) + on_border(s, y + 1, x) + on_border(s, y, x - 1) + on_border(s, y, x + 1);
        int nd = on_border(s, y - 1, x - 1) + on_border(s, y - 1, x + 1) + on_border(s, y + 1, x - 1) +
                 on_border(s, y + 1, x + 1);
        total += border_weight(1 + 2 * n4 + 10 * nd);
    }
    return total;
}

/* Eigen-shape of skimage's inertia tensor [[a, b], [b, c]] (a = var x, b = -cov, c = var y).
 * Orientation as skimage >= 0.19 (older releases had the a == c case's sign flipped). */
static void shape_from_inertia(Region *r, double a, double b, double c)
{
    double mid = (a + c) / 2, rad = sqrt((a - c) * (a - c) / 4 + b * b);
    double l1 = mid + rad, l2 = fmax(mid - rad, 0.0);
    r->major_axis = 4 * sqrt(l1);
    r->minor_axis = 4 * sqrt(l2);
    r->eccentricity = l1 == 0 ? 0 : sqrt(1 - l2 / l1);
    if (a - c == 0) r->orientation = b < 0 ? M_PI / 4 : -M_PI / 4;
    else r->orientation = 0.5 * atan2(-2 * b, c - a);
}

/* Area, centroid, bounding box and the second central moments. */
static void moments(Region *r, const int *pix, long n, int w)
{
    double sy = 0, sx = 0, syy = 0, sxx = 0, sxy = 0;
    r->min_y = r->min_x = INT_MAX;
    r->max_y = r->max_x = INT_MIN;
    for (long k = 0; k < n; k++) {
        int y = pix[k] / w, x = pix[k] % w;
        sy += y;
        sx += x;
        r->min_y = y < r->min_y ? y : r->min_y;
        r->min_x = x < r->min_x ? x : r->min_x;
        r->max_y = y + 1 > r->max_y ? y + 1 : r->max_y;
        r->max_x = x + 1 > r->max_x ? x + 1 : r->max_x;
    }
    r->area = n;
    r->cy = sy / n;
    r->cx = sx / n;
    for (long k = 0; k < n; k++) {
        double dy = pix[k] / w - r->cy, dx = pix[k] % w - r->cx;
        syy += dy * dy;
        sxx += dx * dx;
        sxy += dy * dx;
    }
    shape_from_inertia(r, sxx / n, -sxy / n, syy / n);
}

/* ---- convex hull (coordinates doubled so that pixel edge midpoints are integers) ---- */

typedef struct {
    long x, y;
} Pt;

static long cross(Pt o, Pt a, Pt b) { return (a.x - o.x) * (b.y - o.y) - (a.y - o.y) * (b.x - o.x); }

static int pt_order(const void *pa, const void *pb)
{
    const Pt *a = pa, *b = pb;
    if (a->x != b->x) return a->x < b->x ? -1 : 1;
    return (a->y > b->y) - (a->y < b->y);
}

/* Andrew's monotone chain: the hull of pts (sorted in place) into hull[2n], counter-
 * clockwise without collinear points; returns its size. */
static int convex_hull(Pt *pts, int n, Pt *hull)
{
    qsort(pts, (size_t)n, sizeof *pts, pt_order);
    int k = 0;
    for (int i = 0; i < n; i++) {
        while (k >= 2 && cross(hull[k - 2], hull[k - 1], pts[i]) <= 0) k--;
        hull[k++] = pts[i];
    }
    for (int i = n - 2, lower = k + 1; i >= 0; i--) {
        while (k >= lower && cross(hull[k - 2], hull[k - 1], pts[i]) <= 0) k--;
        hull[k++] = pts[i];
    }
    return k - 1;
}

/* Pixel centres (row y, doubled: Y = 2y) inside or on the hull polygon, row by row. */
static long hull_pixels(const Pt *hull, int m, int min_y, int max_y)
{
    long total = 0;
    for (long y = min_y; y < max_y; y++) {
        double lo = INFINITY, hi = -INFINITY;
        long Y = 2 * y;
        for (int i = 0; i < m; i++) {
            Pt p = hull[i], q = hull[(i + 1) % m];
            if ((Y < p.y && Y < q.y) || (Y > p.y && Y > q.y)) continue;
            double x0 = p.x, x1 = q.x;
            if (p.y != q.y) x0 = x1 = p.x + (double)(Y - p.y) * (q.x - p.x) / (q.y - p.y);
            lo = fmin(lo, fmin(x0, x1));
            hi = fmax(hi, fmax(x0, x1));
        }
        if (lo <= hi) total += (long)floor(hi / 2 + 1e-9) - (long)ceil(lo / 2 - 1e-9) + 1;
    }
    return total;
}

/* skimage's convex image: hull of the edge midpoints of every pixel (those of each row's
 * first and last pixel suffice), then the pixel centres it covers. */
static int convex_area(const Region *r, const int *pix, long n, int w, long *area)
{
    int rows = r->max_y - r->min_y, m = 0;
    Pt *pts = malloc((size_t)rows * 8 * sizeof *pts), *hull = malloc(((size_t)rows * 16 + 1) * sizeof *hull);
    if (!pts || !hull) {
        free(pts);
        free(hull);
        return sd_fail("out of memory for a convex hull (%d rows)", rows);
    }
    for (long k = 0; k < n; k++) {
        int y = pix[k] / w, x = pix[k] % w;
        int first = k == 0 || pix[k - 1] / w != y, last = k == n - 1 || pix[k + 1] / w != y;
        if (!first && !last) continue;
        const Pt mids[4] = {{2L * x - 1, 2L * y}, {2L * x + 1, 2L * y}, {2L * x, 2L * y - 1}, {2L * x, 2L * y + 1}};
        memcpy(pts + m, mids, sizeof mids);
        m += 4;
    }
    *area = hull_pixels(hull, convex_hull(pts, m, hull), r->min_y, r->max_y);
    free(pts);
    free(hull);
    return SD_OK;
}

static int measure(const Slice *s, int z, const int *pix, long n, Region *r)
{
    memset(r, 0, sizeof *r);
    r->id = s->id;
    r->slice = z;
    moments(r, pix, n, s->w);
    r->equiv_diameter = sqrt(4.0 * n / M_PI);
    r->perimeter = perimeter(s, pix, n);
    long hull = 0;
    if (convex_area(r, pix, n, s->w, &hull) != SD_OK) return SD_ERR;
    r->solidity = (double)n / hull;
    return SD_OK;
}

typedef struct {
    Region *v;
    long n, cap;
} RegionList;

static Region *next_region(RegionList *l)
{
    if (l->n == l->cap) {
        long cap = l->cap ? 2 * l->cap : 256;
        Region *v = realloc(l->v, (size_t)cap * sizeof *v);
        if (!v) return NULL;
        l->v = v;
        l->cap = cap;
    }
    return &l->v[l->n++];
}

/* Per-slice buffers: pixel counts and list offsets per label, pixels grouped by label. */
typedef struct {
    long *cnt, *end;
    int *pix;
} Scratch;

/* Groups the slice's pixels by label (a counting sort keeps raster order within each). */
static int group_pixels(const int32_t *lab, size_t n, int count, Scratch *s)
{
    memset(s->cnt, 0, ((size_t)count + 1) * sizeof *s->cnt);
    for (size_t i = 0; i < n; i++) {
        if (lab[i] < 0 || lab[i] > count) return sd_fail("label %d outside 0..%d", (int)lab[i], count);
        s->cnt[lab[i]]++;
    }
    for (long id = 1, off = 0; id <= count; id++) {
        s->end[id] = off;
        off += s->cnt[id];
    }
    for (size_t i = 0; i < n; i++)
        if (lab[i]) s->pix[s->end[lab[i]]++] = (int)i;
    return SD_OK;
}

static int slice_regions(const Slice *slice, int z, int count, Scratch *s, RegionList *out)
{
    if (group_pixels(slice->lab, (size_t)slice->h * slice->w, count, s) != SD_OK) return SD_ERR;
    for (int id = 1; id <= count; id++) {
        if (!s->cnt[id]) continue;
        Region *r = next_region(out);
        if (!r) return sd_fail("out of memory for %ld regions", out->n);
        Slice one = *slice;
        one.id = id;
        if (measure(&one, z, s->pix + s->end[id] - s->cnt[id], s->cnt[id], r) != SD_OK) return SD_ERR;
    }
    return SD_OK;
}

int morph_regions(const int32_t *labels, int pages, int h, int w, int count, Region **out, long *n)
{
    Volume v = {pages, h, w, 4, 0};
    *out = NULL;
    *n = 0;
    if (check_volume(&v) != SD_OK) return SD_ERR;
    if (count < 0) return sd_fail("negative object count %d", count);
    size_t plane = (size_t)h * w;
    Scratch s = {calloc((size_t)count + 1, sizeof(long)), calloc((size_t)count + 1, sizeof(long)),
                 malloc(plane * sizeof(int))};
    RegionList list = {0};
    int rc = s.cnt && s.end && s.pix ? SD_OK : sd_fail("out of memory for measuring %d objects", count);
    for (int z = 0; z < pages && rc == SD_OK; z++) {
        Slice slice = {labels + z * plane, h, w, 0};
        rc = slice_regions(&slice, z, count, &s, &list);
    }
    free(s.cnt);
    free(s.end);
    free(s.pix);
    if (rc != SD_OK) {
        free(list.v);
        return SD_ERR;
    }
    *out = list.v;
    *n = list.n;
    return SD_OK;
}
