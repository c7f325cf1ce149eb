/* sdseg encode: an 8-bit TIFF stack through the VAE's encoder -> latents [n, latent, h/8,
 * w/8] as float32 .npy: the posterior means, or draws from the posteriors (--sample).
 * Whole pages are encoded (sides multiples of 8), or with --tile T the T x T tiles of every
 * page in raster order (page sides multiples of T). A VAE of image + mask (2 channels)
 * takes the mask stack too (--mask: > 0 -> +1, else -1, as train-vae --with-masks).
 * Exit status 2 for bad input (options, files, shapes, the checkpoint), 1 when the run
 * itself fails. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

#include "../core/err.h"
#include "../core/npy.h"
#include "../core/tiff.h"
#include "cli.h"
#include "gen_batch.h"

#define CMD "encode"

typedef struct {
    const char *vae, *in, *mask, *out, *device;
    int tile, batch, sample, threads;
    uint64_t seed;
} EncodeArgs;

/* The tiles of one input stack; all of them share the tile size. */
typedef struct {
    Stack image, mask; /* mask: all zero without --mask */
    int th, tw, per_page, count;
} Tiles;

static int check_args(const EncodeArgs *a)
{
    if (a->tile < 0 || a->tile % 8)
        return cli_usage_error(CMD, "--tile must be 0 (whole pages) or a positive multiple of 8 (got %d)", a->tile);
    if (a->batch < 1 || a->batch > 4096) return cli_usage_error(CMD, "--batch must be in 1..4096 (got %d)", a->batch);
    if (a->threads < 0) return cli_usage_error(CMD, "--threads must be >= 0 (got %d)", a->threads);
    return CLI_RUN;
}

static int read_8bit(const char *path, Stack *s)
{
    if (tiff_read_stack(path, s)) return SD_ERR;
    if (s->bits == 32) return sd_fail("%s: float pages; encode takes 8-bit (or 16-bit) stacks", path);
    return SD_OK;
}

/* Both stacks, and the tile size that cuts their pages evenly. */
static int read_tiles(const EncodeArgs *a, Tiles *t)
{
    if (read_8bit(a->in, &t->image)) return SD_ERR;
    const Stack *s = &t->image;
    t->th = a->tile ? a->tile : s->h, t->tw = a->tile ? a->tile : s->w;
    if (s->h % t->th || s->w % t->tw || t->th % 8 || t->tw % 8)
        return sd_fail(a->tile ? "%s: pages of %dx%d do not divide into tiles of %dx%d"
                               : "%s: pages of %dx%d: the VAE needs sides that are multiples of 8 (or give --tile)",
                       a->in, s->h, s->w, t->th, t->tw);
    t->per_page = (s->h / t->th) * (s->w / t->tw);
    if ((long)s->pages * t->per_page > 1000000) return sd_fail("%s: more than a million tiles", a->in);
    t->count = s->pages * t->per_page;
    if (!a->mask) return SD_OK;
    if (read_8bit(a->mask, &t->mask)) return SD_ERR;
    if (t->mask.pages != s->pages || t->mask.h != s->h || t->mask.w != s->w)
        return sd_fail("%s: %d pages of %dx%d, but the images are %d of %dx%d", a->mask, t->mask.pages, t->mask.h,
                       t->mask.w, s->pages, s->h, s->w);
    return SD_OK;
}

static void tiles_free(Tiles *t)
{
    stack_free(&t->image);
    stack_free(&t->mask);
}

/* Channel `ch` of every tile of x [count, in_ch, th, tw]: images to [-1, 1], masks to +-1. */
static void cut_channel(const Tiles *t, const Stack *s, int is_mask, int ch, int in_ch, real *x)
{
    int cols = s->w / t->tw;
#pragma omp parallel for
    for (int i = 0; i < t->count; i++) {
        int page = i / t->per_page, r = i % t->per_page / cols, c = i % t->per_page % cols;
        const float *src = s->data + ((size_t)page * s->h + (size_t)r * t->th) * s->w + (size_t)c * t->tw;
        real *dst = x + ((size_t)i * in_ch + ch) * t->th * t->tw;
        for (int y = 0; y < t->th; y++)
            for (int xx = 0; xx < t->tw; xx++) {
                float v = src[(size_t)y * s->w + xx];
                dst[(size_t)y * t->tw + xx] = is_mask ? (v > 0 ? 1 : -1) : gen_from_unit(v);
            }
    }
}

static int check_channels(const EncodeArgs *a, const VaeModel *v)
{
    int in_ch = v->m.cfg.in_ch;
    if (in_ch == 2 && !a->mask) return sd_fail("%s: this VAE encodes image + mask (2 channels): give --mask", a->vae);
    if (in_ch == 1 && a->mask) return sd_fail("%s: this VAE encodes images alone (1 channel): drop --mask", a->vae);
    if (in_ch != 1 && in_ch != 2) return sd_fail("%s: a VAE of %d input channels (encode takes 1 or 2)", a->vae, in_ch);
    return SD_OK;
}

/* All tiles -> latents, batch by batch, then the .npy. */
static int encode_tiles(const EncodeArgs *a, const VaeModel *v, const Backend *be, const Tiles *t)
{
    int in_ch = v->m.cfg.in_ch;
    VaeRunner r;
    if (vae_runner_init(&r, v, be, a->batch, t->th, t->tw)) return SD_ERR;
    real *x = malloc((size_t)t->count * r.image * sizeof(real));
    real *z = malloc((size_t)t->count * r.latent * sizeof(real));
    int rc = x && z ? SD_OK : sd_fail("out of memory for %d tiles", t->count);
    if (rc == SD_OK) {
        cut_channel(t, &t->image, 0, 0, in_ch, x);
        if (in_ch == 2) cut_channel(t, &t->mask, 1, 1, in_ch, x);
        Progress p;
        progress_start(&p, "encode: tiles", t->count);
        rc = vae_runner_encode(&r, t->count, x, z, a->sample, a->seed, &p);
        if (rc == SD_OK) progress_end(&p);
    }
    long shape[4] = {t->count, v->m.cfg.latent, t->th / 8, t->tw / 8};
    if (rc == SD_OK) rc = npy_save(a->out, z, sizeof(real) == sizeof(double), 4, shape);
    if (rc == SD_OK)
        printf("encode: %d tiles of %dx%d -> %s [%ld, %ld, %ld, %ld] (%s)\n", t->count, t->th, t->tw, a->out, shape[0],
               shape[1], shape[2], shape[3], a->sample ? "posterior samples" : "posterior means");
    free(x);
    free(z);
    vae_runner_free(&r);
    return rc;
}

typedef struct {
    const EncodeArgs *a;
    const Tiles *t;
} Encode;

static int encode(const void *ctx, const VaeModel *v, const Backend *be)
{
    const Encode *e = ctx;
    if (check_channels(e->a, v)) return 2;
    return encode_tiles(e->a, v, be, e->t) ? 1 : 0;
}

int cmd_encode(int argc, char **argv)
{
    EncodeArgs a = {.device = "cpu", .batch = 8};
    const CliOpt opts[] = {
        {"vae", CLI_STR, &a.vae, "VAE checkpoint (train-vae's best.safetensors)", 1},
        {"in", CLI_STR, &a.in, "image stack (8-bit TIFF)", 1},
        {"mask", CLI_STR, &a.mask, "mask stack, for a VAE of image + mask", 0},
        {"out", CLI_STR, &a.out, "latents to write (.npy, float32 [n, latent, h/8, w/8])", 1},
        {"tile", CLI_INT, &a.tile, "encode T x T tiles of each page (0: whole pages)", 0},
        {"sample", CLI_FLAG, &a.sample, "draw from the posterior instead of taking its mean", 0},
        {"seed", CLI_U64, &a.seed, "seed of the --sample draws", 0},
        {"batch", CLI_INT, &a.batch, "tiles per forward pass", 0},
        {"device", CLI_STR, &a.device, "cpu or cuda", 0},
        {"threads", CLI_INT, &a.threads, "CPU threads (0: OpenMP's default)", 0},
        {NULL, 0, NULL, NULL, 0},
    };
    int st = cli_parse(argc, argv, "Encode a stack (or its tiles) into VAE latents.", opts);
    if (st != CLI_RUN || (st = check_args(&a)) != CLI_RUN) return st;
    if (a.threads > 0) omp_set_num_threads(a.threads);
    Tiles t = {0};
    st = read_tiles(&a, &t) ? cli_fail(CMD, 2) : gen_with_vae(CMD, a.device, a.vae, encode, &(Encode){&a, &t});
    tiles_free(&t);
    return st;
}
