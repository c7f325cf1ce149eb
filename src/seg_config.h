/* The configuration of a segmentation training run: every field that defines its
 * trajectory, addressed by name through config_fields.h, so a resumed run continues with exactly
 * the settings it was started with. */
#ifndef SDSEG_SEG_CONFIG_H
#define SDSEG_SEG_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "../core/dataset.h"
#include "config_fields.h"

typedef enum { LOSS_BCE, LOSS_BCE_DICE } SegLoss;
typedef enum { OPTIM_ADAM, OPTIM_ADAMW } SegOptim;
typedef enum { SEG_SCHEDULE_PLATEAU, SEG_SCHEDULE_COSINE } SegSchedule;
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

/* The fields by name (config_fields.h): option names and "cfg.<name>" checkpoint keys. */
const CfgTable *seg_train_fields(void);
/* Field `key` as text (SD_ERR for an unknown key). */
int seg_config_get(const SegTrainConfig *c, const char *key, char *buf, size_t n);
/* Ranges and combinations, once all fields are set. */
int seg_config_check(const SegTrainConfig *c);

#endif
