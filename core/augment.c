/* Joint image/mask augmentation (see augment.h and dataset.h).
 *
 * Order: exact flips and rot90 (index permutations), then one resampling for the affine
 * transform and the elastic field together, then the image-only intensity steps.
 * The affine follows Keras' ImageDataGenerator: rotation theta ~ U(-r, r) degrees,
 * shifts ~ U(-s, s) * side, shear ~ U(-sh, sh) in DEGREES (Keras' unit: the seed's
 * 0.5 is half a degree), zoom factors zx, zy ~ U(1-z, 1+z) independently, composed as
 * input = c + R Sh Z (output - c) + R t about the tile centre c, bilinear, reflect fill
 * (scipy's "reflect": d c b a | a b c d | d c b a). The elastic field is Simard's:
 * uniform(-1,1) per pixel, Gaussian-blurred with elastic_sigma, times elastic_alpha. */
#include "augment.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "philox.h"

/* Philox value indices inside a tile's stream: scalar draws, the elastic field
 * (uniform), the noise field (normal), far apart so their blocks never overlap. */
enum { P_FLIP_H, P_FLIP_V, P_ROT90, P_THETA, P_TX, P_TY, P_SHEAR, P_ZX, P_ZY,
       P_CONTRAST, P_BRIGHT, P_GAMMA, P_BLUR, P_NOISE };
#define ELASTIC_INDEX (1ULL << 32)
#define NOISE_INDEX (1ULL << 40)
#define BLUR_MAX_RADIUS 255
#define DEG (3.14159265358979323846 / 180.0)

typedef struct {
    uint64_t seed, stream;
} Draw;

static float uniform(Draw d, uint64_t k) { return philox_uniform(d.seed, d.stream, k); }
/* Uniform in (-range, range). */
static float symmetric(Draw d, uint64_t k, float range) { return (2.0f * uniform(d, k) - 1.0f) * range; }

size_t augment_scratch_floats(int h, int w) { return 3 * (size_t)h * (size_t)w; }

/* scipy's "reflect" (half-sample symmetric) border for integer index i. */
static int reflect(int i, int n)
{
    if ((unsigned)i < (unsigned)n) return i;
    int m = i % (2 * n);
    if (m < 0) m += 2 * n;
    return m < n ? m : 2 * n - 1 - m;
}

/* ---- blur ---- */

/* Convolve n values (stride apart) with the 2r+1 taps k, reflect borders; line holds
 * n + 2r floats. */
static void blur_line(float *x, size_t stride, int n, const float *k, int r, float *line)
{
    for (int i = -r; i < n + r; i++) line[i + r] = x[(size_t)reflect(i, n) * stride];
    for (int i = 0; i < n; i++) {
        float acc = 0;
        for (int t = 0; t <= 2 * r; t++) acc += k[t] * line[i + t];
        x[(size_t)i * stride] = acc;
    }
}

void image_blur(float *x, int h, int w, float sigma)
{
    float k[2 * BLUR_MAX_RADIUS + 1];
    int radius = (int)ceilf(3.0f * sigma);
    if (radius > BLUR_MAX_RADIUS) radius = BLUR_MAX_RADIUS;
    if (radius < 1) return;
    float *line = malloc(sizeof(float) * ((size_t)(h > w ? h : w) + 2 * (size_t)radius));
    if (!line) return;
    float sum = 0;
    for (int i = -radius; i <= radius; i++) sum += k[i + radius] = expf(-0.5f * (float)(i * i) / (sigma * sigma));
    for (int i = 0; i <= 2 * radius; i++) k[i] /= sum;
    for (int r = 0; r < h; r++) blur_line(x + (size_t)r * w, 1, w, k, radius, line);
    for (int c = 0; c < w; c++) blur_line(x + c, (size_t)w, h, k, radius, line);
    free(line);
}

/* ---- exact flips and rot90 ---- */

typedef struct {
    int flip_h, flip_v, quarter_turns;
} Permute;

/* out[r][c] = in[source of (r, c)]: undo the rotation, then the flips. */
static void permute_plane(float *x, float *tmp, int h, int w, Permute p)
{
    memcpy(tmp, x, sizeof(float) * (size_t)h * w);
    for (int r = 0; r < h; r++)
        for (int c = 0; c < w; c++) {
            int sr = r, sc = c; /* quarter turns change the shape only when h == w */
            if (p.quarter_turns == 1) sr = c, sc = w - 1 - r;
            else if (p.quarter_turns == 2) sr = h - 1 - r, sc = w - 1 - c;
            else if (p.quarter_turns == 3) sr = h - 1 - c, sc = r;
            if (p.flip_v) sr = h - 1 - sr;
            if (p.flip_h) sc = w - 1 - sc;
            x[(size_t)r * w + c] = tmp[(size_t)sr * w + sc];
        }
}

static void apply_permute(const Augment *a, Draw d, int h, int w, float *img, float *mask, float *tmp)
{
    Permute p = {0, 0, 0};
    if (a->flips) {
        p.flip_h = uniform(d, P_FLIP_H) < 0.5f;
        p.flip_v = uniform(d, P_FLIP_V) < 0.5f;
    }
    if (a->rot90) {
        int turns = (int)(uniform(d, P_ROT90) * 4.0f) & 3;
        p.quarter_turns = h == w ? turns : turns & 2; /* non-square tiles: 0 or 180 degrees */
    }
    if (!p.flip_h && !p.flip_v && !p.quarter_turns) return;
    permute_plane(img, tmp, h, w, p);
    if (mask) permute_plane(mask, tmp, h, w, p);
}

/* ---- affine + elastic resampling ---- */

typedef struct {
    float a[2][2], b[2]; /* input = a * output + b, in (row, col) */
} Affine;

static Affine draw_affine(const Augment *a, Draw d, int h, int w)
{
    double theta = a->rotate_deg > 0 ? symmetric(d, P_THETA, a->rotate_deg) * DEG : 0;
    double tx = a->shift > 0 ? symmetric(d, P_TX, a->shift) * h : 0;
    double ty = a->shift > 0 ? symmetric(d, P_TY, a->shift) * w : 0;
    double shear = a->shear > 0 ? symmetric(d, P_SHEAR, a->shear) * DEG : 0;
    double zx = a->zoom > 0 ? 1 + symmetric(d, P_ZX, a->zoom) : 1;
    double zy = a->zoom > 0 ? 1 + symmetric(d, P_ZY, a->zoom) : 1;
    double cs = cos(theta), sn = sin(theta);
    /* R * Sh * Z with Sh = [[1, -sin(shear)], [0, cos(shear)]], Z = diag(zx, zy). */
    double m00 = cs * zx, m01 = (-cs * sin(shear) - sn * cos(shear)) * zy;
    double m10 = sn * zx, m11 = (-sn * sin(shear) + cs * cos(shear)) * zy;
    double cr = 0.5 * (h - 1), cc = 0.5 * (w - 1);
    Affine t;
    t.a[0][0] = (float)m00, t.a[0][1] = (float)m01, t.a[1][0] = (float)m10, t.a[1][1] = (float)m11;
    t.b[0] = (float)(cr - m00 * cr - m01 * cc + cs * tx - sn * ty);
    t.b[1] = (float)(cc - m10 * cr - m11 * cc + sn * tx + cs * ty);
    return t;
}

/* Displacements (dy, dx) of Simard's elastic field, or zeros when it is off. */
static void elastic_field(const Augment *a, Draw d, int h, int w, float *dy, float *dx)
{
    size_t n = (size_t)h * w;
    if (a->elastic_alpha <= 0) {
        memset(dy, 0, n * sizeof(float));
        memset(dx, 0, n * sizeof(float));
        return;
    }
    for (size_t i = 0; i < n; i++) {
        dy[i] = 2.0f * uniform(d, ELASTIC_INDEX + i) - 1.0f;
        dx[i] = 2.0f * uniform(d, ELASTIC_INDEX + n + i) - 1.0f;
    }
    image_blur(dy, h, w, a->elastic_sigma);
    image_blur(dx, h, w, a->elastic_sigma);
    for (size_t i = 0; i < n; i++) dy[i] *= a->elastic_alpha, dx[i] *= a->elastic_alpha;
}

/* Bilinear sample at (r, c) with reflect borders. */
static float sample(const float *x, int h, int w, float r, float c)
{
    r = fminf(fmaxf(r, -1e6f), 1e6f); /* keep the integer conversion defined */
    c = fminf(fmaxf(c, -1e6f), 1e6f);
    float fr = floorf(r), fc = floorf(c), ar = r - fr, ac = c - fc;
    int r0 = reflect((int)fr, h), r1 = reflect((int)fr + 1, h);
    int c0 = reflect((int)fc, w), c1 = reflect((int)fc + 1, w);
    const float *row0 = x + (size_t)r0 * w, *row1 = x + (size_t)r1 * w;
    return (1 - ar) * ((1 - ac) * row0[c0] + ac * row0[c1]) + ar * ((1 - ac) * row1[c0] + ac * row1[c1]);
}

/* Resample x through the source coordinates (ys, xs); masks are thresholded. */
static void resample(float *x, float *out, const float *ys, const float *xs, int h, int w, int is_mask)
{
    size_t n = (size_t)h * w;
    for (size_t i = 0; i < n; i++) {
        float v = sample(x, h, w, ys[i], xs[i]);
        out[i] = is_mask ? (float)(v >= 0.5f) : v;
    }
    memcpy(x, out, n * sizeof(float));
}

static int warps(const Augment *a)
{
    return a->rotate_deg > 0 || a->shift > 0 || a->shear > 0 || a->zoom > 0 || a->elastic_alpha > 0;
}

static void apply_warp(const Augment *a, Draw d, int h, int w, float *img, float *mask, float *scratch)
{
    size_t n = (size_t)h * w;
    float *tmp = scratch, *ys = scratch + n, *xs = scratch + 2 * n;
    Affine t = draw_affine(a, d, h, w);
    elastic_field(a, d, h, w, ys, xs);
    for (int r = 0; r < h; r++)
        for (int c = 0; c < w; c++) {
            size_t i = (size_t)r * w + c;
            float qr = (float)r + ys[i], qc = (float)c + xs[i];
            ys[i] = t.a[0][0] * qr + t.a[0][1] * qc + t.b[0];
            xs[i] = t.a[1][0] * qr + t.a[1][1] * qc + t.b[1];
        }
    resample(img, tmp, ys, xs, h, w, 0);
    if (mask) resample(mask, tmp, ys, xs, h, w, 1);
}

/* ---- intensity (image only) ---- */

static float clamp01(float v) { return fminf(fmaxf(v, 0.0f), 1.0f); }

static void apply_levels(const Augment *a, Draw d, size_t n, float *img)
{
    if (a->contrast <= 0 && a->brightness <= 0 && a->gamma <= 0) return;
    float contrast = a->contrast > 0 ? 1 + symmetric(d, P_CONTRAST, a->contrast) : 1;
    float bright = a->brightness > 0 ? symmetric(d, P_BRIGHT, a->brightness) : 0;
    /* gamma drawn log-symmetric in [1/(1+g), 1+g], so it stays positive for any g */
    float gamma = a->gamma > 0 ? expf(symmetric(d, P_GAMMA, logf(1 + a->gamma))) : 1;
    double mean = 0;
    for (size_t i = 0; i < n; i++) mean += img[i];
    float m = (float)(mean / (double)n);
    for (size_t i = 0; i < n; i++) {
        float v = clamp01((img[i] - m) * contrast + m + bright);
        img[i] = gamma == 1 ? v : powf(v, gamma);
    }
}

static void apply_noise(const Augment *a, Draw d, int h, int w, float *img)
{
    size_t n = (size_t)h * w;
    if (a->blur_sigma > 0) image_blur(img, h, w, uniform(d, P_BLUR) * a->blur_sigma);
    if (a->noise_std > 0) {
        float std = uniform(d, P_NOISE) * a->noise_std;
        for (size_t i = 0; i < n; i++)
            img[i] = clamp01(img[i] + std * philox_normal(d.seed, d.stream, NOISE_INDEX + i));
    }
}

void augment_tile(const Augment *a, uint64_t seed, uint64_t stream, int h, int w, float *img, float *mask,
                  float *scratch)
{
    Draw d = {seed, stream};
    apply_permute(a, d, h, w, img, mask, scratch);
    if (warps(a)) apply_warp(a, d, h, w, img, mask, scratch);
    apply_levels(a, d, (size_t)h * w, img);
    apply_noise(a, d, h, w, img);
}

Augment augment_none(void)
{
    Augment a;
    memset(&a, 0, sizeof a);
    return a;
}

Augment augment_seed(void)
{
    Augment a = augment_none();
    a.flips = 1;
    a.rotate_deg = 90;
    a.shift = 0.3f;
    a.shear = 0.5f;
    a.zoom = 0.3f;
    return a;
}
