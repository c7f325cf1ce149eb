/* The optimizer update that the three trainers share (train-seg, train-vae, train-ddpm):
 * one step of SGD or Adam over a parameter set, group by group (weight decay on
 * PARAM_DECAY only: convolution and linear weights and biases, never normalization
 * affines), then the EMA of the weights with the warm-up ramp of timm's ModelEma,
 * d = min(decay, (1 + s) / (10 + s)) after step s. */
#ifndef SDSEG_OPTIM_STEP_H
#define SDSEG_OPTIM_STEP_H

#include "../core/params.h"

/* The optimizer of train-vae and train-ddpm (cfg.optim): torch's SGD with momentum (the
 * seed's) or AdamW. Names (CFG_ENUM, NULL-terminated): "sgd", "adamw". */
typedef enum { GEN_OPTIM_SGD, GEN_OPTIM_ADAMW } GenOptim;
extern const char *const gen_optim_names[];

/* What one step does; float as the backend takes it. */
typedef struct {
    int adam;       /* 0: torch SGD (momentum, no dampening, not Nesterov); 1: Adam, betas 0.9 / 0.999 */
    int decoupled;  /* Adam: decoupled weight decay (AdamW); 0: coupled L2 added to the gradient */
    float momentum; /* SGD */
    float eps;      /* Adam */
    float wd;       /* weight decay of group PARAM_DECAY */
} OptimRule;

/* A GenOptim with its settings: SGD with coupled wd, or AdamW (eps 1e-8, decoupled wd). */
OptimRule optim_rule_gen(int optim, double momentum, double wd);
/* Optimizer state per parameter (params_alloc_optimizer): Adam's m and v, SGD's momentum. */
int optim_state_slots(const OptimRule *r);
/* lr > 0, momentum, wd and the EMA decay in [0, 1); SD_ERR naming the bad one. */
int optim_check(double lr, double momentum, double wd, double ema);

/* Step *step + 1 on p->grad at lr, counted in *step; then, when ema_w is not NULL, the
 * EMA of the weights (decay `ema`, ramped). */
void optim_update(const Backend *be, const Params *p, const OptimRule *r, double lr, long *step, real *ema_w,
                  double ema);
/* The EMA of n values after step `step` (1-based): ema = d ema + (1 - d) w, d ramped. */
void ema_step(const Backend *be, size_t n, real *ema, const real *w, double decay, long step);

#endif
