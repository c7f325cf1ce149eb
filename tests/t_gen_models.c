/* The generative models, seed and improved configs.
 *
 *   t_gen_models           parameter declarations against the seed checkpoints' names and
 *                          shapes (tests/keys/{vae,diffusion}.tsv, copied from
 *                          ../shared/docs/checkpoint-keys) and the documented parameter
 *                          counts (seed-models.md: VAE 55.0 M, diffusion model 801.4 M); the
 *                          improved configs' shape changes; size refusals; a checkpoint round
 *                          trip of both improved models (same forward bit for bit)
 *   t_gen_models dump DIR  small diffusion U-Nets and VAEs (seed, improved and mixed configs)
 *                          with random weights (checkpoints), their inputs, forward outputs and
 *                          the tape backward's gradients of sum(out * R) (R fixed, random) for
 *                          every parameter and the input; the seed VAE's training-loss
 *                          gradients; generation from latents alone; for tests/gen_oracle.py */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/err.h"
#include "../core/npy.h"
#include "../cpu/cpu.h"
#include "../models/diffusion_sched.h"
#include "../models/diffusion_unet.h"
#include "../models/vae.h"
#include "../models/workspace.h"

#define MAX_KEYS 1024

typedef struct {
    int count;
    char name[MAX_KEYS][PARAM_NAME_MAX];
    char shape[MAX_KEYS][64];
    size_t numel;
} KeyList;

static int failures;

static void expect(int ok, const char *what)
{
    printf("%-78s %s\n", what, ok ? "ok" : "FAIL");
    if (!ok) failures++;
}

/* "name<TAB>[a, b, c]" lines. */
static void read_keys(const char *path, KeyList *k)
{
    FILE *f = fopen(path, "r");
    if (!f) sd_die(1, "cannot open %s (run from the repository root)", path);
    char line[256];
    k->count = 0;
    k->numel = 0;
    while (fgets(line, sizeof line, f) && k->count < MAX_KEYS) {
        char *tab = strchr(line, '\t'), *end = strchr(line, ']');
        if (!tab || !end) continue;
        *tab = 0;
        end[1] = 0;
        snprintf(k->name[k->count], PARAM_NAME_MAX, "%.95s", line);
        snprintf(k->shape[k->count], 64, "%.63s", tab + 1);
        size_t n = 1;
        for (char *p = tab + 2; *p && *p != ']';) {
            n *= strtoul(p, &p, 10);
            while (*p == ',' || *p == ' ') p++;
        }
        k->numel += n;
        k->count++;
    }
    fclose(f);
}

static void shape_text(const NamedTensor *t, char *buf, size_t len)
{
    int at = snprintf(buf, len, "[");
    for (int d = 0; d < t->ndim; d++) at += snprintf(buf + at, len - at, "%s%d", d ? ", " : "", t->shape[d]);
    snprintf(buf + at, len - at, "]");
}

/* Same names in the same order, and (when shapes) the same shapes; the first difference is printed. */
static int same_keys(const TensorList *l, const KeyList *k, int shapes)
{
    if (l->count != k->count) {
        printf("  %d tensors declared, %d expected\n", l->count, k->count);
        return 0;
    }
    char shape[64];
    for (int i = 0; i < l->count; i++) {
        shape_text(&l->t[i], shape, sizeof shape);
        if (strcmp(l->t[i].name, k->name[i]) || (shapes && strcmp(shape, k->shape[i]))) {
            printf("  tensor %d: declared %s %s, expected %s %s\n", i, l->t[i].name, shape, k->name[i], k->shape[i]);
            return 0;
        }
    }
    return 1;
}

/* The shape of the declared tensor `name` as text ("absent" when there is none). */
static const char *declared_shape(const TensorList *l, const char *name)
{
    static char shape[64];
    for (int i = 0; i < l->count; i++)
        if (strcmp(l->t[i].name, name) == 0) {
            shape_text(&l->t[i], shape, sizeof shape);
            return shape;
        }
    return "absent";
}

static void expect_shape(const TensorList *l, const char *name, const char *shape)
{
    char what[160];
    snprintf(what, sizeof what, "  %s %s", name, shape);
    expect(strcmp(declared_shape(l, name), shape) == 0, what);
}

static void check_vae(const KeyList *keys)
{
    Params p;
    Vae m;
    VaeConfig cfg = vae_config_seed();
    params_init(&p, NULL);
    expect(vae_declare(&m, &cfg, &p) == SD_OK && same_keys(&p.list, keys, 1),
           "VAE seed config: names and shapes of vae.tsv, in order");
    char what[128];
    snprintf(what, sizeof what, "VAE seed config: %zu values = vae.tsv's %zu = %.1f M (documented 55.0 M)",
             p.list.numel, keys->numel, p.list.numel / 1e6);
    expect(p.list.numel == keys->numel && (long)(p.list.numel / 1e5 + 0.5) == 550, what);
    params_free(&p);
    cfg = (VaeConfig){.in_ch = 1, .base = 32, .latent = 4, .groups = 8, .skips = 1};
    params_init(&p, NULL);
    expect(vae_declare(&m, &cfg, &p) == SD_OK && same_keys(&p.list, keys, 0), "VAE base 32: the same names");
    params_free(&p);
    cfg.base = 36;
    params_init(&p, NULL);
    expect(vae_declare(&m, &cfg, &p) == SD_ERR, "VAE base 36 with 8 groups is refused");
    params_free(&p);
}

/* Without skips the decoder's merge 1x1 convolutions read the decoder path alone. */
static void check_vae_improved(const KeyList *keys)
{
    Params p;
    Vae m;
    VaeConfig cfg = vae_config_improved();
    params_init(&p, NULL);
    expect(vae_declare(&m, &cfg, &p) == SD_OK && same_keys(&p.list, keys, 0),
           "VAE improved config: vae.tsv's names; merge convolutions without skip channels:");
    expect_shape(&p.list, "decoder.stg1.0.weight", "[256, 32, 1, 1]");
    expect_shape(&p.list, "decoder.stg2.0.weight", "[512, 512, 1, 1]");
    expect_shape(&p.list, "decoder.stg3.0.weight", "[512, 512, 1, 1]");
    params_free(&p);
    cfg.in_ch = 2;
    params_init(&p, NULL);
    expect(vae_declare(&m, &cfg, &p) == SD_OK, "VAE improved config with 2 channels (image + mask):");
    expect_shape(&p.list, "encoder.main.0.weight", "[128, 2, 3, 3]");
    expect_shape(&p.list, "decoder.stg3.11.weight", "[2, 64, 3, 3]");
    params_free(&p);
}

static void check_unet(const KeyList *keys)
{
    Params p;
    DiffusionUnet *m = malloc(sizeof *m);
    if (!m) sd_die(3, "out of memory");
    UnetConfig cfg = unet_config_seed();
    params_init(&p, NULL);
    expect(unet_declare(m, &cfg, &p) == SD_OK && same_keys(&p.list, keys, 1),
           "diffusion U-Net seed config: names and shapes of diffusion.tsv, in order");
    char what[128];
    snprintf(what, sizeof what, "diffusion seed config: %zu values = diffusion.tsv's %zu = %.1f M (documented 801.4 M)",
             p.list.numel, keys->numel, p.list.numel / 1e6);
    expect(p.list.numel == keys->numel && (long)(p.list.numel / 1e5 + 0.5) == 8014, what);
    params_free(&p);
    cfg.base = 32;
    cfg.time_in = 32;
    cfg.time_dim = 64;
    params_init(&p, NULL);
    expect(unet_declare(m, &cfg, &p) == SD_OK && same_keys(&p.list, keys, 0),
           "diffusion U-Net base 32: the same names");
    params_free(&p);
    cfg.levels = 5;
    params_init(&p, NULL);
    expect(unet_declare(m, &cfg, &p) == SD_ERR, "diffusion U-Net with 5 levels is refused");
    params_free(&p);
    cfg = unet_config_seed();
    cfg.heads = 7;
    params_init(&p, NULL);
    expect(unet_declare(m, &cfg, &p) == SD_ERR, "diffusion U-Net with widths not divisible by the heads is refused");
    params_free(&p);
    free(m);
}

/* FiLM doubles linear_time; attention only at level 1 (encoders 4 and 5, decoders 6..8)
 * and the bottleneck. */
static void check_unet_improved(void)
{
    Params p;
    DiffusionUnet *m = malloc(sizeof *m);
    if (!m) sd_die(3, "out of memory");
    UnetConfig cfg = unet_config_improved();
    params_init(&p, NULL);
    char what[128];
    int ok = unet_declare(m, &cfg, &p) == SD_OK;
    snprintf(what, sizeof what, "diffusion U-Net improved config: %.1f M values; FiLM and attention placement:",
             p.list.numel / 1e6);
    expect(ok, what);
    expect_shape(&p.list, "unet.encoders.1.0.linear_time.weight", "[640, 640]");
    expect_shape(&p.list, "unet.decoders.0.0.linear_time.bias", "[2560]");
    expect_shape(&p.list, "unet.encoders.1.1.conv_input.weight", "absent");
    expect_shape(&p.list, "unet.encoders.4.1.attention_1.in_proj.weight", "[1920, 640]");
    expect_shape(&p.list, "unet.encoders.7.1.conv_input.weight", "absent");
    expect_shape(&p.list, "unet.bottleneck.1.conv_input.weight", "[1280, 1280, 1, 1]");
    expect_shape(&p.list, "unet.decoders.8.1.conv_input.weight", "[640, 640, 1, 1]");
    expect_shape(&p.list, "unet.decoders.9.1.conv_input.weight", "absent");
    params_free(&p);
    cfg.base = 4;
    cfg.mult[0] = 2, cfg.mult[1] = 4, cfg.mult[2] = cfg.mult[3] = 8;
    params_init(&p, NULL);
    expect(unet_declare(m, &cfg, &p) == SD_ERR, "pre-norm U-Net whose conv_in width 4 8 groups cannot split: refused");
    params_free(&p);
    free(m);
}

/* ------------------------------------------------------------- small models */

#define DUMP_SEED 20261125u
enum { BATCH = 2, SIZE = 16, UNET_CH = 4, VAE_LATENT = 4 };

/* Deterministic weights that exercise every term: kernels and biases U(+-1/sqrt(fan_in)),
 * normalization scales U(0.5, 1.5) and shifts U(-0.2, 0.2). */
static void random_weights(const Params *p)
{
    const Backend *be = p->be;
    for (int i = 0; i < p->list.count; i++) {
        const NamedTensor *t = &p->list.t[i];
        real *w = param_w(p, i);
        int norm = t->group == PARAM_NO_DECAY, is_weight = strstr(t->name, ".weight") != NULL;
        double fan_in = t->ndim > 1 ? (double)t->numel / t->shape[0] : t->numel;
        double bound = 1 / sqrt(fan_in);
        if (norm && is_weight) be->fill_uniform(be->ctx, t->numel, w, 0.5, 1.5, DUMP_SEED, i, 0);
        else if (norm) be->fill_uniform(be->ctx, t->numel, w, -0.2, 0.2, DUMP_SEED, i, 0);
        else be->fill_uniform(be->ctx, t->numel, w, -bound, bound, DUMP_SEED, i, 0);
    }
}

/* A config's widths shrunk for the tests (16x16 latents), its switches kept. */
static UnetConfig small_unet(UnetConfig cfg)
{
    cfg.in_ch = UNET_CH;
    cfg.base = 16;
    cfg.time_in = 16;
    cfg.time_dim = 32;
    return cfg;
}

static VaeConfig small_vae(VaeConfig cfg, int in_ch)
{
    cfg.in_ch = in_ch;
    cfg.base = 16;
    cfg.latent = VAE_LATENT;
    cfg.groups = 8;
    return cfg;
}

/* The seed config, the improved one, and one mixing the switches with other sizes (FiLM
 * without pre-norm, anti-aliasing, LeakyReLU with another slope, 3 levels of 1 block). */
typedef struct {
    const char *name;
    UnetConfig cfg;
} UnetCase;

static int unet_cases(UnetCase *c)
{
    c[0] = (UnetCase){"unet_seed", small_unet(unet_config_seed())};
    c[1] = (UnetCase){"unet_improved", small_unet(unet_config_improved())};
    c[2] = (UnetCase){"unet_mixed", {.in_ch = 3, .base = 8, .levels = 3, .mult = {1, 2, 2}, .attn = {0, 0, 1},
                                     .blocks = 1, .heads = 2, .time_in = 8, .time_dim = 16, .groups = 4,
                                     .time_film = 1, .antialias = 1, .act = ACT_LEAKY_RELU, .slope = 0.1f}};
    return 3;
}

typedef struct {
    const char *name;
    VaeConfig cfg;
} VaeCase;

static int vae_cases(VaeCase *c)
{
    VaeConfig mixed = small_vae(vae_config_seed(), 2);
    mixed.tanh_out = mixed.antialias = 1;
    c[0] = (VaeCase){"vae_seed", small_vae(vae_config_seed(), 1)};
    c[1] = (VaeCase){"vae_improved", small_vae(vae_config_improved(), 2)};
    c[2] = (VaeCase){"vae_mixed", mixed};
    return 3;
}

/* --------------------------------------------------------- checkpoint round trip */

/* Save p's weights to path and load them into q (declared alike, allocated). */
static int save_and_load(const char *path, const Params *p, Params *q)
{
    CkptSection out = {"", &p->list, p->w}, in = {"", &q->list, q->w};
    StFile f;
    if (ckpt_save(path, p->be, &out, 1, NULL, 0) || st_read(path, &f)) return SD_ERR;
    int rc = ckpt_load(&f, q->be, &in);
    st_free(&f);
    return rc;
}

static void unet_round_trip(const Backend *be, const char *path)
{
    static DiffusionUnet m, m2;
    enum { NUMEL = BATCH * UNET_CH * SIZE * SIZE };
    UnetConfig cfg = small_unet(unet_config_improved());
    Params p, q;
    params_init(&p, be);
    params_init(&q, be);
    if (unet_declare(&m, &cfg, &p) || params_alloc(&p, 0) || unet_declare(&m2, &cfg, &q) || params_alloc(&q, 0))
        sd_die(1, "%s", sd_last_error());
    random_weights(&p);
    static real x[NUMEL], a[NUMEL], b[NUMEL];
    real t[BATCH] = {5, 640};
    be->fill_normal(be->ctx, NUMEL, x, 0, 1, DUMP_SEED, 9000, 0);
    Workspace ws;
    ws_init(&ws, be);
    int ok = unet_forward(&m, &p, &ws, BATCH, SIZE, SIZE, t, x, a) == SD_OK && save_and_load(path, &p, &q) == SD_OK &&
             unet_forward(&m2, &q, &ws, BATCH, SIZE, SIZE, t, x, b) == SD_OK;
    expect(ok && memcmp(a, b, sizeof a) == 0, "improved U-Net: save, load into fresh parameters, same forward bits");
    ws_free(&ws);
    params_free(&p);
    params_free(&q);
}

static void vae_round_trip(const Backend *be, const char *path)
{
    enum { NUMEL = BATCH * 2 * SIZE * SIZE, LATENT = BATCH * VAE_LATENT * (SIZE / 8) * (SIZE / 8) };
    VaeConfig cfg = small_vae(vae_config_improved(), 2);
    Vae m, m2;
    Params p, q;
    params_init(&p, be);
    params_init(&q, be);
    if (vae_declare(&m, &cfg, &p) || params_alloc(&p, 0) || vae_declare(&m2, &cfg, &q) || params_alloc(&q, 0))
        sd_die(1, "%s", sd_last_error());
    random_weights(&p);
    static real x[NUMEL], a[NUMEL];
    real eps[LATENT];
    be->fill_uniform(be->ctx, NUMEL, x, -1, 1, DUMP_SEED, 9001, 0);
    be->fill_normal(be->ctx, LATENT, eps, 0, 1, DUMP_SEED, 9002, 0);
    Workspace ws;
    ws_init(&ws, be);
    VaeForward o;
    int ok = vae_forward(&m, &p, &ws, BATCH, SIZE, SIZE, x, eps, &o) == SD_OK;
    if (ok) memcpy(a, o.recon, sizeof a);
    ok = ok && save_and_load(path, &p, &q) == SD_OK &&
         vae_forward(&m2, &q, &ws, BATCH, SIZE, SIZE, x, eps, &o) == SD_OK;
    expect(ok && memcmp(a, o.recon, sizeof a) == 0, "improved 2-channel VAE: the same round trip");
    ws_free(&ws);
    params_free(&p);
    params_free(&q);
}

static void check_round_trips(void)
{
    Backend be = cpu_backend();
    char dir[] = "/tmp/sdseg_t_gen_models_XXXXXX", path[64];
    if (!mkdtemp(dir)) sd_die(1, "t_gen_models: no temporary folder");
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    unet_round_trip(&be, path);
    vae_round_trip(&be, path);
    unlink(path);
    rmdir(dir);
    cpu_ctx_destroy(be.ctx);
}

/* Sizes the architectures cannot take fail with a message before touching memory. */
static void check_forward_sizes(void)
{
    Backend be = cpu_backend();
    Params p;
    params_init(&p, &be);
    Workspace ws;
    ws_init(&ws, &be);
    static DiffusionUnet unet;
    Vae vae;
    UnetConfig ucfg = unet_config_seed();
    VaeConfig vcfg = vae_config_seed();
    expect(unet_declare(&unet, &ucfg, &p) == SD_OK &&
               unet_forward(&unet, &p, &ws, 1, 12, 16, NULL, NULL, NULL) == SD_ERR,
           "diffusion U-Net refuses a 12x16 latent (4 levels need multiples of 8)");
    expect(vae_declare(&vae, &vcfg, &p) == SD_OK && vae_encode(&vae, &p, &ws, 1, 20, 16, NULL, NULL) == SD_ERR,
           "VAE refuses a 20x16 image (multiples of 8)");
    expect(vae_generate(&vae, &p, &ws, 1, 16, 12, NULL, NULL) == SD_ERR, "VAE refuses to generate a 16x12 image");
    ws_free(&ws);
    params_free(&p);
    cpu_ctx_destroy(be.ctx);
}

/* ------------------------------------------------------------- oracle dump */

/* DIR/<name><suffix>.npy */
static void save_npy(const char *dir, const char *name, const char *suffix, const real *x, int ndim,
                     const long *shape)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s%s.npy", dir, name, suffix);
    if (npy_save(path, x, sizeof(real) == sizeof(double), ndim, shape)) sd_die(1, "%s", sd_last_error());
}

/* DIR/<name><suffix>.safetensors: the tensors of p's layout in `data` (weights or gradients). */
static void save_tensors(const char *dir, const char *name, const char *suffix, const Params *p, real *data)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s%s.safetensors", dir, name, suffix);
    CkptSection sec = {"", &p->list, data};
    if (ckpt_save(path, p->be, &sec, 1, NULL, 0)) sd_die(1, "%s", sd_last_error());
}

static FILE *open_config(const char *dir, const char *name)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s_config.txt", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) sd_die(1, "cannot write %s", path);
    return f;
}

static void write_unet_config(const char *dir, const char *name, const UnetConfig *c)
{
    if (c->act != ACT_LEAKY_RELU && c->act != ACT_SILU) sd_die(1, "t_gen_models: the oracle knows LeakyReLU and SiLU");
    FILE *f = open_config(dir, name);
    fprintf(f, "in_ch %d\nbase %d\nmult", c->in_ch, c->base);
    for (int l = 0; l < c->levels; l++) fprintf(f, "%c%d", l ? ',' : ' ', c->mult[l]);
    fprintf(f, "\nattn");
    for (int l = 0; l < c->levels; l++) fprintf(f, "%c%d", l ? ',' : ' ', c->attn[l]);
    fprintf(f, "\nblocks %d\nheads %d\ntime_in %d\ntime_dim %d\ngroups %d\ntime_film %d\npre_norm %d\nantialias %d\n",
            c->blocks, c->heads, c->time_in, c->time_dim, c->groups, c->time_film, c->pre_norm, c->antialias);
    fprintf(f, "act %s\nslope %.9g\n", c->act == ACT_SILU ? "silu" : "leaky_relu", c->slope);
    fclose(f);
}

static void write_vae_config(const char *dir, const char *name, const VaeConfig *c)
{
    FILE *f = open_config(dir, name);
    fprintf(f, "in_ch %d\nbase %d\nlatent %d\ngroups %d\nskips %d\ntanh_out %d\nantialias %d\n", c->in_ch, c->base,
            c->latent, c->groups, c->skips, c->tanh_out, c->antialias);
    fclose(f);
}

/* After a training pass: ws_grad(output) = R (random, saved as <name><r_suffix>.npy), so the
 * backward gives the gradients of sum(output * R). Several outputs add their terms. */
static void seed_output_grad(Workspace *ws, const real *output, size_t numel, uint64_t stream, const char *dir,
                             const char *name, const char *r_suffix, int ndim, const long *shape)
{
    real *r = malloc(numel * sizeof *r);
    if (!r) sd_die(3, "out of memory");
    ws->be->fill_normal(ws->be->ctx, numel, r, 0, 1, DUMP_SEED, stream, 0);
    ws->be->upload(ws->be->ctx, ws_grad(ws, output), r, numel * sizeof *r);
    save_npy(dir, name, r_suffix, r, ndim, shape);
    free(r);
}

/* The backward of the training pass just run, from the output gradients already written:
 * every parameter's gradient (<name>_grad.safetensors) and the input's (<name>_dx.npy). */
static void dump_backward(const Params *p, Workspace *ws, const char *dir, const char *name, int ndim,
                          const long *x_shape)
{
    params_zero_grad(p);
    layers_backward(p, ws);
    save_tensors(dir, name, "_grad", p, p->grad);
    const real *dx = layers_input_grad(ws);
    if (!dx) sd_die(1, "t_gen_models: no input gradient");
    save_npy(dir, name, "_dx", dx, ndim, x_shape);
}

/* The seed U-Net inside a sampler: DDIM, 4 steps, from x_T ~ N(0, I) (inference passes). */
static void dump_unet_ddim(const DiffusionUnet *m, const Params *p, Workspace *ws, const char *dir, const char *name)
{
    enum { NUMEL = BATCH * UNET_CH * SIZE * SIZE };
    static real x[NUMEL];
    long shape[4] = {BATCH, UNET_CH, SIZE, SIZE};
    NoiseSchedule s;
    SamplerConfig sc = {SAMPLER_DDIM, 4, 0, DUMP_SEED, 0, 0};
    UnetDenoiser den = {m, p, ws, SIZE, SIZE};
    if (schedule_create(&s, SCHEDULE_SCALED_LINEAR, PREDICT_EPSILON, 1000, 0, 0)) sd_die(1, "%s", sd_last_error());
    ws_set_training(ws, 0);
    sampler_initial_noise(p->be, &sc, BATCH, UNET_CH * SIZE * SIZE, x);
    save_npy(dir, name, "_xT", x, 4, shape);
    if (sampler_run(p->be, &s, &sc, unet_denoise, &den, BATCH, UNET_CH * SIZE * SIZE, x))
        sd_die(1, "%s", sd_last_error());
    save_npy(dir, name, "_ddim4", x, 4, shape);
    schedule_free(&s);
}

/* Prediction for x ~ N(0, I) at t = (37, 999), and the gradients of sum(prediction * R). */
static void dump_unet(const Backend *be, const char *dir, const UnetCase *c, int index)
{
    static DiffusionUnet m;
    Params p;
    params_init(&p, be);
    if (unet_declare(&m, &c->cfg, &p) || params_alloc(&p, 1)) sd_die(1, "%s", sd_last_error());
    random_weights(&p);
    int ch = c->cfg.in_ch;
    size_t numel = (size_t)BATCH * ch * SIZE * SIZE;
    long shape[4] = {BATCH, ch, SIZE, SIZE}, tshape[1] = {BATCH};
    real *x = malloc(numel * sizeof *x), *out, t[BATCH] = {37, 999};
    if (!x) sd_die(3, "out of memory");
    be->fill_normal(be->ctx, numel, x, 0, 1, DUMP_SEED, 9100 + index, 0);
    Workspace ws;
    ws_init(&ws, be);
    ws_set_training(&ws, 1);
    if (unet_forward_ws(&m, &p, &ws, BATCH, SIZE, SIZE, t, x, &out)) sd_die(1, "%s", sd_last_error());
    save_npy(dir, c->name, "_x", x, 4, shape);
    save_npy(dir, c->name, "_t", t, 1, tshape);
    save_npy(dir, c->name, "_out", out, 4, shape);
    ws_zero_grads(&ws);
    seed_output_grad(&ws, out, numel, 9200 + index, dir, c->name, "_r", 4, shape);
    dump_backward(&p, &ws, dir, c->name, 4, shape);
    save_tensors(dir, c->name, "", &p, p.w);
    write_unet_config(dir, c->name, &c->cfg);
    if (index == 0) dump_unet_ddim(&m, &p, &ws, dir, c->name);
    free(x);
    ws_free(&ws);
    params_free(&p);
}

/* The seed loss's gradients for both KL variants (with kl_weight 0.5, so the weight is
 * exercised): <name>_lossgrad_<variant>.safetensors holds every parameter's gradient and
 * <name>_loss_<variant>.npy the values (mse, kl, total). */
static void dump_vae_loss_grads(const Vae *m, const Params *p, Workspace *ws, const char *dir, const char *name,
                                const real *x, const real *eps)
{
    const char *variant[2] = {"fixed", "seed"};
    ws_set_training(ws, 1);
    for (int defect = 0; defect < 2; defect++) {
        VaeForward o;
        VaeLoss loss;
        VaeLossConfig lc = {.kl_weight = 0.5, .kl_std_for_mean = defect};
        params_zero_grad(p);
        if (vae_forward(m, p, ws, BATCH, SIZE, SIZE, x, eps, &o)) sd_die(1, "%s", sd_last_error());
        vae_loss(p, ws, &lc, &o, x, 1, &loss);
        char suffix[32];
        snprintf(suffix, sizeof suffix, "_lossgrad_%s", variant[defect]);
        save_tensors(dir, name, suffix, p, p->grad);
        real values[3] = {(real)loss.mse, (real)loss.kl, (real)loss.total};
        long shape[1] = {3};
        snprintf(suffix, sizeof suffix, "_loss_%s", variant[defect]);
        save_npy(dir, name, suffix, values, 1, shape);
    }
}

/* Generation from z ~ N(0, I) alone (inference pass). */
static void dump_vae_generate(const Vae *m, const Params *p, Workspace *ws, const char *dir, const char *name)
{
    enum { LATENT = BATCH * VAE_LATENT * (SIZE / 8) * (SIZE / 8) };
    int ch = m->cfg.in_ch;
    long zshape[4] = {BATCH, VAE_LATENT, SIZE / 8, SIZE / 8}, shape[4] = {BATCH, ch, SIZE, SIZE};
    real z[LATENT], *out = malloc((size_t)BATCH * ch * SIZE * SIZE * sizeof *out);
    if (!out) sd_die(3, "out of memory");
    p->be->fill_normal(p->be->ctx, LATENT, z, 0, 1, DUMP_SEED, 9300, 0);
    ws_set_training(ws, 0);
    if (vae_generate(m, p, ws, BATCH, SIZE, SIZE, z, out)) sd_die(1, "%s", sd_last_error());
    save_npy(dir, name, "_z", z, 4, zshape);
    save_npy(dir, name, "_gen", out, 4, shape);
    free(out);
}

/* Mean, logvar and reconstruction of x ~ U(-1, 1) with eps ~ N(0, I), the gradients of
 * sum(recon * R) + sum(mean * R_mean) + sum(logvar * R_logvar), and generation. */
static void dump_vae(const Backend *be, const char *dir, const VaeCase *c, int index)
{
    enum { LATENT = BATCH * VAE_LATENT * (SIZE / 8) * (SIZE / 8) };
    Vae m;
    Params p;
    params_init(&p, be);
    if (vae_declare(&m, &c->cfg, &p) || params_alloc(&p, 1)) sd_die(1, "%s", sd_last_error());
    random_weights(&p);
    size_t numel = (size_t)BATCH * c->cfg.in_ch * SIZE * SIZE;
    long shape[4] = {BATCH, c->cfg.in_ch, SIZE, SIZE}, lshape[4] = {BATCH, VAE_LATENT, SIZE / 8, SIZE / 8};
    real *x = malloc(numel * sizeof *x), eps[LATENT];
    if (!x) sd_die(3, "out of memory");
    be->fill_uniform(be->ctx, numel, x, -1, 1, DUMP_SEED, 9400 + index, 0);
    be->fill_normal(be->ctx, LATENT, eps, 0, 1, DUMP_SEED, 9500 + index, 0);
    Workspace ws;
    ws_init(&ws, be);
    ws_set_training(&ws, 1);
    VaeForward o;
    if (vae_forward(&m, &p, &ws, BATCH, SIZE, SIZE, x, eps, &o)) sd_die(1, "%s", sd_last_error());
    save_npy(dir, c->name, "_x", x, 4, shape);
    save_npy(dir, c->name, "_eps", eps, 4, lshape);
    save_npy(dir, c->name, "_mean", o.enc.mean, 4, lshape);
    save_npy(dir, c->name, "_logvar", o.enc.logvar, 4, lshape);
    save_npy(dir, c->name, "_out", o.recon, 4, shape);
    ws_zero_grads(&ws);
    seed_output_grad(&ws, o.recon, numel, 9600 + index, dir, c->name, "_r", 4, shape);
    seed_output_grad(&ws, o.enc.mean, LATENT, 9700 + index, dir, c->name, "_r_mean", 4, lshape);
    seed_output_grad(&ws, o.enc.logvar, LATENT, 9800 + index, dir, c->name, "_r_logvar", 4, lshape);
    dump_backward(&p, &ws, dir, c->name, 4, shape);
    save_tensors(dir, c->name, "", &p, p.w);
    write_vae_config(dir, c->name, &c->cfg);
    if (index == 0) dump_vae_loss_grads(&m, &p, &ws, dir, c->name, x, eps);
    dump_vae_generate(&m, &p, &ws, dir, c->name);
    free(x);
    ws_free(&ws);
    params_free(&p);
}

static void dump(const char *dir)
{
    Backend be = cpu_backend();
    mkdir(dir, 0777);
    UnetCase uc[4];
    VaeCase vc[4];
    for (int i = 0, n = unet_cases(uc); i < n; i++) dump_unet(&be, dir, &uc[i], i);
    for (int i = 0, n = vae_cases(vc); i < n; i++) dump_vae(&be, dir, &vc[i], i);
    cpu_ctx_destroy(be.ctx);
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "dump") == 0) {
        dump(argv[2]);
        return 0;
    }
    if (argc != 1) sd_die(2, "usage: t_gen_models [dump DIR]");
    static KeyList keys;
    read_keys("tests/keys/vae.tsv", &keys);
    check_vae(&keys);
    check_vae_improved(&keys);
    read_keys("tests/keys/diffusion.tsv", &keys);
    check_unet(&keys);
    check_unet_improved();
    check_forward_sizes();
    check_round_trips();
    printf("t_gen_models: %s\n", failures ? "FAILED" : "all passed");
    return failures ? 1 : 0;
}
