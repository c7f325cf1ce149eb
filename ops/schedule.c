/* Learning-rate schedules (see schedule.h). */
#include "schedule.h"

#include <math.h>

#include "../core/err.h"

PlateauConfig plateau_config_default(void)
{
    PlateauConfig c = {.mode = PLATEAU_MIN, .factor = 0.1, .patience = 10, .threshold = 1e-4,
                       .threshold_mode = THRESHOLD_REL, .cooldown = 0, .min_lr = 0, .eps = 1e-8};
    return c;
}

static int plateau_config_check(const PlateauConfig *c)
{
    if (c->mode != PLATEAU_MIN && c->mode != PLATEAU_MAX) return sd_fail("plateau: unknown mode %d", (int)c->mode);
    if (c->threshold_mode != THRESHOLD_REL && c->threshold_mode != THRESHOLD_ABS)
        return sd_fail("plateau: unknown threshold mode %d", (int)c->threshold_mode);
    if (!(c->factor > 0 && c->factor < 1)) return sd_fail("plateau: factor must be in (0, 1) (got %g)", c->factor);
    if (c->patience < 0 || c->cooldown < 0) return sd_fail("plateau: patience and cooldown must not be negative");
    if (!(c->threshold >= 0) || !(c->min_lr >= 0) || !(c->eps >= 0))
        return sd_fail("plateau: threshold, min_lr and eps must be non-negative numbers");
    return SD_OK;
}

int plateau_init(PlateauState *st, const PlateauConfig *cfg, double lr)
{
    if (plateau_config_check(cfg)) return SD_ERR;
    if (!(lr > 0 && isfinite(lr))) return sd_fail("plateau: learning rate must be positive (got %g)", lr);
    PlateauState s = {.lr = lr, .best = cfg->mode == PLATEAU_MIN ? INFINITY : -INFINITY};
    *st = s;
    return SD_OK;
}

/* torch's is_better: `a` must beat `best` by the threshold. */
static int plateau_is_better(const PlateauConfig *c, double a, double best)
{
    int rel = c->threshold_mode == THRESHOLD_REL;
    if (c->mode == PLATEAU_MIN) return rel ? a < best * (1 - c->threshold) : a < best - c->threshold;
    return rel ? a > best * (1 + c->threshold) : a > best + c->threshold;
}

int plateau_step(PlateauState *st, const PlateauConfig *cfg, double metric)
{
    st->last_epoch++;
    if (plateau_is_better(cfg, metric, st->best)) {
        st->best = metric;
        st->num_bad_epochs = 0;
    } else {
        st->num_bad_epochs++;
    }
    if (st->cooldown_counter > 0) { /* bad epochs during cooldown are ignored */
        st->cooldown_counter--;
        st->num_bad_epochs = 0;
    }
    if (st->num_bad_epochs <= cfg->patience) return 0;
    st->cooldown_counter = cfg->cooldown;
    st->num_bad_epochs = 0;
    double reduced = fmax(st->lr * cfg->factor, cfg->min_lr);
    if (!(st->lr - reduced > cfg->eps)) return 0;
    st->lr = reduced;
    return 1;
}

void plateau_state_pack(const PlateauState *st, double *v)
{
    v[0] = st->lr;
    v[1] = st->best;
    v[2] = (double)st->num_bad_epochs;
    v[3] = (double)st->cooldown_counter;
    v[4] = (double)st->last_epoch;
}

static int is_count(double v) { return v >= 0 && v <= 9e15 && v == floor(v); }

int plateau_state_unpack(PlateauState *st, const double *v)
{
    if (!(v[0] > 0 && isfinite(v[0])) || isnan(v[1]) || !is_count(v[2]) || !is_count(v[3]) || !is_count(v[4]))
        return sd_fail("plateau: the saved scheduler state is invalid");
    PlateauState s = {.lr = v[0], .best = v[1], .num_bad_epochs = (long)v[2], .cooldown_counter = (long)v[3],
                      .last_epoch = (long)v[4]};
    *st = s;
    return SD_OK;
}

static int base_lr_check(const char *what, double lr)
{
    return lr > 0 && isfinite(lr) ? SD_OK : sd_fail("%s: base learning rate must be positive (got %g)", what, lr);
}

int cosine_check(const CosineSchedule *c)
{
    if (base_lr_check("cosine schedule", c->base_lr)) return SD_ERR;
    if (!(c->min_lr >= 0 && c->min_lr <= c->base_lr))
        return sd_fail("cosine schedule: min_lr must be in [0, base_lr] (got %g)", c->min_lr);
    if (c->warmup < 0 || c->total <= c->warmup)
        return sd_fail("cosine schedule: need 0 <= warmup < total (got warmup %ld, total %ld)", c->warmup, c->total);
    return SD_OK;
}

double cosine_lr(const CosineSchedule *c, long step)
{
    if (step < 0) step = 0;
    if (step < c->warmup) return c->base_lr * (double)(step + 1) / (double)c->warmup;
    const long span = c->total - c->warmup, t = step - c->warmup < span ? step - c->warmup : span;
    return c->min_lr + (c->base_lr - c->min_lr) * (1 + cos(M_PI * (double)t / (double)span)) / 2;
}

int steplr_check(const StepSchedule *s)
{
    if (base_lr_check("step schedule", s->base_lr)) return SD_ERR;
    if (!(s->gamma > 0 && s->gamma <= 1)) return sd_fail("step schedule: gamma must be in (0, 1] (got %g)", s->gamma);
    if (s->step_size <= 0) return sd_fail("step schedule: step_size must be positive (got %ld)", s->step_size);
    return SD_OK;
}

double steplr_lr(const StepSchedule *s, long step)
{
    if (step < 0) step = 0;
    return s->base_lr * pow(s->gamma, (double)(step / s->step_size));
}
