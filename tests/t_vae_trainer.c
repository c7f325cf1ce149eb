/* The VAE trainer's recipe logic on a tiny model (no data files):
 *   - epoch end: keep-best, revert to the best weights after every revert_patience epochs
 *     without improvement -- a real copy with revert deep, nothing with the seed's shallow
 *     copy --, ReduceLROnPlateau halving the rate after patience + 1 bad epochs, early stop
 *     after stop_patience;
 *   - gradient accumulation: averaged (mean) or summed (the seed's bug), the first SGD
 *     step of the sum moving every weight exactly twice as far (within float rounding);
 *   - the improved recipe's wiring: three vae_trainer_update calls on given gradients
 *     against torch.optim.AdamW with the cosine-with-warmup rates and weight decay on the
 *     convolutions and linear layers only, and the EMA against its closed form over the
 *     saved weights of each step (tests/vae_oracle.py, in float64); the [image, mask]
 *     input with the mask at -1/+1; the best weights being the EMA ones;
 *   - vae_model_load: the configuration from the checkpoint and exactly the file's weights
 *     (last: "ema." when the run had EMA, else ""; best: ""), one-line errors otherwise.
 * Run from the repo root (the oracle is tests/vae_oracle.py). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/err.h"
#include "../cpu/cpu.h"
#include "../src/gen_ckpt.h"
#include "../src/vae_trainer.h"

#define TILE 16
#define ORACLE_STEPS 3

static int failures;
static char root[] = "/tmp/sdseg_t_vae_trainer_XXXXXX";

static void expect(int ok, const char *what)
{
    printf("%-78s %s\n", what, ok ? "ok" : "FAIL");
    if (!ok) failures++;
}

static void must(int rc)
{
    if (rc) sd_die(1, "t_vae_trainer: %s", sd_last_error());
}

static void path(char *buf, size_t n, const char *name) { snprintf(buf, n, "%s/%s", root, name); }

static VaeTrainConfig tiny(int improved, int accum)
{
    VaeTrainConfig c = vae_recipe(improved);
    c.width = 8, c.groups = 4, c.latent = 4, c.batch = 1, c.accum = accum, c.tile_h = c.tile_w = TILE;
    c.steps_per_epoch = 1, c.stop_patience = 5, c.lr = 0.01;
    return c;
}

static VaeTrainConfig tiny_seed(int revert, int accum_mode, int accum)
{
    VaeTrainConfig c = tiny(0, accum);
    c.revert = revert, c.accum_mode = accum_mode;
    return c;
}

static int weights_equal(const VaeTrainer *t, const real *w)
{
    return !memcmp(t->params.w, w, t->params.list.numel * sizeof(real));
}

static real *host_copy(const VaeTrainer *t, const real *src)
{
    size_t n = t->params.list.numel;
    real *w = malloc(n * sizeof *w);
    t->be->download(t->be->ctx, w, src, n * sizeof *w);
    return w;
}

/* ------------------------------------------------------------ seed recipe */

/* val losses 1.0 (best), then 1.1, 1.2, ...: each a bad epoch. */
static void check_epochs(const Backend *be, int revert)
{
    VaeTrainer t;
    VaeTrainConfig c = tiny_seed(revert, ACCUM_MEAN, 1);
    must(vae_trainer_create(&t, be, &c));
    size_t n = t.params.list.numel;
    real *best = host_copy(&t, t.params.w);
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
    expect(flags[0] == EPOCH_BEST && t.keep.best_epoch == 1 && t.keep.best_val == 1.0, "first epoch: best");
    expect(flags[1] == 0 && flags[2] == 0 && flags[3] == (revert == REVERT_DEEP ? EPOCH_REVERTED : 0),
           "bad epochs 1 and 2: nothing; 3: reverted (deep only)");
    expect(lr[3] == 0.01 && lr[4] == 0.005 && lr[5] == 0.005, "plateau: lr halved after 4 bad epochs (patience 3)");
    expect(flags[5] == EPOCH_STOP && t.keep.stopped && flags[4] == 0, "early stop at the fifth bad epoch (stop_patience 5)");
    free(best);
    vae_trainer_free(&t);
}

/* One step of accum 2 from the same start: returns the weights after it (caller frees). */
static real *one_step(const Backend *be, int accum_mode, const float *images, double *loss)
{
    VaeTrainer t;
    VaeTrainConfig c = tiny_seed(REVERT_DEEP, accum_mode, 2);
    must(vae_trainer_create(&t, be, &c));
    VaeLoss l;
    must(vae_trainer_step(&t, images, NULL, &l));
    *loss = l.total;
    real *w = host_copy(&t, t.params.w);
    vae_trainer_free(&t);
    return w;
}

static void check_accumulation(const Backend *be)
{
    float images[2 * TILE * TILE];
    for (int i = 0; i < 2 * TILE * TILE; i++) images[i] = (float)sin(0.37 * i) * 0.8f;
    VaeTrainer t;
    VaeTrainConfig c = tiny_seed(REVERT_DEEP, ACCUM_MEAN, 2);
    must(vae_trainer_create(&t, be, &c));
    size_t n = t.params.list.numel;
    real *w0 = host_copy(&t, t.params.w);
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

/* ------------------------------------------------------------ improved recipe */

static void save_section(const VaeTrainer *t, const char *name, const CkptSection *sec, int nsec)
{
    char p[512];
    path(p, sizeof p, name);
    StMeta meta[] = {{"model", "vae-oracle"}};
    must(ckpt_save(p, t->be, sec, nsec, meta, 1));
}

static void write_case(const VaeTrainer *t)
{
    const VaeTrainConfig *c = &t->cfg;
    char p[512];
    path(p, sizeof p, "case.json");
    FILE *f = fopen(p, "w");
    if (!f) sd_die(1, "t_vae_trainer: cannot write %s", p);
    fprintf(f, "{\"lr\": %.17g, \"wd\": %.17g, \"warmup\": %ld, \"total\": %ld, \"ema\": %.17g, \"steps\": %d, "
               "\"no_decay\": [",
            c->lr, c->wd, c->warmup, (long)c->epochs * c->steps_per_epoch, c->ema, ORACLE_STEPS);
    const TensorList *l = &t->params.list;
    for (int i = 0, first = 1; i < l->count; i++)
        if (l->t[i].group == PARAM_NO_DECAY) fprintf(f, "%s\"%s\"", first ? "" : ", ", l->t[i].name), first = 0;
    fprintf(f, "]}\n");
    fclose(f);
}

/* The updates on given gradients g1..g3 (uniform in [-1, 1]): before, g<k>, w<k> and
 * after (weights, moments, EMA) for the oracle. */
static void oracle_updates(VaeTrainer *t)
{
    const Params *p = &t->params;
    CkptSection before = {"", &p->list, p->w};
    save_section(t, "before.safetensors", &before, 1);
    for (int k = 1; k <= ORACLE_STEPS; k++) {
        char name[32];
        t->be->fill_uniform(t->be->ctx, p->list.numel, p->grad, -1, 1, 7, 100 + k, 0);
        CkptSection g = {"", &p->list, p->grad}, w = {"", &p->list, p->w};
        snprintf(name, sizeof name, "g%d.safetensors", k);
        save_section(t, name, &g, 1);
        vae_trainer_update(t);
        snprintf(name, sizeof name, "w%d.safetensors", k);
        save_section(t, name, &w, 1);
    }
    CkptSection after[] = {{"", &p->list, p->w},
                           {"optim.m.", &p->list, p->m},
                           {"optim.v.", &p->list, p->v},
                           {"ema.", &p->list, t->ema_w}};
    save_section(t, "after.safetensors", after, 4);
    write_case(t);
}

static int run_oracle(void)
{
    char cmd[1024];
    const char *py = getenv("PY") ? getenv("PY") : "/usr/bin/python3";
    snprintf(cmd, sizeof cmd, "%s tests/vae_oracle.py %s", py, root);
    fflush(stdout);
    return system(cmd) == 0;
}

/* After a step on an [image, mask] tile, the model's input holds it. */
static void check_mask_input(VaeTrainer *t)
{
    enum { HW = TILE * TILE }; /* batch 1, accum 1 */
    float images[HW], masks[HW], in[2 * HW];
    for (int i = 0; i < HW; i++) images[i] = (float)cos(0.21 * i) * 0.7f, masks[i] = (float)(i % 3 == 0);
    VaeLoss l;
    must(vae_trainer_step(t, images, masks, &l));
    t->be->download(t->be->ctx, in, t->images, sizeof in);
    int ok = isfinite(l.total);
    for (int j = 0; j < HW; j++) ok &= in[j] == images[j] && in[HW + j] == (masks[j] ? 1.0f : -1.0f);
    expect(ok, "with masks: the input is [image, mask at -1/+1], the loss finite");
    expect(vae_trainer_step(t, images, NULL, &l) == SD_ERR, "with masks: a step without masks fails");
}

static void check_improved(const Backend *be, char *last, char *best)
{
    VaeTrainConfig c = tiny(1, 1);
    c.channels = 2, c.epochs = 5, c.warmup = 2, c.lr = 1e-3, c.wd = 0.1; /* warmup, then the cosine */
    VaeTrainer t;
    must(vae_trainer_create(&t, be, &c));
    oracle_updates(&t);
    expect(run_oracle(), "improved: AdamW, cosine warmup, decay groups and EMA match torch (vae_oracle.py)");
    check_mask_input(&t);
    expect(vae_trainer_epoch_end(&t, 1.0) == EPOCH_BEST, "improved: the first epoch is the best");
    real *ema = host_copy(&t, t.ema_w), *best_w = host_copy(&t, t.best_w);
    expect(!memcmp(ema, best_w, t.params.list.numel * sizeof *ema) && !weights_equal(&t, ema),
           "improved: the best weights are the EMA ones, not the raw ones");
    free(ema), free(best_w);
    must(vae_trainer_save_last(&t, last));
    must(vae_trainer_save_best(&t, best, 1, 1.0));
    vae_trainer_free(&t);
}

/* ------------------------------------------------------------ vae_model_load */

/* The loaded weights against the file's section `prefix`, tensor by tensor. */
static int same_as_file(const VaeModel *v, const char *file, const char *prefix)
{
    StFile f;
    must(st_read(file, &f));
    real *w = malloc(v->p.list.numel * sizeof *w);
    v->p.be->download(v->p.be->ctx, w, v->p.w, v->p.list.numel * sizeof *w);
    int ok = 1;
    for (int i = 0; i < v->p.list.count && ok; i++) {
        const NamedTensor *nt = &v->p.list.t[i];
        char name[PARAM_NAME_MAX + 16];
        snprintf(name, sizeof name, "%s%s", prefix, nt->name);
        const StTensor *st = st_find(&f, name);
        float *data = st && st->numel == nt->numel ? malloc(nt->numel * sizeof *data) : NULL;
        if (data) st_copy_f32(st, data);
        ok = data && !memcmp(data, w + nt->offset, nt->numel * sizeof *data);
        free(data);
    }
    free(w);
    st_free(&f);
    return ok;
}

static void check_load(const Backend *be, const char *file, const char *prefix, int improved, const char *what)
{
    VaeModel v;
    must(vae_model_load(&v, be, file));
    const VaeConfig *m = &v.m.cfg;
    int cfg_ok = improved ? m->in_ch == 2 && !m->skips && m->tanh_out && m->antialias
                          : m->in_ch == 1 && m->skips && !m->tanh_out && !m->antialias;
    expect(cfg_ok && m->base == 8 && m->latent == 4 && m->groups == 4 && same_as_file(&v, file, prefix), what);
    vae_model_free(&v);
}

static void check_load_errors(const Backend *be, const char *other)
{
    VaeModel v;
    char missing[512];
    path(missing, sizeof missing, "none.safetensors");
    int rc = vae_model_load(&v, be, missing);
    expect(rc == SD_ERR && strstr(sd_last_error(), "none.safetensors"), "load: a missing file fails naming it");
    rc = vae_model_load(&v, be, other);
    expect(rc == SD_ERR && strstr(sd_last_error(), "not a VAE training checkpoint"),
           "load: another kind of file fails (not a VAE training checkpoint)");
}

static void check_model_load(const Backend *be, const char *last, const char *best)
{
    check_load(be, last, "ema.", 1, "load: an EMA run's last checkpoint gives its EMA weights, its config");
    check_load(be, best, "", 1, "load: its best checkpoint gives section \"\" (the EMA weights validated)");
    VaeTrainer t;
    VaeTrainConfig c = tiny(0, 1);
    must(vae_trainer_create(&t, be, &c));
    char seed_last[512];
    path(seed_last, sizeof seed_last, "seed_last.safetensors");
    must(vae_trainer_save_last(&t, seed_last));
    vae_trainer_free(&t);
    check_load(be, seed_last, "", 0, "load: a seed run's last checkpoint gives its weights, the seed config");
    char other[512];
    path(other, sizeof other, "before.safetensors"); /* the oracle's dump: model "vae-oracle" */
    check_load_errors(be, other);
}

int main(void)
{
    if (!mkdtemp(root)) sd_die(1, "t_vae_trainer: cannot create a temporary folder");
    Backend be = cpu_backend();
    check_epochs(&be, REVERT_DEEP);
    check_epochs(&be, REVERT_SHALLOW);
    check_accumulation(&be);
    char last[512], best[512];
    path(last, sizeof last, "last.safetensors");
    path(best, sizeof best, "best.safetensors");
    check_improved(&be, last, best);
    check_model_load(&be, last, best);
    cpu_ctx_destroy(be.ctx);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    if (failures) printf("t_vae_trainer: files kept in %s\n", root);
    else if (system(cmd)) printf("warning: could not remove %s\n", root);
    printf("t_vae_trainer: %s\n", failures ? "FAILED" : "all passed");
    return failures ? 1 : 0;
}
