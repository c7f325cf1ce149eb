/* The __metadata__ of a training checkpoint, shared by train-seg and train-vae: the
 * configuration ("cfg.<key>"), the model identity, then numbers and text of the trainer's
 * state, written so they read back exactly (%.17g). */
#ifndef SDSEG_TRAIN_META_H
#define SDSEG_TRAIN_META_H

#include "../core/safetensors.h"
#include "../ops/schedule.h"
#include "config_fields.h"

#define TRAIN_META_EXTRA 12

typedef struct {
    CfgMeta cfg;
    StMeta meta[CFG_MAX_FIELDS + TRAIN_META_EXTRA];
    char text[TRAIN_META_EXTRA][160];
    int n, ntext;
} TrainMeta;

/* The configuration c of table t, then the "model" and "format" entries. */
void train_meta_init(TrainMeta *l, const CfgTable *t, const void *c, const char *model, const char *format);
void train_meta_text(TrainMeta *l, const char *key, const char *value);
void train_meta_number(TrainMeta *l, const char *key, double v);
/* "state.plateau": the scheduler state as comma-separated numbers. */
void train_meta_plateau(TrainMeta *l, const PlateauState *st);

/* Reading a checkpoint back; each fails naming the file and the key. */
int train_meta_read_number(const StFile *f, const char *key, double *v);
/* A non-negative whole number. */
int train_meta_read_count(const StFile *f, const char *key, long *v);
int train_meta_read_plateau(const StFile *f, PlateauState *st);

#endif
