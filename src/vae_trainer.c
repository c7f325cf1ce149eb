/* VAE training: configuration, steps, validation, epoch end, checkpoints (see vae_trainer.h). */
#include "vae_trainer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/err.h"
#include "train_meta.h"

#define CKPT_FORMAT "sdseg-train-vae/1"
#define VAE_MODEL "vae"
#define EPS_STREAM 0x7661650001ull     /* Philox stream of the training noise */
#define VAL_EPS_STREAM 0x7661650002ull /* and of the validation noise */

/* ------------------------------------------------------------ configuration */

static const char *const kl_names[] = {"seed", "fixed", NULL};
static const char *const accum_names[] = {"mean", "sum", NULL};
static const char *const revert_names[] = {"deep", "shallow", NULL};

#define AT(f) offsetof(VaeTrainConfig, f)
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
    {"accum_mode", CFG_ENUM, AT(accum_mode), accum_names},
    {"revert", CFG_ENUM, AT(revert), revert_names},
    {"lr", CFG_DOUBLE, AT(lr), NULL},
    {"momentum", CFG_DOUBLE, AT(momentum), NULL},
    {"kl_weight", CFG_DOUBLE, AT(kl_weight), NULL},
    {"plateau_factor", CFG_DOUBLE, AT(plateau_factor), NULL},
    {"plateau_patience", CFG_INT, AT(plateau_patience), NULL},
    {"revert_patience", CFG_INT, AT(revert_patience), NULL},
    {"stop_patience", CFG_INT, AT(stop_patience), NULL},
    {"steps_per_epoch", CFG_LONG, AT(steps_per_epoch), NULL},
    {"seed", CFG_U64, AT(seed), NULL},
};

const CfgTable *vae_train_fields(void)
{
    static const CfgTable table = {fields, sizeof fields / sizeof *fields};
    return &table;
}

VaeTrainConfig vae_recipe_seed(void)
{
    VaeConfig m = vae_config_seed();
    return (VaeTrainConfig){.width = m.base, .latent = m.latent, .groups = m.groups, .batch = 5, .accum = 10,
                            .epochs = 25, .kl = VAE_KL_SEED, .accum_mode = ACCUM_MEAN, .revert = REVERT_DEEP,
                            .lr = 1e-4, .momentum = 0.9, .kl_weight = 1, .plateau_factor = 0.5,
                            .plateau_patience = 3, .revert_patience = 3, .stop_patience = 10, .seed = 1};
}

static VaeConfig model_config(const VaeTrainConfig *c)
{
    return (VaeConfig){.in_ch = 1, .base = c->width, .latent = c->latent, .groups = c->groups, .skips = 1};
}

int vae_train_config_check(const VaeTrainConfig *c)
{
    VaeConfig m = model_config(c);
    if (vae_config_check(&m)) return SD_ERR;
    if (c->batch < 1 || c->accum < 1 || c->epochs < 1) return sd_fail("batch, accum and epochs must be at least 1");
    if (c->tile_h < 8 || c->tile_w < 8 || c->tile_h % 8 || c->tile_w % 8)
        return sd_fail("VAE tiles must be positive multiples of 8 (got %dx%d)", c->tile_h, c->tile_w);
    if (!(c->lr > 0 && isfinite(c->lr))) return sd_fail("lr must be positive (got %g)", c->lr);
    if (!(c->momentum >= 0 && c->momentum < 1)) return sd_fail("momentum must be in [0, 1) (got %g)", c->momentum);
    if (!(c->kl_weight >= 0 && isfinite(c->kl_weight))) return sd_fail("kl_weight must be >= 0 (got %g)", c->kl_weight);
    if (c->plateau_patience < 0 || c->revert_patience < 0 || c->stop_patience < 1)
        return sd_fail("patiences must not be negative (and stop_patience at least 1)");
    if (c->steps_per_epoch < 1) return sd_fail("an epoch must hold at least one step of batch x accum tiles");
    return SD_OK;
}

/* ------------------------------------------------------------ setup */

static real *alloc_reals(const Backend *be, size_t n) { return be->alloc(be->ctx, n * sizeof(real)); }

static size_t tile_pixels(const VaeTrainConfig *c) { return (size_t)c->batch * c->tile_h * c->tile_w; }
static size_t latent_values(const VaeTrainConfig *c)
{
    return (size_t)c->batch * c->latent * (c->tile_h / 8) * (c->tile_w / 8);
}

/* torch ReduceLROnPlateau(mode min, factor, patience), its other defaults. */
static int schedule_init(VaeTrainer *t)
{
    t->plateau_cfg = plateau_config_default();
    t->plateau_cfg.factor = t->cfg.plateau_factor;
    t->plateau_cfg.patience = t->cfg.plateau_patience;
    return plateau_init(&t->plateau, &t->plateau_cfg, t->cfg.lr);
}

int vae_trainer_create(VaeTrainer *t, const Backend *be, const VaeTrainConfig *cfg)
{
    memset(t, 0, sizeof *t);
    t->cfg = *cfg;
    t->be = be;
    t->best_val = INFINITY;
    params_init(&t->params, be);
    ws_init(&t->ws, be);
    VaeConfig m = model_config(cfg);
    if (vae_train_config_check(cfg) || schedule_init(t) || vae_declare(&t->model, &m, &t->params) ||
        params_alloc(&t->params, 1))
        return SD_ERR;
    params_alloc_optimizer(&t->params, 1);
    layers_init_torch(&t->params, cfg->seed);
    t->images = alloc_reals(be, tile_pixels(cfg));
    t->eps = alloc_reals(be, latent_values(cfg));
    t->best_w = alloc_reals(be, t->params.list.numel);
    be->copy(be->ctx, t->best_w, t->params.w, t->params.list.numel * sizeof(real));
    return SD_OK;
}

void vae_trainer_free(VaeTrainer *t)
{
    real *bufs[] = {t->images, t->eps, t->best_w};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        if (bufs[i]) t->be->release(t->be->ctx, bufs[i]);
    ws_free(&t->ws);
    params_free(&t->params);
    memset(t, 0, sizeof *t);
}

double vae_trainer_lr(const VaeTrainer *t) { return t->plateau.lr; }

/* ------------------------------------------------------------ training */

static VaeLossConfig loss_config(const VaeTrainConfig *c)
{
    return (VaeLossConfig){.kl_weight = c->kl_weight, .kl_std_for_mean = c->kl == VAE_KL_SEED};
}

/* Forward (and, when training, backward with `scale`) of n tiles already in t->images,
 * with the noise of Philox (seed, stream) at `offset`. */
static int vae_pass(VaeTrainer *t, int n, uint64_t stream, uint64_t offset, double scale, VaeLoss *loss)
{
    const VaeTrainConfig *c = &t->cfg;
    size_t latent = latent_values(c) / c->batch * n;
    t->be->fill_normal(t->be->ctx, latent, t->eps, 0, 1, c->seed, stream, offset);
    VaeForward o;
    if (vae_forward(&t->model, &t->params, &t->ws, n, c->tile_h, c->tile_w, t->images, t->eps, &o)) return SD_ERR;
    VaeLossConfig lc = loss_config(c);
    vae_loss(&t->params, &t->ws, &lc, &o, t->images, scale, loss);
    return SD_OK;
}

int vae_trainer_step(VaeTrainer *t, const float *images, VaeLoss *loss)
{
    const VaeTrainConfig *c = &t->cfg;
    const Params *p = &t->params;
    size_t micro = tile_pixels(c);
    double scale = c->accum_mode == ACCUM_MEAN ? 1.0 / c->accum : 1.0, lr = vae_trainer_lr(t);
    *loss = (VaeLoss){0, 0, 0};
    params_zero_grad(p);
    ws_set_training(&t->ws, 1);
    for (int k = 0; k < c->accum; k++) {
        VaeLoss l;
        t->be->upload(t->be->ctx, t->images, images + k * micro, micro * sizeof(float));
        uint64_t offset = ((uint64_t)t->step * c->accum + k) * latent_values(c);
        if (vae_pass(t, c->batch, EPS_STREAM, offset, scale, &l)) return SD_ERR;
        loss->mse += l.mse / c->accum, loss->kl += l.kl / c->accum, loss->total += l.total / c->accum;
    }
    if (!isfinite(loss->total))
        return sd_fail("the training loss is not finite at step %ld (diverged: try a lower --lr)", t->step + 1);
    t->be->sgd_step(t->be->ctx, p->list.numel, p->w, p->grad, p->m, (float)lr, (float)c->momentum, 0, 0, 0,
                    t->step + 1);
    t->step++;
    return SD_OK;
}

int vae_trainer_validate(VaeTrainer *t, Loader *val, VaeLoss *out)
{
    const VaeTrainConfig *c = &t->cfg;
    float *images = malloc(tile_pixels(c) * sizeof(float));
    if (!images) return sd_fail("out of memory for validation");
    ws_set_training(&t->ws, 0);
    double mse = 0, kl = 0;
    long tiles = 0;
    int n = 0;
    for (long i = 0; i < loader_batches(val) && n >= 0; i++) {
        VaeLoss l;
        if ((n = loader_get(val, 0, i, images, NULL)) < 0) break;
        t->be->upload(t->be->ctx, t->images, images, (size_t)n * c->tile_h * c->tile_w * sizeof(float));
        if (vae_pass(t, n, VAL_EPS_STREAM, (uint64_t)i * latent_values(c), 0, &l)) n = -1;
        else mse += l.mse * n, kl += l.kl * n, tiles += n;
    }
    free(images);
    if (n < 0) return SD_ERR;
    if (!tiles) return sd_fail("the validation set is empty");
    out->mse = mse / tiles, out->kl = kl / tiles;
    out->total = out->mse + c->kl_weight * out->kl;
    return SD_OK;
}

int vae_trainer_epoch_end(VaeTrainer *t, double val_loss)
{
    const Backend *be = t->be;
    size_t bytes = t->params.list.numel * sizeof(real);
    long epoch = t->step / t->cfg.steps_per_epoch;
    plateau_step(&t->plateau, &t->plateau_cfg, val_loss);
    if (val_loss < t->best_val) {
        t->best_val = val_loss, t->best_epoch = epoch, t->bad_epochs = 0;
        be->copy(be->ctx, t->best_w, t->params.w, bytes);
        return EPOCH_BEST;
    }
    int flags = 0;
    t->bad_epochs++;
    int revert_due = t->cfg.revert_patience > 0 && t->bad_epochs % t->cfg.revert_patience == 0;
    if (revert_due && t->cfg.revert == REVERT_DEEP) { /* shallow: the seed's copy of references, a no-op */
        be->copy(be->ctx, t->params.w, t->best_w, bytes);
        flags |= EPOCH_REVERTED;
    }
    if (t->bad_epochs >= t->cfg.stop_patience) {
        t->stopped = 1;
        flags |= EPOCH_STOP;
    }
    return flags;
}

/* ------------------------------------------------------------ checkpoints */

static int state_sections(const VaeTrainer *t, CkptSection sec[3])
{
    const Params *p = &t->params;
    CkptSection all[] = {{"", &p->list, p->w}, {"optim.m.", &p->list, p->m}, {"best.", &p->list, t->best_w}};
    memcpy(sec, all, sizeof all);
    return 3;
}

int vae_trainer_save_last(const VaeTrainer *t, const char *path)
{
    CkptSection sec[3];
    int nsec = state_sections(t, sec);
    TrainMeta l;
    train_meta_init(&l, vae_train_fields(), &t->cfg, VAE_MODEL, CKPT_FORMAT);
    train_meta_number(&l, "state.step", (double)t->step);
    train_meta_number(&l, "state.best_val", t->best_val);
    train_meta_number(&l, "state.best_epoch", (double)t->best_epoch);
    train_meta_number(&l, "state.bad_epochs", (double)t->bad_epochs);
    train_meta_number(&l, "state.stopped", t->stopped);
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
    CkptSection sec[3];
    int nsec = state_sections(t, sec);
    for (int i = 0; i < nsec; i++)
        if (ckpt_load(f, t->be, &sec[i])) return SD_ERR;
    long stopped = 0;
    if (train_meta_read_number(f, "state.best_val", &t->best_val) ||
        train_meta_read_count(f, "state.step", &t->step) ||
        train_meta_read_count(f, "state.best_epoch", &t->best_epoch) ||
        train_meta_read_count(f, "state.bad_epochs", &t->bad_epochs) ||
        train_meta_read_count(f, "state.stopped", &stopped) || train_meta_read_plateau(f, &t->plateau))
        return SD_ERR;
    t->stopped = stopped != 0;
    return SD_OK;
}
