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
#include <math.h>
#include <omp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/err.h"
#include "cli.h"
#include "device.h"
#include "run_files.h"
#include "vae_trainer.h"

#define CMD "train-vae"

typedef struct {
    const char *data, *out, *device;
    int fast, max_steps, resume, threads, save_every;
    const char *given[CFG_MAX_FIELDS]; /* settings by field index of vae_train_fields(); NULL: not given */
} Options;

typedef struct {
    TileSet train_ts, val_ts;
    Loader *train, *val;
    float *images; /* host, accum * batch tiles */
    FILE *steps_csv, *epochs_csv;
    char last[4200], best[4200];
} Run;

static volatile sig_atomic_t stop_requested;
static void on_signal(int sig) { stop_requested = sig; }

/* ------------------------------------------------------------ configuration */

static int field_index(const char *key)
{
    const CfgTable *t = vae_train_fields();
    for (int i = 0; i < t->count; i++)
        if (!strcmp(t->field[i].key, key)) return i;
    sd_die(4, "internal error: no training setting '%s'", key);
}

static const char **given_slot(Options *o, const char *key) { return &o->given[field_index(key)]; }

static int config_from_options(const Options *o, VaeTrainConfig *c)
{
    const CfgTable *t = vae_train_fields();
    *c = vae_recipe_seed();
    for (int i = 0; i < t->count; i++)
        if (o->given[i] && cfg_set(t, c, t->field[i].key, o->given[i])) return SD_ERR;
    return SD_OK;
}

/* Sizes from the data: tile shape and steps per epoch. */
static int fit_to_data(VaeTrainConfig *c, const Run *r)
{
    c->tile_h = r->train_ts.h, c->tile_w = r->train_ts.w;
    c->steps_per_epoch = r->train_ts.count / ((long)c->batch * c->accum);
    if (r->val_ts.h != c->tile_h || r->val_ts.w != c->tile_w)
        return sd_fail("train and validation tiles differ in size (%dx%d, %dx%d)", c->tile_h, c->tile_w, r->val_ts.h,
                       r->val_ts.w);
    return vae_train_config_check(c);
}

/* A resumed run keeps its saved settings: given options must agree (epochs may grow). */
static int config_for_resume(const Options *o, const StFile *f, const Run *r, VaeTrainConfig *c)
{
    const CfgTable *t = vae_train_fields();
    if (cfg_read(t, f, c)) return SD_ERR;
    for (int i = 0; i < t->count; i++) {
        const char *key = t->field[i].key;
        VaeTrainConfig asked = *c;
        char was[64], now[64];
        if (!o->given[i]) continue;
        if (cfg_set(t, &asked, key, o->given[i])) return SD_ERR;
        cfg_get(t, c, key, was, sizeof was);
        cfg_get(t, &asked, key, now, sizeof now);
        if (!strcmp(key, "epochs")) c->epochs = asked.epochs;
        else if (strcmp(was, now))
            return sd_fail("--%s %s differs from this run's %s (a resumed run keeps its settings)", key, o->given[i],
                           was);
    }
    VaeTrainConfig data = *c;
    if (fit_to_data(&data, r)) return SD_ERR;
    if (data.steps_per_epoch != c->steps_per_epoch || data.tile_h != c->tile_h || data.tile_w != c->tile_w)
        return sd_fail("the training data changed since this run started");
    return SD_OK;
}

/* ------------------------------------------------------------ data and logs */

static int open_data(const Options *o, Run *r)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/train.tiles", o->data);
    if (tileset_open(path, &r->train_ts)) return SD_ERR;
    snprintf(path, sizeof path, "%s/val.tiles", o->data);
    return tileset_open(path, &r->val_ts);
}

static int open_loaders(Run *r, const VaeTrainConfig *c)
{
    size_t n = (size_t)c->accum * c->batch * c->tile_h * c->tile_w;
    r->train = loader_create(&r->train_ts, c->batch, NORM_SYMMETRIC, NULL, c->seed, 1, 1);
    r->val = r->train ? loader_create(&r->val_ts, c->batch, NORM_SYMMETRIC, NULL, c->seed, 0, 0) : NULL;
    r->images = malloc(n * sizeof(float));
    if (!r->train || !r->val) return SD_ERR;
    return r->images ? SD_OK : sd_fail("out of memory for %zu tile pixels", n);
}

static int open_logs(const Options *o, Run *r, long step)
{
    r->steps_csv = run_csv_open(o->out, "steps.csv", "step,epoch,lr,loss,mse,kl,images_per_s,elapsed_s", o->resume,
                                step);
    r->epochs_csv = run_csv_open(o->out, "epochs.csv",
                                 "step,epoch,lr,train_loss,val_loss,val_mse,val_kl,best,reverted,elapsed_s", o->resume,
                                 step);
    return r->steps_csv && r->epochs_csv ? SD_OK : SD_ERR;
}

static void close_run(Run *r)
{
    loader_destroy(r->train);
    loader_destroy(r->val);
    if (r->train_ts.map) tileset_close(&r->train_ts);
    if (r->val_ts.map) tileset_close(&r->val_ts);
    if (r->steps_csv) fclose(r->steps_csv);
    if (r->epochs_csv) fclose(r->epochs_csv);
    free(r->images);
}

/* ------------------------------------------------------------ the loop */

typedef struct {
    double start, loss_sum;
    long start_step, epoch_steps, saved_step;
    Progress progress;
    char what[160];
} Clock;

static int fetch_step(VaeTrainer *t, Run *r)
{
    const VaeTrainConfig *c = &t->cfg;
    long epoch = t->step / c->steps_per_epoch, first = t->step % c->steps_per_epoch * c->accum;
    size_t micro = (size_t)c->batch * c->tile_h * c->tile_w;
    for (int k = 0; k < c->accum; k++)
        if (loader_get(r->train, epoch, first + k, r->images + k * micro, NULL) < 0) return SD_ERR;
    return SD_OK;
}

static int end_epoch(VaeTrainer *t, Run *r, Clock *k)
{
    long epoch = t->step / t->cfg.steps_per_epoch;
    double lr = vae_trainer_lr(t), train_loss = k->epoch_steps ? k->loss_sum / k->epoch_steps : NAN;
    VaeLoss v;
    if (vae_trainer_validate(t, r->val, &v)) return SD_ERR;
    int flags = vae_trainer_epoch_end(t, v.total), best = flags & EPOCH_BEST, reverted = flags & EPOCH_REVERTED;
    if ((best && vae_trainer_save_best(t, r->best, epoch, v.total)) || vae_trainer_save_last(t, r->last))
        return SD_ERR;
    k->saved_step = t->step;
    fprintf(r->epochs_csv, "%ld,%ld,%.6g,%.6g,%.6g,%.6g,%.6g,%d,%d,%.1f\n", t->step, epoch, lr, train_loss, v.total,
            v.mse, v.kl, best != 0, reverted != 0, cli_now() - k->start);
    fflush(r->epochs_csv);
    fprintf(stderr, "%sepoch %ld/%d: train loss %.6f, val loss %.6f (mse %.6f, kl %.6f)%s%s%s\n",
            k->progress.tty ? "\n" : "", epoch, t->cfg.epochs, train_loss, v.total, v.mse, v.kl,
            best ? " (best)" : "", reverted ? ", reverted to the best weights" : "",
            flags & EPOCH_STOP ? ", early stop" : "");
    k->loss_sum = 0, k->epoch_steps = 0;
    return SD_OK;
}

static void log_step(const VaeTrainer *t, Run *r, Clock *k, double lr, const VaeLoss *l)
{
    const VaeTrainConfig *c = &t->cfg;
    double elapsed = cli_now() - k->start;
    double ips = (double)(t->step - k->start_step) * c->batch * c->accum / fmax(elapsed, 1e-9);
    long epoch = (t->step - 1) / c->steps_per_epoch + 1;
    fprintf(r->steps_csv, "%ld,%ld,%.6g,%.6g,%.6g,%.6g,%.2f,%.2f\n", t->step, epoch, lr, l->total, l->mse, l->kl, ips,
            elapsed);
    fflush(r->steps_csv);
    k->loss_sum += l->total, k->epoch_steps++;
    snprintf(k->what, sizeof k->what, "epoch %ld/%d loss %.5f lr %.2g %.2f img/s, step", epoch, c->epochs, l->total,
             lr, ips);
    progress_step(&k->progress, t->step - k->start_step);
}

/* Steps until the last epoch, early stop, --max-steps or a signal; saves on the way out. */
static int train_loop(VaeTrainer *t, Run *r, const Options *o)
{
    const VaeTrainConfig *c = &t->cfg;
    long total = (long)c->epochs * c->steps_per_epoch;
    if (o->max_steps > 0 && o->max_steps < total) total = o->max_steps;
    Clock k = {.start = cli_now(), .start_step = t->step, .saved_step = t->step};
    snprintf(k.what, sizeof k.what, "training, step");
    progress_start(&k.progress, k.what, total - t->step);
    while (t->step < total && !t->stopped && !stop_requested) {
        double lr = vae_trainer_lr(t);
        VaeLoss loss;
        if (fetch_step(t, r) || vae_trainer_step(t, r->images, &loss)) return SD_ERR;
        log_step(t, r, &k, lr, &loss);
        if (t->step % c->steps_per_epoch == 0) {
            if (end_epoch(t, r, &k)) return SD_ERR;
        } else if (o->save_every > 0 && t->step % o->save_every == 0) {
            if (vae_trainer_save_last(t, r->last)) return SD_ERR;
            k.saved_step = t->step;
        }
    }
    if (k.saved_step != t->step && vae_trainer_save_last(t, r->last)) return SD_ERR;
    progress_end(&k.progress);
    return SD_OK;
}

/* ------------------------------------------------------------ setup */

static int start_trainer(const Options *o, Run *r, const Backend *be, VaeTrainer *t)
{
    VaeTrainConfig c;
    if (!o->resume) {
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

static void describe(const VaeTrainer *t, const Run *r, const Options *o)
{
    const VaeTrainConfig *c = &t->cfg;
    fprintf(stderr,
            "train-vae: VAE width %d, latent %d (%.2f M parameters) on %s, %d training and %d validation tiles of "
            "%dx%d, %ld steps per epoch of %dx%d tiles (%s), KL %s x %g, SGD lr %g momentum %g%s\n",
            c->width, c->latent, t->params.list.numel / 1e6, o->device, r->train_ts.count, r->val_ts.count, c->tile_h,
            c->tile_w, c->steps_per_epoch, c->batch, c->accum, c->accum_mode == ACCUM_MEAN ? "averaged" : "summed",
            c->kl == VAE_KL_SEED ? "seed (std for the mean)" : "fixed", c->kl_weight, c->lr, c->momentum,
            o->resume ? ", resumed" : "");
    if (o->resume)
        fprintf(stderr, "train-vae: continuing after step %ld (epoch %ld)%s\n", t->step, t->step / c->steps_per_epoch,
                t->stopped ? ": the run had stopped early, nothing to do" : "");
}

static int run(const Options *o, const Backend *be)
{
    Run r = {0};
    VaeTrainer t = {0};
    snprintf(r.last, sizeof r.last, "%s/last.safetensors", o->out);
    snprintf(r.best, sizeof r.best, "%s/best.safetensors", o->out);
    int rc = open_data(o, &r) || run_dir_prepare(o->out, o->resume) || start_trainer(o, &r, be, &t) ||
             open_loaders(&r, &t.cfg) || open_logs(o, &r, t.step);
    if (!rc) {
        describe(&t, &r, o);
        rc = train_loop(&t, &r, o);
    }
    if (t.be) vae_trainer_free(&t);
    close_run(&r);
    return rc ? SD_ERR : SD_OK;
}

int cmd_train_vae(int argc, char **argv)
{
    Options o = {.device = "cpu"};
    const CliOpt opts[] = {
        {"data", CLI_STR, &o.data, "folder with train.tiles and val.tiles (sdseg prep; masks not needed)", 1},
        {"out", CLI_STR, &o.out, "run folder: logs and checkpoints", 1},
        {"device", CLI_STR, &o.device, "cpu or cuda", 0},
        {"fast", CLI_FLAG, &o.fast, "cuda: bf16 convolutions and matrix products", 0},
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
        {"max-steps", CLI_INT, &o.max_steps, "stop after this many optimizer steps in all (0: no limit)", 0},
        {"save-every", CLI_INT, &o.save_every, "also save last.safetensors every N steps (0: per epoch)", 0},
        {"resume", CLI_FLAG, &o.resume, "continue the run in --out with its saved settings (--epochs may extend it)", 0},
        {"threads", CLI_INT, &o.threads, "CPU threads (0: OpenMP's default)", 0},
        {NULL, 0, NULL, NULL, 0},
    };
    int st = cli_parse(argc, argv, "train the seed's VAE (its recipe, defects switchable)", opts);
    if (st != CLI_RUN) return st;
    if (o.threads < 0 || o.max_steps < 0 || o.save_every < 0)
        return cli_usage_error(CMD, "--threads, --max-steps and --save-every must not be negative");
    if (o.threads > 0) omp_set_num_threads(o.threads);
    Backend be;
    if (device_open(o.device, o.fast, &be)) return cli_fail(CMD, 2);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    int rc = run(&o, &be);
    device_close(&be);
    if (rc) return cli_fail(CMD, 1);
    if (stop_requested) {
        fprintf(stderr, "train-vae: stopped by signal %d; the state is in %s/last.safetensors "
                "(continue with --resume)\n", (int)stop_requested, o.out);
        return 1;
    }
    return 0;
}
