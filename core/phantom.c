/* Synthetic EM-like volumes (see phantom.h).
 *
 * A scene is drawn once from Philox streams keyed by the seed, then every voxel is
 * rendered as a pure function of its (z, y, x), so pages are coherent slices of one
 * volume:
 *   - cells: a power (weighted Voronoi) diagram of seeds stretched along z, seen through
 *     a smooth random domain warp so the boundaries curve; membranes are dark lines
 *     around the bisector planes; each cell has its own cytoplasm gray level and a
 *     granular value-noise texture;
 *   - mitochondria (the mask): ellipsoids placed in cells, with a dark double
 *     membrane and dark cristae lamellae across the long axis;
 *   - vesicles: clusters of small dark rings (spherical shells);
 * then a Gaussian point-spread blur per page, Poisson shot noise (normal approximation)
 * plus Gaussian read noise, and 8-bit quantization. The mask is the exact geometry:
 * voxels inside an ellipsoid. */
#include "phantom.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "augment.h"
#include "err.h"
#include "philox.h"

enum { S_CELLS = 1, S_MITO, S_VESICLE, S_WARP, S_TEXTURE, S_NOISE };

#define Z_STRETCH 0.35f /* cells are elongated along z: their profiles drift slowly */
#define WAVES 4
#define TEX_STEP 2      /* texture lattice spacing in voxels (fine octave) */
#define MAX_VESICLES 4096
#define TWO_PI 6.283185307179586f

typedef struct {
    float z, y, x, weight, gray;
} Cell;

typedef struct {
    float c[3];       /* centre (z, y, x) */
    float axis[3][3]; /* orthonormal frame, axis[0] the long axis */
    float semi[3];    /* semi-axes along the frame */
    float period, phase;
} Mito;

typedef struct {
    float c[3], r;
} Vesicle;

typedef struct {
    float k[3], phase, amp; /* one sinusoid of the domain warp */
} Wave;

/* Objects listed per cell of a coarse (y, x) grid, under every cell their bounding box
 * touches, so a voxel only looks at the objects of its own cell. */
typedef struct {
    int ny, nx;
    int *start; /* [ny * nx + 1] offsets into items */
    int *items; /* object indices, ascending within a cell */
} Bins;

#define BIN 32 /* grid cell side in pixels */

typedef struct {
    int pages, h, w;
    uint64_t seed;
    Cell *cells;
    int ncells;
    Mito *mitos;
    int nmitos;
    Vesicle *ves;
    int nves;
    Wave warp[2][WAVES];   /* y and x displacement */
    float *tex;            /* value-noise lattice */
    int tz, ty, tx;
    Bins mito_bins, ves_bins;
} Scene;

typedef struct {
    uint64_t seed, stream, next;
} Dice;

static float roll(Dice *d) { return philox_uniform(d->seed, d->stream, d->next++); }
static float roll_in(Dice *d, float lo, float hi) { return lo + (hi - lo) * roll(d); }

/* ---- drawing the scene ---- */

static void draw_warp(Scene *s)
{
    Dice d = {s->seed, S_WARP, 0};
    for (int c = 0; c < 2; c++)
        for (int k = 0; k < WAVES; k++) {
            Wave *wv = &s->warp[c][k];
            int broad = k < WAVES / 2; /* two broad bends, two gentle wiggles */
            float wavelength = broad ? roll_in(&d, 110, 200) : roll_in(&d, 35, 60);
            float angle = roll_in(&d, 0, TWO_PI), tilt = roll_in(&d, -0.4f, 0.4f);
            float f = TWO_PI / wavelength;
            wv->k[0] = f * tilt, wv->k[1] = f * cosf(angle), wv->k[2] = f * sinf(angle);
            wv->phase = roll_in(&d, 0, TWO_PI);
            wv->amp = broad ? roll_in(&d, 6.0f, 11.0f) : roll_in(&d, 1.0f, 2.0f);
        }
}

static int draw_cells(Scene *s)
{
    const float margin = 40, cell = 64;
    s->ncells = (int)((s->h + 2 * margin) * (s->w + 2 * margin) / (cell * cell)) + 3;
    s->cells = malloc(sizeof(Cell) * (size_t)s->ncells);
    if (!s->cells) return SD_ERR;
    Dice d = {s->seed, S_CELLS, 0};
    for (int i = 0; i < s->ncells; i++) {
        Cell *c = &s->cells[i];
        c->z = roll_in(&d, -40, (float)s->pages + 40) * Z_STRETCH;
        c->y = roll_in(&d, -margin, (float)s->h + margin);
        c->x = roll_in(&d, -margin, (float)s->w + margin);
        float r = roll_in(&d, 0, 32);
        c->weight = r * r; /* power-diagram weight: cell sizes vary */
        c->gray = roll(&d) < 0.12f ? roll_in(&d, 0.50f, 0.56f) : roll_in(&d, 0.60f, 0.66f);
    }
    return SD_OK;
}

/* In-plane distance from cell i to its nearest other seed. */
static float neighbour_distance(const Scene *s, int i)
{
    float best = 1e9f;
    for (int j = 0; j < s->ncells; j++) {
        if (j == i) continue;
        float dy = s->cells[j].y - s->cells[i].y, dx = s->cells[j].x - s->cells[i].x;
        best = fminf(best, sqrtf(dy * dy + dx * dx));
    }
    return best;
}

static void normalize3(float *v)
{
    float n = sqrtf(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]) + 1e-12f;
    v[0] /= n, v[1] /= n, v[2] /= n;
}

/* A random orthonormal frame whose first axis is v. */
static void frame_from(float a[3][3], const float v[3], Dice *d)
{
    memcpy(a[0], v, sizeof(float) * 3);
    normalize3(a[0]);
    float r[3] = {roll_in(d, -1, 1), roll_in(d, -1, 1), roll_in(d, -1, 1)};
    a[1][0] = a[0][1] * r[2] - a[0][2] * r[1];
    a[1][1] = a[0][2] * r[0] - a[0][0] * r[2];
    a[1][2] = a[0][0] * r[1] - a[0][1] * r[0];
    normalize3(a[1]);
    a[2][0] = a[0][1] * a[1][2] - a[0][2] * a[1][1];
    a[2][1] = a[0][2] * a[1][0] - a[0][0] * a[1][2];
    a[2][2] = a[0][0] * a[1][1] - a[0][1] * a[1][0];
}

/* A random cell whose seed projects well inside the page (cell 0 if none is found). */
static int inner_cell(const Scene *s, Dice *d)
{
    for (int tries = 0; tries < 64; tries++) {
        int i = (int)(roll(d) * (float)s->ncells) % s->ncells;
        const Cell *c = &s->cells[i];
        if (c->y > 0.08f * s->h && c->y < 0.92f * s->h && c->x > 0.08f * s->w && c->x < 0.92f * s->w) return i;
    }
    return 0;
}

static void place_mito(const Scene *s, Mito *m, Dice *d)
{
    int i = inner_cell(s, d);
    float room = 0.42f * neighbour_distance(s, i);
    float thick = fminf(roll_in(d, 12, 20), 0.8f * room);
    float dir[3] = {roll_in(d, -0.4f, 0.4f), roll_in(d, -1, 1), roll_in(d, -1, 1)}; /* mostly in-plane */
    m->c[0] = roll_in(d, -4, (float)s->pages + 4);
    m->c[1] = s->cells[i].y + roll_in(d, -0.2f, 0.2f) * room;
    m->c[2] = s->cells[i].x + roll_in(d, -0.2f, 0.2f) * room;
    frame_from(m->axis, dir, d);
    m->semi[0] = fmaxf(fminf(roll_in(d, 1.3f, 2.6f) * thick, 1.8f * room), 6.0f);
    m->semi[1] = fmaxf(thick, 6.0f);
    m->semi[2] = fmaxf(thick * roll_in(d, 0.8f, 1.1f), 6.0f);
    m->period = roll_in(d, 5.5f, 8.0f);
    m->phase = roll_in(d, 0, TWO_PI);
}

/* Bounding spheres apart: mitochondria never merge. */
static int mito_fits(const Scene *s, const Mito *m)
{
    for (int k = 0; k < s->nmitos; k++) {
        const Mito *o = &s->mitos[k];
        float dz = m->c[0] - o->c[0], dy = m->c[1] - o->c[1], dx = m->c[2] - o->c[2], gap = m->semi[0] + o->semi[0] + 3;
        if (dz * dz + dy * dy + dx * dx < gap * gap) return 0;
    }
    return 1;
}

static int draw_mitos(Scene *s)
{
    int want = (int)((float)s->h * s->w / (90.0f * 90.0f)) + 2;
    s->mitos = malloc(sizeof(Mito) * (size_t)want);
    if (!s->mitos) return SD_ERR;
    Dice d = {s->seed, S_MITO, 0};
    for (int tries = 0; tries < 20 * want && s->nmitos < want; tries++) {
        place_mito(s, &s->mitos[s->nmitos], &d);
        if (mito_fits(s, &s->mitos[s->nmitos])) s->nmitos++;
    }
    return SD_OK;
}

/* Squared normalized radius of p in mitochondrion m (< 1 inside); u gets local coords. */
static float mito_rho2(const Mito *m, const float p[3], float u[3])
{
    float q[3] = {p[0] - m->c[0], p[1] - m->c[1], p[2] - m->c[2]};
    float r2 = 0;
    for (int a = 0; a < 3; a++) {
        u[a] = m->axis[a][0] * q[0] + m->axis[a][1] * q[1] + m->axis[a][2] * q[2];
        r2 += (u[a] / m->semi[a]) * (u[a] / m->semi[a]);
    }
    return r2;
}

static int inside_any_mito(const Scene *s, const float p[3])
{
    float u[3];
    for (int k = 0; k < s->nmitos; k++)
        if (mito_rho2(&s->mitos[k], p, u) < 1.5f) return 1;
    return 0;
}

/* Vesicles do not overlap each other or a mitochondrion. */
static int vesicle_fits(const Scene *s, const float p[3], float r)
{
    if (inside_any_mito(s, p)) return 0;
    for (int k = 0; k < s->nves; k++) {
        const Vesicle *v = &s->ves[k];
        float dz = p[0] - v->c[0], dy = p[1] - v->c[1], dx = p[2] - v->c[2], gap = r + v->r + 1.5f;
        if (dz * dz + dy * dy + dx * dx < gap * gap) return 0;
    }
    return 1;
}

static void add_vesicle(Scene *s, Dice *d, float z, float y, float x)
{
    float p[3] = {z, y, x}, r = roll_in(d, 3.0f, 5.5f);
    if (s->nves >= MAX_VESICLES || !vesicle_fits(s, p, r)) return;
    Vesicle *v = &s->ves[s->nves++];
    memcpy(v->c, p, sizeof p);
    v->r = r;
}

/* Clusters of vesicles (boutons) in a few cells, plus scattered ones. */
static int draw_vesicles(Scene *s)
{
    s->ves = malloc(sizeof(Vesicle) * MAX_VESICLES);
    if (!s->ves) return SD_ERR;
    Dice d = {s->seed, S_VESICLE, 0};
    int clusters = (int)((float)s->h * s->w / (110.0f * 110.0f)) + 1;
    for (int k = 0; k < clusters; k++) {
        int i = inner_cell(s, &d);
        float spread = 0.45f * neighbour_distance(s, i);
        int n = (int)roll_in(&d, 15, 35);
        for (int v = 0; v < n; v++)
            add_vesicle(s, &d, roll_in(&d, -4, (float)s->pages + 4), s->cells[i].y + roll_in(&d, -spread, spread),
                        s->cells[i].x + roll_in(&d, -spread, spread));
    }
    int scattered = (int)((float)s->h * s->w * (float)s->pages / 15000.0f);
    for (int v = 0; v < scattered; v++)
        add_vesicle(s, &d, roll_in(&d, -4, (float)s->pages + 4), roll_in(&d, 0, (float)s->h),
                    roll_in(&d, 0, (float)s->w));
    return SD_OK;
}

static int draw_texture(Scene *s)
{
    s->tz = s->pages / TEX_STEP + 3, s->ty = s->h / TEX_STEP + 3, s->tx = s->w / TEX_STEP + 3;
    size_t n = (size_t)s->tz * s->ty * s->tx;
    s->tex = malloc(sizeof(float) * n);
    if (!s->tex) return SD_ERR;
    for (size_t i = 0; i < n; i++) s->tex[i] = 2.0f * philox_uniform(s->seed, S_TEXTURE, i) - 1.0f;
    return SD_OK;
}

/* ---- rendering one voxel ---- */

static void warped(const Scene *s, int z, int y, int x, float p[3])
{
    float d[2] = {0, 0};
    for (int c = 0; c < 2; c++)
        for (int k = 0; k < WAVES; k++) {
            const Wave *wv = &s->warp[c][k];
            d[c] += wv->amp * sinf(wv->k[0] * (float)z + wv->k[1] * (float)y + wv->k[2] * (float)x + wv->phase);
        }
    p[0] = (float)z, p[1] = (float)y + d[0], p[2] = (float)x + d[1];
}

/* Cell of p and the distance from p to the nearest cell boundary. */
static int cell_at(const Scene *s, const float p[3], float *boundary)
{
    float best = 1e30f, second = 1e30f;
    int bi = 0, si = 0;
    for (int i = 0; i < s->ncells; i++) {
        const Cell *c = &s->cells[i];
        float dz = p[0] * Z_STRETCH - c->z, dy = p[1] - c->y, dx = p[2] - c->x;
        float power = dz * dz + dy * dy + dx * dx - c->weight;
        if (power < best) second = best, si = bi, best = power, bi = i;
        else if (power < second) second = power, si = i;
    }
    const Cell *a = &s->cells[bi], *b = &s->cells[si];
    float gz = a->z - b->z, gy = a->y - b->y, gx = a->x - b->x;
    *boundary = (second - best) / (2.0f * sqrtf(gz * gz + gy * gy + gx * gx) + 1e-6f);
    return bi;
}

/* Trilinear value noise at lattice coordinates (z, y, x), clamped to the lattice. */
static float value_noise(const Scene *s, float z, float y, float x)
{
    z = fminf(fmaxf(z, 0), (float)s->tz - 1.001f);
    y = fminf(fmaxf(y, 0), (float)s->ty - 1.001f);
    x = fminf(fmaxf(x, 0), (float)s->tx - 1.001f);
    int z0 = (int)z, y0 = (int)y, x0 = (int)x;
    float fz = z - (float)z0, fy = y - (float)y0, fx = x - (float)x0, v = 0;
    for (int c = 0; c < 8; c++) {
        int dz = c >> 2, dy = (c >> 1) & 1, dx = c & 1;
        float wgt = (dz ? fz : 1 - fz) * (dy ? fy : 1 - fy) * (dx ? fx : 1 - fx);
        v += wgt * s->tex[((size_t)(z0 + dz) * s->ty + (size_t)(y0 + dy)) * s->tx + (size_t)(x0 + dx)];
    }
    return v;
}

static float texture(const Scene *s, const float p[3])
{
    float fine = value_noise(s, p[0] / TEX_STEP + 1, p[1] / TEX_STEP + 1, p[2] / TEX_STEP + 1);
    float coarse = value_noise(s, p[0] / (4 * TEX_STEP) + 1, p[1] / (4 * TEX_STEP) + 1, p[2] / (4 * TEX_STEP) + 1);
    return 0.07f * fine + 0.05f * coarse;
}

/* Gray level inside a mitochondrion at depth `depth` (pixels below its surface). */
static float mito_gray(const Mito *m, const float u[3], float depth)
{
    if (depth < 1.6f) return 0.25f; /* outer membrane */
    if (depth < 2.6f) return 0.40f; /* intermembrane space */
    if (depth < 3.8f) return 0.27f; /* inner membrane */
    float wobble = 0.9f * sinf(u[1] / 4.5f + m->phase) + 0.5f * sinf(u[2] / 3.7f);
    float crista = fmaxf(0.0f, cosf(TWO_PI * u[0] / m->period + m->phase + wobble));
    return 0.43f - 0.15f * crista * crista;
}

/* ---- the grid of object lists ---- */

/* Grid cells covered by the box (y +- r, x +- r), clamped to the grid. */
static void bin_range(const Bins *b, float y, float x, float r, int *y0, int *y1, int *x0, int *x1)
{
    *y0 = (int)fmaxf(0, floorf((y - r) / BIN)), *y1 = (int)fminf((float)b->ny - 1, floorf((y + r) / BIN));
    *x0 = (int)fmaxf(0, floorf((x - r) / BIN)), *x1 = (int)fminf((float)b->nx - 1, floorf((x + r) / BIN));
}

/* Count object k in (fill == NULL), or list it under, every cell its box touches. */
static void bin_object(Bins *b, const float *ext, int k, int *fill)
{
    int y0, y1, x0, x1;
    bin_range(b, ext[3 * k], ext[3 * k + 1], ext[3 * k + 2], &y0, &y1, &x0, &x1);
    for (int cy = y0; cy <= y1; cy++)
        for (int cx = x0; cx <= x1; cx++) {
            int c = cy * b->nx + cx;
            if (fill) b->items[b->start[c] + fill[c]++] = k;
            else b->start[c + 1]++;
        }
}

/* ext holds (y, x, radius) of each of n objects. */
static int bins_build(Bins *b, int h, int w, const float *ext, int n)
{
    b->ny = h / BIN + 1, b->nx = w / BIN + 1;
    int cells = b->ny * b->nx;
    b->start = calloc((size_t)cells + 1, sizeof(int));
    int *fill = calloc((size_t)cells, sizeof(int));
    if (!b->start || !fill) return free(fill), SD_ERR;
    for (int k = 0; k < n; k++) bin_object(b, ext, k, NULL);
    for (int c = 0; c < cells; c++) b->start[c + 1] += b->start[c];
    b->items = malloc(sizeof(int) * ((size_t)b->start[cells] + 1));
    if (b->items)
        for (int k = 0; k < n; k++) bin_object(b, ext, k, fill);
    free(fill);
    return b->items ? SD_OK : SD_ERR;
}

/* The objects listed under the cell of pixel (y, x). */
static const int *bin_items(const Bins *b, int y, int x, int *count)
{
    int c = (y / BIN) * b->nx + x / BIN;
    *count = b->start[c + 1] - b->start[c];
    return b->items + b->start[c];
}

static void bins_free(Bins *b)
{
    free(b->start);
    free(b->items);
}

/* Grids for the mitochondria and the vesicles (bounding radius + the membrane/ring tail). */
static int index_objects(Scene *s)
{
    int n = s->nmitos > s->nves ? s->nmitos : s->nves;
    float *ext = malloc(sizeof(float) * 3 * ((size_t)n + 1));
    if (!ext) return SD_ERR;
    for (int k = 0; k < s->nmitos; k++) {
        const Mito *m = &s->mitos[k];
        ext[3 * k] = m->c[1], ext[3 * k + 1] = m->c[2];
        ext[3 * k + 2] = fmaxf(m->semi[0], fmaxf(m->semi[1], m->semi[2])) + 1;
    }
    int rc = bins_build(&s->mito_bins, s->h, s->w, ext, s->nmitos);
    for (int k = 0; k < s->nves; k++)
        ext[3 * k] = s->ves[k].c[1], ext[3 * k + 1] = s->ves[k].c[2], ext[3 * k + 2] = s->ves[k].r + 3;
    if (rc == SD_OK) rc = bins_build(&s->ves_bins, s->h, s->w, ext, s->nves);
    free(ext);
    return rc;
}

static float vesicle_shade(const Scene *s, const float p[3], int y, int x)
{
    float dark = 0;
    int n;
    const int *near = bin_items(&s->ves_bins, y, x, &n);
    for (int i = 0; i < n; i++) {
        const Vesicle *v = &s->ves[near[i]];
        float dz = p[0] - v->c[0];
        if (fabsf(dz) > v->r + 2) continue;
        float dy = p[1] - v->c[1], dx = p[2] - v->c[2];
        if (fabsf(dy) > v->r + 2 || fabsf(dx) > v->r + 2) continue;
        float ring = (sqrtf(dz * dz + dy * dy + dx * dx) - v->r) / 1.0f;
        dark = fmaxf(dark, expf(-ring * ring));
    }
    return 1.0f - 0.5f * dark;
}

/* Noise-free gray level of voxel (z, y, x); *in_mito gets the mask. Only the cell
 * partition is seen through the warp: organelles stay smooth ellipsoids and spheres. */
static float render_voxel(const Scene *s, int z, int y, int x, uint8_t *in_mito)
{
    float p[3] = {(float)z, (float)y, (float)x}, q[3], boundary, u[3];
    warped(s, z, y, x, q);
    int cell = cell_at(s, q, &boundary);
    *in_mito = 0;
    int n;
    const int *near = bin_items(&s->mito_bins, y, x, &n);
    for (int i = 0; i < n; i++) {
        const Mito *m = &s->mitos[near[i]];
        float r2 = mito_rho2(m, p, u);
        if (r2 >= 1.0f) continue;
        float thin = fminf(m->semi[0], fminf(m->semi[1], m->semi[2]));
        *in_mito = 1; /* a mitochondrion hides the membranes behind it */
        return mito_gray(m, u, (1.0f - sqrtf(r2)) * thin) + 0.5f * texture(s, p);
    }
    float membrane = expf(-(boundary / 2.8f) * (boundary / 2.8f));
    return (s->cells[cell].gray + texture(s, p)) * (1.0f - 0.55f * membrane) * vesicle_shade(s, p, y, x);
}

/* ---- imaging: blur, noise, quantization ---- */

static void image_page(const Scene *s, int z, float *page, uint8_t *out)
{
    const float photons = 500.0f, read_noise = 0.012f;
    size_t n = (size_t)s->h * s->w;
    image_blur(page, s->h, s->w, 1.4f);
    for (size_t i = 0; i < n; i++) {
        uint64_t at = 2 * ((uint64_t)z * n + i);
        float v = fmaxf(page[i], 0.0f);
        v += sqrtf(v / photons) * philox_normal(s->seed, S_NOISE, at) +
             read_noise * philox_normal(s->seed, S_NOISE, at + 1);
        out[i] = (uint8_t)lrintf(fminf(fmaxf(v, 0.0f), 1.0f) * 255.0f);
    }
}

static int render(const Scene *s, uint8_t *image, uint8_t *mask)
{
    size_t n = (size_t)s->h * s->w;
    int failed = 0;
#pragma omp parallel
    {
        float *page = malloc(sizeof(float) * n);
        if (!page) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic)
        for (int z = 0; z < s->pages; z++) {
            if (!page) continue;
            for (int y = 0; y < s->h; y++)
                for (int x = 0; x < s->w; x++) {
                    size_t i = (size_t)y * s->w + x;
                    page[i] = render_voxel(s, z, y, x, &mask[(size_t)z * n + i]);
                }
            image_page(s, z, page, image + (size_t)z * n);
        }
        free(page);
    }
    return failed ? sd_fail("phantom: out of memory") : SD_OK;
}

static void scene_free(Scene *s)
{
    free(s->cells);
    free(s->mitos);
    free(s->ves);
    free(s->tex);
    bins_free(&s->mito_bins);
    bins_free(&s->ves_bins);
}

int phantom_make(int pages, int h, int w, uint64_t seed, uint8_t *image, uint8_t *mask)
{
    if (pages < 1 || pages > 4096 || h < 16 || w < 16 || h > 8192 || w > 8192)
        return sd_fail("phantom: size %d x %d x %d out of range (pages 1..4096, sides 16..8192)", pages, h, w);
    Scene s = {.pages = pages, .h = h, .w = w, .seed = seed};
    draw_warp(&s);
    int rc = draw_cells(&s) || draw_mitos(&s) || draw_vesicles(&s) || draw_texture(&s) || index_objects(&s)
                 ? sd_fail("phantom: out of memory")
                 : render(&s, image, mask);
    scene_free(&s);
    return rc;
}
