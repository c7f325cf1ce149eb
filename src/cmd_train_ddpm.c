/* sdseg train-ddpm: train the latent diffusion U-Net on the tile datasets of `sdseg prep`
 * through a frozen VAE (a train-vae checkpoint), with the seed's recipe or the improved
 * one (src/ddpm_trainer.h) at any width.
 *
 * At the start every training and validation tile is encoded once (in [-1, 1], with its
 * mask as a second channel when the VAE was trained on [image, mask]) and the posterior
 * means and logvars stay in host memory; latent_scale = 1 / std of the training means.
 * The run folder receives steps.csv and epochs.csv, last.safetensors (the whole training
 * state, after every epoch, every --save-every steps and when the run stops) and
 * best.safetensors (the weights with the best validation loss, for ddpm_model_load).
 * Checkpoints record the VAE's absolute path; --resume refuses another VAE, and the same
 * file changed since (its latents no longer giving the saved latent scale). On the CPU a
 * resumed run is bit-identical to one never interrupted (same --threads). Bad options,
 * data or checkpoints found before training starts exit with status 2. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/err.h"
#include "cli.h"
#include "ddpm_trainer.h"
#include "gen_ckpt.h"
#include "run_files.h"
#include "train_loop.h"

#define CMD "train-ddpm"
#define VAE_FACTOR 8     /* latents are tiles / 8 */
#define ENCODE_BATCH 4   /* tiles per VAE pass: bounds the encoder's activations at the seed's width */
#define SCALE_TOL 1e-4   /* relative change of the latent scale that means another VAE or data */

typedef struct {
    TrainOptions base;
    const char *recipe, *vae;
    const char *given[CFG_MAX_FIELDS]; /* settings by field index of ddpm_train_fields(); NULL: not given */
} Options;

/* The encoded data and its identity. */
typedef struct {
    DdpmLatents train, val;
    double latent_scale;
    char vae_path[PATH_MAX];
} Data;

/* ------------------------------------------------------------ configuration */

static const char **given_slot(Options *o, const char *key) { return &o->given[cfg_index(ddpm_train_fields(), key)]; }

static int config_from_options(const Options *o, DdpmTrainConfig *c)
{
    int improved;
    if (train_recipe_parse(o->recipe, &improved)) return SD_ERR;
    *c = ddpm_recipe(improved);
    return cfg_apply(ddpm_train_fields(), c, o->given);
}

/* Sizes from the data and the VAE: latent shape, steps per epoch, warmup -1 = one epoch. */
static int fit_to_data(DdpmTrainConfig *c, const TrainRun *r, const VaeModel *v)
{
    int tile_h, tile_w;
    if (train_run_fit(r, c->batch, c->accum, &tile_h, &tile_w, &c->steps_per_epoch)) return SD_ERR;
    if (tile_h % VAE_FACTOR || tile_w % VAE_FACTOR)
        return sd_fail("tiles of %dx%d: the VAE needs multiples of %d", tile_h, tile_w, VAE_FACTOR);
    if (v->m.cfg.in_ch == 2 && (!r->train_ts.mask || !r->val_ts.mask))
        return sd_fail("this VAE encodes images with their masks, and the tile datasets hold no masks");
    c->latent = v->m.cfg.latent, c->latent_h = tile_h / VAE_FACTOR, c->latent_w = tile_w / VAE_FACTOR;
    c->warmup = train_warmup_steps(c->warmup, c->epochs, c->steps_per_epoch);
    return ddpm_train_config_check(c);
}

/* A resumed run keeps its saved settings: given options must agree (epochs may grow). */
static int config_for_resume(const Options *o, const StFile *f, const TrainRun *r, const VaeModel *v,
                             DdpmTrainConfig *c)
{
    const CfgTable *t = ddpm_train_fields();
    if (cfg_read(t, f, c) || cfg_keep_saved(t, c, o->given, "epochs")) return SD_ERR;
    DdpmTrainConfig data = *c;
    if (fit_to_data(&data, r, v)) return SD_ERR;
    if (data.latent != c->latent)
        return sd_fail("the VAE gives %d latent channels, this run was trained on %d", data.latent, c->latent);
    if (data.steps_per_epoch != c->steps_per_epoch || data.latent_h != c->latent_h || data.latent_w != c->latent_w)
        return sd_fail("the training data changed since this run started (%ld steps per epoch of %dx%d latents, "
                       "was %ld of %dx%d)",
                       data.steps_per_epoch, data.latent_h, data.latent_w, c->steps_per_epoch, c->latent_h,
                       c->latent_w);
    return SD_OK;
}

static int absolute_path(const char *path, char *out)
{
    return realpath(path, out) ? SD_OK : sd_fail("%s: %s", path, strerror(errno));
}

/* The VAE of a resumed run: the saved one, which --vae (if given) must name. */
static int resume_vae(const Options *o, const char *saved, char *path)
{
    snprintf(path, PATH_MAX, "%s", saved);
    if (!o->vae) return SD_OK;
    char given[PATH_MAX];
    if (absolute_path(o->vae, given)) return SD_ERR;
    return strcmp(given, saved) ? sd_fail("--vae %s is not the VAE this run was trained on (%s)", o->vae, saved)
                                : SD_OK;
}

/* ------------------------------------------------------------ encoding the tiles */

typedef struct {
    const VaeModel *vae;
    const Backend *be;
    Workspace ws;
    int h, w, ch;
    float *input; /* host: one batch of model inputs */
    real *x;      /* backend: the same */
    Progress progress;
    long done;
} Encoder;

static int encoder_open(Encoder *e, const VaeModel *v, const Backend *be, const TrainRun *r)
{
    *e = (Encoder){.vae = v, .be = be, .h = r->train_ts.h, .w = r->train_ts.w, .ch = v->m.cfg.in_ch};
    size_t values = (size_t)ENCODE_BATCH * e->ch * e->h * e->w;
    ws_init(&e->ws, be);
    e->input = malloc(values * sizeof(float));
    e->x = be->alloc(be->ctx, values * sizeof(real));
    long batches = (r->train_ts.count + ENCODE_BATCH - 1) / ENCODE_BATCH +
                   (r->val_ts.count + ENCODE_BATCH - 1) / ENCODE_BATCH;
    progress_start(&e->progress, "encoding the tiles, batch", batches);
    return e->input ? SD_OK : sd_fail("out of memory for encoding");
}

static void encoder_close(Encoder *e)
{
    if (e->x) e->be->release(e->be->ctx, e->x);
    free(e->input);
    ws_free(&e->ws);
}

/* The model input of tiles first.. first+n-1 as train-vae's loader gives them (no thread:
 * nothing to overlap here): the image (x/255 - 0.5)/0.5, then with 2 channels the mask as
 * 2 mask - 1. */
static void model_input(Encoder *e, const TileSet *ts, int first, int n)
{
    size_t hw = (size_t)e->h * e->w;
    for (int b = 0; b < n; b++) {
        const uint8_t *image = ts->image + hw * (first + b), *mask = ts->mask ? ts->mask + hw * (first + b) : NULL;
        float *in = e->input + (size_t)e->ch * hw * b;
        for (size_t j = 0; j < hw; j++) in[j] = ((float)image[j] / 255.0f - 0.5f) / 0.5f;
        if (e->ch == 2)
            for (size_t j = 0; j < hw; j++) in[hw + j] = 2.0f * mask[j] - 1;
    }
}

static int encode_batch(Encoder *e, const TileSet *ts, int first, DdpmLatents *out)
{
    const Backend *be = e->be;
    int n = ts->count - first < ENCODE_BATCH ? ts->count - first : ENCODE_BATCH;
    model_input(e, ts, first, n);
    be->upload(be->ctx, e->x, e->input, (size_t)n * e->ch * e->h * e->w * sizeof(float));
    VaeEncoding enc;
    if (vae_encode(&e->vae->m, &e->vae->p, &e->ws, n, e->h, e->w, e->x, &enc)) return SD_ERR;
    size_t at = (size_t)first * out->per, bytes = (size_t)n * out->per * sizeof(float);
    be->download(be->ctx, out->mean + at, enc.mean, bytes);
    be->download(be->ctx, out->logvar + at, enc.logvar, bytes);
    progress_step(&e->progress, ++e->done);
    return SD_OK;
}

/* Every tile of ts, in file order, into out. */
static int encode_set(Encoder *e, const TileSet *ts, DdpmLatents *out)
{
    out->count = ts->count;
    out->per = (size_t)e->vae->m.cfg.latent * (e->h / VAE_FACTOR) * (e->w / VAE_FACTOR);
    out->mean = malloc((size_t)ts->count * out->per * sizeof(float));
    out->logvar = malloc((size_t)ts->count * out->per * sizeof(float));
    if (!out->mean || !out->logvar) return sd_fail("out of memory for %d latents", ts->count);
    for (int first = 0; first < ts->count; first += ENCODE_BATCH)
        if (encode_batch(e, ts, first, out)) return SD_ERR;
    return SD_OK;
}

static int encode_all(const VaeModel *v, const Backend *be, const TrainRun *r, Data *d)
{
    Encoder e;
    int rc = encoder_open(&e, v, be, r) || encode_set(&e, &r->train_ts, &d->train) ||
             encode_set(&e, &r->val_ts, &d->val);
    if (!rc) progress_end(&e.progress);
    encoder_close(&e);
    return rc ? SD_ERR : SD_OK;
}

static void data_free(Data *d)
{
    free(d->train.mean), free(d->train.logvar), free(d->val.mean), free(d->val.logvar);
}

/* ------------------------------------------------------------ setup */

/* Through the VAE at d->vae_path: the configuration fitted to the data (and, resuming,
 * checked against the checkpoint's), then the encoded tiles and their latent scale. */
static int load_data(const Options *o, TrainRun *r, const Backend *be, const StFile *resume, DdpmTrainConfig *c,
                     Data *d)
{
    VaeModel v;
    if (vae_model_load(&v, be, d->vae_path)) return SD_ERR;
    int rc = resume ? config_for_resume(o, resume, r, &v, c) : fit_to_data(c, r, &v);
    rc = rc || encode_all(&v, be, r, d) || ddpm_latent_scale(&d->train, &d->latent_scale);
    vae_model_free(&v);
    return rc ? SD_ERR : SD_OK;
}

static int start_fresh(const Options *o, TrainRun *r, const Backend *be, DdpmTrainer *t, Data *d)
{
    DdpmTrainConfig c;
    if (!o->vae) return sd_fail("--vae is required for a new run");
    if (config_from_options(o, &c) || absolute_path(o->vae, d->vae_path) || load_data(o, r, be, NULL, &c, d))
        return SD_ERR;
    return ddpm_trainer_create(t, be, &c, &d->train, &d->val, d->latent_scale, d->vae_path);
}

static int start_resumed(const Options *o, TrainRun *r, const Backend *be, const StFile *f, DdpmTrainer *t, Data *d)
{
    DdpmTrainConfig c;
    double saved_scale;
    char saved_vae[PATH_MAX];
    if (ddpm_ckpt_identity(f, &saved_scale, saved_vae, sizeof saved_vae) || resume_vae(o, saved_vae, d->vae_path) ||
        load_data(o, r, be, f, &c, d))
        return SD_ERR;
    if (fabs(d->latent_scale - saved_scale) > SCALE_TOL * saved_scale)
        return sd_fail("the VAE %s or the training tiles changed since this run started (latent scale %.6g, was "
                       "%.6g)",
                       d->vae_path, d->latent_scale, saved_scale);
    d->latent_scale = saved_scale; /* the run goes on exactly as it started */
    return ddpm_trainer_create(t, be, &c, &d->train, &d->val, saved_scale, d->vae_path) || ddpm_trainer_load(t, f);
}

static int start_trainer(const Options *o, TrainRun *r, const Backend *be, DdpmTrainer *t, Data *d)
{
    if (!o->base.resume) return start_fresh(o, r, be, t, d);
    StFile f;
    if (st_read(r->last, &f)) return SD_ERR;
    int rc = start_resumed(o, r, be, &f, t, d);
    st_free(&f);
    return rc ? SD_ERR : SD_OK;
}

static int open_logs(const Options *o, TrainRun *r, long step)
{
    return train_run_logs(r, o->base.out, "step,epoch,lr,loss,latents_per_s,elapsed_s",
                          "step,epoch,lr,train_loss,val_loss,best,reverted,elapsed_s", o->base.resume, step);
}

/* ------------------------------------------------------------ the loop (train_loop.h) */

static int step_fn(void *ctx, TrainRun *r, double *lr, double *loss)
{
    (void)r; /* no tiles: the trainer draws its latents */
    DdpmTrainer *t = ctx;
    *lr = ddpm_trainer_lr(t);
    return ddpm_trainer_step(t, loss);
}

static void log_step(void *ctx, TrainRun *r, const TrainTick *k, char *what, size_t n)
{
    const DdpmTrainer *t = ctx;
    fprintf(r->steps_csv, "%ld,%ld,%.6g,%.8g,%.2f,%.2f\n", k->step, k->epoch, k->lr, k->loss, k->ips, k->elapsed_s);
    fflush(r->steps_csv);
    snprintf(what, n, "epoch %ld/%d loss %.5f lr %.2g %.2f latents/s, step", k->epoch, t->cfg.epochs, k->loss, k->lr,
             k->ips);
}

static int end_epoch(void *ctx, TrainRun *r, const TrainEpoch *e)
{
    DdpmTrainer *t = ctx;
    double lr = ddpm_trainer_lr(t), val;
    if (ddpm_trainer_validate(t, &val)) return SD_ERR;
    int flags = ddpm_trainer_epoch_end(t, val), best = flags & EPOCH_BEST, reverted = flags & EPOCH_REVERTED;
    if ((best && ddpm_trainer_save_best(t, r->best, e->epoch, val)) || ddpm_trainer_save_last(t, r->last))
        return SD_ERR;
    fprintf(r->epochs_csv, "%ld,%ld,%.6g,%.8g,%.8g,%d,%d,%.1f\n", e->step, e->epoch, lr, e->train_loss, val,
            best != 0, reverted != 0, e->elapsed_s);
    fflush(r->epochs_csv);
    fprintf(stderr, "%sepoch %ld/%d: train loss %.6f, val loss %.6f%s%s%s\n", e->tty ? "\n" : "", e->epoch,
            t->cfg.epochs, e->train_loss, val, best ? " (best)" : "", reverted ? ", reverted to the best weights" : "",
            flags & EPOCH_STOP ? ", early stop" : "");
    return SD_OK;
}

static int save_last(void *ctx, const char *path) { return ddpm_trainer_save_last(ctx, path); }

static int finished(void *ctx) { return ((DdpmTrainer *)ctx)->keep.stopped; }

static int train(DdpmTrainer *t, TrainRun *r, const Options *o)
{
    const DdpmTrainConfig *c = &t->cfg;
    TrainLoop l = {.ctx = t, .step = &t->step, .steps_per_epoch = c->steps_per_epoch, .epochs = c->epochs,
                   .batch = c->batch, .accum = c->accum, .step_fn = step_fn, .log_step = log_step,
                   .end_epoch = end_epoch, .save_last = save_last, .finished = finished};
    return train_loop_run(&l, r, o->base.max_steps, o->base.save_every);
}

static void describe(const DdpmTrainer *t, const Options *o)
{
    const DdpmTrainConfig *c = &t->cfg;
    const CfgTable *f = ddpm_train_fields();
    char mult[16], attn[16], arch[16], sched[16], pred[16], ts[16], optim[16], lrs[16];
    const char *key[] = {"mult", "attn", "config", "schedule", "prediction", "t_sampling", "optim", "lr_schedule"};
    char *buf[] = {mult, attn, arch, sched, pred, ts, optim, lrs};
    for (int i = 0; i < 8; i++) cfg_get(f, c, key[i], buf[i], 16);
    fprintf(stderr,
            "train-ddpm: U-Net width %d x %s, %d levels, attention %s, config %s (%.2f M parameters) on %s; %d "
            "training and %d validation latents of %dx%dx%d, scale %.6g; %s schedule, %s prediction, T %d, t %s; "
            "%ld steps per epoch of %dx%d (%s), %s lr %g (%s)%s\n",
            c->width, mult, c->levels, attn, arch, t->params.list.numel / 1e6, o->base.device, t->train->count,
            t->val->count, c->latent, c->latent_h, c->latent_w, t->latent_scale, sched, pred, c->timesteps, ts,
            c->steps_per_epoch, c->batch, c->accum, c->accum_mode == ACCUM_MEAN ? "averaged" : "summed", optim, c->lr,
            lrs, o->base.resume ? ", resumed" : "");
    if (o->base.resume)
        fprintf(stderr, "train-ddpm: continuing after step %ld (epoch %ld)%s\n", t->step, t->step / c->steps_per_epoch,
                t->keep.stopped ? ": the run had stopped early, nothing to do" : "");
}

static int run(const void *options, const Backend *be)
{
    const Options *o = options;
    TrainRun r;
    DdpmTrainer t = {0};
    Data d = {0};
    int rc = train_run_open(&r, o->base.data, o->base.out, o->base.resume, 0) || start_trainer(o, &r, be, &t, &d) ||
                     open_logs(o, &r, t.step)
                 ? TRAIN_BAD_INPUT
                 : SD_OK;
    if (!rc) {
        describe(&t, o);
        rc = train(&t, &r, o);
    }
    if (t.be) ddpm_trainer_free(&t);
    data_free(&d);
    train_run_close(&r);
    return rc;
}

int cmd_train_ddpm(int argc, char **argv)
{
    Options o = {.base.device = "cpu", .recipe = "seed"};
    const CliOpt opts[] = {
        {"data", CLI_STR, &o.base.data, "folder with train.tiles and val.tiles (sdseg prep)", 1},
        {"vae", CLI_STR, &o.vae, "the frozen VAE: a train-vae checkpoint (a resumed run: its own)", 0},
        {"out", CLI_STR, &o.base.out, "run folder: logs and checkpoints", 1},
        {"device", CLI_STR, &o.base.device, "cpu or cuda", 0},
        {"fast", CLI_FLAG, &o.base.fast, "cuda: bf16 convolutions and matrix products", 0},
        {"recipe", CLI_STR, &o.recipe, "seed or improved: the defaults of the options below", 0},
        {"width", CLI_STR, given_slot(&o, "width"), "U-Net base width (the seed: 320; 32 on a CPU)", 0},
        {"levels", CLI_STR, given_slot(&o, "levels"), "resolution levels 1..4; latents a multiple of 2^(levels-1) (4)",
         0},
        {"mult", CLI_STR, given_slot(&o, "mult"),
         "width multipliers per level: 1,2,4,4 1,2,2,2 1,1,2,2 1,2,3,4 1,1,1,1 or 1,2,4,8 (1,2,4,4)", 0},
        {"attn", CLI_STR, given_slot(&o, "attn"),
         "attention per level, 4 entries (fewer levels use the first): 1,1,1,0 (seed), 0,1,0,0 (improved)", 0},
        {"blocks", CLI_STR, given_slot(&o, "blocks"), "residual blocks per level, 1..3 (2)", 0},
        {"heads", CLI_STR, given_slot(&o, "heads"), "attention heads (8)", 0},
        {"groups", CLI_STR, given_slot(&o, "groups"), "GroupNorm groups (8)", 0},
        {"config", CLI_STR, given_slot(&o, "config"), "seed or improved U-Net blocks (FiLM, pre-norm, blur, SiLU)", 0},
        {"schedule", CLI_STR, given_slot(&o, "schedule"),
         "noise schedule: scaled-linear, linear or cosine (seed: scaled-linear, improved: cosine)", 0},
        {"prediction", CLI_STR, given_slot(&o, "prediction"), "epsilon or v (epsilon)", 0},
        {"timesteps", CLI_STR, given_slot(&o, "timesteps"), "diffusion steps T (1000)", 0},
        {"t-sampling", CLI_STR, given_slot(&o, "t_sampling"), "fixed999 (the seed's defect 1: t = T-1) or uniform", 0},
        {"optim", CLI_STR, given_slot(&o, "optim"), "sgd or adamw (seed: sgd, improved: adamw)", 0},
        {"lr-schedule", CLI_STR, given_slot(&o, "lr_schedule"), "plateau or cosine (seed: plateau, improved: cosine)",
         0},
        {"epochs", CLI_STR, given_slot(&o, "epochs"), "epochs (100)", 0},
        {"batch", CLI_STR, given_slot(&o, "batch"), "latents per micro-batch (2)", 0},
        {"accum", CLI_STR, given_slot(&o, "accum"), "micro-batches per optimizer step (10)", 0},
        {"accum-mode", CLI_STR, given_slot(&o, "accum_mode"), "mean, or sum (the seed's defect 4) (mean)", 0},
        {"lr", CLI_STR, given_slot(&o, "lr"), "learning rate (1e-4)", 0},
        {"momentum", CLI_STR, given_slot(&o, "momentum"), "SGD momentum (0.9)", 0},
        {"wd", CLI_STR, given_slot(&o, "wd"), "weight decay of weights and biases (seed: 0, improved: 0.01)", 0},
        {"warmup", CLI_STR, given_slot(&o, "warmup"), "cosine: warmup steps, -1 = one epoch (improved: -1)", 0},
        {"ema", CLI_STR, given_slot(&o, "ema"), "EMA decay of the weights, 0 = off (improved: 0.999)", 0},
        {"plateau-factor", CLI_STR, given_slot(&o, "plateau_factor"), "ReduceLROnPlateau factor (0.5)", 0},
        {"plateau-patience", CLI_STR, given_slot(&o, "plateau_patience"), "ReduceLROnPlateau patience (3)", 0},
        {"revert", CLI_STR, given_slot(&o, "revert"), "deep, or shallow (the seed's bug: reverts nothing) (deep)", 0},
        {"revert-patience", CLI_STR, given_slot(&o, "revert_patience"),
         "back to the best weights after every N epochs without improvement, 0 = never (seed: 3, improved: 0)", 0},
        {"stop-patience", CLI_STR, given_slot(&o, "stop_patience"), "early stop after N bad epochs (10)", 0},
        {"seed", CLI_STR, given_slot(&o, "seed"), "random seed: initialization, order, noise, timesteps (1)", 0},
        {"max-steps", CLI_INT, &o.base.max_steps, "stop after this many optimizer steps in all (0: no limit)", 0},
        {"save-every", CLI_INT, &o.base.save_every, "also save last.safetensors every N steps (0: per epoch)", 0},
        {"resume", CLI_FLAG, &o.base.resume,
         "continue the run in --out with its saved settings and VAE (--epochs may extend it)", 0},
        {"threads", CLI_INT, &o.base.threads, "CPU threads (0: OpenMP's default)", 0},
        {NULL, 0, NULL, NULL, 0},
    };
    int st = cli_parse(argc, argv, "train the latent diffusion U-Net through a frozen VAE (seed or improved recipe)",
                       opts);
    return st != CLI_RUN ? st : train_command(CMD, &o.base, run, &o);
}
