/* sdseg sample: images from the latent diffusion model. Latents come from the sampler
 * (models/diffusion_sched.h) with the U-Net, are divided by the checkpoint's latent scale
 * and decoded by the VAE's decoder alone (vae_generate), [-1, 1] mapped to 0..255.
 *
 * Writes DIR/samples.tif (one page per image), with a VAE of image + mask DIR/masks.tif
 * (mask channel > 0 -> 255), DIR/grid.png (the first GRID_MAX images; with masks, their
 * outlines in red) and DIR/sample.csv (seconds per image: sampling, decoding, model time
 * and total). Sample i's noise depends only on i and the seed (SamplerConfig.first), so
 * --batch does not change the images. Exit status 2 for bad input (options, checkpoints,
 * a VAE that does not fit the U-Net), 1 when the run itself fails. */
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../core/err.h"
#include "../core/fileio.h"
#include "../core/png.h"
#include "../core/tiff.h"
#include "cli.h"
#include "device.h"
#include "gen_batch.h"

#define CMD "sample"
#define GRID_MAX 64

typedef struct {
    const char *ddpm, *vae, *out, *sampler, *device;
    int count, batch, steps, ema, no_ema, threads;
    double eta;
    uint64_t seed;
} SampleArgs;

/* The loaded models and what a run measured. */
typedef struct {
    const SampleArgs *a;
    SamplerConfig sc;
    Backend be;
    DdpmModel d;
    VaeModel v;
    int h, w, in_ch;                    /* image size and channels */
    double start, sample_s, decode_s;   /* cli_now() at the start; seconds */
} Sampling;

static int check_args(SampleArgs *a, SamplerConfig *sc)
{
    if (sampler_kind_parse(a->sampler, &sc->kind)) return cli_usage_error(CMD, "--sampler: %s", sd_last_error());
    if (a->count < 1 || a->count > 1000000)
        return cli_usage_error(CMD, "--count must be in 1..1000000 (got %d)", a->count);
    if (a->batch < 1 || a->batch > 4096) return cli_usage_error(CMD, "--batch must be in 1..4096 (got %d)", a->batch);
    if (a->steps < 1) return cli_usage_error(CMD, "--steps must be at least 1 (got %d)", a->steps);
    if (!(a->eta >= 0 && a->eta <= 1)) return cli_usage_error(CMD, "--eta must be in [0, 1] (got %g)", a->eta);
    if (a->ema && a->no_ema) return cli_usage_error(CMD, "--ema and --no-ema contradict each other");
    if (a->threads < 0) return cli_usage_error(CMD, "--threads must be >= 0 (got %d)", a->threads);
    sc->steps = a->steps, sc->eta = a->eta, sc->seed = a->seed;
    return CLI_RUN;
}

/* ------------------------------------------------------------------ models */

/* The VAE fits the U-Net, and the sampler's grid fits the schedule (checked before any work). */
static int check_models(const Sampling *s, const char *vae_path)
{
    int lat = s->v.m.cfg.latent, in_ch = s->v.m.cfg.in_ch, unet_ch = s->d.m.cfg.in_ch;
    if (lat != unet_ch)
        return sd_fail("%s: a latent of %d channels, but the diffusion model works on %d", vae_path, lat, unet_ch);
    if (in_ch != 1 && in_ch != 2) return sd_fail("%s: a VAE of %d channels (sample writes 1 or 2)", vae_path, in_ch);
    int *ts = malloc((size_t)s->sc.steps * sizeof *ts);
    int rc = ts ? sampler_timesteps(&s->sc, s->d.sched.steps, ts) : sd_fail("out of memory for %d steps", s->sc.steps);
    free(ts);
    return rc;
}

/* Device, diffusion model, then the VAE it names (or --vae). SD_ERR: bad input. */
static int open_models(Sampling *s)
{
    const SampleArgs *a = s->a;
    if (device_open(a->device, 0, &s->be)) return SD_ERR;
    if (ddpm_model_load(&s->d, &s->be, a->ddpm, !a->no_ema)) {
        device_close(&s->be);
        return SD_ERR;
    }
    const char *vae_path = a->vae ? a->vae : s->d.vae_path;
    int rc = *vae_path ? vae_model_load(&s->v, &s->be, vae_path)
                       : sd_fail("%s names no VAE: give --vae", a->ddpm);
    if (rc == SD_OK && check_models(s, vae_path)) {
        vae_model_free(&s->v);
        rc = SD_ERR;
    }
    if (rc) {
        ddpm_model_free(&s->d);
        device_close(&s->be);
        return SD_ERR;
    }
    s->h = 8 * s->d.latent_h, s->w = 8 * s->d.latent_w, s->in_ch = s->v.m.cfg.in_ch;
    return SD_OK;
}

static void close_models(Sampling *s)
{
    vae_model_free(&s->v);
    ddpm_model_free(&s->d);
    device_close(&s->be);
}

/* ------------------------------------------------------------------ sampling */

/* unet_denoise counting the model evaluations for the progress line. */
typedef struct {
    UnetDenoiser unet;
    Progress *progress;
    long done;
} CountingDenoiser;

static int counting_denoise(void *user, int t, int n, real *out, const real *x)
{
    CountingDenoiser *c = user;
    int rc = unet_denoise(&c->unet, t, n, out, x);
    progress_step(c->progress, ++c->done);
    return rc;
}

/* Every latent, batch by batch, unscaled (/ latent_scale) into lat [count, per]. */
static int sample_latents(Sampling *s, real *lat)
{
    const Backend *be = &s->be;
    const SampleArgs *a = s->a;
    size_t per = (size_t)s->d.m.cfg.in_ch * s->d.latent_h * s->d.latent_w;
    Workspace ws;
    ws_init(&ws, be);
    Progress p;
    progress_start(&p, "sample: model evaluations", (long)((a->count + a->batch - 1) / a->batch) * a->steps);
    CountingDenoiser den = {{&s->d.m, &s->d.p, &ws, s->d.latent_h, s->d.latent_w}, &p, 0};
    real *x = be->alloc(be->ctx, (size_t)a->batch * per * sizeof(real));
    int rc = SD_OK;
    for (int at = 0; at < a->count && rc == SD_OK; at += a->batch) {
        int k = a->count - at < a->batch ? a->count - at : a->batch;
        SamplerConfig c = s->sc;
        c.first = (uint64_t)at;
        sampler_initial_noise(be, &c, k, per, x);
        rc = sampler_run(be, &s->d.sched, &c, counting_denoise, &den, k, per, x);
        if (rc) break;
        be->scale(be->ctx, (size_t)k * per, (real)(1.0 / s->d.latent_scale), x);
        be->download(be->ctx, lat + (size_t)at * per, x, (size_t)k * per * sizeof(real));
    }
    if (rc == SD_OK) progress_end(&p);
    be->release(be->ctx, x);
    ws_free(&ws);
    return rc;
}

/* Latents -> images [count, in_ch, h, w], timing both stages. */
static int generate(Sampling *s, real *lat, real *images)
{
    double t0 = cli_now();
    if (sample_latents(s, lat)) return SD_ERR;
    double t1 = cli_now();
    VaeRunner r;
    if (vae_runner_init(&r, &s->v, &s->be, s->a->batch, s->h, s->w)) return SD_ERR;
    Progress p;
    progress_start(&p, "sample: decoding", s->a->count);
    int rc = vae_runner_generate(&r, s->a->count, lat, images, &p);
    if (rc == SD_OK) progress_end(&p);
    vae_runner_free(&r);
    s->sample_s = t1 - t0, s->decode_s = cli_now() - t1;
    return rc;
}

/* ------------------------------------------------------------------ outputs */

static const char *out_path(const Sampling *s, const char *name)
{
    static char path[4200];
    snprintf(path, sizeof path, "%s/%s", s->a->out, name);
    return path;
}

static int write_grid(const Sampling *s, const uint8_t *img, const uint8_t *mask)
{
    int n = s->a->count < GRID_MAX ? s->a->count : GRID_MAX, cols = (int)ceil(sqrt(n));
    if (!mask) return png_write_grid(out_path(s, "grid.png"), n, s->h, s->w, 1, img, cols);
    uint8_t *rgb = malloc((size_t)n * s->h * s->w * 3);
    if (!rgb) return sd_fail("out of memory for the grid");
    png_outline_rgb(img, mask, n, s->h, s->w, rgb);
    int rc = png_write_grid(out_path(s, "grid.png"), n, s->h, s->w, 3, rgb, cols);
    free(rgb);
    return rc;
}

/* samples.tif, masks.tif (2 channels) and grid.png. */
static int write_images(const Sampling *s, const real *images)
{
    int n = s->a->count;
    size_t plane = (size_t)s->h * s->w;
    uint8_t *img = malloc((size_t)n * plane), *mask = s->in_ch == 2 ? malloc((size_t)n * plane) : NULL;
    int rc = img && (mask || s->in_ch == 1) ? SD_OK : sd_fail("out of memory for %d images", n);
    if (rc == SD_OK) {
        gen_pages_u8(images, n, s->in_ch, plane, 0, 0, img);
        rc = tiff_write_u8(out_path(s, "samples.tif"), n, s->h, s->w, img);
    }
    if (rc == SD_OK && mask) {
        gen_pages_u8(images, n, s->in_ch, plane, 1, 1, mask);
        rc = tiff_write_u8(out_path(s, "masks.tif"), n, s->h, s->w, mask);
    }
    if (rc == SD_OK) rc = write_grid(s, img, mask);
    free(img);
    free(mask);
    return rc;
}

/* sample.csv: the settings and the seconds per image; printed too. */
static int write_timing(const Sampling *s)
{
    const SampleArgs *a = s->a;
    double n = a->count, model = (s->sample_s + s->decode_s) / n, total = (cli_now() - s->start) / n;
    AtomicFile af;
    if (atomic_open(&af, out_path(s, "sample.csv"))) return SD_ERR;
    fprintf(af.f, "count,batch,sampler,steps,eta,seed,ema,device,height,width,sample_s_per_image,"
                  "decode_s_per_image,model_s_per_image,total_s_per_image\n");
    fprintf(af.f, "%d,%d,%s,%d,%g,%llu,%d,%s,%d,%d,%.6g,%.6g,%.6g,%.6g\n", a->count, a->batch,
            sampler_kind_name(s->sc.kind), a->steps, a->eta, (unsigned long long)a->seed, !a->no_ema, a->device, s->h,
            s->w, s->sample_s / n, s->decode_s / n, model, total);
    if (atomic_commit(&af)) return SD_ERR;
    printf("sample: %d images of %dx%d (%s, %d steps, seed %llu) -> %s: model %.3g s/image (sampling %.3g, "
           "decoding %.3g), total %.3g s/image\n",
           a->count, s->h, s->w, sampler_kind_name(s->sc.kind), a->steps, (unsigned long long)a->seed, a->out, model,
           s->sample_s / n, s->decode_s / n, total);
    return SD_OK;
}

static int run(Sampling *s)
{
    size_t per = (size_t)s->d.m.cfg.in_ch * s->d.latent_h * s->d.latent_w;
    size_t pixels = (size_t)s->in_ch * s->h * s->w;
    real *lat = malloc((size_t)s->a->count * per * sizeof(real));
    real *images = malloc((size_t)s->a->count * pixels * sizeof(real));
    int rc = lat && images ? SD_OK : sd_fail("out of memory for %d images", s->a->count);
    if (rc == SD_OK) rc = generate(s, lat, images);
    if (rc == SD_OK) rc = write_images(s, images);
    if (rc == SD_OK) rc = write_timing(s);
    free(lat);
    free(images);
    return rc;
}

int cmd_sample(int argc, char **argv)
{
    SampleArgs a = {.sampler = "ddpm", .device = "cpu", .count = 16, .batch = 4, .steps = 50};
    const CliOpt opts[] = {
        {"ddpm", CLI_STR, &a.ddpm, "diffusion checkpoint (train-ddpm's best.safetensors)", 1},
        {"vae", CLI_STR, &a.vae, "VAE checkpoint (default: the one the diffusion model was trained on)", 0},
        {"out", CLI_STR, &a.out, "output folder (created if needed)", 1},
        {"count", CLI_INT, &a.count, "images to generate", 0},
        {"batch", CLI_INT, &a.batch, "images per forward pass (does not change the images)", 0},
        {"sampler", CLI_STR, &a.sampler, "ddpm (ancestral, the seed's), ddim or dpm++2m", 0},
        {"steps", CLI_INT, &a.steps, "model evaluations (ddpm with 1000: full ancestral sampling)", 0},
        {"eta", CLI_FLOAT, &a.eta, "ddim: noise of each step (0: deterministic)", 0},
        {"seed", CLI_U64, &a.seed, "noise seed", 0},
        {"ema", CLI_FLAG, &a.ema, "the EMA weights, when the checkpoint has them (the default)", 0},
        {"no-ema", CLI_FLAG, &a.no_ema, "the raw weights even when the checkpoint has EMA weights", 0},
        {"device", CLI_STR, &a.device, "cpu or cuda", 0},
        {"threads", CLI_INT, &a.threads, "CPU threads (0: OpenMP's default)", 0},
        {NULL, 0, NULL, NULL, 0},
    };
    Sampling s = {.a = &a, .start = cli_now()};
    int st = cli_parse(argc, argv, "Generate images (and masks) with the latent diffusion model.", opts);
    if (st != CLI_RUN || (st = check_args(&a, &s.sc)) != CLI_RUN) return st;
    if (a.threads > 0) omp_set_num_threads(a.threads);
    if (open_models(&s)) return cli_fail(CMD, 2);
    if (mkdir(a.out, 0777) && errno != EEXIST) {
        close_models(&s);
        return cli_usage_error(CMD, "cannot create %s: %s", a.out, strerror(errno));
    }
    st = run(&s) ? cli_fail(CMD, 1) : 0;
    close_models(&s);
    return st;
}
