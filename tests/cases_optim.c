/* Cases for the optimizers, EMA, sum of squares, gradient clipping and the learning-rate
 * schedules. None has a finite-difference check (CASE_NO_GRAD). Multi-step cases take the
 * initial weights in[0] [n] and one gradient (or weight) per step in in[1] [steps, n];
 * they copy the inputs to the outputs first and update the outputs, so running the
 * forward twice gives the same result. */
#include <math.h>
#include <stdlib.h>

#include "../ops/clip.h"
#include "../ops/schedule.h"
#include "op_case.h"

static int rows_of(const char *spec)
{
    int d[4];
    spec_dims(spec, d);
    return d[0];
}

static void copy_in(const Backend *be, real *dst, const real *src, size_t n)
{
    be->copy(be->ctx, dst, src, n * sizeof(real));
}

/* --------------------------------------------------------------- SGD, Adam */

/* out: w, buf (buf in aux[0] when momentum is 0: torch keeps none) */
static void sgd_fwd(const Backend *be, const OpCase *c, real *const *in, real *const *out, real *const *aux)
{
    const size_t n = spec_numel(c->in[0]);
    real *buf = c->out[1] ? out[1] : aux[0];
    copy_in(be, out[0], in[0], n);
    for (int k = 0; k < rows_of(c->in[1]); k++)
        be->sgd_step(be->ctx, n, out[0], in[1] + k * n, buf, (float)case_float(c, "lr", 0.1),
                     (float)case_float(c, "momentum", 0), (float)case_float(c, "dampening", 0),
                     (float)case_float(c, "weight_decay", 0), case_int(c, "nesterov", 0), k + 1);
}

/* out: w, m, v; the moments start at zero as torch's */
static void adam_fwd(const Backend *be, const OpCase *c, real *const *in, real *const *out, real *const *aux)
{
    (void)aux;
    const size_t n = spec_numel(c->in[0]);
    copy_in(be, out[0], in[0], n);
    be->zero(be->ctx, out[1], n * sizeof(real));
    be->zero(be->ctx, out[2], n * sizeof(real));
    for (int k = 0; k < rows_of(c->in[1]); k++)
        be->adam_step(be->ctx, n, out[0], in[1] + k * n, out[1], out[2], (float)case_float(c, "lr", 1e-3),
                      (float)case_float(c, "beta1", 0.9), (float)case_float(c, "beta2", 0.999),
                      (float)case_float(c, "eps", 1e-8), (float)case_float(c, "weight_decay", 0),
                      case_int(c, "decoupled", 0), k + 1);
}

/* in: ema0 [n], weights [steps, n]; out: ema */
static void ema_fwd(const Backend *be, const OpCase *c, real *const *in, real *const *out, real *const *aux)
{
    (void)aux;
    const size_t n = spec_numel(c->in[0]);
    copy_in(be, out[0], in[0], n);
    for (int k = 0; k < rows_of(c->in[1]); k++)
        be->ema_update(be->ctx, n, out[0], in[1] + k * n, (float)case_float(c, "decay", 0.999));
}

static void sum_squares_fwd(const Backend *be, const OpCase *c, real *const *in, real *const *out, real *const *aux)
{
    (void)aux;
    be->sum_squares(be->ctx, spec_numel(c->in[0]), out[0], in[0]);
}

/* out: clipped gradient, norm [1] (NaN when clip_grad_norm fails); aux: its tmp1 */
static void clip_fwd(const Backend *be, const OpCase *c, real *const *in, real *const *out, real *const *aux)
{
    const size_t n = spec_numel(c->in[0]);
    float norm;
    copy_in(be, out[0], in[0], n);
    real v = clip_grad_norm(be, out[0], n, aux[0], (float)case_float(c, "max_norm", 1), &norm) ? NAN : norm;
    be->upload(be->ctx, out[1], &v, sizeof v);
}

#define SGD_CASE(nm, w, g, prm, ...) \
    {.name = "sgd/" nm, .op = "sgd", .params = prm, .in = {w, g}, .out = {__VA_ARGS__}, .aux = {w}, .flags = CASE_NO_GRAD, \
     .forward = sgd_fwd}
#define ADAM_CASE(nm, w, g, prm) \
    {.name = "adam/" nm, .op = "adam", .params = prm, .in = {w, g}, .out = {w, w, w}, .flags = CASE_NO_GRAD, \
     .forward = adam_fwd}
#define CLIP_CASE(nm, g, prm) \
    {.name = "clip_grad_norm/" nm, .op = "clip_grad_norm", .params = prm, .in = {g}, .out = {g, "1"}, \
     .aux = {"1"}, .flags = CASE_NO_GRAD, .forward = clip_fwd}

/* --------------------------------------------------------------- schedules
 * Host code: the forward downloads the inputs, computes the learning rates and uploads
 * them as its output, one per epoch/step. */

static PlateauConfig plateau_config(const OpCase *c)
{
    PlateauConfig cfg = {.mode = (PlateauMode)case_int(c, "mode", 0), .factor = case_float(c, "factor", 0.1),
                         .patience = case_int(c, "patience", 10), .threshold = case_float(c, "threshold", 1e-4),
                         .threshold_mode = (ThresholdMode)case_int(c, "threshold_mode", 0),
                         .cooldown = case_int(c, "cooldown", 0), .min_lr = case_float(c, "min_lr", 0),
                         .eps = case_float(c, "eps", 1e-8)};
    return cfg;
}

/* in: metrics [epochs]; out: the learning rate after each plateau_step (NaN if the
 * configuration is rejected). Before every step the state goes through
 * plateau_state_pack and plateau_state_unpack into a fresh struct, as if each epoch
 * resumed from a checkpoint: a field the packing forgets changes the sequence. */
static void plateau_fwd(const Backend *be, const OpCase *c, real *const *in, real *const *out, real *const *aux)
{
    (void)aux;
    const size_t n = spec_numel(c->in[0]);
    real *metric = malloc(2 * n * sizeof(real)), *lr = metric + n;
    PlateauConfig cfg = plateau_config(c);
    PlateauState st, resumed;
    double saved[PLATEAU_STATE_LEN];
    be->download(be->ctx, metric, in[0], n * sizeof(real));
    int ok = plateau_init(&st, &cfg, case_float(c, "lr", 1)) == 0;
    for (size_t k = 0; k < n; k++) {
        if (ok) {
            plateau_state_pack(&st, saved);
            ok = plateau_state_unpack(&resumed, saved) == 0;
            st = resumed;
        }
        if (ok) plateau_step(&st, &cfg, metric[k]);
        lr[k] = ok ? (real)st.lr : NAN;
    }
    be->upload(be->ctx, out[0], lr, n * sizeof(real));
    free(metric);
}

/* out: lr(step) for step = 0 .. steps-1 (NaN if the schedule is rejected); `lr_of` is
 * the cosine or the step schedule. */
static void upload_schedule(const Backend *be, real *out, size_t steps, int ok, double (*lr_of)(const void *, long),
                            const void *sched)
{
    real *lr = malloc(steps * sizeof *lr);
    for (size_t k = 0; k < steps; k++) lr[k] = ok ? (real)lr_of(sched, (long)k) : NAN;
    be->upload(be->ctx, out, lr, steps * sizeof *lr);
    free(lr);
}

static double cosine_of(const void *s, long step) { return cosine_lr(s, step); }
static double steplr_of(const void *s, long step) { return steplr_lr(s, step); }

static void cosine_fwd(const Backend *be, const OpCase *c, real *const *in, real *const *out, real *const *aux)
{
    (void)in;
    (void)aux;
    CosineSchedule s = {.base_lr = case_float(c, "lr", 1), .min_lr = case_float(c, "min_lr", 0),
                        .warmup = case_int(c, "warmup", 0), .total = case_int(c, "total", 1)};
    upload_schedule(be, out[0], spec_numel(c->out[0]), cosine_check(&s) == 0, cosine_of, &s);
}

static void steplr_fwd(const Backend *be, const OpCase *c, real *const *in, real *const *out, real *const *aux)
{
    (void)in;
    (void)aux;
    StepSchedule s = {.base_lr = case_float(c, "lr", 1), .gamma = case_float(c, "gamma", 0.1),
                      .step_size = case_int(c, "step_size", 1)};
    upload_schedule(be, out[0], spec_numel(c->out[0]), steplr_check(&s) == 0, steplr_of, &s);
}

/* Learning rates are compared relative to the largest (1), so min_lr keeps every value
 * well above the 1e-4 tolerance and a missed or extra reduction shows. */
#define PLATEAU_CASE(nm, epochs, prm) \
    {.name = "plateau/" nm, .op = "plateau", .params = prm, .in = {epochs ":0:1"}, .out = {epochs}, \
     .flags = CASE_CPU_ONLY | CASE_NO_GRAD, .forward = plateau_fwd}
#define SCHEDULE_CASE(nm, key, steps, prm) \
    {.name = #key "/" nm, .op = #key, .params = prm " steps=" #steps, .out = {#steps}, .flags = CASE_CPU_ONLY | CASE_NO_GRAD, \
     .forward = key##_fwd}

const OpCase cases_optim[] = {
    SGD_CASE("plain", "37", "5x37", "lr=0.1 dampening=0.5", "37"),
    SGD_CASE("momentum", "37", "5x37", "lr=0.1 momentum=0.9", "37", "37"),
    SGD_CASE("dampening_wd", "41", "6x41", "lr=0.05 momentum=0.9 dampening=0.3 weight_decay=0.01", "41", "41"),
    SGD_CASE("nesterov_wd", "33", "5x33", "lr=0.1 momentum=0.8 weight_decay=0.02 nesterov=1", "33", "33"),
    SGD_CASE("large", "40003", "3x40003", "lr=0.1 momentum=0.9 weight_decay=0.001", "40003", "40003"),
    ADAM_CASE("plain", "37", "5x37", "lr=0.05 beta1=0.9 beta2=0.99 eps=1e-3"),
    ADAM_CASE("l2", "37", "5x37", "lr=0.05 beta1=0.9 beta2=0.999 eps=1e-8 weight_decay=0.1"),
    ADAM_CASE("adamw", "29", "6x29", "lr=0.05 beta1=0.8 beta2=0.995 eps=1e-8 weight_decay=0.5 decoupled=1"),
    ADAM_CASE("large", "40003", "3x40003", "lr=0.01 beta1=0.9 beta2=0.999 eps=1e-8 weight_decay=0.01 decoupled=1"),
    {.name = "ema/53", .op = "ema", .params = "decay=0.9", .in = {"53", "4x53"}, .out = {"53"},
     .flags = CASE_NO_GRAD, .forward = ema_fwd},
    {.name = "ema/large", .op = "ema", .params = "decay=0.999", .in = {"40003", "2x40003"}, .out = {"40003"},
     .flags = CASE_NO_GRAD, .forward = ema_fwd},
    {.name = "sum_squares/7", .op = "sum_squares", .in = {"7"}, .out = {"1"}, .flags = CASE_NO_GRAD,
     .forward = sum_squares_fwd},
    {.name = "sum_squares/large", .op = "sum_squares", .in = {"1000003"}, .out = {"1"}, .flags = CASE_NO_GRAD,
     .forward = sum_squares_fwd},
    CLIP_CASE("clipped", "3x1000", "max_norm=1"),
    CLIP_CASE("unclipped", "3x1000", "max_norm=1000"),
    PLATEAU_CASE("seed", "60", "mode=0 factor=0.5 patience=3 lr=1 min_lr=0.05"),
    PLATEAU_CASE("max_abs_cooldown", "60",
                 "mode=1 factor=0.3 patience=2 threshold=0.05 threshold_mode=1 cooldown=2 lr=1 min_lr=0.01"),
    PLATEAU_CASE("min_abs", "50", "mode=0 factor=0.7 patience=0 threshold=0.02 threshold_mode=1 lr=1 min_lr=0.02"),
    PLATEAU_CASE("eps", "40", "mode=0 factor=0.5 patience=1 cooldown=1 lr=1 min_lr=0.1 eps=0.05"),
    SCHEDULE_CASE("warmup", cosine, 40, "lr=1 min_lr=0.1 warmup=5 total=40"),
    SCHEDULE_CASE("no_warmup", cosine, 31, "lr=1 min_lr=0 warmup=0 total=30"),
    SCHEDULE_CASE("7", steplr, 40, "lr=1 gamma=0.5 step_size=7"),
    {0},
};
