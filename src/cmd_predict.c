/* sdseg predict: a network's raw output for an NCHW float32 batch (.npy in, .npy out), so
 * any tool, the PyTorch oracle among them, can compare forward passes. The model type is
 * the checkpoint's __metadata__ "model"; each type is one entry of `predictors`. The
 * generative models are chosen with --model: vae (the reconstruction of images in [-1, 1]
 * through the posterior mean) and ddpm (the U-Net's noise or v prediction for latents, in
 * its own scaled units, at timestep --t). */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "../core/err.h"
#include "../core/npy.h"
#include "../core/safetensors.h"
#include "../models/seg_unet.h"
#include "cli.h"
#include "device.h"
#include "gen_batch.h"

#define CMD "predict"

typedef struct {
    float *data;
    int ndim;
    long shape[NPY_MAX_DIMS];
} Output;

/* The segmentation U-Net: [n,1,h,w] images -> [n,1,h,w] logits, eval mode. */
static int predict_seg_unet(const StFile *f, const Backend *be, const NpyArray *x, int batch, Output *y)
{
    if (x->ndim != 4 || x->shape[1] != 1)
        return sd_fail("the segmentation U-Net takes [n, 1, h, w] images (got a %d-d array)", x->ndim);
    long n = x->shape[0];
    if (n < 1 || x->shape[2] > 65536 || x->shape[3] > 65536)
        return sd_fail("input batch of %ld images of %ldx%ld: nothing to do, or too large", n, x->shape[2],
                       x->shape[3]);
    size_t plane = (size_t)x->shape[2] * x->shape[3];
    int chunk = n < batch ? (int)n : batch;
    SegUnet *m = seg_unet_from_file(f, be, chunk, (int)x->shape[2], (int)x->shape[3]);
    if (!m) return SD_ERR;
    float *in = malloc((size_t)chunk * plane * sizeof(float));
    y->data = malloc(x->numel * sizeof(float));
    int rc = in && y->data ? SD_OK : sd_fail("out of memory for %ld images", n);
    for (long at = 0; at < n && !rc; at += chunk) {
        int k = n - at < chunk ? (int)(n - at) : chunk;
        for (size_t i = 0; i < (size_t)k * plane; i++) in[i] = (float)x->data[at * plane + i];
        rc = seg_unet_logits(m, k, in, y->data + at * plane);
    }
    y->ndim = 4;
    memcpy(y->shape, x->shape, sizeof y->shape);
    free(in);
    seg_unet_free(m);
    return rc;
}

/* Images x [n, in_ch, h, w] in [-1, 1] -> their reconstructions, decoded from the posterior
 * mean (with the encoder's features where the decoder reads them). */
static int reconstruct(const VaeModel *v, const Backend *be, const NpyArray *x, int batch, Output *y)
{
    if (x->ndim != 4 || x->shape[0] < 1 || x->shape[1] != v->m.cfg.in_ch || x->shape[2] > 65536 || x->shape[3] > 65536)
        return sd_fail("the VAE takes [n, %d, h, w] images (got a %d-d array)", v->m.cfg.in_ch, x->ndim);
    VaeRunner r;
    if (vae_runner_init(&r, v, be, batch, (int)x->shape[2], (int)x->shape[3])) return SD_ERR;
    real *host = malloc(2 * x->numel * sizeof(real)); /* the images, then the reconstructions */
    y->data = malloc(x->numel * sizeof(float));
    int rc = host && y->data ? SD_OK : sd_fail("out of memory for %ld images", x->shape[0]);
    if (rc == SD_OK) {
        for (size_t i = 0; i < x->numel; i++) host[i] = (real)x->data[i];
        rc = vae_runner_reconstruct(&r, (int)x->shape[0], host, host + x->numel, NULL);
        for (size_t i = 0; i < x->numel && rc == SD_OK; i++) y->data[i] = (float)host[x->numel + i];
    }
    y->ndim = 4;
    memcpy(y->shape, x->shape, sizeof y->shape);
    free(host);
    vae_runner_free(&r);
    return rc;
}

static int predict_vae(const char *weights, const Backend *be, const NpyArray *x, int batch, Output *y)
{
    VaeModel v;
    if (vae_model_load(&v, be, weights)) return SD_ERR;
    int rc = reconstruct(&v, be, x, batch, y);
    vae_model_free(&v);
    return rc;
}

/* The U-Net's prediction for every latent of x at timestep t, `batch` at a time. */
static int unet_over_batches(const DdpmModel *d, const Backend *be, const NpyArray *x, int batch, int t, float *y)
{
    int h = (int)x->shape[2], w = (int)x->shape[3];
    long n = x->shape[0];
    size_t per = x->numel / (size_t)n;
    Workspace ws;
    ws_init(&ws, be);
    UnetDenoiser den = {&d->m, &d->p, &ws, h, w};
    int chunk = n < batch ? (int)n : batch;
    size_t bytes = (size_t)chunk * per * sizeof(real);
    real *in = be->alloc(be->ctx, bytes), *out = be->alloc(be->ctx, bytes), *host = malloc(bytes);
    int rc = host ? SD_OK : sd_fail("out of memory for %d latents", chunk);
    for (long at = 0; at < n && rc == SD_OK; at += chunk) {
        int k = n - at < chunk ? (int)(n - at) : chunk;
        for (size_t i = 0; i < (size_t)k * per; i++) host[i] = (real)x->data[at * per + i];
        be->upload(be->ctx, in, host, (size_t)k * per * sizeof(real));
        if ((rc = unet_denoise(&den, t, k, out, in))) break;
        be->download(be->ctx, host, out, (size_t)k * per * sizeof(real));
        for (size_t i = 0; i < (size_t)k * per; i++) y[at * per + i] = (float)host[i];
    }
    free(host);
    be->release(be->ctx, in);
    be->release(be->ctx, out);
    ws_free(&ws);
    return rc;
}

/* Latents x [n, latent, h, w] (the U-Net's scaled units) -> its prediction (noise or v, as
 * the checkpoint's schedule says) at timestep t. */
static int denoise(const DdpmModel *d, const Backend *be, const NpyArray *x, int batch, int t, Output *y)
{
    if (x->ndim != 4 || x->shape[0] < 1 || x->shape[1] != d->m.cfg.in_ch || x->shape[2] > 4096 || x->shape[3] > 4096)
        return sd_fail("the diffusion model takes [n, %d, h, w] latents (got a %d-d array)", d->m.cfg.in_ch, x->ndim);
    if (t < 0 || t >= d->sched.steps)
        return sd_fail("--t %d is not a timestep of this model (0..%d)", t, d->sched.steps - 1);
    y->data = malloc(x->numel * sizeof(float));
    y->ndim = 4;
    memcpy(y->shape, x->shape, sizeof y->shape);
    if (!y->data) return sd_fail("out of memory for %ld latents", x->shape[0]);
    return unet_over_batches(d, be, x, batch, t, y->data);
}

static int predict_ddpm(const char *weights, const Backend *be, const NpyArray *x, int batch, int t, int ema,
                        Output *y)
{
    DdpmModel d;
    if (ddpm_model_load(&d, be, weights, ema)) return SD_ERR;
    int rc = denoise(&d, be, x, batch, t, y);
    ddpm_model_free(&d);
    return rc;
}

static const struct {
    const char *model;
    int (*run)(const StFile *f, const Backend *be, const NpyArray *x, int batch, Output *y);
} predictors[] = {
    {SEG_UNET_MODEL, predict_seg_unet},
};

static int predict(const char *weights, const Backend *be, const NpyArray *x, int batch, Output *y)
{
    StFile f;
    if (st_read(weights, &f)) return SD_ERR;
    const char *model = st_meta(&f, "model");
    int rc = sd_fail("%s: unknown model '%s' in its metadata", weights, model ? model : "(none)");
    for (size_t i = 0; i < sizeof predictors / sizeof *predictors; i++)
        if (model && !strcmp(model, predictors[i].model)) rc = predictors[i].run(&f, be, x, batch, y);
    st_free(&f);
    return rc;
}

int cmd_predict(int argc, char **argv)
{
    const char *weights = NULL, *input = NULL, *output = NULL, *device = "cpu", *model = NULL;
    int fast = 0, batch = 8, t = -1, no_ema = 0, threads = 0;
    const CliOpt opts[] = {
        {"weights", CLI_STR, &weights, "checkpoint (.safetensors)", 1},
        {"input", CLI_STR, &input, "input batch, NCHW float32 .npy", 1},
        {"output", CLI_STR, &output, "output .npy (raw network output: logits)", 1},
        {"device", CLI_STR, &device, "cpu or cuda", 0},
        {"fast", CLI_FLAG, &fast, "cuda: bf16 convolutions and matrix products", 0},
        {"batch", CLI_INT, &batch, "samples per forward pass", 0},
        {"model", CLI_STR, &model, "vae or ddpm (default: the model the checkpoint's metadata names)", 0},
        {"t", CLI_INT, &t, "ddpm: the timestep", 0},
        {"no-ema", CLI_FLAG, &no_ema, "ddpm: the raw weights even when the checkpoint has EMA weights", 0},
        {"threads", CLI_INT, &threads, "CPU threads (0: OpenMP's default)", 0},
        {NULL, 0, NULL, NULL, 0},
    };
    int st = cli_parse(argc, argv, "run a trained network on a batch (raw output, for comparisons)", opts);
    if (st != CLI_RUN) return st;
    if (batch < 1) return cli_usage_error(CMD, "--batch must be at least 1");
    if (model && strcmp(model, "vae") && strcmp(model, "ddpm"))
        return cli_usage_error(CMD, "--model must be vae or ddpm (got '%s')", model);
    if (model && !strcmp(model, "ddpm") && t < 0) return cli_usage_error(CMD, "--model ddpm needs --t");
    if (threads < 0) return cli_usage_error(CMD, "--threads must be >= 0 (got %d)", threads);
    if (threads > 0) omp_set_num_threads(threads);
    NpyArray x;
    if (npy_load(input, &x)) return cli_fail(CMD, 2);
    Backend be;
    if (device_open(device, fast, &be)) {
        free(x.data);
        return cli_fail(CMD, 2);
    }
    Output y = {0};
    int rc = !model                 ? predict(weights, &be, &x, batch, &y)
             : !strcmp(model, "vae") ? predict_vae(weights, &be, &x, batch, &y)
                                     : predict_ddpm(weights, &be, &x, batch, t, !no_ema, &y);
    rc = rc || npy_save(output, y.data, 0, y.ndim, y.shape);
    device_close(&be);
    free(x.data);
    free(y.data);
    return rc ? cli_fail(CMD, 1) : 0;
}
