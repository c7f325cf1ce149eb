/* Diffusion math: noise schedules, the forward process, prediction-type conversions and
 * the samplers (DDPM ancestral, DDIM, DPM-Solver++(2M)), independent of any network.
 *
 * Conventions (DDPM, Ho et al. 2020): training timesteps t = 0..T-1, abar_t the cumulative
 * product of (1 - beta), x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps. abar of a timestep
 * below 0 is 1 (the data itself: diffusers' set_alpha_to_one / final sigma 0).
 * Scalar coefficients are computed in double on the host; tensors are backend buffers
 * combined with the Backend table's scale/axpy/copy, and noise comes from its Philox
 * fill_normal, so a run gives the same numbers on every backend. No x0 clipping anywhere
 * (latents are not in [-1,1]; the seed's sampler did not clip either). */
#ifndef SDSEG_DIFFUSION_SCHED_H
#define SDSEG_DIFFUSION_SCHED_H

#include <stddef.h>
#include <stdint.h>

#include "../ops/ops.h"

typedef enum {
    SCHEDULE_SCALED_LINEAR, /* the seed (and SD 1.x): betas = linspace(sqrt(b0), sqrt(b1), T)^2, b0 0.00085, b1 0.012 */
    SCHEDULE_LINEAR,        /* Ho et al.: betas = linspace(b0, b1, T), b0 1e-4, b1 0.02 */
    SCHEDULE_COSINE         /* Nichol & Dhariwal: abar(s) = cos((s + 0.008)/1.008 * pi/2)^2, betas clipped at 0.999 */
} ScheduleKind;

/* What the network predicts. */
typedef enum {
    PREDICT_EPSILON, /* the noise eps (the seed) */
    PREDICT_V        /* v = sqrt(abar) eps - sqrt(1 - abar) x0 (Salimans & Ho 2022) */
} Prediction;

typedef struct {
    ScheduleKind kind;
    Prediction prediction;
    int steps;              /* T */
    double *betas;          /* [T] */
    double *alphas_cumprod; /* [T], abar */
} NoiseSchedule;

/* beta_start/beta_end <= 0 take the kind's defaults above (the cosine kind ignores them).
 * SD_ERR for T outside 2..100000 or betas outside (0, 1). Free with schedule_free. */
int schedule_create(NoiseSchedule *s, ScheduleKind kind, Prediction prediction, int steps, double beta_start,
                    double beta_end);
void schedule_free(NoiseSchedule *s);
/* abar_t, and 1 for t < 0. */
double schedule_abar(const NoiseSchedule *s, int t);
/* "scaled-linear", "linear", "cosine" / "epsilon", "v". SD_ERR on an unknown name. */
int schedule_kind_parse(const char *name, ScheduleKind *kind);
int prediction_parse(const char *name, Prediction *prediction);
const char *schedule_kind_name(ScheduleKind kind);
const char *prediction_name(Prediction prediction);

/* ---------------------------------------------------- forward process, conversions */

/* A linear combination c_x * x_t + c_out * model_output. */
typedef struct { double x, out; } LinCoef;

/* x0 and eps implied by a model output at timestep t (epsilon: x0 = (x_t - sqrt(1-abar) eps)
 * / sqrt(abar); v: x0 = sqrt(abar) x_t - sqrt(1-abar) v, eps = sqrt(1-abar) x_t + sqrt(abar) v). */
LinCoef schedule_x0_coef(const NoiseSchedule *s, int t);
LinCoef schedule_eps_coef(const NoiseSchedule *s, int t);

/* q(x_t | x0) for a batch of n samples of `per` values, sample b at timestep t[b]:
 * x_t = sqrt(abar) x0 + sqrt(1 - abar) eps. */
void diffusion_add_noise(const Backend *be, const NoiseSchedule *s, int n, size_t per, const int *t, real *x_t,
                         const real *x0, const real *eps);
/* The training target of the schedule's prediction type: eps, or v. */
void diffusion_target(const Backend *be, const NoiseSchedule *s, int n, size_t per, const int *t, real *target,
                      const real *x0, const real *eps);
/* x0 implied by the model output `out` at timestep t, numel values. */
void diffusion_predict_x0(const Backend *be, const NoiseSchedule *s, int t, size_t numel, real *x0, const real *x_t,
                          const real *out);

/* ------------------------------------------------------------------- samplers */

typedef enum {
    SAMPLER_DDPM,    /* ancestral, posterior variance beta~ clamped at 1e-20 (the seed's sampler) */
    SAMPLER_DDIM,    /* Song et al. 2021, eta configurable (0: deterministic) */
    SAMPLER_DPMPP_2M /* Lu et al. 2022, DPM-Solver++ multistep order 2, data prediction, midpoint
                        form, first-order first and last step, last step to sigma 0 (diffusers'
                        DPMSolverMultistepScheduler defaults with algorithm_type "dpmsolver++") */
} SamplerKind;

typedef struct {
    SamplerKind kind;
    int steps;     /* model evaluations */
    double eta;    /* DDIM only */
    /* Noise: Philox (seed, stream) for x_T and (seed, stream + 1 + i) for step i (0-based);
     * value j of batch sample b at index (first + b) * per + j. A sample's noise depends
     * only on its index in the whole run (first + b), not on how the run is batched. */
    uint64_t seed, stream, first;
} SamplerConfig;

/* "ddpm", "ddim", "dpm++2m". */
int sampler_kind_parse(const char *name, SamplerKind *kind);
const char *sampler_kind_name(SamplerKind kind);

/* The timesteps the model is evaluated at, descending, into t[c->steps]. DDPM and DDIM
 * use diffusers' "leading" spacing, t_i = (N-1-i) * (T/N) (the seed's 980, 960, ..., 0 for
 * N = 50); DPM-Solver++ its "linspace" spacing, round(linspace(0, T-1, N+1))[::-1][:-1].
 * SD_ERR for N outside 1..T or a grid with repeated timesteps. */
int sampler_timesteps(const SamplerConfig *c, int train_steps, int *t);

/* The network: out = its prediction (eps or v, per the schedule) for the n samples x at
 * timestep t; out and x are backend buffers of n * per values. Returns SD_OK or SD_ERR. */
typedef int (*DenoiseFn)(void *user, int t, int n, real *out, const real *x);

/* x_T ~ N(0, I) by the config's noise convention. */
void sampler_initial_noise(const Backend *be, const SamplerConfig *c, int n, size_t per, real *x);

/* Runs the sampler from x_T in x (n samples of per values, backend memory) down to x_0,
 * in place. SD_ERR (with the message) when the config is invalid or the model fails. */
int sampler_run(const Backend *be, const NoiseSchedule *s, const SamplerConfig *c, DenoiseFn model, void *user, int n,
                size_t per, real *x);

/* The single steps: x (numel values) updated in place from the arguments alone, no hidden
 * state (t_next < 0 means the data). `noise` is standard normal, read only when the step adds noise: DDPM for
 * t > 0 (the seed's rule), DDIM for eta > 0 and t_next >= 0. */
void ddpm_step(const Backend *be, const NoiseSchedule *s, int t, int t_next, size_t numel, real *x, const real *out,
               const real *noise);
void ddim_step(const Backend *be, const NoiseSchedule *s, int t, int t_next, double eta, size_t numel, real *x,
               const real *out, const real *noise);
/* From timestep t to t_next with the data predictions d0 at t and d1 at the previous
 * timestep t_prev (second order), or d1 == NULL (first order, t_prev ignored). The step
 * to the data (t_next < 0, sigma 0) is always first order: it returns d0. */
void dpmpp_2m_step(const Backend *be, const NoiseSchedule *s, int t_prev, int t, int t_next, size_t numel, real *x,
                   const real *d0, const real *d1);

#endif
