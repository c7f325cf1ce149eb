/* Segmentation training configurations by name (see seg_config.h). */
#include "seg_config.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/err.h"

typedef enum { F_INT, F_LONG, F_U64, F_DOUBLE, F_ENUM } FieldKind;

typedef struct {
    const char *key;
    FieldKind kind;
    size_t offset;
    const char *const *names; /* F_ENUM: value i is names[i] */
} Field;

static const char *const loss_names[] = {"bce", "bce+dice", NULL};
static const char *const optim_names[] = {"adam", "adamw", NULL};
static const char *const schedule_names[] = {"plateau", "cosine", NULL};
static const char *const augment_names[] = {"seed", "improved", "none", NULL};

#define AT(f) offsetof(SegTrainConfig, f)
static const Field fields[SEG_CONFIG_FIELDS] = {
    {"width", F_INT, AT(width), NULL},       {"batch", F_INT, AT(batch), NULL},
    {"accum", F_INT, AT(accum), NULL},       {"epochs", F_INT, AT(epochs), NULL},
    {"tile_h", F_INT, AT(tile_h), NULL},     {"tile_w", F_INT, AT(tile_w), NULL},
    {"loss", F_ENUM, AT(loss), loss_names},  {"optim", F_ENUM, AT(optim), optim_names},
    {"schedule", F_ENUM, AT(schedule), schedule_names},
    {"augment", F_ENUM, AT(augment), augment_names},
    {"lr", F_DOUBLE, AT(lr), NULL},          {"wd", F_DOUBLE, AT(wd), NULL},
    {"adam_eps", F_DOUBLE, AT(adam_eps), NULL},
    {"bn_momentum", F_DOUBLE, AT(bn_momentum), NULL},
    {"ema", F_DOUBLE, AT(ema), NULL},        {"warmup", F_LONG, AT(warmup), NULL},
    {"steps_per_epoch", F_LONG, AT(steps_per_epoch), NULL},
    {"seed", F_U64, AT(seed), NULL},
};

const char *seg_config_key(int i) { return i >= 0 && i < SEG_CONFIG_FIELDS ? fields[i].key : NULL; }

SegTrainConfig seg_recipe(int improved)
{
    SegTrainConfig c = {.width = 64, .batch = 8, .accum = 1, .epochs = 50, .lr = 1e-3, .seed = 1};
    if (!improved) {
        c.loss = LOSS_BCE, c.optim = OPTIM_ADAM, c.schedule = SCHEDULE_PLATEAU, c.augment = AUGMENT_SEED;
        c.wd = 1e-3, c.adam_eps = 1e-7, c.bn_momentum = 0.01, c.ema = 0, c.warmup = 0;
    } else {
        c.loss = LOSS_BCE_DICE, c.optim = OPTIM_ADAMW, c.schedule = SCHEDULE_COSINE, c.augment = AUGMENT_IMPROVED;
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

static const Field *field(const char *key)
{
    for (int i = 0; i < SEG_CONFIG_FIELDS; i++)
        if (!strcmp(fields[i].key, key)) return &fields[i];
    sd_fail("unknown training setting '%s'", key);
    return NULL;
}

static int parse_enum(const Field *f, const char *text, int *v)
{
    for (int i = 0; f->names[i]; i++)
        if (!strcmp(f->names[i], text)) {
            *v = i;
            return SD_OK;
        }
    char all[128] = "";
    for (int i = 0; f->names[i]; i++)
        snprintf(all + strlen(all), sizeof all - strlen(all), "%s%s", i ? ", " : "", f->names[i]);
    return sd_fail("bad %s '%s' (one of: %s)", f->key, text, all);
}

int seg_config_set(SegTrainConfig *c, const char *key, const char *text)
{
    const Field *f = field(key);
    if (!f) return SD_ERR;
    char *at = (char *)c + f->offset, *end = NULL;
    errno = 0;
    switch (f->kind) {
    case F_ENUM: return parse_enum(f, text, (int *)at);
    case F_INT: {
        long v = strtol(text, &end, 10);
        if (v < -1000000000L || v > 1000000000L) errno = ERANGE;
        *(int *)at = (int)v;
        break;
    }
    case F_LONG: *(long *)at = strtol(text, &end, 10); break;
    case F_U64: *(uint64_t *)at = strtoull(text, &end, 10); break;
    case F_DOUBLE: *(double *)at = strtod(text, &end); break;
    }
    if (errno || end == text || *end || (f->kind == F_U64 && strchr(text, '-')))
        return sd_fail("bad value '%s' for %s", text, key);
    return SD_OK;
}

int seg_config_get(const SegTrainConfig *c, const char *key, char *buf, size_t n)
{
    const Field *f = field(key);
    if (!f) return SD_ERR;
    const char *at = (const char *)c + f->offset;
    switch (f->kind) {
    case F_ENUM: snprintf(buf, n, "%s", f->names[*(const int *)at]); break;
    case F_INT: snprintf(buf, n, "%d", *(const int *)at); break;
    case F_LONG: snprintf(buf, n, "%ld", *(const long *)at); break;
    case F_U64: snprintf(buf, n, "%" PRIu64, *(const uint64_t *)at); break;
    case F_DOUBLE: snprintf(buf, n, "%.17g", *(const double *)at); break;
    }
    return SD_OK;
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

void seg_config_meta(const SegTrainConfig *c, SegConfigMeta *m)
{
    for (int i = 0; i < SEG_CONFIG_FIELDS; i++) {
        snprintf(m->key[i], sizeof m->key[i], "cfg.%s", fields[i].key);
        seg_config_get(c, fields[i].key, m->value[i], sizeof m->value[i]);
        m->meta[i] = (StMeta){m->key[i], m->value[i]};
    }
}

int seg_config_read(const StFile *f, SegTrainConfig *c)
{
    for (int i = 0; i < SEG_CONFIG_FIELDS; i++) {
        char key[32], why[256];
        snprintf(key, sizeof key, "cfg.%s", fields[i].key);
        const char *v = st_meta(f, key);
        if (!v) return sd_fail("%s: not a training checkpoint (no %s in its metadata)", f->path, key);
        if (!seg_config_set(c, fields[i].key, v)) continue;
        snprintf(why, sizeof why, "%s", sd_last_error());
        return sd_fail("%s: %s", f->path, why);
    }
    return SD_OK;
}
