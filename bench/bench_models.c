/* Model-level benchmark of the three seed networks on the CPU or a GPU (bench/bench_models.sh
 * and bench/bench_models_gpu.sh run it case by case beside bench/torch_models.py, and write
 * the reports).
 *
 *   bench_models peak [--threads N]
 *       the CPU's peak (bench/cpu_peak.h) as one CSV row: threads,ghz,lanes,isa,peak_gflops,
 *       memory_gbs
 *   bench_models CASE [--width N] [--batch N] [--size N] [--stack PxHxW] [--vae-width N] [--reps N]
 *                     [--threads N] [--device cpu|cuda] [--fast]
 *       seg-train          segmentation U-Net training steps (seed recipe: BCE, Adam with the
 *                          Keras L2), batch x size^2 phantom tiles; items: images
 *       seg-infer          sdseg segment's path over a phantom stack of --stack pages x height x
 *                          width (default 1x768x1024, one EPFL slice): tiles of 256 overlapping
 *                          by 64, blended; random weights; items: megapixels
 *       vae-forward        VAE encode + decode (z = mean), batch x 1 x size^2; items: images
 *       diffusion-forward  diffusion U-Net noise prediction, batch x 32 x size^2 latents
 *       sample-ddpm        generation as `sdseg sample` does it: batch x 32 x (size/8)^2 latents
 *       sample-ddim        from noise through the sampler (DDPM ancestral 50 steps, DDIM 50
 *       sample-dpm++2m     steps, DPM-Solver++(2M) 20 steps) with the diffusion U-Net, then
 *                          the VAE decodes them into batch x 2 x size^2 images (image + mask);
 *                          both models in their improved configs, as the repro chain uses them
 *                          (U-Net time embedding width-wide as train-ddpm makes it; VAE
 *                          GroupNorm groups min(32, vae-width / 2)); items: images
 *       --width is the seg U-Net's base width (64), the VAE's base (128) or the diffusion
 *       U-Net's base (320); --vae-width the VAE's base in the sampling cases (128); other
 *       sizes are for quick checks. --device picks the backend (src/device.h; default cpu),
 *       --fast the CUDA backend's bf16 mode (bf16 operands, float32 accumulation).
 *       Prints one CSV row (the columns of BENCH_COLUMNS, shared with torch_models.py) on
 *       stdout, progress on stderr. One case per process: getrusage's peak RSS and the GPU
 *       memory accountant's peak (gpu/gpu.h: every device allocation of the backend) are
 *       the case's.
 *
 * Timing: one warm-up iteration (page faults, workspace growth, thread start, cuDNN's
 * algorithm choice; seg-infer: one batch of tiles), then --reps timed iterations, each
 * between two waits for the backend (sync: on a GPU the work is asynchronous); the best
 * (the least disturbed on a shared machine) is reported. FLOPs are
 * counted, not estimated (seg-infer: per tile in the warm-up, times the tiles): the
 * backend's conv, transposed-conv, linear and attention forwards are wrapped to add up
 * 2 x multiply-adds as they run (the convention of ../shared/docs/seed-models.md); a
 * training step counts as three forward passes. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "../core/err.h"
#include "../core/phantom.h"
#include "../core/tiling.h"
#include "../gpu/gpu.h"
#include "../models/diffusion_sched.h"
#include "../models/diffusion_unet.h"
#include "../models/seg_unet.h"
#include "../models/vae.h"
#include "../models/workspace.h"
#include "../src/device.h"
#include "../src/seg_trainer.h"
#include "cpu_peak.h"

#define INFER_TILE 256
#define INFER_OVERLAP 64
#define MAX_REPS 50

typedef struct {
    const char *name;
    int width, batch, size, reps;
    int pages, h, w; /* seg-infer's stack */
    int vae_width;   /* the sampling cases' VAE */
    const char *device;
    int fast; /* the CUDA backend's bf16 mode */
} Args;

/* What a case reports: work per iteration and the timed iterations. */
typedef int (*IterFn)(void *state);

typedef struct {
    double items;       /* images or megapixels per iteration */
    const char *unit;   /* "images" or "MP" */
    IterFn warm;        /* the warm-up, when not one iteration: its FLOPs x warm_scale are */
    double warm_scale;  /* an iteration's */
    double fwd_flop;    /* counted forward FLOPs per iteration */
    int passes;         /* FLOPs per iteration = passes x forward (3 for training) */
    double sec[MAX_REPS];
} Result;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

/* ------------------------------------------------------------ FLOP counting backend */

static Backend inner; /* the backend the counting wrappers call through */
static double counted_flop;

static void count_conv2d(void *ctx, const Conv2dShape *s, real *y, const real *x, const real *w, const real *b)
{
    counted_flop += 2.0 * s->n * s->c_out * s->h_out * s->w_out * s->c_in * s->kh * s->kw;
    inner.conv2d_forward(ctx, s, y, x, w, b);
}

static void count_convt(void *ctx, const ConvT2dShape *s, real *y, const real *x, const real *w, const real *b)
{
    counted_flop += 2.0 * s->n * s->c_in * s->h * s->w * s->c_out * s->k * s->k;
    inner.conv_transpose2d_forward(ctx, s, y, x, w, b);
}

static void count_linear(void *ctx, const LinearShape *s, real *y, const real *x, const real *w, const real *b)
{
    counted_flop += 2.0 * s->rows * s->in * s->out;
    inner.linear_forward(ctx, s, y, x, w, b);
}

/* q k^T and probs v: two products of len x len x head_dim per head */
static void count_attention(void *ctx, const AttnShape *s, real *out, real *probs, const real *qkv)
{
    counted_flop += 4.0 * s->n * s->heads * s->len * s->len * s->head_dim;
    inner.attention_forward(ctx, s, out, probs, qkv);
}

/* The device's backend with the counting wrappers in place of its forwards. */
static int counting_backend(const Args *a, Backend *be)
{
    if (device_open(a->device, a->fast, &inner)) return SD_ERR;
    *be = inner;
    be->conv2d_forward = count_conv2d;
    be->conv_transpose2d_forward = count_convt;
    be->linear_forward = count_linear;
    be->attention_forward = count_attention;
    return SD_OK;
}

/* ------------------------------------------------------------ timing */

/* Seconds fn takes, from an idle backend until the backend has finished its work. */
static int timed_run(const Backend *be, IterFn fn, void *state, double *seconds)
{
    be->sync(be->ctx);
    double t = now();
    int rc = fn(state);
    be->sync(be->ctx);
    *seconds = now() - t;
    return rc;
}

/* The warm-up (one iteration unless r->warm; its FLOP count gives the per-iteration
 * count), then the timed iterations. */
static int time_iterations(const Backend *be, IterFn fn, void *state, const Args *a, Result *r)
{
    double warm_seconds;
    counted_flop = 0;
    if (timed_run(be, r->warm ? r->warm : fn, state, &warm_seconds)) return SD_ERR;
    r->fwd_flop = counted_flop * (r->warm ? r->warm_scale : 1);
    fprintf(stderr, "%s: warm-up %.2f s\n", a->name, warm_seconds);
    for (int i = 0; i < a->reps; i++) {
        if (timed_run(be, fn, state, &r->sec[i])) return SD_ERR;
        fprintf(stderr, "%s: iteration %d: %.3f s\n", a->name, i + 1, r->sec[i]);
    }
    return SD_OK;
}

static double best(const double *v, int n)
{
    double b = v[0];
    for (int i = 1; i < n; i++) b = v[i] < b ? v[i] : b;
    return b;
}

/* ------------------------------------------------------------ segmentation U-Net */

typedef struct {
    SegTrainer t;
    float *images, *masks;
} SegTrain;

static int seg_train_iter(void *state)
{
    SegTrain *s = state;
    double loss;
    return seg_trainer_step(&s->t, s->images, s->masks, &loss);
}

/* An EM-like phantom stack as floats: images in [0,1] (as tiff_read_stack gives them) and,
 * unless masks is NULL, masks 0/1. */
static int phantom_floats(int pages, int h, int w, float **images, float **masks)
{
    size_t count = (size_t)pages * h * w;
    uint8_t *img = malloc(count), *msk = malloc(count);
    *images = malloc(count * sizeof **images);
    if (masks) *masks = malloc(count * sizeof **masks);
    int rc = img && msk && *images && (!masks || *masks) ? phantom_make(pages, h, w, 1, img, msk)
                                                          : sd_fail("out of memory for the phantom");
    for (size_t i = 0; rc == SD_OK && i < count; i++) {
        (*images)[i] = img[i] / 255.0f;
        if (masks) (*masks)[i] = msk[i] ? 1.0f : 0.0f;
    }
    free(img);
    free(msk);
    return rc;
}

static int run_seg_train(const Args *a, const Backend *be, Result *r)
{
    SegTrain s = {0};
    *r = (Result){.items = a->batch, .unit = "images", .passes = 3};
    SegTrainConfig c = seg_recipe(0);
    c.width = a->width, c.batch = a->batch, c.tile_h = c.tile_w = a->size, c.steps_per_epoch = 1000;
    int rc = phantom_floats(a->batch, a->size, a->size, &s.images, &s.masks);
    if (rc == SD_OK) rc = seg_trainer_create(&s.t, be, &c);
    if (rc == SD_OK) rc = time_iterations(be, seg_train_iter, &s, a, r);
    if (s.t.model) seg_trainer_free(&s.t);
    free(s.images);
    free(s.masks);
    return rc;
}

typedef struct {
    SegUnet *m;
    float *stack, *probs;
    int batch, pages, h, w;
} SegInfer;

static int infer_tiles(void *user, int n, const float *tiles, float *out) { return seg_unet_infer(user, n, tiles, out); }

/* Warm-up: one batch of (blank) tiles, a fraction of a whole iteration. */
static int seg_infer_warm(void *state)
{
    SegInfer *s = state;
    size_t n = (size_t)s->batch * INFER_TILE * INFER_TILE;
    float *tiles = calloc(n, sizeof *tiles), *out = malloc(n * sizeof *out);
    int rc = tiles && out ? seg_unet_infer(s->m, s->batch, tiles, out) : sd_fail("out of memory for the warm-up");
    free(tiles);
    free(out);
    return rc;
}

static int seg_infer_iter(void *state)
{
    SegInfer *s = state;
    Tiling t = {INFER_TILE, INFER_OVERLAP, s->batch, NULL, NULL};
    return tiling_run(&t, s->pages, s->h, s->w, s->stack, infer_tiles, s->m, s->probs);
}

static int run_seg_infer(const Args *a, const Backend *be, Result *r)
{
    SegInfer s = {.batch = a->batch, .pages = a->pages, .h = a->h, .w = a->w};
    size_t voxels = (size_t)s.pages * s.h * s.w;
    Tiling t = {INFER_TILE, INFER_OVERLAP, a->batch, NULL, NULL};
    double tiles = (double)s.pages * tiling_count(&t, s.h, s.w);
    *r = (Result){.items = voxels / 1e6, .unit = "MP", .warm = seg_infer_warm, .warm_scale = tiles / a->batch, .passes = 1};
    int rc = phantom_floats(s.pages, s.h, s.w, &s.stack, NULL);
    s.probs = malloc(voxels * sizeof *s.probs);
    if (rc == SD_OK) rc = s.probs ? SD_OK : sd_fail("out of memory for the probabilities");
    if (rc == SD_OK) s.m = seg_unet_create(be, a->width, a->batch, INFER_TILE, INFER_TILE, 0, 0.01f);
    if (rc == SD_OK && !s.m) rc = SD_ERR;
    if (rc == SD_OK) {
        seg_unet_init(s.m, 1);
        rc = time_iterations(be, seg_infer_iter, &s, a, r);
    }
    seg_unet_free(s.m);
    free(s.stack);
    free(s.probs);
    return rc;
}

/* ------------------------------------------------------------ generative models */

/* Weights of PyTorch's default magnitudes, so activations stay in float's normal range:
 * kernels U(+-1/sqrt(fan_in)), normalization scales 1, biases and shifts 0. */
static void fill_weights(const Backend *be, const Params *p)
{
    for (int i = 0; i < p->list.count; i++) {
        const NamedTensor *t = &p->list.t[i];
        real *w = param_w(p, i);
        if (t->ndim > 1) {
            double bound = 1 / sqrt((double)t->numel / t->shape[0]);
            be->fill_uniform(be->ctx, t->numel, w, -bound, bound, 1, i, 0);
        } else if (t->group == PARAM_NO_DECAY && strstr(t->name, ".weight")) {
            be->fill_uniform(be->ctx, t->numel, w, 1, 1, 1, i, 0); /* U(1, 1): ones */
        }
    }
}

typedef struct {
    const Backend *be;
    Params p;
    Workspace ws;
    Vae vae;
    DiffusionUnet *unet;
    int n, size;
    real *x, *out, t[64];
} GenModel;

static int vae_iter(void *state)
{
    GenModel *g = state;
    VaeEncoding e;
    if (vae_encode(&g->vae, &g->p, &g->ws, g->n, g->size, g->size, g->x, &e)) return SD_ERR;
    vae_decode(&g->vae, &g->p, &g->ws, g->n, &e, e.mean, g->out);
    return SD_OK;
}

static int unet_iter(void *state)
{
    GenModel *g = state;
    return unet_forward(g->unet, &g->p, &g->ws, g->n, g->size, g->size, g->t, g->x, g->out);
}

/* Weights for the parameters declared into p. */
static int alloc_weights(const Backend *be, Params *p)
{
    if (params_alloc(p, 0)) return SD_ERR;
    fill_weights(be, p);
    return SD_OK;
}

/* Declared model -> weights, input and output of in_ch x size^2 per sample, then timing. */
static int run_generative(const Args *a, GenModel *g, int in_ch, IterFn fn, Result *r)
{
    const Backend *be = g->be;
    size_t count = (size_t)a->batch * in_ch * a->size * a->size;
    *r = (Result){.items = a->batch, .unit = "images", .passes = 1};
    int rc = alloc_weights(be, &g->p);
    if (rc == SD_OK) {
        g->x = be->alloc(be->ctx, count * sizeof(real));
        g->out = be->alloc(be->ctx, count * sizeof(real));
        be->fill_normal(be->ctx, count, g->x, 0, 1, 2, 0, 0);
        for (int i = 0; i < a->batch; i++) g->t[i] = 500;
        ws_init(&g->ws, be);
        rc = time_iterations(be, fn, g, a, r);
        ws_free(&g->ws);
        be->release(be->ctx, g->x);
        be->release(be->ctx, g->out);
    }
    params_free(&g->p);
    return rc;
}

static int run_vae(const Args *a, const Backend *be, Result *r)
{
    GenModel g = {.be = be, .n = a->batch, .size = a->size};
    VaeConfig cfg = vae_config_seed();
    cfg.base = a->width;
    params_init(&g.p, be);
    if (vae_declare(&g.vae, &cfg, &g.p)) return SD_ERR;
    return run_generative(a, &g, cfg.in_ch, vae_iter, r);
}

static int run_diffusion(const Args *a, const Backend *be, Result *r)
{
    GenModel g = {.be = be, .n = a->batch, .size = a->size, .unet = malloc(sizeof(DiffusionUnet))};
    UnetConfig cfg = unet_config_seed();
    cfg.base = a->width;
    params_init(&g.p, be);
    int rc = g.unet ? unet_declare(g.unet, &cfg, &g.p) : sd_fail("out of memory");
    if (rc == SD_OK) rc = run_generative(a, &g, cfg.in_ch, unet_iter, r);
    free(g.unet);
    return rc;
}

/* ------------------------------------------------------------ sampling */

#define SCHEDULE_STEPS 1000

/* Sampling steps of each sampler case: the seed's DDPM grid, DDIM on the same, DPM-Solver++. */
static int sampler_steps(SamplerKind kind) { return kind == SAMPLER_DPMPP_2M ? 20 : 50; }

typedef struct {
    const Backend *be;
    DiffusionUnet *unet;
    Vae vae;
    Params unet_p, vae_p;
    Workspace unet_ws, vae_ws;
    NoiseSchedule sched;
    SamplerConfig sc;
    int n, size, latent; /* images per iteration, their side, the latents' side */
    real *z, *images;
} Sampling;

/* One batch of images from noise: the sampler's steps, then the VAE decoder. */
static int sample_iter(void *state)
{
    Sampling *s = state;
    UnetDenoiser d = {s->unet, &s->unet_p, &s->unet_ws, s->latent, s->latent};
    size_t per = (size_t)s->unet->cfg.in_ch * s->latent * s->latent;
    sampler_initial_noise(s->be, &s->sc, s->n, per, s->z);
    if (sampler_run(s->be, &s->sched, &s->sc, unet_denoise, &d, s->n, per, s->z)) return SD_ERR;
    return vae_generate(&s->vae, &s->vae_p, &s->vae_ws, s->n, s->size, s->size, s->z, s->images);
}

/* The two improved models at the case's widths, declared. */
static int declare_sampling_models(const Args *a, Sampling *s)
{
    UnetConfig uc = unet_config_improved();
    VaeConfig vc = vae_config_improved();
    vc.in_ch = 2, vc.base = a->vae_width, vc.groups = a->vae_width / 2 < 32 ? a->vae_width / 2 : 32;
    uc.in_ch = vc.latent, uc.base = a->width, uc.time_in = a->width, uc.time_dim = 2 * a->width;
    if (a->size % 8) return sd_fail("--size must be a multiple of 8 (the VAE's downsampling), got %d", a->size);
    if (unet_declare(s->unet, &uc, &s->unet_p) || vae_declare(&s->vae, &vc, &s->vae_p)) return SD_ERR;
    return alloc_weights(s->be, &s->unet_p) || alloc_weights(s->be, &s->vae_p) ? SD_ERR : SD_OK;
}

static int run_sampling(const Args *a, const Backend *be, Result *r)
{
    Sampling s = {.be = be, .n = a->batch, .size = a->size, .latent = a->size / 8,
                  .unet = calloc(1, sizeof(DiffusionUnet))};
    *r = (Result){.items = a->batch, .unit = "images", .passes = 1};
    int rc = s.unet ? sampler_kind_parse(a->name + strlen("sample-"), &s.sc.kind) : sd_fail("out of memory");
    s.sc.steps = sampler_steps(s.sc.kind), s.sc.seed = 1;
    params_init(&s.unet_p, be);
    params_init(&s.vae_p, be);
    if (rc == SD_OK) rc = declare_sampling_models(a, &s);
    if (rc == SD_OK) rc = schedule_create(&s.sched, SCHEDULE_SCALED_LINEAR, PREDICT_EPSILON, SCHEDULE_STEPS, 0, 0);
    if (rc == SD_OK) {
        s.z = be->alloc(be->ctx, (size_t)s.n * s.vae.cfg.latent * s.latent * s.latent * sizeof(real));
        s.images = be->alloc(be->ctx, (size_t)s.n * s.vae.cfg.in_ch * s.size * s.size * sizeof(real));
        ws_init(&s.unet_ws, be);
        ws_init(&s.vae_ws, be);
        rc = time_iterations(be, sample_iter, &s, a, r);
        ws_free(&s.unet_ws);
        ws_free(&s.vae_ws);
        be->release(be->ctx, s.z);
        be->release(be->ctx, s.images);
        schedule_free(&s.sched);
    }
    params_free(&s.unet_p);
    params_free(&s.vae_p);
    free(s.unet);
    return rc;
}

/* ------------------------------------------------------------ command line */

typedef struct {
    const char *name;
    int (*run)(const Args *, const Backend *, Result *);
    int width, batch, size; /* the seed's sizes */
} Case;

static const Case cases[] = {
    {"seg-train", run_seg_train, 64, 8, 256},
    {"seg-infer", run_seg_infer, 64, 8, INFER_TILE},
    {"vae-forward", run_vae, 128, 1, 256},
    {"diffusion-forward", run_diffusion, 320, 1, 32},
    {"sample-ddpm", run_sampling, 320, 1, 256},
    {"sample-ddim", run_sampling, 320, 1, 256},
    {"sample-dpm++2m", run_sampling, 320, 1, 256},
};

static void usage(void)
{
    fprintf(stderr, "usage: bench_models peak [--threads N]\n"
                    "       bench_models seg-train|seg-infer|vae-forward|diffusion-forward|sample-ddpm|sample-ddim|\n"
                    "                    sample-dpm++2m [--width N] [--batch N] [--size N] [--stack PAGESxHxW]\n"
                    "                    [--vae-width N] [--reps N] [--threads N] [--device cpu|cuda] [--fast]\n");
    exit(2);
}

static int int_option(const char *flag, const char *text, int lo, int hi)
{
    char *end = NULL;
    long v = strtol(text, &end, 10);
    if (end == text || *end || v < lo || v > hi) sd_die(2, "%s must be an integer in %d..%d (got %s)", flag, lo, hi, text);
    return (int)v;
}

/* "PAGESxHxW", each side at least a tile (the phantom's limits: 1..4096 pages, sides <= 8192) */
static void parse_stack(const char *text, Args *a)
{
    char end;
    if (sscanf(text, "%dx%dx%d%c", &a->pages, &a->h, &a->w, &end) != 3 || a->pages < 1 || a->pages > 4096 ||
        a->h < INFER_TILE || a->w < INFER_TILE || a->h > 8192 || a->w > 8192)
        sd_die(2, "--stack must be PAGESxHxW with sides in %d..8192 (got %s)", INFER_TILE, text);
}

/* Options after the case name; sizes default to the case's seed sizes. */
static Args parse(int argc, char **argv, const Case *c)
{
    Args a = {argv[1], c ? c->width : 0, c ? c->batch : 0, c ? c->size : 0, 3, 1, 768, 1024, 128, "cpu", 0};
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--fast")) {
            a.fast = 1;
            continue;
        }
        if (i + 1 >= argc) usage();
        const char *flag = argv[i], *v = argv[++i];
        if (!strcmp(flag, "--width")) a.width = int_option(flag, v, 1, 4096);
        else if (!strcmp(flag, "--batch")) a.batch = int_option(flag, v, 1, 64);
        else if (!strcmp(flag, "--size")) a.size = int_option(flag, v, 8, 4096);
        else if (!strcmp(flag, "--reps")) a.reps = int_option(flag, v, 1, MAX_REPS);
        else if (!strcmp(flag, "--threads")) omp_set_num_threads(int_option(flag, v, 1, 1024));
        else if (!strcmp(flag, "--stack")) parse_stack(v, &a);
        else if (!strcmp(flag, "--vae-width")) a.vae_width = int_option(flag, v, 2, 4096);
        else if (!strcmp(flag, "--device")) a.device = v;
        else usage();
    }
    if (a.fast && strcmp(a.device, "cuda")) sd_die(2, "--fast is the CUDA backend's bf16 mode: use it with --device cuda");
    return a;
}

/* The most device memory the CUDA backend held at once, in MiB (0 on the CPU). */
static double peak_device_mib(const Backend *be)
{
#ifdef SDSEG_CUDA
    if (!strcmp(be->name, "cuda")) return gpu_memory_stats().peak / 1048576.0;
#endif
    (void)be;
    return 0;
}

static void print_row(const Args *a, const Backend *be, const Result *r)
{
    double sec = best(r->sec, a->reps), gflop = r->passes * r->fwd_flop / 1e9;
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    double cpu = u.ru_utime.tv_sec + u.ru_stime.tv_sec + 1e-6 * (u.ru_utime.tv_usec + u.ru_stime.tv_usec);
    /* BENCH_COLUMNS: impl,case,width,batch,size,items,unit,reps,seconds,rate,gflop,gflops,threads,peak_rss_mib,
     * cpu_s (this process's CPU time; ru_maxrss is in KiB on Linux),device,precision,mode,layout,peak_device_mib
     * (mode and layout are PyTorch's choices: sdseg has one way, "-" and NCHW) */
    printf("sdseg,%s,%d,%d,%d,%.6g,%s,%d,%.6g,%.6g,%.6g,%.6g,%d,%.1f,%.2f,%s,%s,-,nchw,%.1f\n", a->name, a->width,
           a->batch, a->size, r->items, r->unit, a->reps, sec, r->items / sec, gflop, gflop / sec,
           omp_get_max_threads(), u.ru_maxrss / 1024.0, cpu, a->device, a->fast ? "bf16" : "fp32",
           peak_device_mib(be));
}

int main(int argc, char **argv)
{
    if (argc < 2) usage();
    const Case *c = NULL;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        if (!strcmp(argv[1], cases[i].name)) c = &cases[i];
    if (!c && strcmp(argv[1], "peak")) usage();
    Args a = parse(argc, argv, c);
    if (!c) {
        CpuPeak p = cpu_peak_detect(omp_get_max_threads());
        printf("%d,%.3f,%d,%s,%.1f,%.1f\n", p.threads, p.ghz, p.lanes, p.isa, p.gflops, cpu_bandwidth_gbs(p.threads));
        return 0;
    }
    Backend be;
    Result r = {0};
    if (counting_backend(&a, &be) || c->run(&a, &be, &r)) sd_die(1, "%s: %s", a.name, sd_last_error());
    print_row(&a, &be, &r);
    device_close(&be);
    return 0;
}
