/* The segmentation U-Net and one training step against PyTorch, for both recipes.
 *
 * A width-4 U-Net on 64x64 tiles with randomized batch-norm scales, shifts and running
 * statistics is saved; `sdseg predict` computes its eval-mode logits; one
 * seg_trainer_step (train-mode batch norm; seed: BCE and Adam with the Keras L2,
 * improved: BCE + soft Dice, AdamW and EMA) runs on random images and masks, and its
 * logits, loss, parameter gradients, updated running statistics, optimizer state and EMA
 * are dumped. tests/seg_oracle.py recomputes everything with torch in float64 and sets
 * the exit status. Run from the repo root. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../core/err.h"
#include "../core/npy.h"
#include "../core/params.h"
#include "../core/rng.h"
#include "../cpu/cpu.h"
#include "../src/seg_trainer.h"

#define WIDTH 4
#define TILE 64
#define BATCH 2
#define SEED 11

static char root[] = "/tmp/sdseg_seg_oracle_XXXXXX";
static char dir[300]; /* the current case's folder */

static void path(char *buf, size_t n, const char *name) { snprintf(buf, n, "%s/%s", dir, name); }

static void must(int rc)
{
    if (rc) sd_die(1, "t_seg_oracle: %s", sd_last_error());
}

static void save_npy(const char *name, const void *data, int is_double, int ndim, const long *shape)
{
    char p[512];
    path(p, sizeof p, name);
    must(npy_save(p, data, is_double, ndim, shape));
}

static void save_sections(const SegTrainer *t, const char *name, const CkptSection *sec, int nsec)
{
    char p[512];
    path(p, sizeof p, name);
    StMeta meta[] = {{"model", SEG_UNET_MODEL}};
    must(ckpt_save(p, t->be, sec, nsec, meta, 1));
}

/* Batch-norm scales/shifts and running statistics U(0.5, 1.5), so eval mode differs from
 * a plain affine identity and the oracle checks real statistics; the EMA starts from them. */
static void randomize_bn(const SegTrainer *t)
{
    const Params *p = &t->model->net.params;
    size_t at = p->group_begin[PARAM_NO_DECAY], n = p->group_begin[PARAM_NO_DECAY + 1] - at;
    t->be->fill_uniform(t->be->ctx, n, p->w + at, 0.5f, 1.5f, SEED, 1000, 0);
    t->be->fill_uniform(t->be->ctx, p->buffers.numel, p->buf, 0.5f, 1.5f, SEED, 1001, 0);
    if (!t->ema_w) return;
    t->be->copy(t->be->ctx, t->ema_w, p->w, p->list.numel * sizeof(real));
    t->be->copy(t->be->ctx, t->ema_buf, p->buf, p->buffers.numel * sizeof(real));
}

static void write_case(const SegTrainConfig *c)
{
    char p[512];
    path(p, sizeof p, "case.json");
    FILE *f = fopen(p, "w");
    if (!f) sd_die(1, "t_seg_oracle: cannot write %s", p);
    char loss[16], optim[16];
    seg_config_get(c, "loss", loss, sizeof loss);
    seg_config_get(c, "optim", optim, sizeof optim);
    fprintf(f, "{\"width\": %d, \"bn_eps\": %.9g, \"bn_momentum\": %.17g, \"lr\": %.17g, \"wd\": %.17g, "
               "\"adam_eps\": %.17g, \"ema\": %.17g, \"loss\": \"%s\", \"optim\": \"%s\", \"dice_smooth\": 1}\n",
            c->width, (double)SEG_BN_EPS, c->bn_momentum, c->lr, c->wd, c->adam_eps, c->ema, loss, optim);
    fclose(f);
}

static int run_tool(const char *cmd)
{
    int rc = system(cmd);
    if (rc) fprintf(stderr, "t_seg_oracle: '%s' failed (status %d)\n", cmd, rc);
    return rc != 0;
}

/* `sdseg predict` (next to this test's folder: BUILD/tests/.. ) on the saved weights. */
static int predict(const char *self)
{
    char tests[512], cmd[2048];
    snprintf(tests, sizeof tests, "%s", self);
    char *slash = strrchr(tests, '/');
    if (slash) *slash = 0;
    else snprintf(tests, sizeof tests, ".");
    snprintf(cmd, sizeof cmd,
             "%s/../sdseg predict --weights %s/model.safetensors --input %s/x.npy --output %s/eval_logits.npy", tests,
             dir, dir, dir);
    return run_tool(cmd);
}

static void train_step(SegTrainer *t, const float *x, const float *m)
{
    const Params *p = &t->model->net.params;
    double loss;
    must(seg_trainer_step(t, x, m, &loss));
    long one = 1, shape[4] = {BATCH, 1, TILE, TILE};
    save_npy("loss.npy", &loss, 1, 1, &one);
    save_npy("logits_train.npy", net_value(&t->model->net, t->model->out), 0, 4, shape);
    CkptSection grads = {"", &p->list, p->grad};
    save_sections(t, "grads.safetensors", &grads, 1);
    CkptSection after[] = {{"", &p->list, p->w},         {"", &p->buffers, p->buf},
                           {"optim.m.", &p->list, p->m}, {"optim.v.", &p->list, p->v},
                           {"ema.", &p->list, t->ema_w}, {"ema.", &p->buffers, t->ema_buf}};
    save_sections(t, "after.safetensors", after, t->ema_w ? 6 : 4);
}

/* One recipe's case in root/<name>; returns 1 on failure (its files are kept then). */
static int run_case(const Backend *be, const char *self, const char *name, int improved)
{
    snprintf(dir, sizeof dir, "%s/%s", root, name);
    if (mkdir(dir, 0755)) sd_die(1, "t_seg_oracle: cannot create %s", dir);
    printf("%s recipe:\n", name);
    fflush(stdout);
    SegTrainConfig c = seg_recipe(improved);
    c.width = WIDTH, c.batch = BATCH, c.tile_h = c.tile_w = TILE, c.epochs = 2, c.steps_per_epoch = 1;
    c.seed = SEED, c.warmup = 0;
    SegTrainer t;
    must(seg_trainer_create(&t, be, &c));
    randomize_bn(&t);
    const Params *p = &t.model->net.params;
    CkptSection model[] = {{"", &p->list, p->w}, {"", &p->buffers, p->buf}};
    save_sections(&t, "model.safetensors", model, 2);

    size_t n = (size_t)BATCH * TILE * TILE;
    float *x = malloc(n * sizeof *x), *m = malloc(n * sizeof *m);
    rng_fill_uniform(x, n, 0, 1, SEED, 1, 0);
    rng_fill_uniform(m, n, 0, 1, SEED, 2, 0);
    for (size_t i = 0; i < n; i++) m[i] = m[i] < 0.3f; /* 30% foreground */
    long shape[4] = {BATCH, 1, TILE, TILE};
    save_npy("x.npy", x, 0, 4, shape);
    save_npy("t.npy", m, 0, 4, shape);
    write_case(&c);

    int failed = predict(self);
    train_step(&t, x, m);
    char cmd[1024];
    const char *py = getenv("PY") ? getenv("PY") : "/usr/bin/python3";
    snprintf(cmd, sizeof cmd, "%s tests/seg_oracle.py %s", py, dir);
    failed = failed || run_tool(cmd);
    free(x), free(m);
    seg_trainer_free(&t);
    return failed;
}

int main(int argc, char **argv)
{
    (void)argc;
    if (!mkdtemp(root)) sd_die(1, "t_seg_oracle: cannot create a temporary folder");
    Backend be = cpu_backend();
    int failed = run_case(&be, argv[0], "seed", 0);
    failed |= run_case(&be, argv[0], "improved", 1);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    if (failed) fprintf(stderr, "t_seg_oracle: inputs and outputs kept in %s\n", root);
    else failed = run_tool(cmd);
    cpu_ctx_destroy(be.ctx);
    printf("t_seg_oracle: %s\n", failed ? "FAILED" : "ok");
    return failed;
}
