/* The VAE trainer's recipe logic on a tiny model (no data files):
 *   - epoch end: keep-best, revert to the best weights after every revert_patience epochs
 *     without improvement -- a real copy with revert deep, nothing with the seed's shallow
 *     copy --, ReduceLROnPlateau halving the rate after patience + 1 bad epochs, early stop
 *     after stop_patience;
 *   - gradient accumulation: averaged (mean) or summed (the seed's bug), the first SGD
 *     step of the sum moving every weight exactly twice as far (within float rounding). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/err.h"
#include "../cpu/cpu.h"
#include "../src/vae_trainer.h"

static int failures;

static void expect(int ok, const char *what)
{
    printf("%-78s %s\n", what, ok ? "ok" : "FAIL");
    if (!ok) failures++;
}

static VaeTrainConfig tiny(int revert, int accum_mode, int accum)
{
    VaeTrainConfig c = vae_recipe_seed();
    c.width = 8, c.groups = 4, c.latent = 4, c.batch = 1, c.accum = accum, c.tile_h = c.tile_w = 16;
    c.steps_per_epoch = 1, c.stop_patience = 5, c.revert = revert, c.accum_mode = accum_mode, c.lr = 0.01;
    return c;
}

static void create(VaeTrainer *t, const Backend *be, const VaeTrainConfig *c)
{
    if (vae_trainer_create(t, be, c)) sd_die(1, "%s", sd_last_error());
}

static int weights_equal(const VaeTrainer *t, const real *w)
{
    return !memcmp(t->params.w, w, t->params.list.numel * sizeof(real));
}

/* val losses 1.0 (best), then 1.1, 1.2, ...: each a bad epoch. */
static void check_epochs(const Backend *be, int revert)
{
    VaeTrainer t;
    VaeTrainConfig c = tiny(revert, ACCUM_MEAN, 1);
    create(&t, be, &c);
    size_t n = t.params.list.numel;
    real *best = malloc(n * sizeof *best);
    memcpy(best, t.params.w, n * sizeof *best);
    t.step = 1;
    int flags[6];
    flags[0] = vae_trainer_epoch_end(&t, 1.0);
    be->scale(be->ctx, n, 2, t.params.w); /* "training" moves the weights */
    double lr[6];
    for (int e = 1; e < 6; e++) {
        t.step = e + 1;
        flags[e] = vae_trainer_epoch_end(&t, 1.0 + 0.1 * e);
        lr[e] = vae_trainer_lr(&t);
        if (e == 3) expect(revert == REVERT_DEEP ? weights_equal(&t, best) : !weights_equal(&t, best),
                           revert == REVERT_DEEP ? "revert deep: the third bad epoch restores the best weights"
                                                 : "revert shallow (the seed's bug): the weights stay as they are");
    }
    expect(flags[0] == EPOCH_BEST && t.best_epoch == 1 && t.best_val == 1.0, "first epoch: best");
    expect(flags[1] == 0 && flags[2] == 0 && flags[3] == (revert == REVERT_DEEP ? EPOCH_REVERTED : 0),
           "bad epochs 1 and 2: nothing; 3: reverted (deep only)");
    expect(lr[3] == 0.01 && lr[4] == 0.005 && lr[5] == 0.005, "plateau: lr halved after 4 bad epochs (patience 3)");
    expect(flags[5] == EPOCH_STOP && t.stopped && flags[4] == 0, "early stop at the fifth bad epoch (stop_patience 5)");
    free(best);
    vae_trainer_free(&t);
}

/* One step of accum 2 from the same start: returns the weights after it (caller frees). */
static real *one_step(const Backend *be, int accum_mode, const float *images, double *loss)
{
    VaeTrainer t;
    VaeTrainConfig c = tiny(REVERT_DEEP, accum_mode, 2);
    create(&t, be, &c);
    VaeLoss l;
    if (vae_trainer_step(&t, images, &l)) sd_die(1, "%s", sd_last_error());
    *loss = l.total;
    size_t n = t.params.list.numel;
    real *w = malloc(n * sizeof *w);
    memcpy(w, t.params.w, n * sizeof *w);
    vae_trainer_free(&t);
    return w;
}

static void check_accumulation(const Backend *be)
{
    float images[2 * 16 * 16];
    for (int i = 0; i < 2 * 16 * 16; i++) images[i] = (float)sin(0.37 * i) * 0.8f;
    VaeTrainer t;
    VaeTrainConfig c = tiny(REVERT_DEEP, ACCUM_MEAN, 2);
    create(&t, be, &c);
    size_t n = t.params.list.numel;
    real *w0 = malloc(n * sizeof *w0);
    memcpy(w0, t.params.w, n * sizeof *w0);
    vae_trainer_free(&t);
    double loss_mean, loss_sum;
    real *w_mean = one_step(be, ACCUM_MEAN, images, &loss_mean), *w_sum = one_step(be, ACCUM_SUM, images, &loss_sum);
    double diff = 0, scale = 0;
    for (size_t i = 0; i < n; i++) {
        double d_mean = (double)w_mean[i] - w0[i], d_sum = (double)w_sum[i] - w0[i];
        diff = fmax(diff, fabs(d_sum - 2 * d_mean));
        scale = fmax(scale, fabs(2 * d_mean));
    }
    char what[128];
    snprintf(what, sizeof what, "accumulation: summed step = 2 x averaged step (rel. error %.1e)", diff / scale);
    expect(scale > 0 && diff / scale < 1e-4, what);
    expect(loss_mean == loss_sum && isfinite(loss_mean), "accumulation: the reported loss is the micro-batch mean");
    free(w0), free(w_mean), free(w_sum);
}

int main(void)
{
    Backend be = cpu_backend();
    check_epochs(&be, REVERT_DEEP);
    check_epochs(&be, REVERT_SHALLOW);
    check_accumulation(&be);
    cpu_ctx_destroy(be.ctx);
    printf("t_vae_trainer: %s\n", failures ? "FAILED" : "all passed");
    return failures ? 1 : 0;
}
