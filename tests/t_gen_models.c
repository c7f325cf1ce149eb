/* The generative models.
 *
 *   t_gen_models           parameter declarations against the seed checkpoints' names and
 *                          shapes (tests/keys/{vae,diffusion}.tsv, copied from
 *                          ../shared/docs/checkpoint-keys) and the documented parameter
 *                          counts (seed-models.md: VAE 55.0 M, diffusion model 801.4 M)
 *   t_gen_models dump DIR  a small diffusion U-Net and a small VAE with random weights
 *                          (checkpoints), their inputs and forward outputs, and the VAE's
 *                          training-loss gradients, for tests/gen_oracle.py */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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
    printf("%-72s %s\n", what, ok ? "ok" : "FAIL");
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

/* ------------------------------------------------------------- oracle dump */

#define DUMP_SEED 20261125u

/* Deterministic weights that exercise every term: kernels and biases U(+-1/sqrt(fan_in)),
 * normalization scales U(0.5, 1.5) and shifts U(-0.2, 0.2). */
static void random_weights(const Backend *be, const Params *p)
{
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

static void save_npy(const char *dir, const char *name, const real *x, int ndim, const long *shape)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (npy_save(path, x, sizeof(real) == sizeof(double), ndim, shape)) sd_die(1, "%s", sd_last_error());
}

/* A small U-Net with the seed's structure (4 levels, attention on the first three). */
static void dump_unet(const Backend *be, const char *dir)
{
    enum { N = 2, H = 16, W = 16 };
    UnetConfig cfg = {.in_ch = 4, .base = 16, .levels = 4, .mult = {1, 2, 4, 4}, .attn = {1, 1, 1, 0}, .blocks = 2,
                      .heads = 8, .time_in = 16, .time_dim = 32, .groups = 8, .act = ACT_LEAKY_RELU, .slope = 0.3f};
    static DiffusionUnet m;
    Params p;
    params_init(&p, be);
    if (unet_declare(&m, &cfg, &p) || params_alloc(&p, 0)) sd_die(1, "%s", sd_last_error());
    random_weights(be, &p);
    real x[N * 4 * H * W], out[N * 4 * H * W], t[N] = {37, 999};
    be->fill_normal(be->ctx, N * 4 * H * W, x, 0, 1, DUMP_SEED, 9999, 0);
    Workspace ws;
    ws_init(&ws, be);
    if (unet_forward(&m, &p, &ws, N, H, W, t, x, out)) sd_die(1, "%s", sd_last_error());
    char path[600];
    snprintf(path, sizeof path, "%s/unet.safetensors", dir);
    CkptSection sec = {"", &p.list, p.w};
    if (ckpt_save(path, be, &sec, 1, NULL, 0)) sd_die(1, "%s", sd_last_error());
    long shape[4] = {N, 4, H, W}, tshape[1] = {N};
    save_npy(dir, "unet_x.npy", x, 4, shape);
    save_npy(dir, "unet_t.npy", t, 1, tshape);
    save_npy(dir, "unet_out.npy", out, 4, shape);
    /* the network inside a sampler: DDIM, 4 steps, from x_T ~ N(0, I) */
    NoiseSchedule s;
    SamplerConfig sc = {SAMPLER_DDIM, 4, 0, DUMP_SEED, 0, 0};
    UnetDenoiser den = {&m, &p, &ws, H, W};
    if (schedule_create(&s, SCHEDULE_SCALED_LINEAR, PREDICT_EPSILON, 1000, 0, 0)) sd_die(1, "%s", sd_last_error());
    sampler_initial_noise(be, &sc, N, 4 * H * W, x);
    save_npy(dir, "unet_xT.npy", x, 4, shape);
    if (sampler_run(be, &s, &sc, unet_denoise, &den, N, 4 * H * W, x)) sd_die(1, "%s", sd_last_error());
    save_npy(dir, "unet_ddim4.npy", x, 4, shape);
    schedule_free(&s);
    snprintf(path, sizeof path, "%s/unet_config.txt", dir);
    FILE *f = fopen(path, "w");
    if (!f) sd_die(1, "cannot write %s", path);
    fprintf(f, "in_ch %d\nbase %d\nmult %d,%d,%d,%d\nattn %d,%d,%d,%d\nblocks %d\nheads %d\ntime_in %d\n"
               "time_dim %d\ngroups %d\n",
            cfg.in_ch, cfg.base, cfg.mult[0], cfg.mult[1], cfg.mult[2], cfg.mult[3], cfg.attn[0], cfg.attn[1],
            cfg.attn[2], cfg.attn[3], cfg.blocks, cfg.heads, cfg.time_in, cfg.time_dim, cfg.groups);
    fclose(f);
    ws_free(&ws);
    params_free(&p);
}

/* The seed loss's gradients for both KL variants (with kl_weight 0.5, so the weight is
 * exercised): vae_grad_<variant>.safetensors holds every parameter's gradient and
 * vae_loss_<variant>.npy the values (mse, kl, total). */
static void dump_vae_grads(const Vae *m, const Params *p, Workspace *ws, const char *dir, const real *x,
                           const real *eps, int n, int h, int w)
{
    const char *variant[2] = {"fixed", "seed"};
    ws_set_training(ws, 1);
    for (int defect = 0; defect < 2; defect++) {
        VaeForward o;
        VaeLoss loss;
        VaeLossConfig lc = {.kl_weight = 0.5, .kl_std_for_mean = defect};
        params_zero_grad(p);
        if (vae_forward(m, p, ws, n, h, w, x, eps, &o)) sd_die(1, "%s", sd_last_error());
        vae_loss(p, ws, &lc, &o, x, 1, &loss);
        char path[600], name[32];
        snprintf(path, sizeof path, "%s/vae_grad_%s.safetensors", dir, variant[defect]);
        CkptSection sec = {"", &p->list, p->grad};
        if (ckpt_save(path, p->be, &sec, 1, NULL, 0)) sd_die(1, "%s", sd_last_error());
        real values[3] = {(real)loss.mse, (real)loss.kl, (real)loss.total};
        long shape[1] = {3};
        snprintf(name, sizeof name, "vae_loss_%s.npy", variant[defect]);
        save_npy(dir, name, values, 1, shape);
    }
    ws_set_training(ws, 0);
}

/* A small VAE with the seed's structure: base 16, 8 groups, 4 latent channels, 32x32 images. */
static void dump_vae(const Backend *be, const char *dir)
{
    enum { N = 2, H = 32, W = 32, L = 4, LATENT = N * L * (H / 8) * (W / 8) };
    VaeConfig cfg = {.in_ch = 1, .base = 16, .latent = L, .groups = 8};
    Vae m;
    Params p;
    params_init(&p, be);
    if (vae_declare(&m, &cfg, &p) || params_alloc(&p, 1)) sd_die(1, "%s", sd_last_error());
    random_weights(be, &p);
    real x[N * H * W], eps[LATENT];
    be->fill_uniform(be->ctx, N * H * W, x, -1, 1, DUMP_SEED, 9998, 0);
    be->fill_normal(be->ctx, LATENT, eps, 0, 1, DUMP_SEED, 9997, 0);
    Workspace ws;
    ws_init(&ws, be);
    VaeForward o;
    if (vae_forward(&m, &p, &ws, N, H, W, x, eps, &o)) sd_die(1, "%s", sd_last_error());
    char path[600];
    snprintf(path, sizeof path, "%s/vae.safetensors", dir);
    CkptSection sec = {"", &p.list, p.w};
    if (ckpt_save(path, be, &sec, 1, NULL, 0)) sd_die(1, "%s", sd_last_error());
    long shape[4] = {N, 1, H, W}, lshape[4] = {N, L, H / 8, W / 8};
    save_npy(dir, "vae_x.npy", x, 4, shape);
    save_npy(dir, "vae_eps.npy", eps, 4, lshape);
    save_npy(dir, "vae_mean.npy", o.enc.mean, 4, lshape);
    save_npy(dir, "vae_logvar.npy", o.enc.logvar, 4, lshape);
    save_npy(dir, "vae_out.npy", o.recon, 4, shape);
    snprintf(path, sizeof path, "%s/vae_config.txt", dir);
    FILE *f = fopen(path, "w");
    if (!f) sd_die(1, "cannot write %s", path);
    fprintf(f, "in_ch %d\nbase %d\nlatent %d\ngroups %d\n", cfg.in_ch, cfg.base, cfg.latent, cfg.groups);
    fclose(f);
    dump_vae_grads(&m, &p, &ws, dir, x, eps, N, H, W);
    ws_free(&ws);
    params_free(&p);
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
    ws_free(&ws);
    params_free(&p);
    cpu_ctx_destroy(be.ctx);
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "dump") == 0) {
        Backend be = cpu_backend();
        mkdir(argv[2], 0777);
        dump_unet(&be, argv[2]);
        dump_vae(&be, argv[2]);
        cpu_ctx_destroy(be.ctx);
        return 0;
    }
    if (argc != 1) sd_die(2, "usage: t_gen_models [dump DIR]");
    static KeyList keys;
    read_keys("tests/keys/vae.tsv", &keys);
    check_vae(&keys);
    read_keys("tests/keys/diffusion.tsv", &keys);
    check_unet(&keys);
    check_forward_sizes();
    printf("t_gen_models: %s\n", failures ? "FAILED" : "all passed");
    return failures ? 1 : 0;
}
