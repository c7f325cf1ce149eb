/* The trainers' optimizer step and EMA (see optim_step.h). */
#include "optim_step.h"

#include <math.h>

#include "../core/err.h"

#define ADAM_BETA1 0.9f
#define ADAM_BETA2 0.999f
#define ADAMW_EPS 1e-8f /* torch's AdamW default */

const char *const gen_optim_names[] = {"sgd", "adamw", NULL};

OptimRule optim_rule_gen(int optim, double momentum, double wd)
{
    int adamw = optim == GEN_OPTIM_ADAMW;
    return (OptimRule){.adam = adamw, .decoupled = adamw, .momentum = (float)momentum, .eps = ADAMW_EPS,
                       .wd = (float)wd};
}

int optim_state_slots(const OptimRule *r) { return r->adam ? 2 : 1; }

int optim_check(double lr, double momentum, double wd, double ema)
{
    if (!(lr > 0 && isfinite(lr))) return sd_fail("lr must be positive (got %g)", lr);
    if (!(momentum >= 0 && momentum < 1)) return sd_fail("momentum must be in [0, 1) (got %g)", momentum);
    if (!(wd >= 0 && wd < 1)) return sd_fail("wd must be in [0, 1) (got %g)", wd);
    if (!(ema >= 0 && ema < 1)) return sd_fail("ema decay must be in [0, 1) (got %g)", ema);
    return SD_OK;
}

/* The rule on each parameter group: both share the step count and lr, not the decay. */
static void groups_step(const Backend *be, const Params *p, const OptimRule *r, float lr, long step)
{
    for (int g = 0; g < PARAM_GROUPS; g++) {
        size_t at = p->group_begin[g], n = p->group_begin[g + 1] - at;
        float wd = g == PARAM_DECAY ? r->wd : 0;
        if (!n) continue;
        if (r->adam)
            be->adam_step(be->ctx, n, p->w + at, p->grad + at, p->m + at, p->v + at, lr, ADAM_BETA1, ADAM_BETA2, r->eps,
                          wd, r->decoupled, step);
        else
            be->sgd_step(be->ctx, n, p->w + at, p->grad + at, p->m + at, lr, r->momentum, 0, wd, 0, step);
    }
}

void ema_step(const Backend *be, size_t n, real *ema, const real *w, double decay, long step)
{
    float d = (float)fmin(decay, (1.0 + (double)step) / (10.0 + (double)step));
    be->ema_update(be->ctx, n, ema, w, d);
}

void optim_update(const Backend *be, const Params *p, const OptimRule *r, double lr, long *step, real *ema_w,
                  double ema)
{
    long s = *step + 1;
    groups_step(be, p, r, (float)lr, s);
    *step = s;
    if (ema_w) ema_step(be, p->list.numel, ema_w, p->w, ema, s);
}
