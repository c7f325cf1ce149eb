/* demo_overlay: the image / truth / prediction picture of `make demo` (repro/demo.sh).
 *
 * Writes raw 8-bit RGB for gnuplot (`binary array=(2W,H) format="%uchar%uchar%uchar"
 * with rgbimage`): one band of H rows per chosen slice, top to bottom, each holding the
 * gray image on the left and, on the right, the same image with the outlines of the true
 * objects in green and of the predicted ones in red (yellow where the two coincide). */
#include <stdio.h>
#include <stdlib.h>

#include "../core/err.h"
#include "../core/fileio.h"
#include "../core/tiff.h"

#define CMD "demo_overlay"
#define MAX_SLICES 16

typedef struct {
    const float *image, *truth, *pred; /* one slice of each, h x w */
    int h, w;
    int radius; /* outline thickness in pixels */
} Slice;

/* Prediction foreground: value > PRED_CUT (masks 0/255 read as 0/1, or probabilities;
 * sdseg eval's default threshold). */
#define PRED_CUT 0.5

/* Parse "3,10,17" into 0-based slice numbers below `pages`; returns the count or -1. */
static int parse_slices(const char *text, int pages, int *out)
{
    int n = 0;
    for (const char *p = text; *p;) {
        char *end;
        long k = strtol(p, &end, 10);
        if (end == p || k < 0 || k >= pages || n == MAX_SLICES || (*end && *end != ','))
            return sd_fail("slices '%s': want up to %d comma-separated slices in 0..%d", text, MAX_SLICES,
                           pages - 1);
        out[n++] = (int)k;
        p = *end ? end + 1 : end;
    }
    return n ? n : sd_fail("no slices given");
}

/* Inside (value > cut) and within `radius` pixels (square neighbourhood) of an outside
 * pixel of the slice; the slice border itself draws no outline. */
static int on_outline(const float *s, int h, int w, int y, int x, int radius, double cut)
{
    if (!(s[(size_t)y * w + x] > cut)) return 0;
    for (int yy = y - radius; yy <= y + radius; yy++)
        for (int xx = x - radius; xx <= x + radius; xx++)
            if (yy >= 0 && yy < h && xx >= 0 && xx < w && !(s[(size_t)yy * w + xx] > cut)) return 1;
    return 0;
}

static unsigned char gray(float v)
{
    return v <= 0 ? 0 : v >= 1 ? 255 : (unsigned char)(v * 255 + 0.5f);
}

/* Row y of a band: the plain image, then the image with both outlines. */
static void band_row(const Slice *s, int y, unsigned char *rgb)
{
    unsigned char *plain = rgb, *drawn = rgb + 3 * (size_t)s->w;
    for (int x = 0; x < s->w; x++) {
        unsigned char g = gray(s->image[(size_t)y * s->w + x]);
        int truth = on_outline(s->truth, s->h, s->w, y, x, s->radius, 0);
        int pred = on_outline(s->pred, s->h, s->w, y, x, s->radius, PRED_CUT);
        unsigned char *p = plain + 3 * x, *d = drawn + 3 * x;
        p[0] = p[1] = p[2] = g;
        d[0] = pred ? 255 : truth ? 0 : g;
        d[1] = truth ? 255 : pred ? 0 : g;
        d[2] = truth || pred ? 0 : g;
    }
}

static int write_bands(const char *path, const Stack *image, const Stack *truth, const Stack *pred, const int *slices,
                       int n)
{
    int h = image->h, w = image->w;
    unsigned char *row = malloc(6 * (size_t)w);
    AtomicFile af;
    if (!row) return sd_fail("out of memory for a %d-pixel row", 2 * w);
    if (atomic_open(&af, path)) {
        free(row);
        return SD_ERR;
    }
    size_t page = (size_t)h * w;
    for (int i = 0; i < n; i++) {
        size_t at = page * slices[i];
        /* Outlines about 1/400 of the slice width thick stay visible once gnuplot scales down. */
        Slice s = {image->data + at, truth->data + at, pred->data + at, h, w, 1 + w / 400};
        for (int y = 0; y < h; y++) {
            band_row(&s, y, row);
            fwrite(row, 1, 6 * (size_t)w, af.f);
        }
    }
    free(row);
    return atomic_commit(&af);
}

static int same_shape(const Stack *a, const Stack *b, const char *path)
{
    if (a->pages == b->pages && a->h == b->h && a->w == b->w) return SD_OK;
    return sd_fail("%s: %d pages of %d x %d, the image has %d of %d x %d", path, b->pages, b->h, b->w, a->pages, a->h,
                   a->w);
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: %s IMAGE.tif TRUTH.tif PRED.tif SLICES OUT.rgb\n"
                        "  SLICES: 0-based, comma-separated (e.g. 0,8,15); PRED: mask or probabilities "
                        "(foreground > 0.5)\n", CMD);
        return 2;
    }
    const char *image_path = argv[1], *truth_path = argv[2], *pred_path = argv[3], *out = argv[5];
    Stack image = {0}, truth = {0}, pred = {0};
    int slices[MAX_SLICES], n = 0;
    int rc = tiff_read_stack(image_path, &image) || tiff_read_stack(truth_path, &truth) ||
             tiff_read_stack(pred_path, &pred) || same_shape(&image, &truth, truth_path) ||
             same_shape(&image, &pred, pred_path) || (n = parse_slices(argv[4], image.pages, slices)) < 0 ||
             write_bands(out, &image, &truth, &pred, slices, n);
    if (rc) fprintf(stderr, "%s: %s\n", CMD, sd_last_error());
    else
        printf("%s: %d slices of %d x %d -> %s (%d x %d RGB)\n", CMD, n, image.h, image.w, out, 2 * image.w,
               n * image.h);
    stack_free(&image);
    stack_free(&truth);
    stack_free(&pred);
    return rc ? 1 : 0;
}
