/* Training the segmentation U-Net: the optimizer step with gradient accumulation, the
 * learning-rate schedule, EMA weights, validation and the checkpoints that hold the whole
 * training state. `sdseg train-seg` (cmd_train_seg.c) drives it; tests call it directly.
 *
 * Recipes (train-seg --recipe):
 *   seed      BCE; Adam(lr 1e-3, eps 1e-7 as Keras) with the Keras L2 regularizer
 *             l2(wd = 0.001) on every convolution kernel and bias: Keras adds
 *             wd * sum(w^2) to the loss, whose gradient 2 wd w is Adam's coupled
 *             weight_decay = 2 wd (batch-norm scales and shifts are not regularized),
 *             and the reported losses include the penalty as Keras's do;
 *             ReduceLROnPlateau(factor 0.5, patience 3, min_lr 1e-6, min_delta 1e-4)
 *             on the validation loss (Keras's val_loss, penalty included); keep-best on
 *             it; batch norm with Keras's momentum 0.99 (0.01 here); the seed's Keras
 *             augmentation (augment_seed).
 *   improved  BCE + soft Dice (smooth 1); AdamW(lr 1e-3, wd 0.01 decoupled, convolutions
 *             only); cosine decay to 0 after a linear warmup (one epoch); EMA weights
 *             (decay 0.999, ramped as min(decay, (1+s)/(10+s)) over the first steps) used
 *             for validation and the best checkpoint; batch-norm momentum 0.1; flips,
 *             rot90, zoom 0.1 and intensity jitter (seg_augment).
 * Gradient accumulation over K micro-batches scales each micro-batch loss by 1/K, so the
 * step sees the mean gradient of the K*batch tiles. */
#ifndef SDSEG_SEG_TRAINER_H
#define SDSEG_SEG_TRAINER_H

#include <stdint.h>

#include "../core/dataset.h"
#include "../core/safetensors.h"
#include "../models/seg_unet.h"
#include "../ops/schedule.h"
#include "seg_config.h"

/* A second training set (train-seg --extra-data), recorded in both checkpoints as
 * data.extra (its folder, as given; informational), data.extra_tiles and
 * data.extra_checksum (of its train.tiles file, core/tiles.h), so that a resumed run can
 * refuse other data. tiles == 0: none (also what a checkpoint without these keys holds). */
typedef struct {
    char dir[160];
    long tiles;
    uint64_t checksum;
} SegExtraData;

typedef struct {
    SegTrainConfig cfg;
    SegExtraData extra; /* set by the caller after seg_trainer_create */
    const Backend *be;
    SegUnet *model;
    real *target, *prob, *dprob, *scalars; /* backend scratch: masks, Dice terms, losses */
    real *ema_w, *ema_buf;                 /* EMA copies of weights and buffers, or NULL */
    PlateauConfig plateau_cfg;
    PlateauState plateau;
    CosineSchedule cosine;
    long step;       /* optimizer steps done */
    double best_val; /* best validation loss so far (+inf before the first) */
} SegTrainer;

/* Validation results: val_loss is what the schedule and keep-best monitor. */
typedef struct {
    double loss, bce, iou, accuracy;
} SegVal;

/* A fresh run: model initialized from cfg->seed, optimizer state zero. */
int seg_trainer_create(SegTrainer *t, const Backend *be, const SegTrainConfig *cfg);
void seg_trainer_free(SegTrainer *t);
/* The learning rate of the next step. */
double seg_trainer_lr(const SegTrainer *t);
/* One optimizer step on accum * batch tiles (host, [accum*batch,1,h,w], masks 0/1):
 * zero the gradients, forward and backward each micro-batch of `batch` tiles with its loss
 * scaled by 1/accum, then update (and EMA). *loss: the step's mean loss (incl. penalty). */
int seg_trainer_step(SegTrainer *t, const float *images, const float *masks, double *loss);
/* Eval-mode pass over a loader (no augmentation), with the EMA weights when enabled. */
int seg_trainer_validate(SegTrainer *t, Loader *val, SegVal *out);
/* After an epoch's validation: the plateau schedule steps on val_loss; returns 1 when the
 * loss is the best so far (the caller then saves the best checkpoint). */
int seg_trainer_epoch_end(SegTrainer *t, double val_loss);

/* last: the whole training state (weights, batch-norm buffers, optimizer moments, EMA,
 * schedule, step, best loss, configuration). best: the weights validation used. */
int seg_trainer_save_last(const SegTrainer *t, const char *path);
int seg_trainer_save_best(const SegTrainer *t, const char *path, int epoch, double val_loss);
/* Restore the training state of a last checkpoint into a trainer created with the
 * configuration cfg_read found in it. */
int seg_trainer_load(SegTrainer *t, const StFile *f);
/* The extra training set a checkpoint records (tiles 0 when none); SD_ERR when damaged. */
int seg_extra_read(const StFile *f, SegExtraData *e);

#endif
