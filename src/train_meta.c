/* Training checkpoint metadata (see train_meta.h). */
#include "train_meta.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/err.h"

void train_meta_text(TrainMeta *l, const char *key, const char *value)
{
    snprintf(l->text[l->ntext], sizeof l->text[0], "%s", value);
    l->meta[l->n++] = (StMeta){key, l->text[l->ntext++]};
}

void train_meta_number(TrainMeta *l, const char *key, double v)
{
    char s[40];
    snprintf(s, sizeof s, "%.17g", v);
    train_meta_text(l, key, s);
}

void train_meta_init(TrainMeta *l, const CfgTable *t, const void *c, const char *model, const char *format)
{
    cfg_meta(t, c, &l->cfg);
    memcpy(l->meta, l->cfg.meta, l->cfg.count * sizeof *l->meta);
    l->n = l->cfg.count, l->ntext = 0;
    train_meta_text(l, "model", model);
    train_meta_text(l, "format", format);
}

void train_meta_plateau(TrainMeta *l, const PlateauState *st)
{
    double v[PLATEAU_STATE_LEN];
    plateau_state_pack(st, v);
    char packed[160] = "";
    for (int i = 0; i < PLATEAU_STATE_LEN; i++)
        snprintf(packed + strlen(packed), sizeof packed - strlen(packed), "%s%.17g", i ? "," : "", v[i]);
    train_meta_text(l, "state.plateau", packed);
}

int train_meta_read_number(const StFile *f, const char *key, double *v)
{
    const char *s = st_meta(f, key);
    char *end = NULL;
    if (s) *v = strtod(s, &end);
    return s && end != s && !*end ? SD_OK : sd_fail("%s: missing or bad %s in its metadata", f->path, key);
}

int train_meta_read_count(const StFile *f, const char *key, long *v)
{
    double d = -1;
    if (train_meta_read_number(f, key, &d)) return SD_ERR;
    if (!(d >= 0 && d <= 1e15 && d == floor(d))) return sd_fail("%s: missing or bad %s in its metadata", f->path, key);
    *v = (long)d;
    return SD_OK;
}

int train_meta_read_plateau(const StFile *f, PlateauState *st)
{
    const char *s = st_meta(f, "state.plateau");
    double v[PLATEAU_STATE_LEN];
    for (int i = 0; i < PLATEAU_STATE_LEN; i++) {
        char *end = NULL;
        if (s) v[i] = strtod(s, &end);
        if (!s || end == s || *end != (i + 1 < PLATEAU_STATE_LEN ? ',' : 0))
            return sd_fail("%s: missing or bad state.plateau in its metadata", f->path);
        s = end + 1;
    }
    return plateau_state_unpack(st, v);
}
