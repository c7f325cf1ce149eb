/* VAE training: configuration, steps, validation, epoch end, EMA, checkpoints (see
 * vae_trainer.h), and the trained model's loading for inference (gen_ckpt.h). */
#include "vae_trainer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/err.h"
#include "gen_ckpt.h"
#include "train_meta.h"

#define CKPT_FORMAT "sdseg-train-vae/2"
#define CKPT_FORMAT_1 "sdseg-train-vae/1" /* before the improved recipe: FORMAT_1_FIELDS settings */
#define VAE_MODEL "vae"
#define EPS_STREAM 0x7661650001ull     /* Philox stream of the training noise */
#define VAL_EPS_STREAM 0x7661650002ull /* and of the validation noise */

/* ------------------------------------------------------------ configuration */

static const char *const kl_names[] = {"seed", "fixed", NULL};
static const char *const config_names[] = {"seed", "improved", NULL};
static const char *const schedule_names[] = {"plateau", "cosine", NULL};

#define AT(f) offsetof(VaeTrainConfig, f)
/* Format 1 wrote the first FORMAT_1_FIELDS; later fields are appended after them. */
#define FORMAT_1_FIELDS 20
static const CfgField fields[] = {
    {"width", CFG_INT, AT(width), NULL},
    {"latent", CFG_INT, AT(latent), NULL},
    {"groups", CFG_INT, AT(groups), NULL},
    {"batch", CFG_INT, AT(batch), NULL},
    {"accum", CFG_INT, AT(accum), NULL},
    {"epochs", CFG_INT, AT(epochs), NULL},
    {"tile_h", CFG_INT, AT(tile_h), NULL},
    {"tile_w", CFG_INT, AT(tile_w), NULL},
    {"kl", CFG_ENUM, AT(kl), kl_names},
    {"accum_mode", CFG_ENUM, AT(accum_mode), accum_mode_names},
    {"revert", CFG_ENUM, AT(revert), revert_mode_names},
    {"lr", CFG_DOUBLE, AT(lr), NULL},
    {"momentum", CFG_DOUBLE, AT(momentum), NULL},
    {"kl_weight", CFG_DOUBLE, AT(kl_weight), NULL},
    {"plateau_factor", CFG_DOUBLE, AT(plateau_factor), NULL},
    {"plateau_patience", CFG_INT, AT(plateau_patience), NULL},
    {"revert_patience", CFG_INT, AT(revert_patience), NULL},
    {"stop_patience", CFG_INT, AT(stop_patience), NULL},
    {"steps_per_epoch", CFG_LONG, AT(steps_per_epoch), NULL},
    {"seed", CFG_U64, AT(seed), NULL},
    {"config", CFG_ENUM, AT(config), config_names},
    {"channels", CFG_INT, AT(channels), NULL},
    {"optim", CFG_ENUM, AT(optim), gen_optim_names},
    {"schedule", CFG_ENUM, AT(schedule), schedule_names},
    {"wd", CFG_DOUBLE, AT(wd), NULL},
    {"ema", CFG_DOUBLE, AT(ema), NULL},
    {"warmup", CFG_LONG, AT(warmup), NULL},
};

const CfgTable *vae_train_fields(void)
{
    static const CfgTable table = {fields, sizeof fields / sizeof *fields};
    return &table;
}

VaeTrainConfig vae_recipe(int improved)
{
    VaeConfig m = vae_config_seed();
    VaeTrainConfig c = {.width = m.base, .latent = m.latent, .groups = m.groups, .batch = 5, .accum = 10,
                        .epochs = 25, .kl = VAE_KL_SEED, .accum_mode = ACCUM_MEAN, .revert = REVERT_DEEP,
                        .lr = 1e-4, .momentum = 0.9, .kl_weight = 1, .plateau_factor = 0.5, .plateau_patience = 3,
                        .revert_patience = 3, .stop_patience = 10, .seed = 1, .config = VAE_ARCH_SEED,
                        .channels = 1, .optim = GEN_OPTIM_SGD, .schedule = VAE_SCHEDULE_PLATEAU};
    if (improved) { /* why these values: vae_trainer.h */
        c.config = VAE_ARCH_IMPROVED, c.kl = VAE_KL_FIXED, c.kl_weight = 1e-4;
        c.optim = GEN_OPTIM_ADAMW, c.lr = 2e-4, c.wd = 0.01;
        c.schedule = VAE_SCHEDULE_COSINE, c.warmup = -1, c.ema = 0.999;
        c.accum = 1, c.revert_patience = 0;
    }
    return c;
}

VaeConfig vae_train_model_config(const VaeTrainConfig *c)
{
    int improved = c->config == VAE_ARCH_IMPROVED;
    return (VaeConfig){.in_ch = c->channels, .base = c->width, .latent = c->latent, .groups = c->groups,
                       .skips = !improved, .tanh_out = improved, .antialias = improved};
}

int vae_train_config_check(const VaeTrainConfig *c)
{
    if (c->channels != 1 && c->channels != 2) return sd_fail("channels must be 1 or 2 (got %d)", c->channels);
    VaeConfig m = vae_train_model_config(c);
    if (vae_config_check(&m)) return SD_ERR;
    if (c->batch < 1 || c->accum < 1 || c->epochs < 1) return sd_fail("batch, accum and epochs must be at least 1");
    if (c->tile_h < 8 || c->tile_w < 8 || c->tile_h % 8 || c->tile_w % 8)
        return sd_fail("VAE tiles must be positive multiples of 8 (got %dx%d)", c->tile_h, c->tile_w);
    if (optim_check(c->lr, c->momentum, c->wd, c->ema)) return SD_ERR;
    if (c->warmup < 0) return sd_fail("warmup must not be negative (got %ld)", c->warmup);
    if (!(c->kl_weight >= 0 && isfinite(c->kl_weight))) return sd_fail("kl_weight must be >= 0 (got %g)", c->kl_weight);
    if (c->plateau_patience < 0 || c->revert_patience < 0 || c->stop_patience < 1)
        return sd_fail("patiences must not be negative (and stop_patience at least 1)");
    if (c->steps_per_epoch < 1) return sd_fail("an epoch must hold at least one step of batch x accum tiles");
    return SD_OK;
}

int vae_train_config_read(const StFile *f, VaeTrainConfig *c)
{
    const char *model = st_meta(f, "model"), *format = st_meta(f, "format");
    if (!model || strcmp(model, VAE_MODEL)) return sd_fail("%s: not a VAE training checkpoint", f->path);
    CfgTable table = *vae_train_fields();
    if (format && !strcmp(format, CKPT_FORMAT_1)) table.count = FORMAT_1_FIELDS;
    else if (!format || strcmp(format, CKPT_FORMAT))
        return sd_fail("%s: unknown checkpoint format '%s' (this sdseg reads %s)", f->path, format ? format : "",
                       CKPT_FORMAT);
    *c = vae_recipe(0); /* what format 1 did not write: the seed recipe's values */
    return cfg_read(&table, f, c);
}

/* ------------------------------------------------------------ setup */

static real *alloc_reals(const Backend *be, size_t n) { return be->alloc(be->ctx, n * sizeof(real)); }

static real *copy_of(const Backend *be, const real *src, size_t n)
{
    real *x = alloc_reals(be, n);
    be->copy(be->ctx, x, src, n * sizeof(real));
    return x;
}

/* Pixels of one channel of a micro-batch. */
static size_t tile_pixels(const VaeTrainConfig *c) { return (size_t)c->batch * c->tile_h * c->tile_w; }
static size_t latent_values(const VaeTrainConfig *c)
{
    return (size_t)c->batch * c->latent * (c->tile_h / 8) * (c->tile_w / 8);
}

/* torch ReduceLROnPlateau(mode min, factor, patience), its other defaults; the cosine. */
static int schedule_init(VaeTrainer *t)
{
    const VaeTrainConfig *c = &t->cfg;
    t->plateau_cfg = plateau_config_default();
    t->plateau_cfg.factor = c->plateau_factor;
    t->plateau_cfg.patience = c->plateau_patience;
    t->cosine = (CosineSchedule){.base_lr = c->lr, .min_lr = 0, .warmup = c->warmup,
                                 .total = (long)c->epochs * c->steps_per_epoch};
    if (plateau_init(&t->plateau, &t->plateau_cfg, c->lr)) return SD_ERR;
    return c->schedule == VAE_SCHEDULE_COSINE ? cosine_check(&t->cosine) : SD_OK;
}

int vae_trainer_create(VaeTrainer *t, const Backend *be, const VaeTrainConfig *cfg)
{
    memset(t, 0, sizeof *t);
    t->cfg = *cfg;
    t->be = be;
    keep_best_init(&t->keep);
    params_init(&t->params, be);
    ws_init(&t->ws, be);
    VaeConfig m = vae_train_model_config(cfg);
    if (vae_train_config_check(cfg) || schedule_init(t) || vae_declare(&t->model, &m, &t->params) ||
        params_alloc(&t->params, 1))
        return SD_ERR;
    const Params *p = &t->params;
    OptimRule rule = optim_rule_gen(cfg->optim, cfg->momentum, cfg->wd);
    params_alloc_optimizer(&t->params, optim_state_slots(&rule));
    layers_init_torch(p, cfg->seed);
    t->images = alloc_reals(be, tile_pixels(cfg) * cfg->channels);
    t->eps = alloc_reals(be, latent_values(cfg));
    t->best_w = copy_of(be, p->w, p->list.numel);
    if (cfg->ema > 0) t->ema_w = copy_of(be, p->w, p->list.numel);
    if (cfg->channels == 2 && !(t->host = malloc(tile_pixels(cfg) * 2 * sizeof(float))))
        return sd_fail("out of memory for %zu input values", tile_pixels(cfg) * 2);
    return SD_OK;
}

void vae_trainer_free(VaeTrainer *t)
{
    real *bufs[] = {t->images, t->eps, t->best_w, t->ema_w};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        if (bufs[i]) t->be->release(t->be->ctx, bufs[i]);
    free(t->host);
    ws_free(&t->ws);
    params_free(&t->params);
    memset(t, 0, sizeof *t);
}

double vae_trainer_lr(const VaeTrainer *t)
{
    return t->cfg.schedule == VAE_SCHEDULE_COSINE ? cosine_lr(&t->cosine, t->step) : t->plateau.lr;
}

/* ------------------------------------------------------------ training */

static VaeLossConfig loss_config(const VaeTrainConfig *c)
{
    return (VaeLossConfig){.kl_weight = c->kl_weight, .kl_std_for_mean = c->kl == VAE_KL_SEED};
}

/* n host tiles [n, 1, h, w] (and their 0/1 masks with channels 2) into t->images as the
 * model's input: [image] or [image, 2 mask - 1] per tile. */
static void upload_tiles(VaeTrainer *t, int n, const float *images, const float *masks)
{
    const VaeTrainConfig *c = &t->cfg;
    size_t hw = (size_t)c->tile_h * c->tile_w;
    if (c->channels == 1) {
        t->be->upload(t->be->ctx, t->images, images, n * hw * sizeof(float));
        return;
    }
    for (int i = 0; i < n; i++) {
        float *in = t->host + 2 * i * hw;
        memcpy(in, images + i * hw, hw * sizeof(float));
        for (size_t j = 0; j < hw; j++) in[hw + j] = 2 * masks[i * hw + j] - 1;
    }
    t->be->upload(t->be->ctx, t->images, t->host, 2 * n * hw * sizeof(float));
}

/* Forward (and, when training, backward with `scale`) of n tiles already in t->images,
 * with the noise of Philox (seed, stream) at `offset`. */
static int vae_pass(VaeTrainer *t, int n, uint64_t stream, uint64_t offset, double scale, VaeLoss *loss,
                    VaeForward *o)
{
    const VaeTrainConfig *c = &t->cfg;
    size_t latent = latent_values(c) / c->batch * n;
    t->be->fill_normal(t->be->ctx, latent, t->eps, 0, 1, c->seed, stream, offset);
    if (vae_forward(&t->model, &t->params, &t->ws, n, c->tile_h, c->tile_w, t->images, t->eps, o)) return SD_ERR;
    VaeLossConfig lc = loss_config(c);
    vae_loss(&t->params, &t->ws, &lc, o, t->images, scale, loss);
    return SD_OK;
}

void vae_trainer_update(VaeTrainer *t)
{
    const VaeTrainConfig *c = &t->cfg;
    OptimRule rule = optim_rule_gen(c->optim, c->momentum, c->wd);
    optim_update(t->be, &t->params, &rule, vae_trainer_lr(t), &t->step, t->ema_w, c->ema);
}

int vae_trainer_step(VaeTrainer *t, const float *images, const float *masks, VaeLoss *loss)
{
    const VaeTrainConfig *c = &t->cfg;
    if (c->channels == 2 && !masks) return sd_fail("this VAE trains on images with their masks: none given");
    size_t micro = tile_pixels(c);
    double scale = accum_scale(c->accum_mode, c->accum);
    *loss = (VaeLoss){0, 0, 0};
    params_zero_grad(&t->params);
    ws_set_training(&t->ws, 1);
    for (int k = 0; k < c->accum; k++) {
        VaeLoss l;
        VaeForward o;
        upload_tiles(t, c->batch, images + k * micro, masks ? masks + k * micro : NULL);
        uint64_t offset = ((uint64_t)t->step * c->accum + k) * latent_values(c);
        if (vae_pass(t, c->batch, EPS_STREAM, offset, scale, &l, &o)) return SD_ERR;
        loss->mse += l.mse / c->accum, loss->kl += l.kl / c->accum, loss->total += l.total / c->accum;
    }
    if (!isfinite(loss->total))
        return sd_fail("the training loss is not finite at step %ld (diverged: try a lower --lr)", t->step + 1);
    vae_trainer_update(t);
    return SD_OK;
}

/* ------------------------------------------------------------ validation */

/* Put the EMA weights in place of the live ones (and back). */
static void swap_ema(VaeTrainer *t)
{
    real *w = t->params.w;
    t->params.w = t->ema_w, t->ema_w = w;
}

typedef struct {
    float *images, *masks, *recon; /* host: one micro-batch; masks and recon with channels 2 */
    double mse, kl, image_sq;      /* sums: mse and kl weighted by tiles; squared errors of the image channel */
    long tiles;
} ValSums;

/* Squared error of the image channel of o->recon (downloaded) against the n host images. */
static double image_sq_error(const VaeTrainer *t, int n, const VaeForward *o, const float *images, float *recon)
{
    size_t hw = (size_t)t->cfg.tile_h * t->cfg.tile_w;
    t->be->download(t->be->ctx, recon, o->recon, o->pixels * sizeof(float));
    double sum = 0;
    for (int i = 0; i < n; i++)
        for (size_t j = 0; j < hw; j++) {
            double d = (double)recon[2 * i * hw + j] - images[i * hw + j];
            sum += d * d;
        }
    return sum;
}

static int validate_batch(VaeTrainer *t, ValSums *s, long i, int n)
{
    VaeLoss l;
    VaeForward o;
    upload_tiles(t, n, s->images, s->masks);
    if (vae_pass(t, n, VAL_EPS_STREAM, (uint64_t)i * latent_values(&t->cfg), 0, &l, &o)) return SD_ERR;
    s->mse += l.mse * n, s->kl += l.kl * n, s->tiles += n;
    if (s->recon) s->image_sq += image_sq_error(t, n, &o, s->images, s->recon);
    return SD_OK;
}

static void free_sums(ValSums *s) { free(s->images), free(s->masks), free(s->recon); }

int vae_trainer_validate(VaeTrainer *t, Loader *val, VaeVal *out)
{
    const VaeTrainConfig *c = &t->cfg;
    size_t micro = tile_pixels(c);
    int two = c->channels == 2, n = 0;
    ValSums s = {.images = malloc(micro * sizeof(float)), .masks = two ? malloc(micro * sizeof(float)) : NULL,
                 .recon = two ? malloc(2 * micro * sizeof(float)) : NULL};
    if (!s.images || (two && (!s.masks || !s.recon))) {
        free_sums(&s);
        return sd_fail("out of memory for validation");
    }
    ws_set_training(&t->ws, 0);
    if (t->ema_w) swap_ema(t);
    for (long i = 0; i < loader_batches(val) && n >= 0; i++)
        if ((n = loader_get(val, 0, i, s.images, s.masks)) >= 0 && validate_batch(t, &s, i, n)) n = -1;
    if (t->ema_w) swap_ema(t);
    free_sums(&s);
    if (n < 0) return SD_ERR;
    if (!s.tiles) return sd_fail("the validation set is empty");
    out->mse = s.mse / s.tiles, out->kl = s.kl / s.tiles;
    out->total = out->mse + c->kl_weight * out->kl;
    out->mse_image = two ? s.image_sq / ((double)s.tiles * c->tile_h * c->tile_w) : out->mse;
    return SD_OK;
}

/* ------------------------------------------------------------ epoch end */

int vae_trainer_epoch_end(VaeTrainer *t, double val_loss)
{
    const VaeTrainConfig *c = &t->cfg;
    const Backend *be = t->be;
    size_t bytes = t->params.list.numel * sizeof(real);
    if (c->schedule == VAE_SCHEDULE_PLATEAU) plateau_step(&t->plateau, &t->plateau_cfg, val_loss);
    KeepBestPolicy policy = {c->revert, c->revert_patience, c->stop_patience};
    int flags = keep_best_update(&t->keep, &policy, t->step / c->steps_per_epoch, val_loss);
    if (flags & EPOCH_BEST)
        be->copy(be->ctx, t->best_w, t->ema_w ? t->ema_w : t->params.w, bytes); /* the weights validated */
    if (flags & EPOCH_REVERTED) {
        be->copy(be->ctx, t->params.w, t->best_w, bytes);
        if (t->ema_w) be->copy(be->ctx, t->ema_w, t->best_w, bytes);
    }
    return flags;
}

/* ------------------------------------------------------------ checkpoints */

#define MAX_SECTIONS 5

static int state_sections(const VaeTrainer *t, CkptSection sec[MAX_SECTIONS])
{
    const Params *p = &t->params;
    int n = 0;
    sec[n++] = (CkptSection){"", &p->list, p->w};
    sec[n++] = (CkptSection){"optim.m.", &p->list, p->m};
    if (p->v) sec[n++] = (CkptSection){"optim.v.", &p->list, p->v};
    sec[n++] = (CkptSection){"best.", &p->list, t->best_w};
    if (t->ema_w) sec[n++] = (CkptSection){"ema.", &p->list, t->ema_w};
    return n;
}

int vae_trainer_save_last(const VaeTrainer *t, const char *path)
{
    CkptSection sec[MAX_SECTIONS];
    int nsec = state_sections(t, sec);
    TrainMeta l;
    train_meta_init(&l, vae_train_fields(), &t->cfg, VAE_MODEL, CKPT_FORMAT);
    train_meta_number(&l, "state.step", (double)t->step);
    keep_best_meta(&l, &t->keep);
    train_meta_plateau(&l, &t->plateau);
    return ckpt_save(path, t->be, sec, nsec, l.meta, l.n);
}

int vae_trainer_save_best(const VaeTrainer *t, const char *path, long epoch, double val_loss)
{
    CkptSection sec = {"", &t->params.list, t->best_w};
    TrainMeta l;
    train_meta_init(&l, vae_train_fields(), &t->cfg, VAE_MODEL, CKPT_FORMAT);
    train_meta_number(&l, "epoch", (double)epoch);
    train_meta_number(&l, "step", (double)t->step);
    train_meta_number(&l, "val_loss", val_loss);
    return ckpt_save(path, t->be, &sec, 1, l.meta, l.n);
}

int vae_trainer_load(VaeTrainer *t, const StFile *f)
{
    CkptSection sec[MAX_SECTIONS];
    int nsec = state_sections(t, sec);
    for (int i = 0; i < nsec; i++)
        if (ckpt_load(f, t->be, &sec[i])) return SD_ERR;
    if (train_meta_read_count(f, "state.step", &t->step) || keep_best_read(f, &t->keep))
        return SD_ERR;
    return train_meta_read_plateau(f, &t->plateau);
}

/* ------------------------------------------------------------ inference (gen_ckpt.h) */

/* A last checkpoint of a run with EMA holds the EMA weights as "ema."; every other
 * checkpoint's weights for inference are section "" (best: the validated ones). */
static const char *inference_section(const StFile *f, const VaeTrainConfig *c, const Params *p)
{
    char name[PARAM_NAME_MAX + 8];
    snprintf(name, sizeof name, "ema.%s", p->list.t[0].name);
    return c->ema > 0 && st_find(f, name) ? "ema." : "";
}

int vae_model_load(VaeModel *v, const Backend *be, const char *path)
{
    memset(v, 0, sizeof *v);
    params_init(&v->p, be);
    StFile f;
    if (st_read(path, &f)) return SD_ERR;
    VaeTrainConfig c;
    int rc = vae_train_config_read(&f, &c) || vae_train_config_check(&c);
    if (!rc) {
        VaeConfig m = vae_train_model_config(&c);
        rc = vae_declare(&v->m, &m, &v->p) || params_alloc(&v->p, 0);
    }
    if (!rc) {
        CkptSection sec = {inference_section(&f, &c, &v->p), &v->p.list, v->p.w};
        rc = ckpt_load(&f, be, &sec);
    }
    st_free(&f);
    if (rc) vae_model_free(v);
    return rc ? SD_ERR : SD_OK;
}

void vae_model_free(VaeModel *v)
{
    params_free(&v->p);
    memset(&v->m, 0, sizeof v->m);
}
