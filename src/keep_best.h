/* What train-vae and train-ddpm share besides the step loop: the seed's epoch end and the
 * settings that shape it.
 *
 * Epoch end (the seed's recipe): keep the best validation loss (strictly lower wins);
 * after every revert_patience epochs without improvement go back to the best weights
 * (deep: a real copy; shallow: the seed's bug -- it copied a state_dict of references, so
 * nothing changed); stop after stop_patience such epochs. keep_best_update keeps the
 * counters and says what to do; the weight copies stay the trainer's. Last checkpoints
 * carry the counters as state.best_val, state.best_epoch, state.bad_epochs and
 * state.stopped.
 *
 * Gradient accumulation over accum micro-batches: each micro-batch's loss scaled by
 * 1/accum (mean) or by 1 (sum: the seed's defect). */
#ifndef SDSEG_KEEP_BEST_H
#define SDSEG_KEEP_BEST_H

#include "../core/safetensors.h"
#include "train_meta.h"

typedef enum { ACCUM_MEAN, ACCUM_SUM } AccumMode;
typedef enum { REVERT_DEEP, REVERT_SHALLOW } RevertMode;
/* Their names (CFG_ENUM, NULL-terminated): "mean", "sum"; "deep", "shallow". */
extern const char *const accum_mode_names[];
extern const char *const revert_mode_names[];

/* The gradient scale of each of accum micro-batches. */
double accum_scale(int accum_mode, int accum);

/* What the end of an epoch did (bit flags). */
#define EPOCH_BEST 1     /* a new best validation loss: copy the weights, save best.safetensors */
#define EPOCH_REVERTED 2 /* the weights (and the EMA) go back to the best ones */
#define EPOCH_STOP 4     /* early stop: no more epochs */

typedef struct {
    double best_val;   /* +inf before the first validation */
    long best_epoch;   /* the epoch of best_val (1-based) */
    long bad_epochs;   /* epochs since the best one */
    int stopped;       /* early stop reached */
} KeepBest;

/* Before the first epoch. */
void keep_best_init(KeepBest *k);

typedef struct {
    int revert, revert_patience, stop_patience; /* RevertMode; epochs, revert_patience 0 = never */
} KeepBestPolicy;

/* After epoch `epoch`'s validation: the EPOCH_* flags. EPOCH_REVERTED only with revert
 * deep: shallow leaves the weights as they are. */
int keep_best_update(KeepBest *k, const KeepBestPolicy *p, long epoch, double val_loss);

/* The state.* entries above, into a last checkpoint's metadata / out of it. */
void keep_best_meta(TrainMeta *l, const KeepBest *k);
int keep_best_read(const StFile *f, KeepBest *k);

#endif
