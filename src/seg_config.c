/* Segmentation training configurations by name (see seg_config.h). */
#include "seg_config.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../core/err.h"

static const char *const loss_names[] = {"bce", "bce+dice", NULL};
static const char *const optim_names[] = {"adam", "adamw", NULL};
static const char *const schedule_names[] = {"plateau", "cosine", NULL};
static const char *const augment_names[] = {"seed", "improved", "none", NULL};

#define AT(f) offsetof(SegTrainConfig, f)
static const CfgField fields[] = {
    {"width", CFG_INT, AT(width), NULL},       {"batch", CFG_INT, AT(batch), NULL},
    {"accum", CFG_INT, AT(accum), NULL},       {"epochs", CFG_INT, AT(epochs), NULL},
    {"tile_h", CFG_INT, AT(tile_h), NULL},     {"tile_w", CFG_INT, AT(tile_w), NULL},
    {"loss", CFG_ENUM, AT(loss), loss_names},  {"optim", CFG_ENUM, AT(optim), optim_names},
    {"schedule", CFG_ENUM, AT(schedule), schedule_names},
    {"augment", CFG_ENUM, AT(augment), augment_names},
    {"lr", CFG_DOUBLE, AT(lr), NULL},          {"wd", CFG_DOUBLE, AT(wd), NULL},
    {"adam_eps", CFG_DOUBLE, AT(adam_eps), NULL},
    {"bn_momentum", CFG_DOUBLE, AT(bn_momentum), NULL},
    {"ema", CFG_DOUBLE, AT(ema), NULL},        {"warmup", CFG_LONG, AT(warmup), NULL},
    {"steps_per_epoch", CFG_LONG, AT(steps_per_epoch), NULL},
    {"seed", CFG_U64, AT(seed), NULL},
};

const CfgTable *seg_train_fields(void)
{
    static const CfgTable table = {fields, sizeof fields / sizeof *fields};
    return &table;
}

SegTrainConfig seg_recipe(int improved)
{
    SegTrainConfig c = {.width = 64, .batch = 8, .accum = 1, .epochs = 50, .lr = 1e-3, .seed = 1};
    if (!improved) {
        c.loss = LOSS_BCE, c.optim = OPTIM_ADAM, c.schedule = SEG_SCHEDULE_PLATEAU, c.augment = AUGMENT_SEED;
        c.wd = 1e-3, c.adam_eps = 1e-7, c.bn_momentum = 0.01, c.ema = 0, c.warmup = 0;
    } else {
        c.loss = LOSS_BCE_DICE, c.optim = OPTIM_ADAMW, c.schedule = SEG_SCHEDULE_COSINE, c.augment = AUGMENT_IMPROVED;
        c.wd = 1e-2, c.adam_eps = 1e-8, c.bn_momentum = 0.1, c.ema = 0.999, c.warmup = -1;
    }
    return c;
}

Augment seg_augment(const SegTrainConfig *c)
{
    if (c->augment == AUGMENT_SEED) return augment_seed();
    Augment a = augment_none();
    if (c->augment == AUGMENT_IMPROVED) { /* exact symmetries, mild zoom, intensity jitter */
        a.flips = a.rot90 = 1;
        a.zoom = 0.1f;
        a.brightness = a.contrast = a.gamma = 0.1f;
        a.noise_std = 0.02f;
    }
    return a;
}

int seg_config_get(const SegTrainConfig *c, const char *key, char *buf, size_t n)
{
    return cfg_get(seg_train_fields(), c, key, buf, n);
}

int seg_config_check(const SegTrainConfig *c)
{
    if (c->width < 1 || c->width > 1024) return sd_fail("width must be in 1..1024 (got %d)", c->width);
    if (c->batch < 1 || c->accum < 1 || c->epochs < 1) return sd_fail("batch, accum and epochs must be at least 1");
    if (!(c->lr > 0 && isfinite(c->lr))) return sd_fail("lr must be positive (got %g)", c->lr);
    if (!(c->wd >= 0 && c->wd < 1)) return sd_fail("wd must be in [0, 1) (got %g)", c->wd);
    if (!(c->ema >= 0 && c->ema < 1)) return sd_fail("ema decay must be in [0, 1) (got %g)", c->ema);
    if (!(c->adam_eps > 0) || !(c->bn_momentum >= 0 && c->bn_momentum <= 1))
        return sd_fail("adam_eps must be > 0 and bn_momentum in [0, 1]");
    if (c->warmup < 0) return sd_fail("warmup must not be negative (got %ld)", c->warmup);
    if (c->steps_per_epoch < 1) return sd_fail("an epoch must hold at least one step of batch x accum tiles");
    return SD_OK;
}
