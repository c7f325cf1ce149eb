/* Segmentation training: steps, schedule, EMA, validation, checkpoints (see seg_trainer.h). */
#include "seg_trainer.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/err.h"
#include "optim_step.h"
#include "train_meta.h"

#define DICE_SMOOTH 1 /* the seed's "iou" loss: soft Dice with smoothing 1 */
#define CKPT_FORMAT "sdseg-train-seg/1"

static real *alloc_reals(const Backend *be, size_t n) { return be->alloc(be->ctx, n * sizeof(real)); }

static real *copy_of(const Backend *be, const real *src, size_t n)
{
    real *x = alloc_reals(be, n);
    be->copy(be->ctx, x, src, n * sizeof(real));
    return x;
}

static Params *params_of(const SegTrainer *t) { return &t->model->net.params; }

/* Keras ReduceLROnPlateau(factor 0.5, patience 3, min_lr 1e-6; min_delta 1e-4 absolute). */
static int schedule_init(SegTrainer *t)
{
    const SegTrainConfig *c = &t->cfg;
    PlateauConfig *pc = &t->plateau_cfg;
    *pc = plateau_config_default();
    pc->factor = 0.5, pc->patience = 3, pc->min_lr = 1e-6;
    pc->threshold = 1e-4, pc->threshold_mode = THRESHOLD_ABS;
    t->cosine = (CosineSchedule){.base_lr = c->lr, .min_lr = 0, .warmup = c->warmup,
                                 .total = (long)c->epochs * c->steps_per_epoch};
    if (plateau_init(&t->plateau, pc, c->lr)) return SD_ERR;
    return c->schedule == SEG_SCHEDULE_COSINE ? cosine_check(&t->cosine) : SD_OK;
}

int seg_trainer_create(SegTrainer *t, const Backend *be, const SegTrainConfig *cfg)
{
    memset(t, 0, sizeof *t);
    t->cfg = *cfg;
    t->be = be;
    t->best_val = INFINITY;
    if (seg_config_check(cfg) || schedule_init(t)) return SD_ERR;
    t->model = seg_unet_create(be, cfg->width, cfg->batch, cfg->tile_h, cfg->tile_w, 1, (float)cfg->bn_momentum);
    if (!t->model) return SD_ERR;
    seg_unet_init(t->model, cfg->seed);
    Params *p = params_of(t);
    params_alloc_optimizer(p, 2);
    size_t pixels = (size_t)cfg->batch * cfg->tile_h * cfg->tile_w;
    t->target = alloc_reals(be, pixels);
    t->scalars = alloc_reals(be, 2);
    if (cfg->loss == LOSS_BCE_DICE) {
        t->prob = alloc_reals(be, pixels);
        t->dprob = alloc_reals(be, pixels);
    }
    if (cfg->ema > 0) {
        t->ema_w = copy_of(be, p->w, p->list.numel);
        t->ema_buf = copy_of(be, p->buf, p->buffers.numel);
    }
    return SD_OK;
}

void seg_trainer_free(SegTrainer *t)
{
    real *bufs[] = {t->target, t->prob, t->dprob, t->scalars, t->ema_w, t->ema_buf};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        if (bufs[i]) t->be->release(t->be->ctx, bufs[i]);
    seg_unet_free(t->model);
    memset(t, 0, sizeof *t);
}

double seg_trainer_lr(const SegTrainer *t)
{
    return t->cfg.schedule == SEG_SCHEDULE_COSINE ? cosine_lr(&t->cosine, t->step) : t->plateau.lr;
}

/* ------------------------------------------------------------ losses */

/* Data loss of the logits against t->target (count values) into t->scalars; with dlogits,
 * also its gradient times `scale`, accumulated. Returns the loss on the host. */
static double data_loss(SegTrainer *t, size_t count, const real *logits, real *dlogits, double scale)
{
    const Backend *be = t->be;
    void *ctx = be->ctx;
    int dice = t->cfg.loss == LOSS_BCE_DICE;
    be->bce_logits_forward(ctx, count, t->scalars, logits, t->target);
    if (dlogits) be->bce_logits_backward(ctx, count, (real)scale, dlogits, logits, t->target);
    if (dice) { /* Dice acts on probabilities: through the sigmoid and back */
        be->act_forward(ctx, ACT_SIGMOID, 0, count, t->prob, logits);
        be->soft_dice_forward(ctx, count, DICE_SMOOTH, t->scalars + 1, t->prob, t->target);
        if (dlogits) {
            be->zero(ctx, t->dprob, count * sizeof(real));
            be->soft_dice_backward(ctx, count, DICE_SMOOTH, (real)scale, t->dprob, t->prob, t->target);
            be->act_backward(ctx, ACT_SIGMOID, 0, count, dlogits, t->dprob, logits);
        }
    }
    real v[2] = {0, 0};
    be->download(ctx, v, t->scalars, (dice ? 2 : 1) * sizeof(real));
    return (double)v[0] + (double)v[1];
}

/* The Keras L2 penalty wd * sum(w^2) over the regularized tensors (seed recipe only). */
static double l2_penalty(const SegTrainer *t)
{
    const Params *p = params_of(t);
    size_t at = p->group_begin[PARAM_DECAY], n = p->group_begin[PARAM_DECAY + 1] - at;
    if (t->cfg.optim != OPTIM_ADAM || t->cfg.wd == 0 || n == 0) return 0;
    real sum;
    t->be->sum_squares(t->be->ctx, n, t->scalars, p->w + at);
    t->be->download(t->be->ctx, &sum, t->scalars, sizeof sum);
    return t->cfg.wd * (double)sum;
}

/* ------------------------------------------------------------ training */

static double micro_batch(SegTrainer *t, const float *images, const float *masks, double scale)
{
    SegUnet *m = t->model;
    Net *net = &m->net;
    int n = t->cfg.batch;
    size_t count = net_act_numel(net, m->out, n);
    seg_unet_set_input(m, n, images);
    t->be->upload(t->be->ctx, t->target, masks, count * sizeof(float));
    net_forward(net, n, 1);
    net_backward_begin(net);
    double loss = data_loss(t, count, net_value(net, m->out), net_grad(net, m->out), scale);
    net_backward(net, n);
    return loss;
}

static void update(SegTrainer *t, double lr)
{
    const SegTrainConfig *c = &t->cfg;
    const Params *p = params_of(t);
    int decoupled = c->optim == OPTIM_ADAMW;
    OptimRule rule = {.adam = 1, .decoupled = decoupled, .eps = (float)c->adam_eps,
                      .wd = (float)(decoupled ? c->wd : 2 * c->wd)}; /* Keras l2(wd) has gradient 2 wd w */
    optim_update(t->be, p, &rule, lr, &t->step, t->ema_w, c->ema);
    if (t->ema_buf) ema_step(t->be, p->buffers.numel, t->ema_buf, p->buf, c->ema, t->step);
}

int seg_trainer_step(SegTrainer *t, const float *images, const float *masks, double *loss)
{
    const SegTrainConfig *c = &t->cfg;
    size_t micro = (size_t)c->batch * c->tile_h * c->tile_w;
    double lr = seg_trainer_lr(t), sum = 0;
    params_zero_grad(params_of(t));
    for (int k = 0; k < c->accum; k++) sum += micro_batch(t, images + k * micro, masks + k * micro, 1.0 / c->accum);
    *loss = sum / c->accum + l2_penalty(t); /* the penalty of the weights the loss was computed with */
    if (!isfinite(*loss))
        return sd_fail("the training loss is not finite at step %ld (diverged: try a lower --lr)", t->step + 1);
    update(t, lr);
    return SD_OK;
}

int seg_trainer_epoch_end(SegTrainer *t, double val_loss)
{
    if (t->cfg.schedule == SEG_SCHEDULE_PLATEAU) plateau_step(&t->plateau, &t->plateau_cfg, val_loss);
    if (!(val_loss < t->best_val)) return 0; /* Keras ModelCheckpoint(save_best_only): strictly better */
    t->best_val = val_loss;
    return 1;
}

/* ------------------------------------------------------------ validation */

/* Put the EMA copies in place of the live weights and buffers (and back). */
static void swap_ema(SegTrainer *t)
{
    Params *p = params_of(t);
    real *w = p->w, *buf = p->buf;
    p->w = t->ema_w, p->buf = t->ema_buf;
    t->ema_w = w, t->ema_buf = buf;
}

typedef struct {
    double bce, dice; /* sums: bce weighted by pixels, dice by tiles */
    size_t pixels, tiles, tp, fp, fn;
} ValSums;

/* Foreground confusion counts at probability 0.5 (logit 0). */
static void count_pixels(ValSums *s, const float *logits, const float *masks, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        int pred = logits[i] > 0, truth = masks[i] > 0.5f;
        s->tp += pred && truth;
        s->fp += pred && !truth;
        s->fn += !pred && truth;
    }
}

static void validate_batch(SegTrainer *t, ValSums *s, int n, const float *images, const float *masks, float *logits)
{
    SegUnet *m = t->model;
    size_t count = net_act_numel(&m->net, m->out, n);
    seg_unet_set_input(m, n, images);
    t->be->upload(t->be->ctx, t->target, masks, count * sizeof(float));
    net_forward(&m->net, n, 0);
    const real *out = net_value(&m->net, m->out);
    int dice = t->cfg.loss == LOSS_BCE_DICE;
    double total = data_loss(t, count, out, NULL, 0);
    real bce;
    t->be->download(t->be->ctx, &bce, t->scalars, sizeof bce);
    s->bce += (double)bce * (double)count;
    if (dice) s->dice += (total - (double)bce) * n;
    t->be->download(t->be->ctx, logits, out, count * sizeof(float));
    count_pixels(s, logits, masks, count);
    s->pixels += count;
    s->tiles += (size_t)n;
}

int seg_trainer_validate(SegTrainer *t, Loader *val, SegVal *out)
{
    size_t micro = (size_t)t->cfg.batch * t->cfg.tile_h * t->cfg.tile_w;
    float *images = malloc(micro * sizeof(float)), *masks = malloc(micro * sizeof(float));
    float *logits = malloc(micro * sizeof(float));
    if (!images || !masks || !logits) {
        free(images), free(masks), free(logits);
        return sd_fail("out of memory for validation");
    }
    if (t->ema_w) swap_ema(t);
    ValSums s = {0};
    int n = 0;
    for (long i = 0; i < loader_batches(val) && n >= 0; i++)
        if ((n = loader_get(val, 0, i, images, masks)) >= 0) validate_batch(t, &s, n, images, masks, logits);
    double penalty = l2_penalty(t);
    if (t->ema_w) swap_ema(t);
    free(images), free(masks), free(logits);
    if (n < 0) return SD_ERR;
    if (!s.pixels) return sd_fail("the validation set is empty");
    out->bce = s.bce / (double)s.pixels;
    out->loss = out->bce + s.dice / (double)s.tiles + penalty;
    out->iou = s.tp + s.fp + s.fn ? (double)s.tp / (double)(s.tp + s.fp + s.fn) : 1;
    out->accuracy = 1 - (double)(s.fp + s.fn) / (double)s.pixels;
    return SD_OK;
}

/* ------------------------------------------------------------ checkpoints */

/* Everything a last checkpoint holds besides metadata; returns the section count. */
static int state_sections(const SegTrainer *t, CkptSection sec[6])
{
    Params *p = params_of(t);
    CkptSection all[] = {{"", &p->list, p->w},         {"", &p->buffers, p->buf},
                         {"optim.m.", &p->list, p->m}, {"optim.v.", &p->list, p->v},
                         {"ema.", &p->list, t->ema_w}, {"ema.", &p->buffers, t->ema_buf}};
    memcpy(sec, all, sizeof all);
    return t->ema_w ? 6 : 4;
}

/* The data.extra* entries of a checkpoint (none without extra data). */
static void extra_meta(TrainMeta *l, const SegExtraData *e)
{
    if (!e->tiles) return;
    char checksum[24]; /* train_meta_text copies it */
    snprintf(checksum, sizeof checksum, "%016" PRIx64, e->checksum);
    train_meta_text(l, "data.extra", e->dir);
    train_meta_number(l, "data.extra_tiles", (double)e->tiles);
    train_meta_text(l, "data.extra_checksum", checksum);
}

int seg_extra_read(const StFile *f, SegExtraData *e)
{
    memset(e, 0, sizeof *e);
    const char *sum = st_meta(f, "data.extra_checksum"), *dir = st_meta(f, "data.extra");
    if (!sum) return SD_OK;
    char *end = NULL;
    e->checksum = strtoull(sum, &end, 16);
    if (end == sum || *end || !dir || train_meta_read_count(f, "data.extra_tiles", &e->tiles) || e->tiles < 1)
        return sd_fail("%s: bad data.extra entries in its metadata", f->path);
    snprintf(e->dir, sizeof e->dir, "%s", dir);
    return SD_OK;
}

int seg_trainer_save_last(const SegTrainer *t, const char *path)
{
    CkptSection sec[6];
    int nsec = state_sections(t, sec);
    TrainMeta l;
    train_meta_init(&l, seg_train_fields(), &t->cfg, SEG_UNET_MODEL, CKPT_FORMAT);
    train_meta_number(&l, "state.step", (double)t->step);
    /* where the data stream continues: loader batch (epoch, next_batch) of Philox seed cfg.seed */
    train_meta_number(&l, "state.epoch", (double)(t->step / t->cfg.steps_per_epoch));
    train_meta_number(&l, "state.next_batch", (double)(t->step % t->cfg.steps_per_epoch * t->cfg.accum));
    train_meta_number(&l, "state.best_val", t->best_val);
    train_meta_plateau(&l, &t->plateau);
    extra_meta(&l, &t->extra);
    return ckpt_save(path, t->be, sec, nsec, l.meta, l.n);
}

int seg_trainer_save_best(const SegTrainer *t, const char *path, int epoch, double val_loss)
{
    Params *p = params_of(t);
    CkptSection sec[] = {{"", &p->list, t->ema_w ? t->ema_w : p->w},
                         {"", &p->buffers, t->ema_buf ? t->ema_buf : p->buf}};
    TrainMeta l;
    train_meta_init(&l, seg_train_fields(), &t->cfg, SEG_UNET_MODEL, CKPT_FORMAT);
    train_meta_number(&l, "epoch", epoch);
    train_meta_number(&l, "step", (double)t->step);
    train_meta_number(&l, "val_loss", val_loss);
    extra_meta(&l, &t->extra);
    return ckpt_save(path, t->be, sec, 2, l.meta, l.n);
}

int seg_trainer_load(SegTrainer *t, const StFile *f)
{
    CkptSection sec[6];
    int nsec = state_sections(t, sec);
    for (int i = 0; i < nsec; i++)
        if (ckpt_load(f, t->be, &sec[i])) return SD_ERR;
    if (train_meta_read_count(f, "state.step", &t->step) || train_meta_read_number(f, "state.best_val", &t->best_val))
        return SD_ERR;
    return train_meta_read_plateau(f, &t->plateau);
}
