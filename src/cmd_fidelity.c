/* sdseg fidelity: how real synthetic tiles look. Two sets of 8-bit tiles (TIFF stacks cut
 * into tiles, or prep tile datasets) are compared with the distances of core/fidelity.h:
 * Frechet distance and KID on the encoder features of a trained segmentation U-Net
 * (models/seg_features.h), and the grey-level histogram and power-spectrum distances.
 *
 * The numbers mean something only beside the floor: the distances between two real
 * samples of one distribution at the same sample size, e.g. the train and validation
 * tiles of one volume, which prep splits by slices:
 *
 *     sdseg fidelity --seg best.safetensors --real train.tiles --fake val.tiles --max 396
 *
 * (--max caps both sets, so give it the size of the fake set: FD is biased upwards by
 * roughly dim / n.) A generator is good when its fake-vs-real scores approach the floor. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/err.h"
#include "../core/fidelity.h"
#include "../core/fileio.h"
#include "../core/tiff.h"
#include "../core/tiles.h"
#include "../models/seg_features.h"
#include "cli.h"
#include "device.h"

#define CMD "fidelity"

typedef struct {
    const char *seg, *real, *fake, *csv, *device;
    int tile, max, batch, threads, kid_subsets, kid_size, fast;
    uint64_t seed;
} FidelityArgs;

/* A set of 8-bit tiles [count][tile][tile]: a TIFF stack's pages cut into tiles (owned),
 * or a mapped tile dataset (ts). */
typedef struct {
    long count;
    const uint8_t *pixels;
    uint8_t *owned;
    TileSet ts;
} TileSource;

/* What the scores need from one set: its features and its pixel statistics. */
typedef struct {
    long n;
    double *feat; /* [n][dim] */
    ImageStats img;
} SetSummary;

typedef struct {
    double fd, spectrum;
    KidScore kid;
    HistDistance hist;
} Scores;

/* ------------------------------------------------------------ inputs */

static int is_tiles(const char *path)
{
    size_t n = strlen(path);
    return n >= 6 && !strcmp(path + n - 6, ".tiles");
}

static int open_tileset(TileSource *s, const char *path, int tile)
{
    if (tileset_open(path, &s->ts)) return SD_ERR;
    if (s->ts.h != tile || s->ts.w != tile)
        return sd_fail("%s: tiles of %d x %d, not --tile %d", path, s->ts.h, s->ts.w, tile);
    s->count = s->ts.count;
    s->pixels = s->ts.image;
    return SD_OK;
}

/* Each page cut into a grid of whole tiles from its top-left corner (a 1024 x 768 EPFL
 * slice gives 12 tiles of 256, as in the seed); the pixels back to 8 bits. */
static int cut_stack(TileSource *s, const char *path, const Stack *st, int tile)
{
    if (st->bits != 8) return sd_fail("%s: %d-bit samples; fidelity compares 8-bit stacks", path, st->bits);
    if (st->h < tile || st->w < tile)
        return sd_fail("%s: slices of %d x %d are smaller than --tile %d", path, st->h, st->w, tile);
    int gy = st->h / tile, gx = st->w / tile;
    size_t px = (size_t)tile * tile;
    s->count = (long)st->pages * gy * gx;
    s->pixels = s->owned = malloc((size_t)s->count * px);
    if (!s->owned) return sd_fail("%s: out of memory for %ld tiles", path, s->count);
    uint8_t *out = s->owned;
    for (int p = 0; p < st->pages; p++)
        for (int ty = 0; ty < gy; ty++)
            for (int tx = 0; tx < gx; tx++)
                for (int y = 0; y < tile; y++) {
                    size_t first = ((size_t)p * st->h + (size_t)ty * tile + y) * st->w + (size_t)tx * tile;
                    const float *row = st->data + first;
                    for (int x = 0; x < tile; x++) *out++ = (uint8_t)lrintf(row[x] * 255.0f);
                }
    return SD_OK;
}

static void source_close(TileSource *s)
{
    if (s->ts.map) tileset_close(&s->ts);
    free(s->owned);
    memset(s, 0, sizeof *s);
}

static int source_open(TileSource *s, const char *path, int tile)
{
    memset(s, 0, sizeof *s);
    int rc;
    if (is_tiles(path)) {
        rc = open_tileset(s, path, tile);
    } else {
        Stack st;
        rc = tiff_read_stack(path, &st);
        if (rc == SD_OK) {
            rc = cut_stack(s, path, &st, tile);
            stack_free(&st);
        }
    }
    if (rc == SD_OK && s->count < 2)
        rc = sd_fail("%s: %ld tile of %d x %d; the statistics need at least 2", path, s->count, tile, tile);
    if (rc != SD_OK) source_close(s);
    return rc;
}

/* ------------------------------------------------------------ per-set summaries */

static void summary_free(SetSummary *s)
{
    free(s->feat);
    image_stats_free(&s->img);
    memset(s, 0, sizeof *s);
}

/* Features and pixel statistics of n tiles evenly spaced through the source (all of
 * them when n = count), batch by batch. */
static int summarize(const FidelityArgs *a, SegFeatures *f, const char *what, const TileSource *src, SetSummary *s)
{
    memset(s, 0, sizeof *s);
    long n = a->max > 0 && a->max < src->count ? a->max : src->count;
    size_t px = (size_t)a->tile * a->tile;
    s->n = n;
    s->feat = malloc((size_t)n * f->dim * sizeof *s->feat);
    uint8_t *batch = malloc((size_t)a->batch * px);
    int rc = s->feat && batch ? image_stats_init(&s->img, a->tile) : sd_fail("out of memory for %ld tiles", n);
    Progress p;
    progress_start(&p, what, n);
    for (long at = 0; at < n && rc == SD_OK; at += a->batch) {
        int k = n - at < a->batch ? (int)(n - at) : a->batch;
        for (int j = 0; j < k; j++) {
            long pick = (long)((long long)(at + j) * src->count / n);
            memcpy(batch + (size_t)j * px, src->pixels + (size_t)pick * px, px);
        }
        rc = seg_features_run(f, k, batch, s->feat + (size_t)at * f->dim);
        if (rc == SD_OK) rc = image_stats_add(&s->img, batch, k);
        progress_step(&p, at + k);
    }
    if (rc == SD_OK) progress_end(&p);
    else summary_free(s);
    free(batch);
    return rc;
}

static int score(const FidelityArgs *a, int dim, const SetSummary *r, const SetSummary *f, Scores *out)
{
    FeatStats sr = {0}, sf = {0};
    KidOpts kopt = {a->kid_subsets, a->kid_size, a->seed};
    int rc = feat_stats(r->feat, r->n, dim, &sr);
    if (rc == SD_OK) rc = feat_stats(f->feat, f->n, dim, &sf);
    if (rc == SD_OK) rc = frechet_distance(&sr, &sf, &out->fd);
    if (rc == SD_OK) rc = kid(r->feat, r->n, f->feat, f->n, dim, &kopt, &out->kid);
    if (rc == SD_OK) rc = image_stats_compare(&r->img, &f->img, &out->hist, &out->spectrum);
    feat_stats_free(&sr);
    feat_stats_free(&sf);
    return rc;
}

/* ------------------------------------------------------------ output */

static void print_table(const FidelityArgs *a, const SegFeatures *f, const SetSummary *r, const SetSummary *k,
                        const Scores *s)
{
    printf("fidelity: real %s (%ld tiles) vs fake %s (%ld tiles), %d x %d\n", a->real, r->n, a->fake, k->n, a->tile,
           a->tile);
    printf("features: %d-d, global average pools of enc.3 and the bridge of %s\n", f->dim, a->seg);
    printf("  Frechet distance   %.6g\n", s->fd);
    printf("  KID                %.6g +- %.2g (%d subsets of %ld)\n", s->kid.mean, s->kid.std, a->kid_subsets,
           s->kid.size);
    printf("  histogram W1       %.4f grey levels (L1 %.4g, chi2 %.4g)\n", s->hist.w1, s->hist.l1, s->hist.chi2);
    printf("  spectrum distance  %.4g (RMS log10 power ratio, radii 1..%d)\n", s->spectrum, a->tile / 2);
}

/* A CSV field: the text in double quotes, inner quotes doubled. */
static void csv_text(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static int write_csv(const FidelityArgs *a, int dim, const SetSummary *r, const SetSummary *k, const Scores *s)
{
    AtomicFile af;
    if (atomic_open(&af, a->csv)) return SD_ERR;
    fprintf(af.f, "real,fake,n_real,n_fake,tile,dim,fd,kid,kid_std,kid_subsets,kid_size,hist_w1,hist_l1,hist_chi2,"
                  "spectrum\n");
    csv_text(af.f, a->real);
    fputc(',', af.f);
    csv_text(af.f, a->fake);
    fprintf(af.f, ",%ld,%ld,%d,%d,%.9g,%.9g,%.9g,%d,%ld,%.9g,%.9g,%.9g,%.9g\n", r->n, k->n, a->tile, dim, s->fd,
            s->kid.mean, s->kid.std, a->kid_subsets, s->kid.size, s->hist.w1, s->hist.l1, s->hist.chi2, s->spectrum);
    return atomic_commit(&af);
}

/* ------------------------------------------------------------ the command */

static int check_args(const FidelityArgs *a)
{
    if (a->tile < 32 || a->tile > 1024 || (a->tile & (a->tile - 1)))
        return cli_usage_error(CMD, "--tile must be a power of two in 32..1024 (got %d)", a->tile);
    if (a->max < 0 || a->max == 1) return cli_usage_error(CMD, "--max must be 0 (all) or at least 2 (got %d)", a->max);
    if (a->batch < 1 || a->batch > 4096) return cli_usage_error(CMD, "--batch must be in 1..4096 (got %d)", a->batch);
    if (a->threads < 0) return cli_usage_error(CMD, "--threads must be >= 0 (got %d)", a->threads);
    if (a->kid_subsets < 1 || a->kid_subsets > 10000)
        return cli_usage_error(CMD, "--kid-subsets must be in 1..10000 (got %d)", a->kid_subsets);
    if (a->kid_size < 2) return cli_usage_error(CMD, "--kid-size must be at least 2 (got %d)", a->kid_size);
    return CLI_RUN;
}

/* Both summaries, then the scores; SD_ERR leaves the summaries freed. */
static int measure(const FidelityArgs *a, SegFeatures *f, const TileSource *real, const TileSource *fake)
{
    SetSummary r, k;
    Scores s;
    int rc = summarize(a, f, "fidelity: real tiles", real, &r);
    if (rc == SD_OK && (rc = summarize(a, f, "fidelity: fake tiles", fake, &k)) != SD_OK) summary_free(&r);
    if (rc != SD_OK) return rc;
    rc = score(a, f->dim, &r, &k, &s);
    if (rc == SD_OK) print_table(a, f, &r, &k, &s);
    if (rc == SD_OK && a->csv) rc = write_csv(a, f->dim, &r, &k, &s);
    summary_free(&r);
    summary_free(&k);
    return rc;
}

/* Inputs, device and model first (a failure there is bad input: status 2), then the work
 * (status 1 if it fails). */
static int run(const FidelityArgs *a)
{
    TileSource real = {0}, fake = {0};
    Backend be;
    int rc = source_open(&real, a->real, a->tile);
    if (rc == SD_OK) rc = source_open(&fake, a->fake, a->tile);
    int have_device = rc == SD_OK && device_open(a->device, a->fast, &be) == SD_OK;
    SegFeatures *f = have_device ? seg_features_load(a->seg, &be, a->batch, a->tile) : NULL;
    int status = !f ? cli_fail(CMD, 2) : measure(a, f, &real, &fake) != SD_OK ? cli_fail(CMD, 1) : 0;
    seg_features_free(f);
    if (have_device) device_close(&be);
    source_close(&real);
    source_close(&fake);
    return status;
}

int cmd_fidelity(int argc, char **argv)
{
    FidelityArgs a = {NULL, NULL, NULL, NULL, "cpu", 256, 0, 8, 0, 10, 1000, 0, 0};
    const CliOpt opts[] = {
        {"seg", CLI_STR, &a.seg, "trained segmentation U-Net (train-seg checkpoint): the feature network", 1},
        {"real", CLI_STR, &a.real, "real tiles: 8-bit TIFF stack or prep .tiles dataset", 1},
        {"fake", CLI_STR, &a.fake, "synthetic tiles: 8-bit TIFF stack or prep .tiles dataset", 1},
        {"tile", CLI_INT, &a.tile, "tile side (power of two); TIFF pages are cut into a grid of such tiles", 0},
        {"max", CLI_INT, &a.max, "at most N tiles of each set, evenly spaced through it (0: all)", 0},
        {"csv", CLI_STR, &a.csv, "also write the scores as a one-row CSV", 0},
        {"kid-subsets", CLI_INT, &a.kid_subsets, "KID: number of random subsets", 0},
        {"kid-size", CLI_INT, &a.kid_size, "KID: largest subset size (the sets' size when smaller)", 0},
        {"seed", CLI_U64, &a.seed, "KID: seed of the subsets", 0},
        {"batch", CLI_INT, &a.batch, "tiles per forward pass", 0},
        {"device", CLI_STR, &a.device, "cpu or cuda", 0},
        {"fast", CLI_FLAG, &a.fast, "CUDA: bf16 matrix products (float32 accumulation)", 0},
        {"threads", CLI_INT, &a.threads, "CPU threads (0: OpenMP's default)", 0},
        {NULL, 0, NULL, NULL, 0},
    };
    int st = cli_parse(argc, argv,
                       "How real do synthetic tiles look: Frechet distance and KID on the segmentation U-Net's\n"
                       "encoder features (enc.3 + bridge, pooled), grey-level histogram W1 and power-spectrum\n"
                       "distance. Read them beside the floor, two real sets of the same size, e.g.\n"
                       "--real train.tiles --fake val.tiles --max <fake count> (prep splits by slices).",
                       opts);
    if (st != CLI_RUN || (st = check_args(&a)) != CLI_RUN) return st;
    if (a.threads > 0) omp_set_num_threads(a.threads);
    return run(&a);
}
