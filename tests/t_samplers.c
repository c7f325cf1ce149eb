/* models/diffusion_sched: schedules, conversions, timestep grids and the samplers.
 *
 *   t_samplers            unit checks, then the known-answer test: data ~ N(mu, sd^2) per
 *                         dimension, whose exact noise predictor is closed-form
 *                           x_t ~ N(sqrt(a) mu, v), v = a sd^2 + 1 - a   (a = abar_t)
 *                           E[eps | x_t] = sqrt(1-a) (x_t - sqrt(a) mu) / v
 *                           E[x0 | x_t]  = mu + sqrt(a) sd^2 (x_t - sqrt(a) mu) / v,
 *                         sampled with every sampler from x_T drawn from the exact marginal
 *                         at the sampler's first timestep (so only the sampler errs).
 *   t_samplers dump DIR   trajectories of small runs with a fixed test model, their noise
 *                         and the forward-process outputs, for tests/sampler_oracle.py.
 *
 * Known answer. With the exact predictor every sampler step is affine in x plus
 * independent Gaussian noise, so its output law is Gaussian with a mean and variance this
 * file computes exactly (law_* below, written from the papers' posterior-mean form, not
 * from the code under test). The mean is exactly mu for every sampler (each step maps a
 * correct mean to a correct mean); the variance differs from sd^2 by the sampler's
 * discretization (printed as "var/sd^2 exact"; e.g. ~0.9 for DDIM-50, and the final
 * denoising step returns E[x0 | x_t] itself). With N = 20000 samples the sample mean has
 * standard error sqrt(var/N) and the sample variance var*sqrt(2/(N-1)) (Gaussian), i.e.
 * about 1% of var: a check passes within 4.5 standard errors, so the ~150 checks of the
 * table have a family-wise false-alarm probability near 1e-3 (and the seeds are fixed, so
 * a passing run always passes), while a coefficient wrong by a few percent fails. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../core/err.h"
#include "../core/npy.h"
#include "../core/philox.h"
#include "../cpu/cpu.h"
#include "../models/diffusion_sched.h"

#define SAMPLES 20000
#define DIMS 4
#define Z_LIMIT 4.5
#define SEED 20261124u

static const double DATA_MU[DIMS] = {0.5, -1.0, 2.0, 0.0};
static const double DATA_SD[DIMS] = {0.5, 1.5, 0.2, 1.0};

static int failures;

static void expect(int ok, const char *what)
{
    printf("%-78s %s\n", what, ok ? "ok" : "FAIL");
    if (!ok) failures++;
}

/* ------------------------------------------------------------- unit checks */

static int close_rel(double a, double b, double tol) { return fabs(a - b) <= tol * fmax(fabs(b), 1e-300); }

static void check_schedules(void)
{
    NoiseSchedule s;
    expect(!schedule_create(&s, SCHEDULE_SCALED_LINEAR, PREDICT_EPSILON, 1000, 0, 0) &&
               close_rel(s.betas[0], 0.00085, 1e-12) && close_rel(s.betas[999], 0.012, 1e-12) &&
               close_rel(s.alphas_cumprod[0], 1 - 0.00085, 1e-12),
           "scaled-linear endpoints 0.00085 .. 0.012");
    schedule_free(&s);
    expect(!schedule_create(&s, SCHEDULE_LINEAR, PREDICT_EPSILON, 1000, 0, 0) && close_rel(s.betas[0], 1e-4, 1e-12) &&
               close_rel(s.betas[999], 0.02, 1e-12),
           "linear endpoints 1e-4 .. 0.02");
    schedule_free(&s);
    /* cosine: beta_0 by hand from abar(s) = cos((s + 0.008)/1.008 pi/2)^2; the last beta is clipped */
    double c0 = cos(0.008 / 1.008 * M_PI / 2), c1 = cos((0.001 + 0.008) / 1.008 * M_PI / 2);
    expect(!schedule_create(&s, SCHEDULE_COSINE, PREDICT_V, 1000, 0, 0) &&
               close_rel(s.betas[0], 1 - c1 * c1 / (c0 * c0), 1e-12) && s.betas[999] == 0.999,
           "cosine beta_0 by hand, beta_999 clipped at 0.999");
    schedule_free(&s);
    expect(schedule_create(&s, SCHEDULE_LINEAR, PREDICT_EPSILON, 1, 0, 0) == SD_ERR, "one timestep is refused");
    expect(schedule_create(&s, SCHEDULE_LINEAR, PREDICT_EPSILON, 100, 1e-4, 1.5) == SD_ERR, "beta > 1 is refused");
    ScheduleKind k;
    SamplerKind sk;
    Prediction p;
    expect(schedule_kind_parse("cosine", &k) == SD_OK && k == SCHEDULE_COSINE &&
               schedule_kind_parse("quadratic", &k) == SD_ERR && prediction_parse("v", &p) == SD_OK &&
               p == PREDICT_V && sampler_kind_parse("dpm++2m", &sk) == SD_OK && sk == SAMPLER_DPMPP_2M &&
               sampler_kind_parse("euler", &sk) == SD_ERR,
           "name parsing");
}

static void check_grids(void)
{
    int t[1000];
    SamplerConfig c = {.kind = SAMPLER_DDPM, .steps = 50};
    int ok = sampler_timesteps(&c, 1000, t) == SD_OK;
    for (int i = 0; i < 50; i++) ok &= t[i] == 980 - 20 * i;
    expect(ok, "DDPM-50 grid is the seed's 980, 960, ..., 0");
    c.steps = 1000;
    ok = sampler_timesteps(&c, 1000, t) == SD_OK;
    for (int i = 0; i < 1000; i++) ok &= t[i] == 999 - i;
    expect(ok, "DDPM-1000 grid is 999, ..., 0");
    /* numpy: np.linspace(0, 999, 21).round()[::-1][:-1] */
    static const int dpm20[20] = {999, 949, 899, 849, 799, 749, 699, 649, 599, 549,
                                  500, 450, 400, 350, 300, 250, 200, 150, 100, 50};
    c = (SamplerConfig){.kind = SAMPLER_DPMPP_2M, .steps = 20};
    ok = sampler_timesteps(&c, 1000, t) == SD_OK;
    for (int i = 0; i < 20; i++) ok &= t[i] == dpm20[i];
    expect(ok, "DPM-Solver++-20 grid is numpy's linspace grid");
    c.steps = 1000;
    expect(sampler_timesteps(&c, 1000, t) == SD_ERR, "DPM-Solver++ grid with repeated timesteps is refused");
    c.steps = 0;
    expect(sampler_timesteps(&c, 1000, t) == SD_ERR, "zero steps are refused");
}

/* x0 and eps -> x_t and the v target -> back to x0 and eps through the conversions. */
static void check_conversions(const Backend *be)
{
    enum { N = 3, PER = 7 };
    static const int ts[N] = {0, 500, 999};
    real x0[N * PER], eps[N * PER], xt[N * PER], v[N * PER], back[N * PER];
    be->fill_normal(be->ctx, N * PER, x0, 0, 1, SEED, 1, 0);
    be->fill_normal(be->ctx, N * PER, eps, 0, 1, SEED, 2, 0);
    NoiseSchedule s;
    if (schedule_create(&s, SCHEDULE_COSINE, PREDICT_V, 1000, 0, 0)) sd_die(1, "%s", sd_last_error());
    diffusion_add_noise(be, &s, N, PER, ts, xt, x0, eps);
    diffusion_target(be, &s, N, PER, ts, v, x0, eps);
    double worst_xt = 0, worst_v = 0, worst_x0 = 0, worst_eps = 0;
    for (int b = 0; b < N; b++) {
        double a = s.alphas_cumprod[ts[b]];
        real *xb = xt + b * PER, *vb = v + b * PER;
        diffusion_predict_x0(be, &s, ts[b], PER, back + b * PER, xb, vb);
        LinCoef ec = schedule_eps_coef(&s, ts[b]);
        for (int j = b * PER; j < (b + 1) * PER; j++) {
            worst_xt = fmax(worst_xt, fabs(xt[j] - (sqrt(a) * x0[j] + sqrt(1 - a) * eps[j])));
            worst_v = fmax(worst_v, fabs(v[j] - (sqrt(a) * eps[j] - sqrt(1 - a) * x0[j])));
            worst_x0 = fmax(worst_x0, fabs(back[j] - x0[j]));
            worst_eps = fmax(worst_eps, fabs(ec.x * xt[j] + ec.out * v[j] - eps[j]));
        }
    }
    char what[160];
    snprintf(what, sizeof what, "v-prediction round trip: x_t %.1e, v %.1e, x0 %.1e, eps %.1e (limit 1e-5)", worst_xt,
             worst_v, worst_x0, worst_eps);
    expect(worst_xt < 1e-5 && worst_v < 1e-5 && worst_x0 < 1e-5 && worst_eps < 1e-5, what);
    s.prediction = PREDICT_EPSILON;
    diffusion_target(be, &s, N, PER, ts, v, x0, eps);
    expect(memcmp(v, eps, sizeof v) == 0, "epsilon target is eps");
    LinCoef xc = schedule_x0_coef(&s, 999);
    double a = s.alphas_cumprod[999];
    expect(close_rel(xc.x, 1 / sqrt(a), 1e-14) && close_rel(xc.out, -sqrt((1 - a) / a), 1e-12),
           "epsilon x0 coefficients");
    schedule_free(&s);
}

static int failing_model(void *user, int t, int n, real *out, const real *x)
{
    (void)user, (void)n, (void)out, (void)x;
    return sd_fail("test model fails at t = %d", t);
}

static void check_run_errors(const Backend *be)
{
    NoiseSchedule s;
    if (schedule_create(&s, SCHEDULE_LINEAR, PREDICT_EPSILON, 100, 0, 0)) sd_die(1, "%s", sd_last_error());
    real x[4] = {0};
    SamplerConfig c = {SAMPLER_DDIM, 10, -1, SEED, 0, 0};
    expect(sampler_run(be, &s, &c, failing_model, NULL, 2, 2, x) == SD_ERR, "DDIM with eta < 0 is refused");
    c.eta = 0;
    expect(sampler_run(be, &s, &c, failing_model, NULL, 0, 2, x) == SD_ERR, "an empty batch is refused");
    c.steps = 101;
    expect(sampler_run(be, &s, &c, failing_model, NULL, 2, 2, x) == SD_ERR, "more steps than timesteps are refused");
    c.steps = 10;
    expect(sampler_run(be, &s, &c, failing_model, NULL, 2, 2, x) == SD_ERR &&
               strcmp(sd_last_error(), "test model fails at t = 90") == 0,
           "a failing model stops the run with its message");
    schedule_free(&s);
}

/* -------------------------------------------------- exact law of a sampler */

/* x = coef * x_T + shift + N(0, noise), the noise independent of x_T. */
typedef struct { double coef, shift, noise; } Law;

static Law law_affine(Law l, double scale, double offset)
{
    return (Law){scale * l.coef, scale * l.shift + offset, scale * scale * l.noise};
}

/* a*l + b*m for laws without noise (DPM-Solver++ is deterministic). */
static Law law_mix(double a, Law l, double b, Law m)
{
    return (Law){a * l.coef + b * m.coef, a * l.shift + b * m.shift, 0};
}

/* E[x0 | x_t] = g0 x_t + h0, E[eps | x_t] = ge x_t + he for data N(mu, sd^2). */
typedef struct { double g0, h0, ge, he; } Posterior;

static Posterior posterior(double a, double mu, double sd)
{
    double v = a * sd * sd + 1 - a;
    Posterior p = {sqrt(a) * sd * sd / v, 0, sqrt(1 - a) / v, 0};
    p.h0 = mu - p.g0 * sqrt(a) * mu;
    p.he = -p.ge * sqrt(a) * mu;
    return p;
}

static double abar_or_one(const NoiseSchedule *s, int t) { return t < 0 ? 1 : s->alphas_cumprod[t]; }

/* DDPM (Ho et al. eq. 7): mean = sqrt(an) beta / (1-a) x0 + sqrt(alpha) (1-an)/(1-a) x_t,
 * variance beta~ = (1-an)/(1-a) beta clamped at 1e-20, added for t > 0. DDIM (Song et al.
 * eq. 12): sqrt(an) x0 + sqrt(1 - an - sigma^2) eps + sigma z, sigma = eta sqrt(beta~). */
static Law law_markov_step(const NoiseSchedule *s, const SamplerConfig *c, int t, int tn, double mu, double sd, Law x)
{
    double a = abar_or_one(s, t), an = abar_or_one(s, tn), beta = 1 - a / an;
    double tilde = (1 - an) / (1 - a) * beta;
    Posterior p = posterior(a, mu, sd);
    if (c->kind == SAMPLER_DDPM) {
        double k0 = sqrt(an) * beta / (1 - a), kx = sqrt(1 - beta) * (1 - an) / (1 - a);
        Law y = law_affine(x, k0 * p.g0 + kx, k0 * p.h0);
        if (t > 0) y.noise += fmax(tilde, 1e-20);
        return y;
    }
    double sigma2 = c->eta * c->eta * tilde, dir = sqrt(1 - an - sigma2);
    Law y = law_affine(x, sqrt(an) * p.g0 + dir * p.ge, sqrt(an) * p.h0 + dir * p.he);
    y.noise += sigma2;
    return y;
}

/* DPM-Solver++(2M) in diffusers' sigma form: sigma = sqrt((1-a)/a), alpha_t = 1/sqrt(sigma^2+1),
 * sigma_t = sigma alpha_t, lambda = log alpha_t - log sigma_t; the final sigma is 0. */
static void sigma_form(const NoiseSchedule *s, int t, double *alpha_t, double *sigma_t, double *lambda)
{
    double sigma = t < 0 ? 0 : sqrt((1 - s->alphas_cumprod[t]) / s->alphas_cumprod[t]);
    *alpha_t = 1 / sqrt(sigma * sigma + 1);
    *sigma_t = sigma * *alpha_t;
    *lambda = log(*alpha_t) - log(*sigma_t);
}

static Law law_dpm(const NoiseSchedule *s, const int *ts, int steps, double mu, double sd)
{
    Law x = {1, 0, 0}, prev = {0, 0, 0};
    for (int i = 0; i < steps; i++) {
        int t = ts[i], tn = i + 1 < steps ? ts[i + 1] : -1;
        Posterior p = posterior(s->alphas_cumprod[t], mu, sd);
        Law d0 = law_affine(x, p.g0, p.h0);
        if (tn < 0) return d0;
        double as, ss, ls, at, st, lt, ap, sp, lp;
        sigma_form(s, t, &as, &ss, &ls);
        sigma_form(s, tn, &at, &st, &lt);
        double h = lt - ls, phi = -at * (exp(-h) - 1);
        if (i == 0) {
            x = law_mix(st / ss, x, phi, d0);
        } else {
            sigma_form(s, ts[i - 1], &ap, &sp, &lp);
            double r0 = (ls - lp) / h;
            Law d1 = law_mix(1 / r0, d0, -1 / r0, prev);
            x = law_mix(1, law_mix(st / ss, x, phi, d0), 0.5 * phi, d1);
        }
        prev = d0;
    }
    return x;
}

/* Mean and variance of the sampler's output for one data dimension. */
static void exact_moments(const NoiseSchedule *s, const SamplerConfig *c, const int *ts, double mu, double sd,
                          double *mean, double *var)
{
    Law x = {1, 0, 0};
    if (c->kind == SAMPLER_DPMPP_2M) {
        x = law_dpm(s, ts, c->steps, mu, sd);
    } else {
        for (int i = 0; i < c->steps; i++)
            x = law_markov_step(s, c, ts[i], i + 1 < c->steps ? ts[i + 1] : -1, mu, sd, x);
    }
    double a = s->alphas_cumprod[ts[0]];
    *mean = x.coef * sqrt(a) * mu + x.shift;
    *var = x.coef * x.coef * (a * sd * sd + 1 - a) + x.noise;
}

/* ------------------------------------------------------- known-answer runs */

/* The exact predictor of data N(DATA_MU[d], DATA_SD[d]^2), as eps or v; affine in x per
 * dimension, out = slope[d] * x + offset[d]. */
static int gaussian_model(void *user, int t, int n, real *out, const real *x)
{
    const NoiseSchedule *s = user;
    double a = s->alphas_cumprod[t], slope[DIMS], offset[DIMS];
    for (int d = 0; d < DIMS; d++) {
        Posterior p = posterior(a, DATA_MU[d], DATA_SD[d]);
        slope[d] = s->prediction == PREDICT_V ? sqrt(a) * p.ge - sqrt(1 - a) * p.g0 : p.ge;
        offset[d] = s->prediction == PREDICT_V ? sqrt(a) * p.he - sqrt(1 - a) * p.h0 : p.he;
    }
    for (int b = 0; b < n; b++)
        for (int d = 0; d < DIMS; d++) out[b * DIMS + d] = (real)(slope[d] * x[b * DIMS + d] + offset[d]);
    return SD_OK;
}

typedef struct {
    SamplerKind kind;
    int steps;
    double eta;
    Prediction prediction;
} Row;

static const Row ROWS[] = {
    {SAMPLER_DDPM, 1000, 0, PREDICT_EPSILON},   {SAMPLER_DDPM, 50, 0, PREDICT_EPSILON},
    {SAMPLER_DDIM, 50, 0, PREDICT_EPSILON},     {SAMPLER_DDIM, 50, 0.5, PREDICT_V},
    {SAMPLER_DPMPP_2M, 20, 0, PREDICT_EPSILON}, {SAMPLER_DPMPP_2M, 20, 0, PREDICT_V},
};

/* x_T from the exact marginal at the first timestep, from the sampler's own x_T noise. */
static void marginal_start(const Backend *be, const NoiseSchedule *s, const SamplerConfig *c, int t0, real *x)
{
    sampler_initial_noise(be, c, SAMPLES, DIMS, x);
    double a = s->alphas_cumprod[t0];
    for (int b = 0; b < SAMPLES; b++)
        for (int d = 0; d < DIMS; d++) {
            double sd = sqrt(a * DATA_SD[d] * DATA_SD[d] + 1 - a);
            x[b * DIMS + d] = (real)(sqrt(a) * DATA_MU[d] + sd * x[b * DIMS + d]);
        }
}

/* Worst |z| of the sample means against mu and of the sample variances against the
 * sampler's exact variance; the exact var/sd^2 per dimension into ratio. Returns whether
 * the exact law's mean is mu, as it must be. */
static int row_statistics(const NoiseSchedule *s, const SamplerConfig *c, const int *ts, const real *x, double *z_mean,
                          double *z_var, double *ratio)
{
    int exact_mean_ok = 1;
    *z_mean = *z_var = 0;
    for (int d = 0; d < DIMS; d++) {
        double sum = 0, sum2 = 0;
        for (int b = 0; b < SAMPLES; b++) sum += x[b * DIMS + d];
        double mean = sum / SAMPLES;
        for (int b = 0; b < SAMPLES; b++) sum2 += (x[b * DIMS + d] - mean) * (x[b * DIMS + d] - mean);
        double var = sum2 / (SAMPLES - 1), ex_mean, ex_var;
        exact_moments(s, c, ts, DATA_MU[d], DATA_SD[d], &ex_mean, &ex_var);
        exact_mean_ok &= fabs(ex_mean - DATA_MU[d]) < 1e-9;
        *z_mean = fmax(*z_mean, fabs(mean - DATA_MU[d]) / sqrt(ex_var / SAMPLES));
        *z_var = fmax(*z_var, fabs(var - ex_var) / (ex_var * sqrt(2.0 / (SAMPLES - 1))));
        ratio[d] = ex_var / (DATA_SD[d] * DATA_SD[d]);
    }
    return exact_mean_ok;
}

static void run_row(const Backend *be, ScheduleKind kind, const Row *row, uint64_t stream, real *x)
{
    NoiseSchedule s;
    if (schedule_create(&s, kind, row->prediction, 1000, 0, 0)) sd_die(1, "%s", sd_last_error());
    SamplerConfig c = {row->kind, row->steps, row->eta, SEED, stream, 0};
    int ts[1000];
    if (sampler_timesteps(&c, s.steps, ts)) sd_die(1, "%s", sd_last_error());
    marginal_start(be, &s, &c, ts[0], x);
    if (sampler_run(be, &s, &c, gaussian_model, &s, SAMPLES, DIMS, x)) sd_die(1, "%s", sd_last_error());
    double z_mean, z_var, ratio[DIMS];
    int ok = row_statistics(&s, &c, ts, x, &z_mean, &z_var, ratio) && z_mean <= Z_LIMIT && z_var <= Z_LIMIT;
    printf("%-13s %-8s %5d %4.1f %-7s %8.2f %8.2f  %6.4f %6.4f %6.4f %6.4f  %s\n", schedule_kind_name(kind),
           sampler_kind_name(row->kind), row->steps, row->eta, prediction_name(row->prediction), z_mean, z_var,
           ratio[0], ratio[1], ratio[2], ratio[3], ok ? "ok" : "FAIL");
    if (!ok) failures++;
    schedule_free(&s);
}

static void known_answer(const Backend *be)
{
    printf("known answer: %d samples of N(mu, sd^2), (mu, sd) = (%g, %g) (%g, %g) (%g, %g) (%g, %g); "
           "|z| = error / standard error, limit %.1f\n",
           SAMPLES, DATA_MU[0], DATA_SD[0], DATA_MU[1], DATA_SD[1], DATA_MU[2], DATA_SD[2], DATA_MU[3], DATA_SD[3],
           Z_LIMIT);
    printf("%-13s %-8s %5s %4s %-7s %8s %8s  %-27s\n", "schedule", "sampler", "steps", "eta", "pred", "|z|mean",
           "|z|var", "exact var/sd^2 per dim");
    real *x = malloc(sizeof(real) * SAMPLES * DIMS);
    if (!x) sd_die(3, "out of memory");
    uint64_t stream = 0;
    for (ScheduleKind kind = SCHEDULE_SCALED_LINEAR; kind <= SCHEDULE_COSINE; kind++)
        for (size_t r = 0; r < sizeof ROWS / sizeof *ROWS; r++, stream += 1001) run_row(be, kind, &ROWS[r], stream, x);
    free(x);
}

/* ------------------------------------------------------------- oracle dump */

enum { DUMP_N = 3, DUMP_PER = 5 };

typedef struct {
    int evals;
    real *traj; /* [steps + 1][DUMP_N * DUMP_PER] */
} Recorder;

/* The fixed test model of the oracle: out = 0.1 x + 0.05 sin(t). */
static int recording_model(void *user, int t, int n, real *out, const real *x)
{
    Recorder *r = user;
    size_t numel = (size_t)n * DUMP_PER;
    memcpy(r->traj + r->evals++ * numel, x, numel * sizeof(real));
    for (size_t j = 0; j < numel; j++) out[j] = (real)(0.1 * x[j] + 0.05 * sin((double)t));
    return SD_OK;
}

static void save(const char *dir, const char *name, const real *data, int ndim, const long *shape)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (npy_save(path, data, sizeof(real) == sizeof(double), ndim, shape)) sd_die(1, "%s", sd_last_error());
}

/* The noise the sampler draws by its documented convention: row 0 is x_T, row i + 1 step i. */
static void documented_noise(const SamplerConfig *c, real *noise)
{
    size_t numel = DUMP_N * DUMP_PER;
    for (int i = 0; i <= c->steps; i++)
        for (size_t j = 0; j < numel; j++)
            noise[i * numel + j] = (real)philox_normal(c->seed, c->stream + i, c->first * DUMP_PER + j);
}

static void dump_case(const Backend *be, const char *root, int index, ScheduleKind kind, const Row *row)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/case%02d", root, index);
    mkdir(dir, 0777);
    NoiseSchedule s;
    if (schedule_create(&s, kind, row->prediction, 1000, 0, 0)) sd_die(1, "%s", sd_last_error());
    SamplerConfig c = {row->kind, row->steps, row->eta, SEED + index, 7, 3};
    size_t numel = DUMP_N * DUMP_PER;
    Recorder r = {0, malloc(sizeof(real) * numel * (row->steps + 1))};
    real *noise = malloc(sizeof(real) * numel * (row->steps + 1)), x[DUMP_N * DUMP_PER];
    if (!r.traj || !noise) sd_die(3, "out of memory");
    sampler_initial_noise(be, &c, DUMP_N, DUMP_PER, x);
    if (sampler_run(be, &s, &c, recording_model, &r, DUMP_N, DUMP_PER, x)) sd_die(1, "%s", sd_last_error());
    memcpy(r.traj + r.evals * numel, x, sizeof x);
    documented_noise(&c, noise);
    long shape[3] = {row->steps + 1, DUMP_N, DUMP_PER};
    save(dir, "traj.npy", r.traj, 3, shape);
    save(dir, "noise.npy", noise, 3, shape);
    char meta[600];
    snprintf(meta, sizeof meta, "%s/meta.txt", dir);
    FILE *f = fopen(meta, "w");
    if (!f) sd_die(1, "cannot write %s", meta);
    fprintf(f, "schedule %s\nprediction %s\nsampler %s\nsteps %d\neta %.17g\ntrain_steps %d\n",
            schedule_kind_name(kind), prediction_name(row->prediction), sampler_kind_name(row->kind), row->steps,
            row->eta, s.steps);
    fclose(f);
    free(r.traj);
    free(noise);
    schedule_free(&s);
}

/* alphas_cumprod of each schedule, and add_noise / v target / x0 from v, for the oracle. */
static void dump_forward(const Backend *be, const char *root)
{
    enum { N = 4, PER = 6 };
    static const int ts[N] = {0, 1, 500, 999};
    real x0[N * PER], eps[N * PER], out[3][N * PER], abar[1000];
    be->fill_normal(be->ctx, N * PER, x0, 0, 1, SEED, 11, 0);
    be->fill_normal(be->ctx, N * PER, eps, 0, 1, SEED, 12, 0);
    char dir[512];
    snprintf(dir, sizeof dir, "%s/forward", root);
    mkdir(dir, 0777);
    long shape[2] = {N, PER}, tshape[1] = {1000};
    save(dir, "x0.npy", x0, 2, shape);
    save(dir, "eps.npy", eps, 2, shape);
    for (ScheduleKind kind = SCHEDULE_SCALED_LINEAR; kind <= SCHEDULE_COSINE; kind++) {
        NoiseSchedule s;
        if (schedule_create(&s, kind, PREDICT_V, 1000, 0, 0)) sd_die(1, "%s", sd_last_error());
        for (int t = 0; t < 1000; t++) abar[t] = (real)s.alphas_cumprod[t];
        diffusion_add_noise(be, &s, N, PER, ts, out[0], x0, eps);
        diffusion_target(be, &s, N, PER, ts, out[1], x0, eps);
        for (int b = 0; b < N; b++)
            diffusion_predict_x0(be, &s, ts[b], PER, out[2] + b * PER, out[0] + b * PER, out[1] + b * PER);
        static const char *const files[3] = {"xt", "v", "x0pred"};
        char name[64];
        for (int k = 0; k < 3; k++) {
            snprintf(name, sizeof name, "%s_%s.npy", schedule_kind_name(kind), files[k]);
            save(dir, name, out[k], 2, shape);
        }
        snprintf(name, sizeof name, "%s_abar.npy", schedule_kind_name(kind));
        save(dir, name, abar, 1, tshape);
        schedule_free(&s);
    }
}

/* Every sampler on every schedule, plus odd step counts. */
static const Row DUMP_ROWS[] = {
    {SAMPLER_DDPM, 1000, 0, PREDICT_EPSILON},   {SAMPLER_DDPM, 50, 0, PREDICT_EPSILON},
    {SAMPLER_DDPM, 37, 0, PREDICT_V},           {SAMPLER_DDIM, 50, 0, PREDICT_EPSILON},
    {SAMPLER_DDIM, 50, 0.7, PREDICT_V},         {SAMPLER_DDIM, 13, 1.0, PREDICT_EPSILON},
    {SAMPLER_DPMPP_2M, 20, 0, PREDICT_EPSILON}, {SAMPLER_DPMPP_2M, 20, 0, PREDICT_V},
    {SAMPLER_DPMPP_2M, 7, 0, PREDICT_EPSILON},  {SAMPLER_DPMPP_2M, 1, 0, PREDICT_V},
};

static void dump_all(const Backend *be, const char *root)
{
    mkdir(root, 0777);
    int index = 0;
    for (ScheduleKind kind = SCHEDULE_SCALED_LINEAR; kind <= SCHEDULE_COSINE; kind++)
        for (size_t r = 0; r < sizeof DUMP_ROWS / sizeof *DUMP_ROWS; r++)
            dump_case(be, root, index++, kind, &DUMP_ROWS[r]);
    dump_forward(be, root);
    printf("dumped %d sampler cases and the forward process into %s\n", index, root);
}

int main(int argc, char **argv)
{
    Backend be = cpu_backend();
    if (argc == 3 && strcmp(argv[1], "dump") == 0) {
        dump_all(&be, argv[2]);
        cpu_ctx_destroy(be.ctx);
        return 0;
    }
    if (argc != 1) sd_die(2, "usage: t_samplers [dump DIR]");
    /* 80000-value steps are too small to gain from threads: on a loaded machine their
     * start-ups and spin-waits cost more than they save */
    omp_set_num_threads(1);
    check_schedules();
    check_grids();
    check_conversions(&be);
    check_run_errors(&be);
    known_answer(&be);
    cpu_ctx_destroy(be.ctx);
    printf("t_samplers: %s\n", failures ? "FAILED" : "all passed");
    return failures ? 1 : 0;
}
