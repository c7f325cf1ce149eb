/* Latent diffusion training: configuration, steps, validation, epoch end, checkpoints and
 * the inference loader of gen_ckpt.h (see ddpm_trainer.h). */
#include "ddpm_trainer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/err.h"
#include "../core/philox.h"
#include "gen_ckpt.h"
#include "train_meta.h"

#define CKPT_FORMAT "sdseg-train-ddpm/1"
#define DDPM_MODEL "ddpm"

/* Philox streams: the posterior draw, the diffusion noise and the timesteps of training,
 * the same three of validation, and the shuffle of each epoch. */
#define STREAM(k) (0x6464706d00000000ull + (k))
#define Z_STREAM STREAM(1)
#define NOISE_STREAM STREAM(2)
#define T_STREAM STREAM(3)
#define VAL_Z_STREAM STREAM(4)
#define VAL_NOISE_STREAM STREAM(5)
#define VAL_T_STREAM STREAM(6)
#define ORDER_STREAM(epoch) (0x6464706f00000000ull + (uint64_t)(epoch))

/* ------------------------------------------------------------ configuration */

static const char *const mult_names[] = {"1,2,4,4", "1,2,2,2", "1,1,2,2", "1,2,3,4", "1,1,1,1", "1,2,4,8", NULL};
/* Attention per level: name i has bit (3 - l) of i at level l. */
static const char *const attn_names[] = {"0,0,0,0", "0,0,0,1", "0,0,1,0", "0,0,1,1", "0,1,0,0", "0,1,0,1",
                                         "0,1,1,0", "0,1,1,1", "1,0,0,0", "1,0,0,1", "1,0,1,0", "1,0,1,1",
                                         "1,1,0,0", "1,1,0,1", "1,1,1,0", "1,1,1,1", NULL};
static const char *const arch_names[] = {"seed", "improved", NULL};
static const char *const schedule_names[] = {"scaled-linear", "linear", "cosine", NULL}; /* ScheduleKind */
static const char *const prediction_names[] = {"epsilon", "v", NULL};                   /* Prediction */
static const char *const t_sampling_names[] = {"fixed999", "uniform", NULL};
static const char *const lr_schedule_names[] = {"plateau", "cosine", NULL};

#define AT(f) offsetof(DdpmTrainConfig, f)
static const CfgField fields[] = {
    {"width", CFG_INT, AT(width), NULL},
    {"levels", CFG_INT, AT(levels), NULL},
    {"mult", CFG_ENUM, AT(mult), mult_names},
    {"attn", CFG_ENUM, AT(attn), attn_names},
    {"blocks", CFG_INT, AT(blocks), NULL},
    {"heads", CFG_INT, AT(heads), NULL},
    {"groups", CFG_INT, AT(groups), NULL},
    {"config", CFG_ENUM, AT(config), arch_names},
    {"schedule", CFG_ENUM, AT(schedule), schedule_names},
    {"prediction", CFG_ENUM, AT(prediction), prediction_names},
    {"timesteps", CFG_INT, AT(timesteps), NULL},
    {"t_sampling", CFG_ENUM, AT(t_sampling), t_sampling_names},
    {"optim", CFG_ENUM, AT(optim), gen_optim_names},
    {"lr_schedule", CFG_ENUM, AT(lr_schedule), lr_schedule_names},
    {"batch", CFG_INT, AT(batch), NULL},
    {"accum", CFG_INT, AT(accum), NULL},
    {"accum_mode", CFG_ENUM, AT(accum_mode), accum_mode_names},
    {"epochs", CFG_INT, AT(epochs), NULL},
    {"lr", CFG_DOUBLE, AT(lr), NULL},
    {"momentum", CFG_DOUBLE, AT(momentum), NULL},
    {"wd", CFG_DOUBLE, AT(wd), NULL},
    {"ema", CFG_DOUBLE, AT(ema), NULL},
    {"warmup", CFG_LONG, AT(warmup), NULL},
    {"plateau_factor", CFG_DOUBLE, AT(plateau_factor), NULL},
    {"plateau_patience", CFG_INT, AT(plateau_patience), NULL},
    {"revert", CFG_ENUM, AT(revert), revert_mode_names},
    {"revert_patience", CFG_INT, AT(revert_patience), NULL},
    {"stop_patience", CFG_INT, AT(stop_patience), NULL},
    {"latent", CFG_INT, AT(latent), NULL},
    {"latent_h", CFG_INT, AT(latent_h), NULL},
    {"latent_w", CFG_INT, AT(latent_w), NULL},
    {"steps_per_epoch", CFG_LONG, AT(steps_per_epoch), NULL},
    {"seed", CFG_U64, AT(seed), NULL},
};

const CfgTable *ddpm_train_fields(void)
{
    static const CfgTable table = {fields, sizeof fields / sizeof *fields};
    return &table;
}

DdpmTrainConfig ddpm_recipe(int improved)
{
    DdpmTrainConfig c = {.width = 320, .levels = 4, .mult = 0, .attn = 14 /* 1,1,1,0 */, .blocks = 2, .heads = 8,
                         .groups = 8, .config = ARCH_SEED, .schedule = SCHEDULE_SCALED_LINEAR,
                         .prediction = PREDICT_EPSILON, .timesteps = 1000, .t_sampling = T_FIXED999,
                         .optim = GEN_OPTIM_SGD, .lr_schedule = LR_PLATEAU, .batch = 2, .accum = 10,
                         .accum_mode = ACCUM_MEAN, .epochs = 100, .lr = 1e-4, .momentum = 0.9, .plateau_factor = 0.5,
                         .plateau_patience = 3, .revert = REVERT_DEEP, .revert_patience = 3, .stop_patience = 10,
                         .seed = 1};
    if (improved) {
        c.config = ARCH_IMPROVED, c.attn = 4 /* 0,1,0,0 */, c.schedule = SCHEDULE_COSINE;
        c.t_sampling = T_UNIFORM, c.optim = GEN_OPTIM_ADAMW, c.lr_schedule = LR_COSINE;
        c.wd = 0.01, c.ema = 0.999, c.warmup = -1, c.revert_patience = 0;
    }
    return c;
}

UnetConfig ddpm_unet_config(const DdpmTrainConfig *c)
{
    UnetConfig u = c->config == ARCH_IMPROVED ? unet_config_improved() : unet_config_seed();
    u.in_ch = c->latent, u.base = c->width, u.levels = c->levels, u.blocks = c->blocks;
    u.heads = c->heads, u.groups = c->groups;
    u.time_in = c->width, u.time_dim = 2 * c->width; /* the seed's 320 -> 640 at width 320 */
    const char *mult = mult_names[c->mult];
    for (int l = 0; l < UNET_MAX_LEVELS; l++) {
        u.mult[l] = mult[2 * l] - '0';
        u.attn[l] = c->attn >> (UNET_MAX_LEVELS - 1 - l) & 1;
    }
    return u;
}

int ddpm_train_config_check(const DdpmTrainConfig *c)
{
    if (c->width < 2 || c->width % 2) return sd_fail("width must be even and positive (got %d)", c->width);
    UnetConfig u = ddpm_unet_config(c);
    if (unet_config_check(&u)) return SD_ERR;
    if (c->timesteps < 2 || c->timesteps > 100000)
        return sd_fail("timesteps must be in 2..100000 (got %d)", c->timesteps);
    if (c->batch < 1 || c->accum < 1 || c->epochs < 1) return sd_fail("batch, accum and epochs must be at least 1");
    if (optim_check(c->lr, c->momentum, c->wd, c->ema)) return SD_ERR;
    if (!(c->plateau_factor > 0 && c->plateau_factor < 1))
        return sd_fail("plateau_factor must be in (0, 1) (got %g)", c->plateau_factor);
    if (c->warmup < 0) return sd_fail("warmup must not be negative (got %ld)", c->warmup);
    if (c->plateau_patience < 0 || c->revert_patience < 0 || c->stop_patience < 1)
        return sd_fail("patiences must not be negative (and stop_patience at least 1)");
    int align = 1 << (c->levels - 1);
    if (c->latent < 1 || c->latent_h < align || c->latent_w < align || c->latent_h % align || c->latent_w % align)
        return sd_fail("latents of %dx%dx%d: %d levels need sizes that are positive multiples of %d (tiles of %d)",
                       c->latent, c->latent_h, c->latent_w, c->levels, align, 8 * align);
    if (c->steps_per_epoch < 1) return sd_fail("an epoch must hold at least one step of batch x accum latents");
    return SD_OK;
}

int ddpm_latent_scale(const DdpmLatents *train, double *scale)
{
    size_t n = (size_t)train->count * train->per;
    double sum = 0, sq = 0;
    for (size_t i = 0; i < n; i++) sum += train->mean[i];
    double mean = n ? sum / (double)n : 0;
    for (size_t i = 0; i < n; i++) sq += (train->mean[i] - mean) * (train->mean[i] - mean);
    double std = n ? sqrt(sq / (double)n) : 0;
    *scale = 1 / std;
    if (!(std > 0 && isfinite(*scale)))
        return sd_fail("the training latents have standard deviation %g: cannot scale them", std);
    return SD_OK;
}

/* ------------------------------------------------------------ setup */

static real *alloc_reals(const Backend *be, size_t n) { return be->alloc(be->ctx, n * sizeof(real)); }

static size_t latent_per(const DdpmTrainConfig *c) { return (size_t)c->latent * c->latent_h * c->latent_w; }

static int schedules_init(DdpmTrainer *t)
{
    const DdpmTrainConfig *c = &t->cfg;
    t->plateau_cfg = plateau_config_default(); /* torch's ReduceLROnPlateau, factor and patience set */
    t->plateau_cfg.factor = c->plateau_factor;
    t->plateau_cfg.patience = c->plateau_patience;
    t->cosine = (CosineSchedule){.base_lr = c->lr, .min_lr = 0, .warmup = c->warmup,
                                 .total = (long)c->epochs * c->steps_per_epoch};
    if (plateau_init(&t->plateau, &t->plateau_cfg, c->lr) ||
        (c->lr_schedule == LR_COSINE && cosine_check(&t->cosine)))
        return SD_ERR;
    return schedule_create(&t->sched, (ScheduleKind)c->schedule, (Prediction)c->prediction, c->timesteps, 0, 0);
}

static int check_latents(const DdpmTrainConfig *c, const DdpmLatents *train, const DdpmLatents *val)
{
    if (train->per != latent_per(c) || val->per != latent_per(c))
        return sd_fail("latents of %zu values do not fit %dx%dx%d", train->per, c->latent, c->latent_h, c->latent_w);
    if (train->count < (long)c->batch * c->accum)
        return sd_fail("%d training latents: fewer than one step of %d x %d", train->count, c->batch, c->accum);
    return val->count > 0 ? SD_OK : sd_fail("the validation set is empty");
}

static void alloc_buffers(DdpmTrainer *t)
{
    const DdpmTrainConfig *c = &t->cfg;
    const Backend *be = t->be;
    size_t micro = (size_t)c->batch * latent_per(c), numel = t->params.list.numel;
    real **bufs[] = {&t->mean, &t->logvar, &t->x0, &t->noise, &t->x_t, &t->target};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) *bufs[i] = alloc_reals(be, micro);
    t->scalar = alloc_reals(be, 1);
    if (c->ema > 0) {
        t->ema_w = alloc_reals(be, numel);
        be->copy(be->ctx, t->ema_w, t->params.w, numel * sizeof(real));
    }
    if (c->revert_patience > 0 && c->revert == REVERT_DEEP) { /* shallow reverts nothing: no copies */
        t->best_w = alloc_reals(be, numel);
        be->copy(be->ctx, t->best_w, t->params.w, numel * sizeof(real));
        if (t->ema_w) {
            t->best_ema = alloc_reals(be, numel);
            be->copy(be->ctx, t->best_ema, t->ema_w, numel * sizeof(real));
        }
    }
}

static int alloc_host(DdpmTrainer *t)
{
    const DdpmTrainConfig *c = &t->cfg;
    t->order = malloc((size_t)t->train->count * sizeof *t->order);
    t->stage = malloc(2 * (size_t)c->batch * latent_per(c) * sizeof *t->stage);
    t->steps = malloc((size_t)c->batch * sizeof *t->steps);
    t->t_real = malloc((size_t)c->batch * sizeof *t->t_real);
    return t->order && t->stage && t->steps && t->t_real ? SD_OK : sd_fail("out of memory for the training batches");
}

int ddpm_trainer_create(DdpmTrainer *t, const Backend *be, const DdpmTrainConfig *cfg, const DdpmLatents *train,
                        const DdpmLatents *val, double latent_scale, const char *vae_path)
{
    memset(t, 0, sizeof *t);
    t->cfg = *cfg;
    t->be = be;
    t->train = train, t->val = val;
    t->latent_scale = latent_scale;
    snprintf(t->vae_path, sizeof t->vae_path, "%s", vae_path);
    keep_best_init(&t->keep);
    t->order_epoch = -1;
    params_init(&t->params, be);
    ws_init(&t->ws, be);
    UnetConfig u = ddpm_unet_config(cfg);
    if (ddpm_train_config_check(cfg) || check_latents(cfg, train, val) || schedules_init(t) ||
        unet_declare(&t->model, &u, &t->params) || params_alloc(&t->params, 1) || alloc_host(t))
        return SD_ERR;
    OptimRule rule = optim_rule_gen(cfg->optim, cfg->momentum, cfg->wd);
    params_alloc_optimizer(&t->params, optim_state_slots(&rule));
    layers_init_torch(&t->params, cfg->seed);
    alloc_buffers(t);
    return SD_OK;
}

void ddpm_trainer_free(DdpmTrainer *t)
{
    real *bufs[] = {t->mean,   t->logvar, t->x0,    t->noise,  t->x_t,
                    t->target, t->scalar, t->ema_w, t->best_w, t->best_ema};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        if (bufs[i]) t->be->release(t->be->ctx, bufs[i]);
    free(t->order), free(t->stage), free(t->steps), free(t->t_real);
    schedule_free(&t->sched);
    ws_free(&t->ws);
    params_free(&t->params);
    memset(t, 0, sizeof *t);
}

double ddpm_trainer_lr(const DdpmTrainer *t)
{
    return t->cfg.lr_schedule == LR_COSINE ? cosine_lr(&t->cosine, t->step) : t->plateau.lr;
}

/* ------------------------------------------------------------ one micro-batch */

/* The training latents of `epoch` in a Philox shuffle (Fisher-Yates). */
static void epoch_order(DdpmTrainer *t, long epoch)
{
    if (t->order_epoch == epoch) return;
    int n = t->train->count;
    for (int i = 0; i < n; i++) t->order[i] = i;
    for (int i = n - 1; i > 0; i--) {
        philox_u32x4 r = philox4x32_10(t->cfg.seed, ORDER_STREAM(epoch), (uint64_t)i);
        int j = (int)(((uint64_t)r.v[0] * (uint64_t)(i + 1)) >> 32); /* uniform in [0, i] */
        int32_t k = t->order[i];
        t->order[i] = t->order[j];
        t->order[j] = k;
    }
    t->order_epoch = epoch;
}

/* Timesteps of n samples: draw `first + b` of `stream` (uniform over 0..T-1), or T-1. */
static void draw_timesteps(DdpmTrainer *t, int n, uint64_t stream, uint64_t first, int uniform)
{
    int T = t->cfg.timesteps;
    for (int b = 0; b < n; b++) {
        int s = T - 1;
        if (uniform) s = (int)(philox_uniform(t->cfg.seed, stream, first + b) * (float)T);
        t->steps[b] = s < T - 1 ? s : T - 1;
        t->t_real[b] = (real)t->steps[b];
    }
}

/* A micro-batch of n latents of `set` (index[b], or first + b when index is NULL), its
 * draws numbered first + b: x0 = (mean + exp(logvar/2) eps) * latent_scale, the noise,
 * x_t and the target at t->steps. */
typedef struct {
    const DdpmLatents *set;
    const int32_t *index;
    int n;
    uint64_t first, z_stream, noise_stream;
} Draw;

static void prepare(DdpmTrainer *t, const Draw *d)
{
    const Backend *be = t->be;
    size_t per = d->set->per, numel = (size_t)d->n * per;
    float *mean = t->stage, *logvar = t->stage + numel;
    for (int b = 0; b < d->n; b++) {
        size_t at = (size_t)(d->index ? (uint64_t)d->index[b] : d->first + b) * per;
        memcpy(mean + b * per, d->set->mean + at, per * sizeof(float));
        memcpy(logvar + b * per, d->set->logvar + at, per * sizeof(float));
    }
    be->upload(be->ctx, t->mean, mean, numel * sizeof(float));
    be->upload(be->ctx, t->logvar, logvar, numel * sizeof(float));
    /* the posterior's eps goes through t->noise, which the diffusion noise then replaces */
    be->fill_normal(be->ctx, numel, t->noise, 0, 1, t->cfg.seed, d->z_stream, d->first * per);
    be->reparameterize_forward(be->ctx, numel, t->x0, t->mean, t->logvar, t->noise);
    be->scale(be->ctx, numel, (real)t->latent_scale, t->x0);
    be->fill_normal(be->ctx, numel, t->noise, 0, 1, t->cfg.seed, d->noise_stream, d->first * per);
    diffusion_add_noise(be, &t->sched, d->n, per, t->steps, t->x_t, t->x0, t->noise);
    diffusion_target(be, &t->sched, d->n, per, t->steps, t->target, t->x0, t->noise);
}

/* The U-Net on the prepared micro-batch, *loss = MSE(prediction, target); in a training
 * pass also the backward of grad_scale * loss into the parameter gradients. */
static int predict(DdpmTrainer *t, int n, double grad_scale, double *loss)
{
    const Backend *be = t->be;
    const DdpmTrainConfig *c = &t->cfg;
    size_t numel = (size_t)n * latent_per(c);
    real *pred, v;
    if (unet_forward_ws(&t->model, &t->params, &t->ws, n, c->latent_h, c->latent_w, t->t_real, t->x_t, &pred))
        return SD_ERR;
    be->mse_forward(be->ctx, numel, t->scalar, pred, t->target);
    if (t->ws.training) {
        ws_zero_grads(&t->ws);
        be->mse_backward(be->ctx, numel, (real)grad_scale, ws_grad(&t->ws, pred), pred, t->target);
        layers_backward(&t->params, &t->ws);
    }
    be->download(be->ctx, &v, t->scalar, sizeof v);
    *loss = v;
    return SD_OK;
}

/* ------------------------------------------------------------ training */

void ddpm_trainer_batch(DdpmTrainer *t, int k)
{
    const DdpmTrainConfig *c = &t->cfg;
    long pos = (t->step % c->steps_per_epoch * c->accum + k) * c->batch;
    epoch_order(t, t->step / c->steps_per_epoch);
    uint64_t first = ((uint64_t)t->step * c->accum + k) * c->batch; /* draws numbered across epochs */
    Draw d = {t->train, t->order + pos, c->batch, first, Z_STREAM, NOISE_STREAM};
    draw_timesteps(t, c->batch, T_STREAM, d.first, c->t_sampling == T_UNIFORM);
    prepare(t, &d);
}

int ddpm_trainer_step(DdpmTrainer *t, double *loss)
{
    const DdpmTrainConfig *c = &t->cfg;
    double scale = accum_scale(c->accum_mode, c->accum), lr = ddpm_trainer_lr(t), sum = 0;
    OptimRule rule = optim_rule_gen(c->optim, c->momentum, c->wd);
    params_zero_grad(&t->params);
    ws_set_training(&t->ws, 1);
    for (int k = 0; k < c->accum; k++) {
        double l;
        ddpm_trainer_batch(t, k);
        if (predict(t, c->batch, scale, &l)) return SD_ERR;
        sum += l;
    }
    *loss = sum / c->accum;
    if (!isfinite(*loss))
        return sd_fail("the training loss is not finite at step %ld (diverged: try a lower --lr)", t->step + 1);
    optim_update(t->be, &t->params, &rule, lr, &t->step, t->ema_w, c->ema);
    return SD_OK;
}

/* Put the EMA weights in place of the live ones (and back). */
static void swap_ema(DdpmTrainer *t)
{
    real *w = t->params.w;
    t->params.w = t->ema_w, t->ema_w = w;
}

int ddpm_trainer_validate(DdpmTrainer *t, double *loss)
{
    const DdpmLatents *v = t->val;
    int batch = t->cfg.batch, rc = SD_OK;
    double sum = 0;
    if (t->ema_w) swap_ema(t);
    ws_set_training(&t->ws, 0);
    for (int i = 0; i < v->count && rc == SD_OK; i += batch) {
        Draw d = {v, NULL, v->count - i < batch ? v->count - i : batch, (uint64_t)i, VAL_Z_STREAM, VAL_NOISE_STREAM};
        double l = 0;
        draw_timesteps(t, d.n, VAL_T_STREAM, d.first, 1);
        prepare(t, &d);
        rc = predict(t, d.n, 0, &l);
        sum += l * d.n;
    }
    if (t->ema_w) swap_ema(t);
    *loss = sum / v->count;
    return rc;
}

/* The best weights (and EMA) into their copies (restore = 0) or back (restore = 1). */
static void best_copy(DdpmTrainer *t, int restore)
{
    const Backend *be = t->be;
    size_t bytes = t->params.list.numel * sizeof(real);
    real *pairs[2][2] = {{t->params.w, t->best_w}, {t->ema_w, t->best_ema}};
    for (int i = 0; i < 2; i++)
        if (pairs[i][1]) be->copy(be->ctx, pairs[i][!restore], pairs[i][restore], bytes);
}

int ddpm_trainer_epoch_end(DdpmTrainer *t, double val_loss)
{
    const DdpmTrainConfig *c = &t->cfg;
    if (c->lr_schedule == LR_PLATEAU) plateau_step(&t->plateau, &t->plateau_cfg, val_loss);
    KeepBestPolicy policy = {c->revert, c->revert_patience, c->stop_patience};
    int flags = keep_best_update(&t->keep, &policy, t->step / c->steps_per_epoch, val_loss);
    if (flags & EPOCH_BEST) best_copy(t, 0);
    if (flags & EPOCH_REVERTED) best_copy(t, 1);
    return flags;
}

/* ------------------------------------------------------------ checkpoints */

static int state_sections(const DdpmTrainer *t, CkptSection sec[6])
{
    const Params *p = &t->params;
    int n = 0;
    sec[n++] = (CkptSection){"", &p->list, p->w};
    sec[n++] = (CkptSection){"optim.m.", &p->list, p->m};
    if (p->v) sec[n++] = (CkptSection){"optim.v.", &p->list, p->v};
    if (t->ema_w) sec[n++] = (CkptSection){"ema.", &p->list, t->ema_w};
    if (t->best_w) sec[n++] = (CkptSection){"best.", &p->list, t->best_w};
    if (t->best_ema) sec[n++] = (CkptSection){"best.ema.", &p->list, t->best_ema};
    return n;
}

/* The configuration, identity, latent scale and VAE path every checkpoint carries. */
static void meta_init(TrainMeta *l, const DdpmTrainer *t)
{
    train_meta_init(l, ddpm_train_fields(), &t->cfg, DDPM_MODEL, CKPT_FORMAT);
    train_meta_number(l, "state.latent_scale", t->latent_scale);
    /* a path can outgrow TrainMeta's own text: the entry points at the trainer's copy */
    l->meta[l->n++] = (StMeta){"vae_path", t->vae_path};
}

int ddpm_trainer_save_last(const DdpmTrainer *t, const char *path)
{
    CkptSection sec[6];
    int nsec = state_sections(t, sec);
    TrainMeta l;
    meta_init(&l, t);
    train_meta_number(&l, "state.step", (double)t->step);
    keep_best_meta(&l, &t->keep);
    train_meta_plateau(&l, &t->plateau);
    return ckpt_save(path, t->be, sec, nsec, l.meta, l.n);
}

/* Called when the current weights are the best: they and their EMA are saved as they are. */
int ddpm_trainer_save_best(const DdpmTrainer *t, const char *path, long epoch, double val_loss)
{
    CkptSection sec[] = {{"", &t->params.list, t->params.w}, {"ema.", &t->params.list, t->ema_w}};
    TrainMeta l;
    meta_init(&l, t);
    train_meta_number(&l, "epoch", (double)epoch);
    train_meta_number(&l, "step", (double)t->step);
    train_meta_number(&l, "val_loss", val_loss);
    return ckpt_save(path, t->be, sec, t->ema_w ? 2 : 1, l.meta, l.n);
}

int ddpm_trainer_load(DdpmTrainer *t, const StFile *f)
{
    CkptSection sec[6];
    int nsec = state_sections(t, sec);
    for (int i = 0; i < nsec; i++)
        if (ckpt_load(f, t->be, &sec[i])) return SD_ERR;
    if (train_meta_read_count(f, "state.step", &t->step) || keep_best_read(f, &t->keep))
        return SD_ERR;
    return train_meta_read_plateau(f, &t->plateau);
}

int ddpm_ckpt_identity(const StFile *f, double *latent_scale, char *vae_path, size_t n)
{
    const char *model = st_meta(f, "model"), *vae = st_meta(f, "vae_path");
    if (!model || strcmp(model, DDPM_MODEL)) return sd_fail("%s: not a diffusion (train-ddpm) checkpoint", f->path);
    if (train_meta_read_number(f, "state.latent_scale", latent_scale)) return SD_ERR;
    if (!(*latent_scale > 0 && isfinite(*latent_scale)))
        return sd_fail("%s: bad state.latent_scale %g in its metadata", f->path, *latent_scale);
    if (!vae || !*vae) return sd_fail("%s: no vae_path in its metadata", f->path);
    snprintf(vae_path, n, "%s", vae);
    return SD_OK;
}

/* ------------------------------------------------------------ inference (gen_ckpt.h) */

static int model_from(DdpmModel *d, const Backend *be, const StFile *f, int ema)
{
    DdpmTrainConfig c;
    if (ddpm_ckpt_identity(f, &d->latent_scale, d->vae_path, sizeof d->vae_path) ||
        cfg_read(ddpm_train_fields(), f, &c))
        return SD_ERR;
    UnetConfig u = ddpm_unet_config(&c);
    CkptSection sec = {ema && c.ema > 0 ? "ema." : "", &d->p.list, NULL};
    if (unet_declare(&d->m, &u, &d->p) || params_alloc(&d->p, 0)) return SD_ERR;
    sec.data = d->p.w;
    d->latent_h = c.latent_h, d->latent_w = c.latent_w;
    if (ckpt_load(f, be, &sec)) return SD_ERR;
    return schedule_create(&d->sched, (ScheduleKind)c.schedule, (Prediction)c.prediction, c.timesteps, 0, 0);
}

int ddpm_model_load(DdpmModel *d, const Backend *be, const char *path, int ema)
{
    memset(d, 0, sizeof *d);
    params_init(&d->p, be);
    StFile f;
    if (st_read(path, &f)) return SD_ERR;
    int rc = model_from(d, be, &f, ema);
    st_free(&f);
    if (rc) ddpm_model_free(d);
    return rc ? SD_ERR : SD_OK;
}

void ddpm_model_free(DdpmModel *d)
{
    params_free(&d->p);
    schedule_free(&d->sched);
}
