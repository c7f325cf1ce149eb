/* sdseg train-seg: train the segmentation U-Net on tile datasets from `sdseg prep`.
 *
 * The run directory receives steps.csv and epochs.csv (logs), last.safetensors (the whole
 * training state, after every epoch, every --save-every steps and when the run stops) and
 * best.safetensors (the weights with the best validation loss). --resume continues from
 * last.safetensors; on the CPU the result is bit-identical to a run never interrupted,
 * because every batch is a pure function of (seed, epoch, index) and the CPU operators
 * reduce in a fixed order (use the same --threads). */
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../core/err.h"
#include "../core/fileio.h"
#include "cli.h"
#include "device.h"
#include "seg_trainer.h"

#define CMD "train-seg"

typedef struct {
    const char *data, *out, *device, *recipe;
    int fast, max_steps, resume, threads, save_every;
    const char *given[SEG_CONFIG_FIELDS]; /* run settings by seg_config_key index; NULL: not given */
} Options;

typedef struct {
    TileSet train_ts, val_ts;
    Loader *train, *val;
    float *images, *masks; /* host, accum * batch tiles */
    FILE *steps_csv, *epochs_csv;
    char last[4200], best[4200];
} Run;

static volatile sig_atomic_t stop_requested;
static void on_signal(int sig) { stop_requested = sig; }

/* ------------------------------------------------------------ configuration */

/* Where option --key's text goes (key: a seg_config.h name). */
static const char **given_slot(Options *o, const char *key)
{
    int i = 0;
    while (strcmp(seg_config_key(i), key)) i++;
    return &o->given[i];
}

/* The recipe's defaults with the given options applied. */
static int config_from_options(const Options *o, SegTrainConfig *c)
{
    if (strcmp(o->recipe, "seed") && strcmp(o->recipe, "improved"))
        return sd_fail("unknown recipe '%s' (seed or improved)", o->recipe);
    *c = seg_recipe(!strcmp(o->recipe, "improved"));
    for (int i = 0; seg_config_key(i); i++) {
        if (o->given[i] && seg_config_set(c, seg_config_key(i), o->given[i])) return SD_ERR;
    }
    return SD_OK;
}

/* Sizes from the data: tile shape, steps per epoch, warmup -1 = one epoch. */
static int fit_to_data(SegTrainConfig *c, const Run *r)
{
    c->tile_h = r->train_ts.h, c->tile_w = r->train_ts.w;
    c->steps_per_epoch = r->train_ts.count / ((long)c->batch * c->accum);
    if (c->warmup < 0) c->warmup = c->epochs > 1 ? c->steps_per_epoch : 0;
    if (r->val_ts.h != c->tile_h || r->val_ts.w != c->tile_w)
        return sd_fail("train and validation tiles differ in size (%dx%d, %dx%d)", c->tile_h, c->tile_w, r->val_ts.h,
                       r->val_ts.w);
    return seg_config_check(c);
}

/* A resumed run keeps its saved settings: given options must agree (epochs may grow). */
static int config_for_resume(const Options *o, const StFile *f, const Run *r, SegTrainConfig *c)
{
    if (seg_config_read(f, c)) return SD_ERR;
    for (int i = 0; seg_config_key(i); i++) {
        const char *key = seg_config_key(i), *text = o->given[i];
        SegTrainConfig asked = *c;
        char was[64], now[64];
        if (!text) continue;
        if (seg_config_set(&asked, key, text)) return SD_ERR;
        seg_config_get(c, key, was, sizeof was);
        seg_config_get(&asked, key, now, sizeof now);
        if (!strcmp(key, "epochs")) c->epochs = asked.epochs;
        else if (strcmp(was, now))
            return sd_fail("--%s %s differs from this run's %s (a resumed run keeps its settings)", key, text, was);
    }
    SegTrainConfig data = *c;
    if (fit_to_data(&data, r)) return SD_ERR;
    if (data.steps_per_epoch != c->steps_per_epoch || data.tile_h != c->tile_h || data.tile_w != c->tile_w)
        return sd_fail("the training data changed since this run started (%ld steps per epoch of %dx%d tiles, "
                       "was %ld of %dx%d)",
                       data.steps_per_epoch, data.tile_h, data.tile_w, c->steps_per_epoch, c->tile_h, c->tile_w);
    return SD_OK;
}

/* ------------------------------------------------------------ data and logs */

static int open_data(const Options *o, Run *r)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/train.tiles", o->data);
    if (tileset_open(path, &r->train_ts)) return SD_ERR;
    snprintf(path, sizeof path, "%s/val.tiles", o->data);
    if (tileset_open(path, &r->val_ts)) return SD_ERR;
    if (!r->train_ts.mask || !r->val_ts.mask) return sd_fail("%s: the tile datasets hold no masks", o->data);
    return SD_OK;
}

static int open_loaders(Run *r, const SegTrainConfig *c)
{
    Augment aug = seg_augment(c);
    size_t n = (size_t)c->accum * c->batch * c->tile_h * c->tile_w;
    r->train = loader_create(&r->train_ts, c->batch, NORM_UNIT, &aug, c->seed, 1, 1);
    r->val = r->train ? loader_create(&r->val_ts, c->batch, NORM_UNIT, NULL, c->seed, 0, 0) : NULL;
    r->images = malloc(n * sizeof(float));
    r->masks = malloc(n * sizeof(float));
    if (!r->train || !r->val) return SD_ERR;
    return r->images && r->masks ? SD_OK : sd_fail("out of memory for %zu tile pixels", n);
}

/* Keep the header and the rows of steps <= step (the rest came after the checkpoint). */
static int csv_trim(const char *path, long step)
{
    FILE *in = fopen(path, "r");
    if (!in) return SD_OK;
    AtomicFile af;
    if (atomic_open(&af, path)) {
        fclose(in);
        return SD_ERR;
    }
    char line[1024];
    for (int first = 1; fgets(line, sizeof line, in); first = 0)
        if (first || atol(line) <= step) fputs(line, af.f);
    fclose(in);
    return atomic_commit(&af);
}

static FILE *open_csv(const char *dir, const char *name, const char *header, int resume, long step)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (resume && csv_trim(path, step)) return NULL;
    FILE *f = fopen(path, resume ? "a" : "w");
    if (!f) sd_fail("cannot write %s: %s", path, strerror(errno));
    else if (!resume) fprintf(f, "%s\n", header);
    return f;
}

static int open_logs(const Options *o, Run *r, long step)
{
    r->steps_csv = open_csv(o->out, "steps.csv", "step,epoch,lr,loss,images_per_s,elapsed_s", o->resume, step);
    r->epochs_csv = open_csv(o->out, "epochs.csv",
                             "step,epoch,lr,train_loss,val_loss,val_bce,val_iou,val_accuracy,best,elapsed_s", o->resume,
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
    free(r->masks);
}

/* ------------------------------------------------------------ the loop */

typedef struct {
    double start, loss_sum;
    long start_step, epoch_steps, saved_step;
    Progress progress;
    char what[160];
} Clock;

static int fetch_step(SegTrainer *t, Run *r)
{
    const SegTrainConfig *c = &t->cfg;
    long epoch = t->step / c->steps_per_epoch, first = t->step % c->steps_per_epoch * c->accum;
    size_t micro = (size_t)c->batch * c->tile_h * c->tile_w;
    for (int k = 0; k < c->accum; k++)
        if (loader_get(r->train, epoch, first + k, r->images + k * micro, r->masks + k * micro) < 0) return SD_ERR;
    return SD_OK;
}

static int end_epoch(SegTrainer *t, Run *r, Clock *k)
{
    long epoch = t->step / t->cfg.steps_per_epoch;
    double lr = seg_trainer_lr(t), train_loss = k->epoch_steps ? k->loss_sum / k->epoch_steps : NAN;
    SegVal v;
    if (seg_trainer_validate(t, r->val, &v)) return SD_ERR;
    int best = seg_trainer_epoch_end(t, v.loss);
    if ((best && seg_trainer_save_best(t, r->best, (int)epoch, v.loss)) || seg_trainer_save_last(t, r->last))
        return SD_ERR;
    k->saved_step = t->step;
    fprintf(r->epochs_csv, "%ld,%ld,%.6g,%.6f,%.6f,%.6f,%.6f,%.6f,%d,%.1f\n", t->step, epoch, lr, train_loss, v.loss,
            v.bce, v.iou, v.accuracy, best, cli_now() - k->start);
    fflush(r->epochs_csv);
    fprintf(stderr, "%sepoch %ld/%d: train loss %.4f, val loss %.4f, val IoU %.4f, accuracy %.4f%s\n",
            k->progress.tty ? "\n" : "", epoch, t->cfg.epochs, train_loss, v.loss, v.iou, v.accuracy,
            best ? " (best)" : "");
    k->loss_sum = 0, k->epoch_steps = 0;
    return SD_OK;
}

static void log_step(const SegTrainer *t, Run *r, Clock *k, double lr, double loss)
{
    const SegTrainConfig *c = &t->cfg;
    double elapsed = cli_now() - k->start;
    double ips = (double)(t->step - k->start_step) * c->batch * c->accum / fmax(elapsed, 1e-9);
    long epoch = (t->step - 1) / c->steps_per_epoch + 1;
    fprintf(r->steps_csv, "%ld,%ld,%.6g,%.6f,%.1f,%.2f\n", t->step, epoch, lr, loss, ips, elapsed);
    fflush(r->steps_csv);
    k->loss_sum += loss, k->epoch_steps++;
    snprintf(k->what, sizeof k->what, "epoch %ld/%d loss %.4f lr %.2g %.1f img/s, step", epoch, c->epochs, loss, lr,
             ips);
    progress_step(&k->progress, t->step - k->start_step);
}

/* Steps until the last epoch, --max-steps or a signal; saves the state on the way out. */
static int train_loop(SegTrainer *t, Run *r, const Options *o)
{
    const SegTrainConfig *c = &t->cfg;
    long total = (long)c->epochs * c->steps_per_epoch;
    if (o->max_steps > 0 && o->max_steps < total) total = o->max_steps;
    Clock k = {.start = cli_now(), .start_step = t->step, .saved_step = t->step};
    progress_start(&k.progress, k.what, total - t->step);
    snprintf(k.what, sizeof k.what, "training, step");
    while (t->step < total && !stop_requested) {
        double lr = seg_trainer_lr(t), loss;
        if (fetch_step(t, r) || seg_trainer_step(t, r->images, r->masks, &loss)) return SD_ERR;
        log_step(t, r, &k, lr, loss);
        if (t->step % c->steps_per_epoch == 0) {
            if (end_epoch(t, r, &k)) return SD_ERR;
        } else if (o->save_every > 0 && t->step % o->save_every == 0) {
            if (seg_trainer_save_last(t, r->last)) return SD_ERR;
            k.saved_step = t->step;
        }
    }
    if (k.saved_step != t->step && seg_trainer_save_last(t, r->last)) return SD_ERR;
    progress_end(&k.progress);
    return SD_OK;
}

/* ------------------------------------------------------------ setup */

static int prepare_out(const Options *o, Run *r)
{
    snprintf(r->last, sizeof r->last, "%s/last.safetensors", o->out);
    snprintf(r->best, sizeof r->best, "%s/best.safetensors", o->out);
    if (mkdir(o->out, 0755) && errno != EEXIST) return sd_fail("cannot create %s: %s", o->out, strerror(errno));
    struct stat st;
    int exists = stat(r->last, &st) == 0;
    if (o->resume && !exists) return sd_fail("%s: nothing to resume (no last.safetensors)", o->out);
    if (!o->resume && exists) return sd_fail("%s already holds a run: use --resume, or another --out", o->out);
    return SD_OK;
}

/* A trainer for a fresh or a resumed run. */
static int start_trainer(const Options *o, Run *r, const Backend *be, SegTrainer *t)
{
    SegTrainConfig c;
    if (!o->resume) {
        if (config_from_options(o, &c) || fit_to_data(&c, r)) return SD_ERR;
        return seg_trainer_create(t, be, &c);
    }
    StFile f;
    if (st_read(r->last, &f)) return SD_ERR;
    int rc = config_for_resume(o, &f, r, &c) || seg_trainer_create(t, be, &c) || seg_trainer_load(t, &f);
    st_free(&f);
    return rc ? SD_ERR : SD_OK;
}

static void describe(const SegTrainer *t, const Run *r, const Options *o)
{
    const SegTrainConfig *c = &t->cfg;
    char loss[16], optim[16], sched[16];
    seg_config_get(c, "loss", loss, sizeof loss);
    seg_config_get(c, "optim", optim, sizeof optim);
    seg_config_get(c, "schedule", sched, sizeof sched);
    fprintf(stderr,
            "train-seg: U-Net width %d on %s, %d training and %d validation tiles of %dx%d, %ld steps per epoch "
            "of %dx%d tiles, %s, %s, lr %g (%s)%s\n",
            c->width, o->device, r->train_ts.count, r->val_ts.count, c->tile_h, c->tile_w, c->steps_per_epoch, c->batch,
            c->accum, loss, optim, c->lr, sched, o->resume ? ", resumed" : "");
    if (o->resume)
        fprintf(stderr, "train-seg: continuing after step %ld (epoch %ld)\n", t->step, t->step / c->steps_per_epoch);
}

static int run(const Options *o, const Backend *be)
{
    Run r = {0};
    SegTrainer t = {0};
    int rc = open_data(o, &r) || prepare_out(o, &r) || start_trainer(o, &r, be, &t) ||
             open_loaders(&r, &t.cfg) || open_logs(o, &r, t.step);
    if (!rc) {
        describe(&t, &r, o);
        rc = train_loop(&t, &r, o);
    }
    if (t.model) seg_trainer_free(&t);
    close_run(&r);
    return rc ? SD_ERR : SD_OK;
}

int cmd_train_seg(int argc, char **argv)
{
    Options o = {.device = "cpu", .recipe = "seed"};
    const CliOpt opts[] = {
        {"data", CLI_STR, &o.data, "folder with train.tiles and val.tiles (sdseg prep)", 1},
        {"out", CLI_STR, &o.out, "run folder: logs and checkpoints", 1},
        {"device", CLI_STR, &o.device, "cpu or cuda", 0},
        {"fast", CLI_FLAG, &o.fast, "cuda: bf16 convolutions and matrix products", 0},
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
        {"max-steps", CLI_INT, &o.max_steps, "stop after this many optimizer steps in all (0: no limit)", 0},
        {"save-every", CLI_INT, &o.save_every, "also save last.safetensors every N steps (0: per epoch)", 0},
        {"resume", CLI_FLAG, &o.resume, "continue the run in --out with its saved settings (--epochs may extend it)", 0},
        {"threads", CLI_INT, &o.threads, "CPU threads (0: OpenMP's default)", 0},
        {NULL, 0, NULL, NULL, 0},
    };
    int st = cli_parse(argc, argv, "train the segmentation U-Net (the seed's recipe, or the improved one)", opts);
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
        fprintf(stderr, "train-seg: stopped by signal %d; the state is in %s/last.safetensors "
                "(continue with --resume)\n", (int)stop_requested, o.out);
        return 1;
    }
    return 0;
}
