/* Configurations by name (see config_fields.h). */
#include "config_fields.h"

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/err.h"

static const CfgField *find(const CfgTable *t, const char *key)
{
    for (int i = 0; i < t->count; i++)
        if (!strcmp(t->field[i].key, key)) return &t->field[i];
    sd_fail("unknown training setting '%s'", key);
    return NULL;
}

static int parse_enum(const CfgField *f, const char *text, int *v)
{
    for (int i = 0; f->names[i]; i++)
        if (!strcmp(f->names[i], text)) {
            *v = i;
            return SD_OK;
        }
    char all[160] = "";
    for (int i = 0; f->names[i]; i++)
        snprintf(all + strlen(all), sizeof all - strlen(all), "%s%s", i ? ", " : "", f->names[i]);
    return sd_fail("bad %s '%s' (one of: %s)", f->key, text, all);
}

int cfg_set(const CfgTable *t, void *c, const char *key, const char *text)
{
    const CfgField *f = find(t, key);
    if (!f) return SD_ERR;
    char *at = (char *)c + f->offset, *end = NULL;
    errno = 0;
    switch (f->kind) {
    case CFG_ENUM: return parse_enum(f, text, (int *)at);
    case CFG_INT: {
        long v = strtol(text, &end, 10);
        if (v < -1000000000L || v > 1000000000L) errno = ERANGE;
        *(int *)at = (int)v;
        break;
    }
    case CFG_LONG: *(long *)at = strtol(text, &end, 10); break;
    case CFG_U64: *(uint64_t *)at = strtoull(text, &end, 10); break;
    case CFG_DOUBLE: *(double *)at = strtod(text, &end); break;
    }
    if (errno || end == text || *end || (f->kind == CFG_U64 && strchr(text, '-')))
        return sd_fail("bad value '%s' for %s", text, key);
    return SD_OK;
}

int cfg_get(const CfgTable *t, const void *c, const char *key, char *buf, size_t n)
{
    const CfgField *f = find(t, key);
    if (!f) return SD_ERR;
    const char *at = (const char *)c + f->offset;
    switch (f->kind) {
    case CFG_ENUM: snprintf(buf, n, "%s", f->names[*(const int *)at]); break;
    case CFG_INT: snprintf(buf, n, "%d", *(const int *)at); break;
    case CFG_LONG: snprintf(buf, n, "%ld", *(const long *)at); break;
    case CFG_U64: snprintf(buf, n, "%" PRIu64, *(const uint64_t *)at); break;
    case CFG_DOUBLE: snprintf(buf, n, "%.17g", *(const double *)at); break;
    }
    return SD_OK;
}

int cfg_index(const CfgTable *t, const char *key)
{
    for (int i = 0; i < t->count; i++)
        if (!strcmp(t->field[i].key, key)) return i;
    sd_die(4, "internal error: no training setting '%s'", key);
}

int cfg_apply(const CfgTable *t, void *c, const char *const *given)
{
    for (int i = 0; i < t->count; i++)
        if (given[i] && cfg_set(t, c, t->field[i].key, given[i])) return SD_ERR;
    return SD_OK;
}

int cfg_keep_saved(const CfgTable *t, void *c, const char *const *given, const char *growable)
{
    for (int i = 0; i < t->count; i++) {
        const char *key = t->field[i].key;
        char was[64], now[64];
        if (!given[i]) continue;
        cfg_get(t, c, key, was, sizeof was);
        /* set, then compare as text: "1e-3" and "0.001" agree */
        if (cfg_set(t, c, key, given[i])) return SD_ERR;
        cfg_get(t, c, key, now, sizeof now);
        if (strcmp(key, growable) && strcmp(was, now))
            return sd_fail("--%s %s differs from this run's %s (a resumed run keeps its settings)", key, given[i],
                           was);
    }
    return SD_OK;
}

void cfg_meta(const CfgTable *t, const void *c, CfgMeta *m)
{
    m->count = t->count;
    for (int i = 0; i < t->count; i++) {
        snprintf(m->key[i], sizeof m->key[i], "cfg.%s", t->field[i].key);
        cfg_get(t, c, t->field[i].key, m->value[i], sizeof m->value[i]);
        m->meta[i] = (StMeta){m->key[i], m->value[i]};
    }
}

int cfg_read(const CfgTable *t, const StFile *f, void *c)
{
    for (int i = 0; i < t->count; i++) {
        char key[48], why[256];
        snprintf(key, sizeof key, "cfg.%s", t->field[i].key);
        const char *v = st_meta(f, key);
        if (!v) return sd_fail("%s: not a training checkpoint of this kind (no %s in its metadata)", f->path, key);
        if (!cfg_set(t, c, t->field[i].key, v)) continue;
        snprintf(why, sizeof why, "%s", sd_last_error());
        return sd_fail("%s: %s", f->path, why);
    }
    return SD_OK;
}
