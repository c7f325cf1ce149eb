/* sdseg train-vae: train the seed's VAE on tile datasets from `sdseg prep` (masks, if
 * any, are ignored), with the seed's recipe (src/vae_trainer.h) at any width.
 *
 * The run folder receives steps.csv and epochs.csv (logs), last.safetensors (the whole
 * training state, after every epoch, every --save-every steps and when the run stops) and
 * best.safetensors (the weights with the best validation loss). --resume continues from
 * last.safetensors; on the CPU the result is bit-identical to a run never interrupted
 * (same --threads): every batch and every noise draw is a pure function of the seed and
 * the step. The validation loss is in the seed's units: per-element MSE + kl_weight * KL
 * (with the seed's KL defect unless --kl fixed), comparable with its documented 0.003076. */
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
    const char *given[CFG_MAX_FIELDS]; /* settings by field index of vae_train_fields(); NULL: not given */
} Options;

/* ------------------------------------------------------------ configuration */

static const char **given_slot(Options *o, const char *key) { return &o->given[cfg_index(vae_train_fields(), key)]; }

static int config_from_options(const Options *o, VaeTrainConfig *c)
{
    *c = vae_recipe_seed();
    return cfg_apply(vae_train_fields(), c, o->given);
}

/* Sizes from the data: tile shape and steps per epoch. */
static int fit_to_data(VaeTrainConfig *c, const TrainRun *r)
{
    if (train_run_fit(r, c->batch, c->accum, &c->tile_h, &c->tile_w, &c->steps_per_epoch)) return SD_ERR;
    return vae_train_config_check(c);
}

/* A resumed run keeps its saved settings: given options must agree (epochs may grow). */
static int config_for_resume(const Options *o, const StFile *f, const TrainRun *r, VaeTrainConfig *c)
{
    const CfgTable *t = vae_train_fields();
    if (cfg_read(t, f, c) || cfg_keep_saved(t, c, o->given, "epochs")) return SD_ERR;
    VaeTrainConfig data = *c;
    if (fit_to_data(&data, r)) return SD_ERR;
    if (data.steps_per_epoch != c->steps_per_epoch || data.tile_h != c->tile_h || data.tile_w != c->tile_w)
        return sd_fail("the training data changed since this run started");
    return SD_OK;
}

/* ------------------------------------------------------------ data and logs */

static int open_loaders(TrainRun *r, const VaeTrainConfig *c)
{
    return train_run_loaders(r, c->batch, c->accum, NORM_SYMMETRIC, NULL, c->seed);
}

static int open_logs(const Options *o, TrainRun *r, long step)
{
    return train_run_logs(r, o->base.out, "step,epoch,lr,loss,mse,kl,images_per_s,elapsed_s",
                          "step,epoch,lr,train_loss,val_loss,val_mse,val_kl,best,reverted,elapsed_s", o->base.resume,
                          step);
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
    if (vae_trainer_step(x->t, r->images, &x->last)) return SD_ERR;
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
    VaeLoss v;
    if (vae_trainer_validate(t, r->val, &v)) return SD_ERR;
    int flags = vae_trainer_epoch_end(t, v.total), best = flags & EPOCH_BEST, reverted = flags & EPOCH_REVERTED;
    if ((best && vae_trainer_save_best(t, r->best, e->epoch, v.total)) || vae_trainer_save_last(t, r->last))
        return SD_ERR;
    fprintf(r->epochs_csv, "%ld,%ld,%.6g,%.6g,%.6g,%.6g,%.6g,%d,%d,%.1f\n", e->step, e->epoch, lr, e->train_loss,
            v.total, v.mse, v.kl, best != 0, reverted != 0, e->elapsed_s);
    fflush(r->epochs_csv);
    fprintf(stderr, "%sepoch %ld/%d: train loss %.6f, val loss %.6f (mse %.6f, kl %.6f)%s%s%s\n", e->tty ? "\n" : "",
            e->epoch, t->cfg.epochs, e->train_loss, v.total, v.mse, v.kl, best ? " (best)" : "",
            reverted ? ", reverted to the best weights" : "", flags & EPOCH_STOP ? ", early stop" : "");
    return SD_OK;
}

static int save_last(void *ctx, const char *path) { return vae_trainer_save_last(((Ctx *)ctx)->t, path); }

static int finished(void *ctx) { return ((Ctx *)ctx)->t->stopped; }

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
    const char *model = st_meta(&f, "model");
    int rc = !model || strcmp(model, "vae") ? sd_fail("%s: not a VAE training checkpoint", r->last) : SD_OK;
    rc = rc || config_for_resume(o, &f, r, &c) || vae_trainer_create(t, be, &c) || vae_trainer_load(t, &f);
    st_free(&f);
    return rc ? SD_ERR : SD_OK;
}

static void describe(const VaeTrainer *t, const TrainRun *r, const Options *o)
{
    const VaeTrainConfig *c = &t->cfg;
    fprintf(stderr,
            "train-vae: VAE width %d, latent %d (%.2f M parameters) on %s, %d training and %d validation tiles of "
            "%dx%d, %ld steps per epoch of %dx%d tiles (%s), KL %s x %g, SGD lr %g momentum %g%s\n",
            c->width, c->latent, t->params.list.numel / 1e6, o->base.device, r->train_ts.count, r->val_ts.count,
            c->tile_h, c->tile_w, c->steps_per_epoch, c->batch, c->accum,
            c->accum_mode == ACCUM_MEAN ? "averaged" : "summed",
            c->kl == VAE_KL_SEED ? "seed (std for the mean)" : "fixed", c->kl_weight, c->lr, c->momentum,
            o->base.resume ? ", resumed" : "");
    if (o->base.resume)
        fprintf(stderr, "train-vae: continuing after step %ld (epoch %ld)%s\n", t->step, t->step / c->steps_per_epoch,
                t->stopped ? ": the run had stopped early, nothing to do" : "");
}

static int run(const void *options, const Backend *be)
{
    const Options *o = options;
    TrainRun r;
    VaeTrainer t = {0};
    int rc = train_run_open(&r, o->base.data, o->base.out, o->base.resume, 0) || start_trainer(o, &r, be, &t) ||
             open_loaders(&r, &t.cfg) || open_logs(o, &r, t.step);
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
    Options o = {.base.device = "cpu"};
    const CliOpt opts[] = {
        {"data", CLI_STR, &o.base.data, "folder with train.tiles and val.tiles (sdseg prep; masks not needed)", 1},
        {"out", CLI_STR, &o.base.out, "run folder: logs and checkpoints", 1},
        {"device", CLI_STR, &o.base.device, "cpu or cuda", 0},
        {"fast", CLI_FLAG, &o.base.fast, "cuda: bf16 convolutions and matrix products", 0},
        {"width", CLI_STR, given_slot(&o, "width"), "base width (the seed: 128; 8 or 16 on a CPU)", 0},
        {"latent", CLI_STR, given_slot(&o, "latent"), "latent channels (32)", 0},
        {"groups", CLI_STR, given_slot(&o, "groups"), "GroupNorm groups, dividing the width (32)", 0},
        {"epochs", CLI_STR, given_slot(&o, "epochs"), "epochs (25)", 0},
        {"batch", CLI_STR, given_slot(&o, "batch"), "tiles per micro-batch (5)", 0},
        {"accum", CLI_STR, given_slot(&o, "accum"), "micro-batches per optimizer step (10)", 0},
        {"accum-mode", CLI_STR, given_slot(&o, "accum_mode"), "mean, or sum (the seed's bug) (mean)", 0},
        {"lr", CLI_STR, given_slot(&o, "lr"), "SGD learning rate (1e-4)", 0},
        {"momentum", CLI_STR, given_slot(&o, "momentum"), "SGD momentum (0.9)", 0},
        {"kl", CLI_STR, given_slot(&o, "kl"), "seed (its defect: the std where the mean belongs) or fixed (seed)", 0},
        {"kl-weight", CLI_STR, given_slot(&o, "kl_weight"), "beta: loss = MSE + beta * KL (1)", 0},
        {"plateau-factor", CLI_STR, given_slot(&o, "plateau_factor"), "ReduceLROnPlateau factor (0.5)", 0},
        {"plateau-patience", CLI_STR, given_slot(&o, "plateau_patience"), "ReduceLROnPlateau patience (3)", 0},
        {"revert", CLI_STR, given_slot(&o, "revert"), "deep, or shallow (the seed's bug: reverts nothing) (deep)", 0},
        {"revert-patience", CLI_STR, given_slot(&o, "revert_patience"),
         "back to the best weights after every N epochs without improvement, 0 = never (3)", 0},
        {"stop-patience", CLI_STR, given_slot(&o, "stop_patience"), "early stop after N epochs without improvement (10)",
         0},
        {"seed", CLI_STR, given_slot(&o, "seed"), "random seed: initialization, order, noise (1)", 0},
        {"max-steps", CLI_INT, &o.base.max_steps, "stop after this many optimizer steps in all (0: no limit)", 0},
        {"save-every", CLI_INT, &o.base.save_every, "also save last.safetensors every N steps (0: per epoch)", 0},
        {"resume", CLI_FLAG, &o.base.resume,
         "continue the run in --out with its saved settings (--epochs may extend it)", 0},
        {"threads", CLI_INT, &o.base.threads, "CPU threads (0: OpenMP's default)", 0},
        {NULL, 0, NULL, NULL, 0},
    };
    int st = cli_parse(argc, argv, "train the seed's VAE (its recipe, defects switchable)", opts);
    return st != CLI_RUN ? st : train_command(CMD, &o.base, run, &o);
}
