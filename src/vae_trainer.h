/* Training the seed's VAE (models/vae.h): configuration by name, the step with gradient
 * accumulation, validation in the seed's units, the epoch-end logic (ReduceLROnPlateau,
 * keep-best, revert-to-best, early stop) and checkpoints holding the whole training state.
 * `sdseg train-vae` (cmd_train_vae.c) drives it; tests call it through the command.
 *
 * The seed recipe (../shared/docs/seed-models.md, "VAE"): loss MSE(recon, x) + KL with the
 * seed's defect 3 (the KL receives the standard deviation where the mean belongs; kl =
 * fixed puts the mean there); SGD lr 1e-4, momentum 0.9; batch 5 with gradients
 * accumulated over 10 micro-batches -- averaged (accum_mode mean) or summed as the seed's
 * bug did (sum); ReduceLROnPlateau(min, factor 0.5, patience 3, torch's other defaults) on
 * the validation loss; keep-best; after every 3 epochs without improvement the weights go
 * back to the best ones (revert deep: a real copy; shallow: the seed's bug -- it copied a
 * state_dict of references, so nothing changed); early stop after 10 such epochs. Data in
 * [-1, 1] (NORM_SYMMETRIC). The reparameterization noise is Philox (seed, step, micro-batch),
 * so a resumed run continues bit for bit on the CPU. */
#ifndef SDSEG_VAE_TRAINER_H
#define SDSEG_VAE_TRAINER_H

#include <stdint.h>

#include "../core/dataset.h"
#include "../core/safetensors.h"
#include "../models/vae.h"
#include "../ops/schedule.h"
#include "config_fields.h"

typedef enum { VAE_KL_SEED, VAE_KL_FIXED } VaeKl;
typedef enum { ACCUM_MEAN, ACCUM_SUM } AccumMode;
typedef enum { REVERT_DEEP, REVERT_SHALLOW } RevertMode;

typedef struct {
    int width, latent, groups;     /* VaeConfig base, latent, groups */
    int batch, accum, epochs, tile_h, tile_w;
    int kl, accum_mode, revert;    /* the enums above */
    double lr, momentum, kl_weight, plateau_factor;
    int plateau_patience, revert_patience, stop_patience; /* epochs; revert 0 = never */
    long steps_per_epoch;
    uint64_t seed;
} VaeTrainConfig;

/* The seed recipe; tile sizes and steps_per_epoch are left 0 for the data to fill. */
VaeTrainConfig vae_recipe_seed(void);
/* The fields by name: train-vae's options (with '-' for '_') and the checkpoint keys. */
const CfgTable *vae_train_fields(void);
int vae_train_config_check(const VaeTrainConfig *c);

typedef struct {
    VaeTrainConfig cfg;
    const Backend *be;
    Vae model;
    Params params;
    Workspace ws;
    real *images, *eps; /* backend: one micro-batch of tiles and its noise */
    real *best_w;       /* a deep copy of the best weights so far */
    PlateauConfig plateau_cfg;
    PlateauState plateau;
    long step;            /* optimizer steps done */
    double best_val;      /* +inf before the first validation */
    long best_epoch, bad_epochs; /* epochs since the best one */
    int stopped;          /* early stop reached */
} VaeTrainer;

/* A fresh run: PyTorch's default initialization from cfg->seed, momentum zero. */
int vae_trainer_create(VaeTrainer *t, const Backend *be, const VaeTrainConfig *cfg);
void vae_trainer_free(VaeTrainer *t);
double vae_trainer_lr(const VaeTrainer *t);
/* One optimizer step on accum * batch host tiles [accum*batch, 1, h, w] in [-1, 1].
 * *loss: the mean over the micro-batches. SD_ERR when the loss is not finite. */
int vae_trainer_step(VaeTrainer *t, const float *images, VaeLoss *loss);
/* The loss over a loader (the seed's units: per-element MSE + kl_weight * KL as configured). */
int vae_trainer_validate(VaeTrainer *t, Loader *val, VaeLoss *out);

/* What the end of an epoch did (bit flags). */
#define EPOCH_BEST 1     /* a new best validation loss: save best.safetensors */
#define EPOCH_REVERTED 2 /* the weights went back to the best ones */
#define EPOCH_STOP 4     /* early stop: no more epochs */
int vae_trainer_epoch_end(VaeTrainer *t, double val_loss);

/* last: the whole state (weights, momentum, best weights, schedule, counters, config).
 * best: the best weights with the configuration, for encode/decode/predict. */
int vae_trainer_save_last(const VaeTrainer *t, const char *path);
int vae_trainer_save_best(const VaeTrainer *t, const char *path, long epoch, double val_loss);
/* Restore a last checkpoint into a trainer created with the configuration in it. */
int vae_trainer_load(VaeTrainer *t, const StFile *f);

#endif
