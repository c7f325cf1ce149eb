/* The diffusion trainer (src/ddpm_trainer.h) on a tiny U-Net and synthetic latents:
 *   - latent_scale = 1 / std of the training means on hand-computed sets;
 *   - the batches: each epoch a permutation of the training latents (another one the next
 *     epoch), t = T-1 always with t_sampling fixed999 and spread over 0..T-1 with uniform,
 *     x_t = sqrt(abar) x0 + sqrt(1 - abar) noise and the target (noise, or v =
 *     sqrt(abar) noise - sqrt(1 - abar) x0) recomputed in double from the schedule;
 *   - gradient accumulation: the summed gradient (the seed's defect 4) is accum times the
 *     averaged one on the same micro-batches;
 *   - the epoch end: revert deep puts the best weights and EMA back, shallow nothing,
 *     ReduceLROnPlateau halves the rate after patience + 1 bad epochs, early stop;
 *   - a last checkpoint restored into a new trainer continues bit for bit;
 *   - validation: the same loss every time (fixed draws), computed with the EMA weights;
 *   - ddpm_model_load: the raw or the EMA weights of a best checkpoint, its schedule, scale
 *     and VAE path, and a one-line error for another model's file.
 * `t_ddpm_step dump DIR` writes one optimizer step of two configurations (weights before,
 * micro-batches, loss, gradients) for tests/ddpm_oracle.py (run by t_ddpm_train.sh): the
 * seed's U-Net and recipe, and the improved U-Net with v, cosine, uniform t and summed
 * accumulation. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../core/err.h"
#include "../core/npy.h"
#include "../core/rng.h"
#include "../cpu/cpu.h"
#include "../src/ddpm_trainer.h"
#include "../src/gen_ckpt.h"
#include "check.h"

#define TRAIN_COUNT 8
#define VAL_COUNT 3
#define LAT_C 4
#define LAT_HW 4
#define PER (LAT_C * LAT_HW * LAT_HW)

static char root[] = "/tmp/sdseg_t_ddpm_step_XXXXXX";

static void must(int rc)
{
    if (rc) sd_die(1, "t_ddpm_step: %s", sd_last_error());
}

/* Synthetic posteriors: means N(0.5, 2^2), logvars U(-3, 0). */
static DdpmLatents latents(int count, uint64_t stream)
{
    DdpmLatents l = {count, PER, malloc(count * PER * sizeof(float)), malloc(count * PER * sizeof(float))};
    rng_fill_normal(l.mean, (size_t)count * PER, 0.5f, 2.0f, 7, stream, 0);
    rng_fill_uniform(l.logvar, (size_t)count * PER, -3.0f, 0.0f, 7, stream + 1, 0);
    return l;
}

static DdpmLatents train_set, val_set;

/* Seed recipe on a 2-level U-Net of width 8: 2 steps per epoch of 2 x 2 latents. */
static DdpmTrainConfig tiny(void)
{
    DdpmTrainConfig c = ddpm_recipe(0);
    c.width = 8, c.levels = 2, c.blocks = 1, c.heads = 2, c.groups = 4, c.timesteps = 1000;
    c.batch = 2, c.accum = 2, c.latent = LAT_C, c.latent_h = c.latent_w = LAT_HW;
    c.steps_per_epoch = TRAIN_COUNT / (c.batch * c.accum), c.lr = 1e-3, c.warmup = 0, c.stop_patience = 5;
    return c;
}

static void create(DdpmTrainer *t, const Backend *be, const DdpmTrainConfig *c)
{
    must(ddpm_trainer_create(t, be, c, &train_set, &val_set, 0.75, "/somewhere/vae.safetensors"));
}

static float *download(const DdpmTrainer *t, const real *src, size_t n)
{
    float *h = malloc(n * sizeof *h);
    t->be->download(t->be->ctx, h, src, n * sizeof *h);
    return h;
}

/* ------------------------------------------------------------ the data */

static void check_latent_scale(void)
{
    float pm[4] = {1, -1, 1, -1}, lv[4] = {0}, shifted[2] = {2, 4};
    DdpmLatents a = {2, 2, pm, lv}, b = {1, 2, shifted, lv}, flat = {1, 2, lv, lv};
    double s = 0;
    CHECK(ddpm_latent_scale(&a, &s) == SD_OK);
    CHECK_NEAR(s, 1.0, 1e-12);
    CHECK(ddpm_latent_scale(&b, &s) == SD_OK); /* mean 3, std 1 */
    CHECK_NEAR(s, 1.0, 1e-12);
    pm[0] = pm[2] = 0.5, pm[1] = pm[3] = -0.5; /* std 0.5 */
    CHECK(ddpm_latent_scale(&a, &s) == SD_OK);
    CHECK_NEAR(s, 2.0, 1e-12);
    CHECK(ddpm_latent_scale(&flat, &s) == SD_ERR);
}

/* Every latent once per epoch, in another order the next epoch. */
static void check_order(const Backend *be)
{
    DdpmTrainer t;
    DdpmTrainConfig c = tiny();
    create(&t, be, &c);
    int32_t first[TRAIN_COUNT];
    for (long epoch = 0; epoch < 2; epoch++) {
        int seen[TRAIN_COUNT] = {0};
        t.step = epoch * c.steps_per_epoch;
        ddpm_trainer_batch(&t, 0);
        for (int i = 0; i < TRAIN_COUNT; i++) seen[t.order[i]]++;
        for (int i = 0; i < TRAIN_COUNT; i++)
            CHECK_MSG(seen[i] == 1, "epoch %ld: latent %d drawn %d times", epoch, i, seen[i]);
        if (!epoch) memcpy(first, t.order, sizeof first);
    }
    CHECK_MSG(memcmp(first, t.order, sizeof first), "epochs 0 and 1 in the same order");
    ddpm_trainer_free(&t);
}

/* x_t and the target of one micro-batch against the schedule, in double. */
static void check_batch_math(const DdpmTrainer *t)
{
    size_t n = (size_t)t->cfg.batch * PER;
    float *x0 = download(t, t->x0, n), *noise = download(t, t->noise, n);
    float *x_t = download(t, t->x_t, n), *target = download(t, t->target, n);
    double worst_x = 0, worst_target = 0;
    for (size_t i = 0; i < n; i++) {
        double a = schedule_abar(&t->sched, t->steps[i / PER]), sa = sqrt(a), sb = sqrt(1 - a);
        double want = t->cfg.prediction == PREDICT_V ? sa * noise[i] - sb * x0[i] : noise[i];
        worst_x = fmax(worst_x, fabs(x_t[i] - (sa * x0[i] + sb * noise[i])));
        worst_target = fmax(worst_target, fabs(target[i] - want));
    }
    CHECK_MSG(worst_x < 1e-5 && worst_target < 1e-5, "x_t off by %g, target by %g", worst_x, worst_target);
    free(x0), free(noise), free(x_t), free(target);
}

static void check_timesteps(const Backend *be, int uniform, int prediction)
{
    DdpmTrainer t;
    DdpmTrainConfig c = tiny();
    c.t_sampling = uniform, c.prediction = prediction, c.schedule = uniform ? SCHEDULE_COSINE : c.schedule;
    create(&t, be, &c);
    int low = c.timesteps, high = -1;
    for (t.step = 0; t.step < 6; t.step++)
        for (int k = 0; k < c.accum; k++) {
            ddpm_trainer_batch(&t, k);
            for (int b = 0; b < c.batch; b++) {
                low = t.steps[b] < low ? t.steps[b] : low;
                high = t.steps[b] > high ? t.steps[b] : high;
            }
            check_batch_math(&t);
        }
    if (uniform)
        CHECK_MSG(low >= 0 && high < c.timesteps && high - low > c.timesteps / 4, "uniform t in [%d, %d]", low, high);
    else
        CHECK_MSG(low == c.timesteps - 1 && high == low, "fixed999: t in [%d, %d]", low, high);
    ddpm_trainer_free(&t);
}

/* ------------------------------------------------------------ steps and epochs */

/* One step with the gradients averaged and one summed, from the same start and batches. */
static void check_accum(const Backend *be)
{
    DdpmTrainer mean, sum;
    DdpmTrainConfig c = tiny();
    create(&mean, be, &c);
    c.accum_mode = ACCUM_SUM;
    create(&sum, be, &c);
    double l1, l2;
    must(ddpm_trainer_step(&mean, &l1) || ddpm_trainer_step(&sum, &l2));
    CHECK(l1 == l2);
    size_t n = mean.params.list.numel;
    double worst = 0, scale = 0;
    for (size_t i = 0; i < n; i++) {
        worst = fmax(worst, fabs(sum.params.grad[i] - c.accum * mean.params.grad[i]));
        scale = fmax(scale, fabs(sum.params.grad[i]));
    }
    CHECK_MSG(scale > 0 && worst <= 1e-6 * scale, "summed gradient vs %d x averaged: off by %g of %g", c.accum,
              worst, scale);
    ddpm_trainer_free(&mean), ddpm_trainer_free(&sum);
}

static int same(const real *a, const real *b, size_t n) { return !memcmp(a, b, n * sizeof *a); }

/* Val losses 1.0 (best) then 1.1, 1.2, ...: reverts after 3 bad epochs (deep), halves the
 * rate after 4, stops after 5. */
static void check_epoch_end(const Backend *be, int revert)
{
    DdpmTrainer t;
    DdpmTrainConfig c = tiny();
    c.revert = revert, c.ema = 0.5;
    create(&t, be, &c);
    size_t n = t.params.list.numel;
    double loss;
    CHECK(ddpm_trainer_epoch_end(&t, 1.0) == EPOCH_BEST);
    real *best = malloc(n * sizeof *best), *best_ema = malloc(n * sizeof *best_ema);
    memcpy(best, t.params.w, n * sizeof *best), memcpy(best_ema, t.ema_w, n * sizeof *best_ema);
    must(ddpm_trainer_step(&t, &loss));
    CHECK(!same(t.params.w, best, n) && !same(t.ema_w, best_ema, n));
    int flags[5];
    for (int e = 0; e < 5; e++) flags[e] = ddpm_trainer_epoch_end(&t, 1.1 + 0.1 * e);
    CHECK(flags[0] == 0 && flags[1] == 0 && flags[3] == 0);
    CHECK(flags[2] == (revert == REVERT_DEEP ? EPOCH_REVERTED : 0));
    CHECK(flags[4] == EPOCH_STOP && t.keep.stopped);
    int back = same(t.params.w, best, n) && same(t.ema_w, best_ema, n);
    CHECK_MSG(back == (revert == REVERT_DEEP), "revert %s: weights and EMA back to the best: %d",
              revert == REVERT_DEEP ? "deep" : "shallow", back);
    CHECK_NEAR(ddpm_trainer_lr(&t), c.lr * 0.5, 1e-15);
    free(best), free(best_ema);
    ddpm_trainer_free(&t);
}

/* Two steps, save, restore into a new trainer: both go on identically. */
static void check_restore(const Backend *be)
{
    char path[128];
    snprintf(path, sizeof path, "%s/last.safetensors", root);
    DdpmTrainer a, b;
    DdpmTrainConfig c = ddpm_recipe(1);
    DdpmTrainConfig t = tiny();
    c.width = t.width, c.levels = t.levels, c.blocks = t.blocks, c.heads = t.heads, c.groups = t.groups;
    c.batch = t.batch, c.accum = t.accum, c.latent = LAT_C, c.latent_h = c.latent_w = LAT_HW;
    c.steps_per_epoch = t.steps_per_epoch, c.warmup = 1, c.revert_patience = 3;
    create(&a, be, &c);
    double la, lb;
    must(ddpm_trainer_step(&a, &la) || ddpm_trainer_step(&a, &la) || ddpm_trainer_save_last(&a, path));
    create(&b, be, &c);
    StFile f;
    must(st_read(path, &f) || ddpm_trainer_load(&b, &f));
    st_free(&f);
    must(ddpm_trainer_step(&a, &la) || ddpm_trainer_step(&b, &lb));
    size_t n = a.params.list.numel;
    CHECK(la == lb && a.step == 3 && b.step == 3);
    CHECK(same(a.params.w, b.params.w, n) && same(a.ema_w, b.ema_w, n) && same(a.params.v, b.params.v, n));
    ddpm_trainer_free(&a), ddpm_trainer_free(&b);
}

/* Validation: fixed draws (the same loss twice), on the EMA weights when there are some. */
static void check_validation(const Backend *be)
{
    DdpmTrainer t;
    DdpmTrainConfig c = tiny();
    c.ema = 0.5;
    create(&t, be, &c);
    double loss, v1, v2, raw, ema;
    must(ddpm_trainer_step(&t, &loss) || ddpm_trainer_validate(&t, &v1) || ddpm_trainer_validate(&t, &v2));
    real *ema_w = t.ema_w, *w = t.params.w;
    t.ema_w = NULL; /* as if there were no EMA: the raw weights, then the EMA ones as raw */
    must(ddpm_trainer_validate(&t, &raw));
    t.params.w = ema_w;
    must(ddpm_trainer_validate(&t, &ema));
    t.params.w = w, t.ema_w = ema_w;
    CHECK_MSG(v1 == v2 && v1 == ema && raw != ema, "validation %.9g %.9g, raw weights %.9g, EMA ones %.9g", v1, v2,
              raw, ema);
    ddpm_trainer_free(&t);
}

/* ------------------------------------------------------------ inference loading */

static void check_model_load(const Backend *be)
{
    char best[128], bad[128];
    snprintf(best, sizeof best, "%s/best.safetensors", root);
    snprintf(bad, sizeof bad, "%s/foreign.safetensors", root);
    DdpmTrainer t;
    DdpmTrainConfig c = tiny();
    c.ema = 0.9, c.prediction = PREDICT_V, c.schedule = SCHEDULE_COSINE;
    create(&t, be, &c);
    double loss;
    must(ddpm_trainer_step(&t, &loss) || ddpm_trainer_step(&t, &loss) || ddpm_trainer_save_best(&t, best, 1, loss));
    size_t n = t.params.list.numel;
    CHECK(!same(t.params.w, t.ema_w, n));
    for (int ema = 0; ema < 2; ema++) {
        DdpmModel d;
        must(ddpm_model_load(&d, be, best, ema));
        CHECK_MSG(d.p.list.numel == n && same(d.p.w, ema ? t.ema_w : t.params.w, n), "%s weights",
                  ema ? "EMA" : "raw");
        CHECK(d.latent_scale == 0.75 && d.latent_h == LAT_HW && d.latent_w == LAT_HW && d.m.cfg.in_ch == LAT_C);
        CHECK(d.sched.kind == SCHEDULE_COSINE && d.sched.prediction == PREDICT_V && d.sched.steps == 1000);
        CHECK(!strcmp(d.vae_path, "/somewhere/vae.safetensors"));
        ddpm_model_free(&d);
    }
    StMeta meta[] = {{"model", "vae"}};
    CkptSection sec = {"", &t.params.list, t.params.w};
    must(ckpt_save(bad, be, &sec, 1, meta, 1));
    DdpmModel d;
    CHECK(ddpm_model_load(&d, be, bad, 0) == SD_ERR && strstr(sd_last_error(), "not a diffusion"));
    ddpm_trainer_free(&t);
}

/* ------------------------------------------------------------ dump for the oracle */

static void save_npy(const char *dir, const char *name, int k, const float *x, int ndim, const long *shape)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s_%d.npy", dir, name, k);
    must(npy_save(path, x, 0, ndim, shape));
}

static void dump_batch(const DdpmTrainer *t, const char *dir, int k)
{
    long shape[4] = {t->cfg.batch, LAT_C, LAT_HW, LAT_HW}, n = (long)t->cfg.batch * PER;
    const real *bufs[] = {t->mean, t->logvar, t->x0, t->noise, t->x_t, t->target};
    const char *names[] = {"mean", "logvar", "x0", "noise", "x_t", "target"};
    for (int i = 0; i < 6; i++) {
        float *h = download(t, bufs[i], n);
        save_npy(dir, names[i], k, h, 4, shape);
        free(h);
    }
    save_npy(dir, "t", k, t->t_real, 1, shape);
}

static void dump_config(const DdpmTrainer *t, const char *dir, double loss)
{
    char path[512];
    const DdpmTrainConfig *c = &t->cfg;
    const UnetConfig *u = &t->model.cfg;
    snprintf(path, sizeof path, "%s/unet_config.txt", dir); /* t_gen_models' format for tests/gen_oracle.py */
    FILE *f = fopen(path, "w");
    if (!f) sd_die(1, "cannot write %s", path);
    fprintf(f, "in_ch %d\nbase %d\nmult", u->in_ch, u->base);
    for (int l = 0; l < u->levels; l++) fprintf(f, "%c%d", l ? ',' : ' ', u->mult[l]);
    fprintf(f, "\nattn");
    for (int l = 0; l < u->levels; l++) fprintf(f, "%c%d", l ? ',' : ' ', u->attn[l]);
    fprintf(f, "\nblocks %d\nheads %d\ntime_in %d\ntime_dim %d\ngroups %d\ntime_film %d\npre_norm %d\nantialias %d\n",
            u->blocks, u->heads, u->time_in, u->time_dim, u->groups, u->time_film, u->pre_norm, u->antialias);
    fprintf(f, "act %s\nslope %.9g\n", u->act == ACT_SILU ? "silu" : "leaky_relu", u->slope);
    fclose(f);
    snprintf(path, sizeof path, "%s/step.txt", dir);
    if (!(f = fopen(path, "w"))) sd_die(1, "cannot write %s", path);
    fprintf(f, "schedule %s\nprediction %s\ntimesteps %d\nt_sampling %s\naccum %d\naccum_mode %s\n"
               "latent_scale %.17g\nloss %.17g\n",
            schedule_kind_name(t->sched.kind), prediction_name(t->sched.prediction), c->timesteps,
            c->t_sampling == T_UNIFORM ? "uniform" : "fixed999", c->accum, c->accum_mode == ACCUM_SUM ? "sum" : "mean",
            t->latent_scale, loss);
    fclose(f);
}

/* One step of config c: weights before, micro-batches, training means, loss and gradients. */
static void dump_step(const Backend *be, const DdpmTrainConfig *c, const char *dir, double scale)
{
    char path[512];
    mkdir(dir, 0777);
    DdpmTrainer t;
    must(ddpm_trainer_create(&t, be, c, &train_set, &val_set, scale, "/none"));
    CkptSection w = {"", &t.params.list, t.params.w}, g = {"", &t.params.list, t.params.grad};
    snprintf(path, sizeof path, "%s/unet.safetensors", dir);
    must(ckpt_save(path, be, &w, 1, NULL, 0));
    for (int k = 0; k < c->accum; k++) {
        ddpm_trainer_batch(&t, k);
        dump_batch(&t, dir, k);
    }
    long shape[2] = {TRAIN_COUNT, PER};
    save_npy(dir, "train_means", 0, train_set.mean, 2, shape);
    double loss;
    must(ddpm_trainer_step(&t, &loss));
    snprintf(path, sizeof path, "%s/grad.safetensors", dir);
    must(ckpt_save(path, be, &g, 1, NULL, 0));
    dump_config(&t, dir, loss);
    ddpm_trainer_free(&t);
}

static void dump(const Backend *be, const char *dir)
{
    char sub[512];
    double scale;
    must(ddpm_latent_scale(&train_set, &scale));
    mkdir(dir, 0777);
    DdpmTrainConfig a = tiny(); /* the seed's: epsilon, scaled-linear, t = 999, averaged */
    snprintf(sub, sizeof sub, "%s/seed", dir);
    dump_step(be, &a, sub, scale);
    DdpmTrainConfig b = tiny(); /* the improved U-Net, v, cosine, uniform t, summed, attention 0,1 */
    b.config = ARCH_IMPROVED, b.attn = 4 /* 0,1,0,0 */, b.accum_mode = ACCUM_SUM;
    b.prediction = PREDICT_V, b.schedule = SCHEDULE_COSINE, b.t_sampling = T_UNIFORM;
    snprintf(sub, sizeof sub, "%s/variant", dir);
    dump_step(be, &b, sub, scale);
}

static int checks(const Backend *be)
{
    if (!mkdtemp(root)) sd_die(1, "cannot create a temporary folder");
    check_latent_scale();
    check_order(be);
    check_timesteps(be, T_FIXED999, PREDICT_EPSILON);
    check_timesteps(be, T_UNIFORM, PREDICT_V);
    check_accum(be);
    check_epoch_end(be, REVERT_DEEP);
    check_epoch_end(be, REVERT_SHALLOW);
    check_restore(be);
    check_validation(be);
    check_model_load(be);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", root);
    return check_exit("t_ddpm_step");
}

int main(int argc, char **argv)
{
    Backend be = cpu_backend();
    train_set = latents(TRAIN_COUNT, 11);
    val_set = latents(VAL_COUNT, 21);
    int status = 0;
    if (argc == 3 && !strcmp(argv[1], "dump")) dump(&be, argv[2]);
    else if (argc == 1) status = checks(&be);
    else sd_die(2, "usage: t_ddpm_step [dump DIR]");
    cpu_ctx_destroy(be.ctx);
    free(train_set.mean), free(train_set.logvar), free(val_set.mean), free(val_set.logvar);
    return status;
}
