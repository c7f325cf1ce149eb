/* sdseg train-seg: train the segmentation U-Net on tile datasets from `sdseg prep`.
 *
 * The run directory receives steps.csv and epochs.csv (logs), last.safetensors (the whole
 * training state, after every epoch, every --save-every steps and when the run stops) and
 * best.safetensors (the weights with the best validation loss). --resume continues from
 * last.safetensors; on the CPU the result is bit-identical to a run never interrupted,
 * because every batch is a pure function of (seed, epoch, index) and the CPU operators
 * reduce in a fixed order (use the same --threads).
 *
 * --extra-data DIR adds the training tiles of a second prep dataset (synthetic tiles with
 * their masks, say) to those of --data; validation stays on --data's val.tiles. The
 * checkpoints record it (seg_trainer.h), and a resumed run must get the same file again. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/err.h"
#include "cli.h"
#include "run_files.h"
#include "seg_trainer.h"
#include "train_loop.h"

#define CMD "train-seg"

typedef struct {
    TrainOptions base;
    const char *recipe;
    const char *extra; /* --extra-data, or NULL */
    const char *given[CFG_MAX_FIELDS]; /* settings by field index of seg_train_fields(); NULL: not given */
} Options;

/* ------------------------------------------------------------ configuration */

/* Where option --key's text goes (key: a seg_config.h name). */
static const char **given_slot(Options *o, const char *key) { return &o->given[cfg_index(seg_train_fields(), key)]; }

/* The recipe's defaults with the given options applied. */
static int config_from_options(const Options *o, SegTrainConfig *c)
{
    int improved;
    if (train_recipe_parse(o->recipe, &improved)) return SD_ERR;
    *c = seg_recipe(improved);
    return cfg_apply(seg_train_fields(), c, o->given);
}

/* Sizes from the data: tile shape, steps per epoch, warmup -1 = one epoch. */
static int fit_to_data(SegTrainConfig *c, const TrainRun *r)
{
    if (train_run_fit(r, c->batch, c->accum, &c->tile_h, &c->tile_w, &c->steps_per_epoch)) return SD_ERR;
    c->warmup = train_warmup_steps(c->warmup, c->epochs, c->steps_per_epoch);
    return seg_config_check(c);
}

/* A resumed run trains on the extra data it started with (the same file), or on none. */
static int same_extra(const StFile *f, const SegExtraData *now)
{
    SegExtraData was;
    if (seg_extra_read(f, &was)) return SD_ERR;
    if (!was.tiles && now->tiles)
        return sd_fail("this run was started without --extra-data (a resumed run keeps its training data)");
    if (was.tiles && !now->tiles)
        return sd_fail("this run was started with --extra-data %s: give it again to resume", was.dir);
    if (was.tiles != now->tiles || was.checksum != now->checksum)
        return sd_fail("--extra-data %s is not the data this run was started with "
                       "(%s: %ld tiles, checksum %016" PRIx64 ")",
                       now->dir, was.dir, was.tiles, was.checksum);
    return SD_OK;
}

/* A resumed run keeps its saved settings: given options must agree (epochs may grow). */
static int config_for_resume(const Options *o, const StFile *f, const TrainRun *r, const SegExtraData *extra,
                             SegTrainConfig *c)
{
    const CfgTable *t = seg_train_fields();
    if (cfg_read(t, f, c) || cfg_keep_saved(t, c, o->given, "epochs") || same_extra(f, extra)) return SD_ERR;
    SegTrainConfig data = *c;
    if (fit_to_data(&data, r)) return SD_ERR;
    if (data.steps_per_epoch != c->steps_per_epoch || data.tile_h != c->tile_h || data.tile_w != c->tile_w)
        return sd_fail("the training data changed since this run started (%ld steps per epoch of %dx%d tiles, "
                       "was %ld of %dx%d)",
                       data.steps_per_epoch, data.tile_h, data.tile_w, c->steps_per_epoch, c->tile_h, c->tile_w);
    return SD_OK;
}

/* ------------------------------------------------------------ data and logs */

/* --extra-data's training tiles joined to r's (nothing without the option). */
static int add_extra(const Options *o, TrainRun *r, SegExtraData *e)
{
    memset(e, 0, sizeof *e);
    if (!o->extra) return SD_OK;
    int count;
    if (train_run_add_train(r, o->extra, &count, &e->checksum)) return SD_ERR;
    e->tiles = count;
    snprintf(e->dir, sizeof e->dir, "%s", o->extra);
    return SD_OK;
}

static int open_loaders(TrainRun *r, const SegTrainConfig *c)
{
    Augment aug = seg_augment(c);
    return train_run_loaders(r, c->batch, c->accum, NORM_UNIT, &aug, c->seed);
}

static int open_logs(const Options *o, TrainRun *r, long step)
{
    return train_run_logs(r, o->base.out, "step,epoch,lr,loss,images_per_s,elapsed_s",
                          "step,epoch,lr,train_loss,val_loss,val_bce,val_iou,val_accuracy,best,elapsed_s",
                          o->base.resume, step);
}

/* ------------------------------------------------------------ the loop (train_loop.h) */

static int step_fn(void *ctx, TrainRun *r, double *lr, double *loss)
{
    SegTrainer *t = ctx;
    *lr = seg_trainer_lr(t);
    return seg_trainer_step(t, r->images, r->masks, loss);
}

static void log_step(void *ctx, TrainRun *r, const TrainTick *k, char *what, size_t n)
{
    const SegTrainer *t = ctx;
    fprintf(r->steps_csv, "%ld,%ld,%.6g,%.6f,%.1f,%.2f\n", k->step, k->epoch, k->lr, k->loss, k->ips, k->elapsed_s);
    fflush(r->steps_csv);
    snprintf(what, n, "epoch %ld/%d loss %.4f lr %.2g %.1f img/s, step", k->epoch, t->cfg.epochs, k->loss, k->lr,
             k->ips);
}

static int end_epoch(void *ctx, TrainRun *r, const TrainEpoch *e)
{
    SegTrainer *t = ctx;
    double lr = seg_trainer_lr(t);
    SegVal v;
    if (seg_trainer_validate(t, r->val, &v)) return SD_ERR;
    int best = seg_trainer_epoch_end(t, v.loss);
    if ((best && seg_trainer_save_best(t, r->best, (int)e->epoch, v.loss)) || seg_trainer_save_last(t, r->last))
        return SD_ERR;
    fprintf(r->epochs_csv, "%ld,%ld,%.6g,%.6f,%.6f,%.6f,%.6f,%.6f,%d,%.1f\n", e->step, e->epoch, lr, e->train_loss,
            v.loss, v.bce, v.iou, v.accuracy, best, e->elapsed_s);
    fflush(r->epochs_csv);
    fprintf(stderr, "%sepoch %ld/%d: train loss %.4f, val loss %.4f, val IoU %.4f, accuracy %.4f%s\n",
            e->tty ? "\n" : "", e->epoch, t->cfg.epochs, e->train_loss, v.loss, v.iou, v.accuracy,
            best ? " (best)" : "");
    return SD_OK;
}

static int save_last(void *ctx, const char *path) { return seg_trainer_save_last(ctx, path); }

static int train(SegTrainer *t, TrainRun *r, const Options *o)
{
    const SegTrainConfig *c = &t->cfg;
    TrainLoop l = {.ctx = t, .step = &t->step, .steps_per_epoch = c->steps_per_epoch, .epochs = c->epochs,
                   .batch = c->batch, .accum = c->accum, .step_fn = step_fn, .log_step = log_step,
                   .end_epoch = end_epoch, .save_last = save_last};
    return train_loop_run(&l, r, o->base.max_steps, o->base.save_every);
}

/* ------------------------------------------------------------ setup */

/* A trainer for a fresh or a resumed run. */
static int start_trainer(const Options *o, TrainRun *r, const SegExtraData *extra, const Backend *be, SegTrainer *t)
{
    SegTrainConfig c;
    int rc;
    if (!o->base.resume) {
        rc = config_from_options(o, &c) || fit_to_data(&c, r) || seg_trainer_create(t, be, &c);
    } else {
        StFile f;
        if (st_read(r->last, &f)) return SD_ERR;
        rc = config_for_resume(o, &f, r, extra, &c) || seg_trainer_create(t, be, &c) || seg_trainer_load(t, &f);
        st_free(&f);
    }
    if (!rc) t->extra = *extra;
    return rc ? SD_ERR : SD_OK;
}

static void describe(const SegTrainer *t, const TrainRun *r, const Options *o)
{
    const SegTrainConfig *c = &t->cfg;
    char loss[16], optim[16], sched[16];
    seg_config_get(c, "loss", loss, sizeof loss);
    seg_config_get(c, "optim", optim, sizeof optim);
    seg_config_get(c, "schedule", sched, sizeof sched);
    fprintf(stderr,
            "train-seg: U-Net width %d on %s, %d training and %d validation tiles of %dx%d, %ld steps per epoch "
            "of %dx%d tiles, %s, %s, lr %g (%s)%s\n",
            c->width, o->base.device, r->train_ts.count, r->val_ts.count, c->tile_h, c->tile_w, c->steps_per_epoch,
            c->batch, c->accum, loss, optim, c->lr, sched, o->base.resume ? ", resumed" : "");
    if (t->extra.tiles)
        fprintf(stderr, "train-seg: %ld of the training tiles come from --extra-data %s\n", t->extra.tiles, o->extra);
    if (o->base.resume)
        fprintf(stderr, "train-seg: continuing after step %ld (epoch %ld)\n", t->step, t->step / c->steps_per_epoch);
}

static int run(const void *options, const Backend *be)
{
    const Options *o = options;
    TrainRun r;
    SegTrainer t = {0};
    SegExtraData extra;
    int rc = train_run_open(&r, o->base.data, o->base.out, o->base.resume, 1) || add_extra(o, &r, &extra) ||
             start_trainer(o, &r, &extra, be, &t) || open_loaders(&r, &t.cfg) || open_logs(o, &r, t.step);
    if (!rc) {
        describe(&t, &r, o);
        rc = train(&t, &r, o);
    }
    if (t.model) seg_trainer_free(&t);
    train_run_close(&r);
    return rc ? SD_ERR : SD_OK;
}

int cmd_train_seg(int argc, char **argv)
{
    Options o = {.base.device = "cpu", .recipe = "seed"};
    const CliOpt opts[] = {
        {"data", CLI_STR, &o.base.data, "folder with train.tiles and val.tiles (sdseg prep)", 1},
        {"extra-data", CLI_STR, &o.extra,
         "a second prep folder whose train.tiles join the training set (validation: --data's only)", 0},
        {"out", CLI_STR, &o.base.out, "run folder: logs and checkpoints", 1},
        {"device", CLI_STR, &o.base.device, "cpu or cuda", 0},
        {"fast", CLI_FLAG, &o.base.fast, "cuda: bf16 convolutions and matrix products", 0},
        {"recipe", CLI_STR, &o.recipe, "seed or improved: the defaults of the options below", 0},
        {"width", CLI_STR, given_slot(&o, "width"), "U-Net base width (64; 16 or 32 on a CPU)", 0},
        {"epochs", CLI_STR, given_slot(&o, "epochs"), "epochs (50)", 0},
        {"batch", CLI_STR, given_slot(&o, "batch"), "tiles per micro-batch (8)", 0},
        {"accum", CLI_STR, given_slot(&o, "accum"), "micro-batches per optimizer step, gradients averaged (1)", 0},
        {"loss", CLI_STR, given_slot(&o, "loss"), "bce or bce+dice (seed: bce, improved: bce+dice)", 0},
        {"optim", CLI_STR, given_slot(&o, "optim"), "adam (with Keras L2) or adamw (seed: adam, improved: adamw)", 0},
        {"lr", CLI_STR, given_slot(&o, "lr"), "learning rate (1e-3)", 0},
        {"wd", CLI_STR, given_slot(&o, "wd"), "adam: Keras l2 factor (0.001); adamw: decoupled decay (0.01)", 0},
        {"schedule", CLI_STR, given_slot(&o, "schedule"), "plateau or cosine (seed: plateau, improved: cosine)", 0},
        {"warmup", CLI_STR, given_slot(&o, "warmup"), "cosine warmup steps (improved: one epoch)", 0},
        {"ema", CLI_STR, given_slot(&o, "ema"), "EMA decay of the weights, 0 = off (improved: 0.999)", 0},
        {"augment", CLI_STR, given_slot(&o, "augment"), "seed, improved or none (as the recipe)", 0},
        {"seed", CLI_STR, given_slot(&o, "seed"), "random seed: initialization, order, augmentation (1)", 0},
        {"max-steps", CLI_INT, &o.base.max_steps, "stop after this many optimizer steps in all (0: no limit)", 0},
        {"save-every", CLI_INT, &o.base.save_every, "also save last.safetensors every N steps (0: per epoch)", 0},
        {"resume", CLI_FLAG, &o.base.resume,
         "continue the run in --out with its saved settings (--epochs may extend it)", 0},
        {"threads", CLI_INT, &o.base.threads, "CPU threads (0: OpenMP's default)", 0},
        {NULL, 0, NULL, NULL, 0},
    };
    int st = cli_parse(argc, argv, "train the segmentation U-Net (the seed's recipe, or the improved one)", opts);
    return st != CLI_RUN ? st : train_command(CMD, &o.base, run, &o);
}
