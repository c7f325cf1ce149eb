/* sdseg decode: latents [n, latent, h, w] (.npy, e.g. from sdseg encode) through the VAE's
 * decoder alone (vae_generate: a decoder that reads encoder features gets zeros there)
 * -> an 8-bit TIFF stack of n pages of 8h x 8w, [-1, 1] mapped to 0..255. A VAE of image +
 * mask also writes the mask channel (--out-mask: > 0 -> 255). Exit status 2 for bad input
 * (options, files, shapes, the checkpoint), 1 when the run itself fails. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

#include "../core/err.h"
#include "../core/npy.h"
#include "../core/tiff.h"
#include "cli.h"
#include "gen_batch.h"

#define CMD "decode"
#define MAX_LATENT_SIDE 4096 /* images of up to 32768 pixels a side */

typedef struct {
    const char *vae, *in, *out, *out_mask, *device;
    int batch, threads;
} DecodeArgs;

static int check_args(const DecodeArgs *a)
{
    if (a->batch < 1 || a->batch > 4096) return cli_usage_error(CMD, "--batch must be in 1..4096 (got %d)", a->batch);
    if (a->threads < 0) return cli_usage_error(CMD, "--threads must be >= 0 (got %d)", a->threads);
    return CLI_RUN;
}

/* The latents must be [n, the VAE's latent channels, h, w]. */
static int check_latents(const DecodeArgs *a, const NpyArray *z, const VaeModel *v)
{
    if (z->ndim != 4) return sd_fail("%s: a %d-d array; decode takes latents [n, latent, h, w]", a->in, z->ndim);
    if (z->shape[1] != v->m.cfg.latent)
        return sd_fail("%s: %ld latent channels, but the VAE's latent has %d", a->in, z->shape[1], v->m.cfg.latent);
    if (z->shape[0] < 1 || z->shape[0] > 1000000 || z->shape[2] < 1 || z->shape[3] < 1 ||
        z->shape[2] > MAX_LATENT_SIDE || z->shape[3] > MAX_LATENT_SIDE)
        return sd_fail("%s: %ld latents of %ldx%ld: empty or too large", a->in, z->shape[0], z->shape[2], z->shape[3]);
    if (a->out_mask && v->m.cfg.in_ch != 2)
        return sd_fail("%s: this VAE decodes images alone (%d channel): drop --out-mask", a->vae, v->m.cfg.in_ch);
    return SD_OK;
}

/* The image channel, and the mask channel when asked for. */
static int write_stacks(const DecodeArgs *a, int in_ch, int n, int h, int w, const real *images)
{
    size_t plane = (size_t)h * w;
    uint8_t *pages = malloc((size_t)n * plane);
    int rc = pages ? SD_OK : sd_fail("out of memory for %d pages of %dx%d", n, h, w);
    if (rc == SD_OK) {
        gen_pages_u8(images, n, in_ch, plane, 0, 0, pages);
        rc = tiff_write_u8(a->out, n, h, w, pages);
    }
    if (rc == SD_OK && a->out_mask) {
        gen_pages_u8(images, n, in_ch, plane, 1, 1, pages);
        rc = tiff_write_u8(a->out_mask, n, h, w, pages);
    }
    free(pages);
    return rc;
}

static int decode_latents(const DecodeArgs *a, const VaeModel *v, const Backend *be, const NpyArray *zin)
{
    int n = (int)zin->shape[0], h = 8 * (int)zin->shape[2], w = 8 * (int)zin->shape[3];
    VaeRunner r;
    if (vae_runner_init(&r, v, be, a->batch, h, w)) return SD_ERR;
    real *z = malloc(zin->numel * sizeof(real)), *images = malloc((size_t)n * r.image * sizeof(real));
    int rc = z && images ? SD_OK : sd_fail("out of memory for %d images of %dx%d", n, h, w);
    double t0 = cli_now();
    if (rc == SD_OK) {
        for (size_t i = 0; i < zin->numel; i++) z[i] = (real)zin->data[i];
        Progress p;
        progress_start(&p, "decode: images", n);
        rc = vae_runner_generate(&r, n, z, images, &p);
        if (rc == SD_OK) progress_end(&p);
    }
    if (rc == SD_OK) rc = write_stacks(a, v->m.cfg.in_ch, n, h, w, images);
    if (rc == SD_OK)
        printf("decode: %d latents -> %s (%d pages of %dx%d%s) in %.1f s\n", n, a->out, n, h, w,
               a->out_mask ? ", masks too" : "", cli_now() - t0);
    free(z);
    free(images);
    vae_runner_free(&r);
    return rc;
}

typedef struct {
    const DecodeArgs *a;
    const NpyArray *z;
} Decode;

static int decode(const void *ctx, const VaeModel *v, const Backend *be)
{
    const Decode *d = ctx;
    if (check_latents(d->a, d->z, v)) return 2;
    return decode_latents(d->a, v, be, d->z) ? 1 : 0;
}

int cmd_decode(int argc, char **argv)
{
    DecodeArgs a = {.device = "cpu", .batch = 8};
    const CliOpt opts[] = {
        {"vae", CLI_STR, &a.vae, "VAE checkpoint (train-vae's best.safetensors)", 1},
        {"in", CLI_STR, &a.in, "latents (.npy [n, latent, h, w], float32 or float64)", 1},
        {"out", CLI_STR, &a.out, "image stack to write (8-bit TIFF, n pages of 8h x 8w)", 1},
        {"out-mask", CLI_STR, &a.out_mask, "mask stack to write, for a VAE of image + mask (0/255)", 0},
        {"batch", CLI_INT, &a.batch, "latents per forward pass", 0},
        {"device", CLI_STR, &a.device, "cpu or cuda", 0},
        {"threads", CLI_INT, &a.threads, "CPU threads (0: OpenMP's default)", 0},
        {NULL, 0, NULL, NULL, 0},
    };
    int st = cli_parse(argc, argv, "Decode VAE latents into an 8-bit image stack.", opts);
    if (st != CLI_RUN || (st = check_args(&a)) != CLI_RUN) return st;
    if (a.threads > 0) omp_set_num_threads(a.threads);
    NpyArray z;
    if (npy_load(a.in, &z)) return cli_fail(CMD, 2);
    st = gen_with_vae(CMD, a.device, a.vae, decode, &(Decode){&a, &z});
    free(z.data);
    return st;
}
