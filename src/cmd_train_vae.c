/* sdseg train-vae: train the VAE on tile datasets from `sdseg prep`, with the seed's
 * recipe or the improved one (src/vae_trainer.h) at any width, on the images alone or,
 * with --with-masks, on [image, mask] pairs (the datasets must hold masks).
 *
 * The run folder receives steps.csv and epochs.csv (logs), last.safetensors (the whole
 * training state, after every epoch, every --save-every steps and when the run stops) and
 * best.safetensors (the weights with the best validation loss). --resume continues from
 * last.safetensors; on the CPU the result is bit-identical to a run never interrupted
 * (same --threads): every batch and every noise draw is a pure function of the seed and
 * the step. The validation loss is in the seed's units: per-element MSE + kl_weight * KL
 * (with the seed's KL defect unless --kl fixed); epochs.csv's val_mse_image, the MSE of
 * the image channel alone, is comparable with the seed's documented 0.003076 either way.
 * A resumed run keeps its settings (given ones must agree; --recipe is not read again);
 * --epochs may grow, which with the cosine schedule stretches the rest of its decay. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/err.h"
#include "cli.h"
#include "run_files.h"
#include "train_loop.h"
#include "vae_trainer.h"

#define CMD "train-vae"

typedef struct {
    TrainOptions base;
    const char *recipe;
    int with_masks;
    const char *given[CFG_MAX_FIELDS]; /* settings by field index of vae_train_fields(); NULL: not given */
} Options;

/* ------------------------------------------------------------ configuration */

static const char **given_slot(Options *o, const char *key) { return &o->given[cfg_index(vae_train_fields(), key)]; }

/* The recipe's defaults with the given options applied. */
static int config_from_options(const Options *o, VaeTrainConfig *c)
{
    int improved;
    if (train_recipe_parse(o->recipe, &improved)) return SD_ERR;
    *c = vae_recipe(improved);
    return cfg_apply(vae_train_fields(), c, o->given);
}

/* Sizes from the data: tile shape, steps per epoch, warmup -1 = one epoch. */
static int fit_to_data(VaeTrainConfig *c, const TrainRun *r)
{
    if (train_run_fit(r, c->batch, c->accum, &c->tile_h, &c->tile_w, &c->steps_per_epoch)) return SD_ERR;
    c->warmup = train_warmup_steps(c->warmup, c->epochs, c->steps_per_epoch);
    return vae_train_config_check(c);
}

/* A resumed run keeps its saved settings: given options must agree (epochs may grow). */
static int config_for_resume(const Options *o, const StFile *f, const TrainRun *r, VaeTrainConfig *c)
{
    if (vae_train_config_read(f, c) || cfg_keep_saved(vae_train_fields(), c, o->given, "epochs")) return SD_ERR;
    VaeTrainConfig data = *c;
    if (fit_to_data(&data, r)) return SD_ERR;
    if (data.steps_per_epoch != c->steps_per_epoch || data.tile_h != c->tile_h || data.tile_w != c->tile_w)
        return sd_fail("the training data changed since this run started");
    return SD_OK;
}

/* ------------------------------------------------------------ data and logs */

/* A configuration with channels 2 needs the datasets' masks. */
static int use_masks(TrainRun *r, const Options *o, const VaeTrainConfig *c)
{
    if (c->channels == 1) return SD_OK;
    if (!r->train_ts.mask || !r->val_ts.mask)
        return sd_fail("%s: the tile datasets hold no masks (--with-masks needs sdseg prep --mask)", o->base.data);
    r->with_masks = 1;
    return SD_OK;
}

static int open_loaders(TrainRun *r, const VaeTrainConfig *c)
{
    return train_run_loaders(r, c->batch, c->accum, NORM_SYMMETRIC, NULL, c->seed);
}

static int open_logs(const Options *o, TrainRun *r, long step)
{
    return train_run_logs(r, o->base.out, "step,epoch,lr,loss,mse,kl,images_per_s,elapsed_s",
                          "step,epoch,lr,train_loss,val_loss,val_mse,val_kl,best,reverted,elapsed_s,val_mse_image",
                          o->base.resume, step);
}

/* ------------------------------------------------------------ the loop (train_loop.h) */

typedef struct {
    VaeTrainer *t;
    VaeLoss last; /* of the latest step, for steps.csv */
} Ctx;

static int step_fn(void *ctx, TrainRun *r, double *lr, double *loss)
{
    Ctx *x = ctx;
    *lr = vae_trainer_lr(x->t);
    if (vae_trainer_step(x->t, r->images, r->masks, &x->last)) return SD_ERR;
    *loss = x->last.total;
    return SD_OK;
}

static void log_step(void *ctx, TrainRun *r, const TrainTick *k, char *what, size_t n)
{
    const Ctx *x = ctx;
    fprintf(r->steps_csv, "%ld,%ld,%.6g,%.6g,%.6g,%.6g,%.2f,%.2f\n", k->step, k->epoch, k->lr, k->loss, x->last.mse,
            x->last.kl, k->ips, k->elapsed_s);
    fflush(r->steps_csv);
    snprintf(what, n, "epoch %ld/%d loss %.5f lr %.2g %.2f img/s, step", k->epoch, x->t->cfg.epochs, k->loss, k->lr,
             k->ips);
}

static int end_epoch(void *ctx, TrainRun *r, const TrainEpoch *e)
{
    VaeTrainer *t = ((Ctx *)ctx)->t;
    double lr = vae_trainer_lr(t);
    VaeVal v;
    if (vae_trainer_validate(t, r->val, &v)) return SD_ERR;
    int flags = vae_trainer_epoch_end(t, v.total), best = flags & EPOCH_BEST, reverted = flags & EPOCH_REVERTED;
    if ((best && vae_trainer_save_best(t, r->best, e->epoch, v.total)) || vae_trainer_save_last(t, r->last))
        return SD_ERR;
    fprintf(r->epochs_csv, "%ld,%ld,%.6g,%.6g,%.6g,%.6g,%.6g,%d,%d,%.1f,%.6g\n", e->step, e->epoch, lr, e->train_loss,
            v.total, v.mse, v.kl, best != 0, reverted != 0, e->elapsed_s, v.mse_image);
    fflush(r->epochs_csv);
    fprintf(stderr, "%sepoch %ld/%d: train loss %.6f, val loss %.6f (mse %.6f, kl %.6f, image mse %.6f)%s%s%s\n",
            e->tty ? "\n" : "", e->epoch, t->cfg.epochs, e->train_loss, v.total, v.mse, v.kl, v.mse_image,
            best ? " (best)" : "",
            reverted ? ", reverted to the best weights" : "", flags & EPOCH_STOP ? ", early stop" : "");
    return SD_OK;
}

static int save_last(void *ctx, const char *path) { return vae_trainer_save_last(((Ctx *)ctx)->t, path); }

static int finished(void *ctx) { return ((Ctx *)ctx)->t->keep.stopped; }

static int train(VaeTrainer *t, TrainRun *r, const Options *o)
{
    const VaeTrainConfig *c = &t->cfg;
    Ctx x = {.t = t};
    TrainLoop l = {.ctx = &x, .step = &t->step, .steps_per_epoch = c->steps_per_epoch, .epochs = c->epochs,
                   .batch = c->batch, .accum = c->accum, .step_fn = step_fn, .log_step = log_step,
                   .end_epoch = end_epoch, .save_last = save_last, .finished = finished};
    return train_loop_run(&l, r, o->base.max_steps, o->base.save_every);
}

/* ------------------------------------------------------------ setup */

static int start_trainer(const Options *o, TrainRun *r, const Backend *be, VaeTrainer *t)
{
    VaeTrainConfig c;
    if (!o->base.resume) {
        if (config_from_options(o, &c) || fit_to_data(&c, r)) return SD_ERR;
        return vae_trainer_create(t, be, &c);
    }
    StFile f;
    if (st_read(r->last, &f)) return SD_ERR;
    int rc = config_for_resume(o, &f, r, &c) || vae_trainer_create(t, be, &c) || vae_trainer_load(t, &f);
    st_free(&f);
    return rc ? SD_ERR : SD_OK;
}

/* The optimizer and schedule, e.g. "AdamW lr 0.0002 wd 0.01, cosine (warmup 3), EMA 0.999". */
static void describe_optimizer(const VaeTrainConfig *c, char *buf, size_t n)
{
    int used = c->optim == GEN_OPTIM_ADAMW
                   ? snprintf(buf, n, "AdamW lr %g wd %g", c->lr, c->wd)
                   : snprintf(buf, n, "SGD lr %g momentum %g wd %g", c->lr, c->momentum, c->wd);
    used += c->schedule == VAE_SCHEDULE_COSINE ? snprintf(buf + used, n - used, ", cosine (warmup %ld)", c->warmup)
                                               : snprintf(buf + used, n - used, ", plateau");
    if (c->ema > 0) snprintf(buf + used, n - used, ", EMA %g", c->ema);
}

static void describe(const VaeTrainer *t, const TrainRun *r, const Options *o)
{
    const VaeTrainConfig *c = &t->cfg;
    char optim[160];
    describe_optimizer(c, optim, sizeof optim);
    fprintf(stderr,
            "train-vae: %s VAE width %d, latent %d, %s (%.2f M parameters) on %s, %d training and %d validation "
            "tiles of %dx%d, %ld steps per epoch of %dx%d tiles (%s), KL %s x %g, %s%s\n",
            c->config == VAE_ARCH_IMPROVED ? "improved" : "seed", c->width, c->latent,
            c->channels == 2 ? "image + mask" : "image", t->params.list.numel / 1e6, o->base.device,
            r->train_ts.count, r->val_ts.count, c->tile_h, c->tile_w, c->steps_per_epoch, c->batch, c->accum,
            c->accum_mode == ACCUM_MEAN ? "averaged" : "summed",
            c->kl == VAE_KL_SEED ? "seed (std for the mean)" : "fixed", c->kl_weight, optim,
            o->base.resume ? ", resumed" : "");
    if (o->base.resume)
        fprintf(stderr, "train-vae: continuing after step %ld (epoch %ld)%s\n", t->step, t->step / c->steps_per_epoch,
                t->keep.stopped ? ": the run had stopped early, nothing to do" : "");
}

static int run(const void *options, const Backend *be)
{
    const Options *o = options;
    TrainRun r;
    VaeTrainer t = {0};
    int rc = train_run_open(&r, o->base.data, o->base.out, o->base.resume, 0) || start_trainer(o, &r, be, &t) ||
             use_masks(&r, o, &t.cfg) || open_loaders(&r, &t.cfg) || open_logs(o, &r, t.step);
    if (!rc) {
        describe(&t, &r, o);
        rc = train(&t, &r, o);
    }
    if (t.be) vae_trainer_free(&t);
    train_run_close(&r);
    return rc ? SD_ERR : SD_OK;
}

int cmd_train_vae(int argc, char **argv)
{
    Options o = {.base.device = "cpu", .recipe = "seed"};
    const CliOpt opts[] = {
        {"data", CLI_STR, &o.base.data, "folder with train.tiles and val.tiles (sdseg prep; masks for --with-masks)",
         1},
        {"out", CLI_STR, &o.base.out, "run folder: logs and checkpoints", 1},
        {"device", CLI_STR, &o.base.device, "cpu or cuda", 0},
        {"fast", CLI_FLAG, &o.base.fast, "cuda: bf16 convolutions and matrix products", 0},
        {"recipe", CLI_STR, &o.recipe, "seed or improved: the defaults of the options below", 0},
        {"config", CLI_STR, given_slot(&o, "config"),
         "network: seed (decoder skips) or improved (bottleneck, tanh, anti-aliasing) (as the recipe)", 0},
        {"with-masks", CLI_FLAG, &o.with_masks, "train on [image, mask] pairs (2 channels; the data needs masks)", 0},
        {"width", CLI_STR, given_slot(&o, "width"), "base width (the seed: 128; 8 or 16 on a CPU)", 0},
        {"latent", CLI_STR, given_slot(&o, "latent"), "latent channels (32)", 0},
        {"groups", CLI_STR, given_slot(&o, "groups"), "GroupNorm groups, dividing the width (32)", 0},
        {"epochs", CLI_STR, given_slot(&o, "epochs"), "epochs (25)", 0},
        {"batch", CLI_STR, given_slot(&o, "batch"), "tiles per micro-batch (5)", 0},
        {"accum", CLI_STR, given_slot(&o, "accum"), "micro-batches per optimizer step (seed: 10, improved: 1)", 0},
        {"accum-mode", CLI_STR, given_slot(&o, "accum_mode"), "mean, or sum (the seed's bug) (mean)", 0},
        {"optim", CLI_STR, given_slot(&o, "optim"), "sgd or adamw (seed: sgd, improved: adamw)", 0},
        {"lr", CLI_STR, given_slot(&o, "lr"), "learning rate (seed: 1e-4, improved: 2e-4)", 0},
        {"momentum", CLI_STR, given_slot(&o, "momentum"), "SGD momentum (0.9)", 0},
        {"wd", CLI_STR, given_slot(&o, "wd"),
         "weight decay of convolutions and linear layers (sgd: L2, adamw: decoupled) (seed: 0, improved: 0.01)", 0},
        {"schedule", CLI_STR, given_slot(&o, "schedule"), "plateau or cosine (seed: plateau, improved: cosine)", 0},
        {"warmup", CLI_STR, given_slot(&o, "warmup"), "cosine warmup steps (improved: one epoch)", 0},
        {"ema", CLI_STR, given_slot(&o, "ema"), "EMA decay of the weights, 0 = off (improved: 0.999)", 0},
        {"kl", CLI_STR, given_slot(&o, "kl"),
         "seed (its defect: the std where the mean belongs) or fixed (as the recipe)", 0},
        {"kl-weight", CLI_STR, given_slot(&o, "kl_weight"), "beta: loss = MSE + beta * KL (seed: 1, improved: 1e-4)",
         0},
        {"plateau-factor", CLI_STR, given_slot(&o, "plateau_factor"), "ReduceLROnPlateau factor (0.5)", 0},
        {"plateau-patience", CLI_STR, given_slot(&o, "plateau_patience"), "ReduceLROnPlateau patience (3)", 0},
        {"revert", CLI_STR, given_slot(&o, "revert"), "deep, or shallow (the seed's bug: reverts nothing) (deep)", 0},
        {"revert-patience", CLI_STR, given_slot(&o, "revert_patience"),
         "back to the best weights after every N epochs without improvement, 0 = never (seed: 3, improved: 0)", 0},
        {"stop-patience", CLI_STR, given_slot(&o, "stop_patience"),
         "early stop after N epochs without improvement (10)", 0},
        {"seed", CLI_STR, given_slot(&o, "seed"), "random seed: initialization, order, noise (1)", 0},
        {"max-steps", CLI_INT, &o.base.max_steps, "stop after this many optimizer steps in all (0: no limit)", 0},
        {"save-every", CLI_INT, &o.base.save_every, "also save last.safetensors every N steps (0: per epoch)", 0},
        {"resume", CLI_FLAG, &o.base.resume,
         "continue the run in --out with its saved settings (--epochs may extend it)", 0},
        {"threads", CLI_INT, &o.base.threads, "CPU threads (0: OpenMP's default)", 0},
        {NULL, 0, NULL, NULL, 0},
    };
    int st = cli_parse(argc, argv, "train the VAE (the seed's recipe with its defects switchable, or the improved one)",
                       opts);
    if (st != CLI_RUN) return st;
    if (o.with_masks) *given_slot(&o, "channels") = "2";
    return train_command(CMD, &o.base, run, &o);
}
