/* Noise schedules, the forward process and the samplers. Formulas: DDPM (Ho et al. 2020,
 * eq. 6-7), DDIM (Song et al. 2021, eq. 12), DPM-Solver++(2M) (Lu et al. 2022, alg. 2),
 * written to match diffusers' DDPMScheduler / DDIMScheduler / DPMSolverMultistepScheduler
 * step for step; see models/diffusion_sched.h. */
#include "diffusion_sched.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/err.h"

#define MAX_TRAIN_STEPS 100000
#define COSINE_OFFSET 0.008
#define COSINE_MAX_BETA 0.999
#define DDPM_MIN_VARIANCE 1e-20

/* ------------------------------------------------------------------ names */

static const char *const SCHEDULE_NAMES[] = {"scaled-linear", "linear", "cosine"};
static const char *const PREDICTION_NAMES[] = {"epsilon", "v"};
static const char *const SAMPLER_NAMES[] = {"ddpm", "ddim", "dpm++2m"};

static int parse_name(const char *what, const char *name, const char *const *names, int count, int *out)
{
    for (int i = 0; i < count; i++)
        if (strcmp(name, names[i]) == 0) {
            *out = i;
            return SD_OK;
        }
    return sd_fail("unknown %s '%s'", what, name);
}

int schedule_kind_parse(const char *name, ScheduleKind *kind)
{
    int v = 0;
    if (parse_name("noise schedule", name, SCHEDULE_NAMES, 3, &v)) return SD_ERR;
    *kind = (ScheduleKind)v;
    return SD_OK;
}

int prediction_parse(const char *name, Prediction *prediction)
{
    int v = 0;
    if (parse_name("prediction type", name, PREDICTION_NAMES, 2, &v)) return SD_ERR;
    *prediction = (Prediction)v;
    return SD_OK;
}

int sampler_kind_parse(const char *name, SamplerKind *kind)
{
    int v = 0;
    if (parse_name("sampler", name, SAMPLER_NAMES, 3, &v)) return SD_ERR;
    *kind = (SamplerKind)v;
    return SD_OK;
}

const char *schedule_kind_name(ScheduleKind kind) { return SCHEDULE_NAMES[kind]; }
const char *prediction_name(Prediction prediction) { return PREDICTION_NAMES[prediction]; }
const char *sampler_kind_name(SamplerKind kind) { return SAMPLER_NAMES[kind]; }

/* -------------------------------------------------------------- schedules */

static double cosine_abar(double s)
{
    double c = cos((s + COSINE_OFFSET) / (1 + COSINE_OFFSET) * M_PI / 2);
    return c * c;
}

static double schedule_beta(ScheduleKind kind, int i, int steps, double b0, double b1)
{
    double f = (double)i / (steps - 1);
    switch (kind) {
    case SCHEDULE_SCALED_LINEAR: {
        double r = sqrt(b0) + f * (sqrt(b1) - sqrt(b0));
        return r * r;
    }
    case SCHEDULE_LINEAR: return b0 + f * (b1 - b0);
    case SCHEDULE_COSINE:
        return fmin(1 - cosine_abar((double)(i + 1) / steps) / cosine_abar((double)i / steps), COSINE_MAX_BETA);
    }
    return NAN;
}

int schedule_create(NoiseSchedule *s, ScheduleKind kind, Prediction prediction, int steps, double beta_start,
                    double beta_end)
{
    memset(s, 0, sizeof *s);
    if (steps < 2 || steps > MAX_TRAIN_STEPS)
        return sd_fail("noise schedule: %d timesteps (allowed 2..%d)", steps, MAX_TRAIN_STEPS);
    if (beta_start <= 0) beta_start = kind == SCHEDULE_SCALED_LINEAR ? 0.00085 : 1e-4;
    if (beta_end <= 0) beta_end = kind == SCHEDULE_SCALED_LINEAR ? 0.012 : 0.02;
    s->kind = kind;
    s->prediction = prediction;
    s->steps = steps;
    s->betas = malloc(steps * sizeof *s->betas);
    s->alphas_cumprod = malloc(steps * sizeof *s->alphas_cumprod);
    if (!s->betas || !s->alphas_cumprod) {
        schedule_free(s);
        return sd_fail("out of memory for a noise schedule of %d steps", steps);
    }
    double abar = 1;
    for (int i = 0; i < steps; i++) {
        double beta = schedule_beta(kind, i, steps, beta_start, beta_end);
        if (!(beta > 0 && beta < 1)) {
            schedule_free(s);
            return sd_fail("noise schedule: beta_%d = %g is outside (0, 1)", i, beta);
        }
        abar *= 1 - beta;
        s->betas[i] = beta;
        s->alphas_cumprod[i] = abar;
    }
    return SD_OK;
}

void schedule_free(NoiseSchedule *s)
{
    free(s->betas);
    free(s->alphas_cumprod);
    s->betas = s->alphas_cumprod = NULL;
}

double schedule_abar(const NoiseSchedule *s, int t) { return t < 0 ? 1.0 : s->alphas_cumprod[t]; }

/* ---------------------------------------------- forward process, conversions */

LinCoef schedule_x0_coef(const NoiseSchedule *s, int t)
{
    double a = schedule_abar(s, t);
    if (s->prediction == PREDICT_V) return (LinCoef){sqrt(a), -sqrt(1 - a)};
    return (LinCoef){1 / sqrt(a), -sqrt(1 - a) / sqrt(a)};
}

LinCoef schedule_eps_coef(const NoiseSchedule *s, int t)
{
    double a = schedule_abar(s, t);
    if (s->prediction == PREDICT_V) return (LinCoef){sqrt(1 - a), sqrt(a)};
    return (LinCoef){0, 1};
}

/* y = a*x + b*z over n values (y may be x). */
static void combine(const Backend *be, size_t n, real *y, double a, const real *x, double b, const real *z)
{
    if (y != x) be->copy(be->ctx, y, x, n * sizeof(real));
    be->scale(be->ctx, n, (real)a, y);
    be->axpy(be->ctx, n, (real)b, z, y);
}

void diffusion_add_noise(const Backend *be, const NoiseSchedule *s, int n, size_t per, const int *t, real *x_t,
                         const real *x0, const real *eps)
{
    for (int b = 0; b < n; b++) {
        double a = schedule_abar(s, t[b]);
        combine(be, per, x_t + b * per, sqrt(a), x0 + b * per, sqrt(1 - a), eps + b * per);
    }
}

void diffusion_target(const Backend *be, const NoiseSchedule *s, int n, size_t per, const int *t, real *target,
                      const real *x0, const real *eps)
{
    if (s->prediction == PREDICT_EPSILON) {
        be->copy(be->ctx, target, eps, n * per * sizeof(real));
        return;
    }
    for (int b = 0; b < n; b++) {
        double a = schedule_abar(s, t[b]);
        combine(be, per, target + b * per, -sqrt(1 - a), x0 + b * per, sqrt(a), eps + b * per);
    }
}

void diffusion_predict_x0(const Backend *be, const NoiseSchedule *s, int t, size_t numel, real *x0, const real *x_t,
                          const real *out)
{
    LinCoef c = schedule_x0_coef(s, t);
    combine(be, numel, x0, c.out, out, c.x, x_t);
}

/* ------------------------------------------------------------------ steps */

/* x = cx*x + cout*out + cnoise*noise (the noise term only when cnoise != 0). */
static void apply_step(const Backend *be, size_t numel, real *x, double cx, double cout, const real *out,
                       double cnoise, const real *noise)
{
    be->scale(be->ctx, numel, (real)cx, x);
    be->axpy(be->ctx, numel, (real)cout, out, x);
    if (cnoise != 0) be->axpy(be->ctx, numel, (real)cnoise, noise, x);
}

/* Posterior q(x_next | x_t, x0) = N(mean_x0 * x0 + mean_x * x_t, variance). */
void ddpm_step(const Backend *be, const NoiseSchedule *s, int t, int t_next, size_t numel, real *x, const real *out,
               const real *noise)
{
    double a = schedule_abar(s, t), an = schedule_abar(s, t_next);
    double beta = 1 - a / an;
    double mean_x0 = sqrt(an) * beta / (1 - a);
    double mean_x = sqrt(a / an) * (1 - an) / (1 - a);
    double variance = fmax((1 - an) / (1 - a) * beta, DDPM_MIN_VARIANCE);
    LinCoef x0 = schedule_x0_coef(s, t);
    apply_step(be, numel, x, mean_x0 * x0.x + mean_x, mean_x0 * x0.out, out, t > 0 ? sqrt(variance) : 0, noise);
}

/* x_next = sqrt(an) x0 + sqrt(1 - an - sigma^2) eps + sigma noise, sigma = eta * sqrt(beta~). */
void ddim_step(const Backend *be, const NoiseSchedule *s, int t, int t_next, double eta, size_t numel, real *x,
               const real *out, const real *noise)
{
    double a = schedule_abar(s, t), an = schedule_abar(s, t_next);
    double sigma = eta * sqrt((1 - an) / (1 - a) * (1 - a / an));
    double dir = sqrt(fmax(1 - an - sigma * sigma, 0));
    LinCoef x0 = schedule_x0_coef(s, t), eps = schedule_eps_coef(s, t);
    apply_step(be, numel, x, sqrt(an) * x0.x + dir * eps.x, sqrt(an) * x0.out + dir * eps.out, out, sigma, noise);
}

/* lambda = log(alpha / sigma) = log(sqrt(abar) / sqrt(1 - abar)), the half log-SNR. */
static double half_log_snr(const NoiseSchedule *s, int t)
{
    double a = schedule_abar(s, t);
    return 0.5 * log(a / (1 - a));
}

/* x_next = (sigma_n / sigma_t) x + alpha_n (1 - e^-h) (D0 + D1 / 2), h = lambda_n - lambda_t,
 * D1 = (d0 - d1) / r, r = (lambda_t - lambda_prev) / h (diffusers' "midpoint" form). */
void dpmpp_2m_step(const Backend *be, const NoiseSchedule *s, int t_prev, int t, int t_next, size_t numel, real *x,
                   const real *d0, const real *d1)
{
    double a = schedule_abar(s, t), an = schedule_abar(s, t_next);
    double ratio = sqrt(1 - an) / sqrt(1 - a);
    /* e^-h = (sigma_n / alpha_n) / (sigma_t / alpha_t): 0 at the data, without log(0) */
    double exp_neg_h = sqrt(1 - an) * sqrt(a) / (sqrt(an) * sqrt(1 - a));
    double phi = sqrt(an) * (1 - exp_neg_h);
    if (!d1 || t_next < 0) {
        apply_step(be, numel, x, ratio, phi, d0, 0, NULL);
        return;
    }
    double h = half_log_snr(s, t_next) - half_log_snr(s, t);
    double r = (half_log_snr(s, t) - half_log_snr(s, t_prev)) / h;
    apply_step(be, numel, x, ratio, phi * (1 + 0.5 / r), d0, -phi * 0.5 / r, d1);
}

/* ---------------------------------------------------------------- sampling */

int sampler_timesteps(const SamplerConfig *c, int train_steps, int *t)
{
    int n = c->steps;
    if (n < 1 || n > train_steps)
        return sd_fail("%s: %d sampling steps (allowed 1..%d)", sampler_kind_name(c->kind), n, train_steps);
    if (c->kind != SAMPLER_DPMPP_2M) {
        int stride = train_steps / n;
        for (int i = 0; i < n; i++) t[i] = (n - 1 - i) * stride;
        return SD_OK;
    }
    /* numpy's linspace: value k is k * ((T-1) / N), the last exactly T-1; np.round is
     * round-half-even, as nearbyint in the default rounding mode */
    double step = (double)(train_steps - 1) / n;
    for (int i = 0; i < n; i++) {
        t[i] = i == 0 ? train_steps - 1 : (int)nearbyint((n - i) * step);
        if (i > 0 && t[i] >= t[i - 1])
            return sd_fail("%s: %d steps over %d timesteps repeat timestep %d", sampler_kind_name(c->kind), n,
                           train_steps, t[i]);
    }
    return SD_OK;
}

/* Standard normal noise of stream `stream` for the batch, by the convention of SamplerConfig. */
static void fill_noise(const Backend *be, const SamplerConfig *c, int n, size_t per, real *x, uint64_t stream)
{
    be->fill_normal(be->ctx, (size_t)n * per, x, 0, 1, c->seed, stream, c->first * per);
}

void sampler_initial_noise(const Backend *be, const SamplerConfig *c, int n, size_t per, real *x)
{
    fill_noise(be, c, n, per, x, c->stream);
}

static int step_adds_noise(const SamplerConfig *c, int t, int t_next)
{
    if (c->kind == SAMPLER_DDPM) return t > 0;
    return c->kind == SAMPLER_DDIM && c->eta > 0 && t_next >= 0;
}

/* Backend buffers of one run: the model output, and the noise (DDPM, DDIM) or the data
 * predictions of this step and the previous one (DPM-Solver++). */
typedef struct {
    real *out, *noise, *d0, *d1;
} SamplerBuffers;

/* Step i of the grid from t to t_next, after the model wrote buf->out. */
static void sampler_step(const Backend *be, const NoiseSchedule *s, const SamplerConfig *c, const int *ts, int i,
                         int n, size_t per, real *x, SamplerBuffers *buf)
{
    size_t numel = (size_t)n * per;
    int t = ts[i], t_next = i + 1 < c->steps ? ts[i + 1] : -1;
    if (step_adds_noise(c, t, t_next)) fill_noise(be, c, n, per, buf->noise, c->stream + 1 + (uint64_t)i);
    switch (c->kind) {
    case SAMPLER_DDPM: ddpm_step(be, s, t, t_next, numel, x, buf->out, buf->noise); break;
    case SAMPLER_DDIM: ddim_step(be, s, t, t_next, c->eta, numel, x, buf->out, buf->noise); break;
    case SAMPLER_DPMPP_2M: {
        diffusion_predict_x0(be, s, t, numel, buf->d0, x, buf->out);
        dpmpp_2m_step(be, s, i > 0 ? ts[i - 1] : -1, t, t_next, numel, x, buf->d0, i > 0 ? buf->d1 : NULL);
        real *keep = buf->d1;
        buf->d1 = buf->d0;
        buf->d0 = keep;
        break;
    }
    }
}

static int sampler_check(const SamplerConfig *c, int n, size_t per)
{
    if (n < 1 || per < 1)
        return sd_fail("%s: empty batch (%d samples of %zu values)", sampler_kind_name(c->kind), n, per);
    if (c->kind == SAMPLER_DDIM && !(c->eta >= 0)) return sd_fail("ddim: eta %g must be >= 0", c->eta);
    return SD_OK;
}

int sampler_run(const Backend *be, const NoiseSchedule *s, const SamplerConfig *c, DenoiseFn model, void *user, int n,
                size_t per, real *x)
{
    if (sampler_check(c, n, per)) return SD_ERR;
    int *ts = malloc((size_t)(c->steps > 0 ? c->steps : 1) * sizeof *ts);
    if (!ts) return sd_fail("out of memory for %d sampling steps", c->steps);
    if (sampler_timesteps(c, s->steps, ts)) {
        free(ts);
        return SD_ERR;
    }
    size_t bytes = (size_t)n * per * sizeof(real);
    real *mem[3] = {be->alloc(be->ctx, bytes), be->alloc(be->ctx, bytes),
                    c->kind == SAMPLER_DPMPP_2M ? be->alloc(be->ctx, bytes) : NULL};
    SamplerBuffers buf = {mem[0], mem[1], mem[1], mem[2]};
    int rc = SD_OK;
    for (int i = 0; i < c->steps && rc == SD_OK; i++) {
        rc = model(user, ts[i], n, buf.out, x);
        if (rc == SD_OK) sampler_step(be, s, c, ts, i, n, per, x, &buf);
    }
    for (int k = 0; k < 3; k++)
        if (mem[k]) be->release(be->ctx, mem[k]);
    free(ts);
    return rc;
}
