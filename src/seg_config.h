/* The configuration of a segmentation training run: every field that defines its
 * trajectory, addressed by name. The names are train-seg's option names and the
 * "cfg.<name>" keys of a checkpoint's __metadata__, and values travel as text that
 * round-trips exactly (doubles as %.17g), so a resumed run continues with exactly the
 * settings it was started with. */
#ifndef SDSEG_SEG_CONFIG_H
#define SDSEG_SEG_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "../core/dataset.h"
#include "../core/safetensors.h"

typedef enum { LOSS_BCE, LOSS_BCE_DICE } SegLoss;
typedef enum { OPTIM_ADAM, OPTIM_ADAMW } SegOptim;
typedef enum { SCHEDULE_PLATEAU, SCHEDULE_COSINE } SegSchedule;
typedef enum { AUGMENT_SEED, AUGMENT_IMPROVED, AUGMENT_NONE } SegAugment;

typedef struct {
    int width, batch, accum, epochs, tile_h, tile_w;
    int loss, optim, schedule, augment;        /* the enums above */
    double lr, wd, adam_eps, bn_momentum, ema; /* ema: decay, 0 = off */
    long warmup, steps_per_epoch;
    uint64_t seed;
} SegTrainConfig;

/* The seed recipe (improved = 0) or the improved one; tile sizes and steps_per_epoch are
 * left 0 for the data to fill; warmup -1 means one epoch (resolved with the data). */
SegTrainConfig seg_recipe(int improved);
Augment seg_augment(const SegTrainConfig *c);

#define SEG_CONFIG_FIELDS 18
/* Name of field i (0 <= i < SEG_CONFIG_FIELDS), else NULL. */
const char *seg_config_key(int i);
/* Set field `key` from text; SD_ERR with a message for an unknown key or a bad value. */
int seg_config_set(SegTrainConfig *c, const char *key, const char *text);
/* Field `key` as text (SD_ERR for an unknown key). */
int seg_config_get(const SegTrainConfig *c, const char *key, char *buf, size_t n);
/* Ranges and combinations, once all fields are set. */
int seg_config_check(const SegTrainConfig *c);

/* Metadata entries "cfg.<key>" = value, for a checkpoint. */
typedef struct {
    StMeta meta[SEG_CONFIG_FIELDS];
    char key[SEG_CONFIG_FIELDS][32], value[SEG_CONFIG_FIELDS][64];
} SegConfigMeta;
void seg_config_meta(const SegTrainConfig *c, SegConfigMeta *m);
/* Read every field from a checkpoint's metadata. */
int seg_config_read(const StFile *f, SegTrainConfig *c);

#endif
