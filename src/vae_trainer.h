/* Training the VAE (models/vae.h): configuration by name, the step with gradient
 * accumulation, validation in the seed's units, the epoch-end logic (ReduceLROnPlateau,
 * keep-best, revert-to-best, early stop), EMA weights and checkpoints holding the whole
 * training state. `sdseg train-vae` (cmd_train_vae.c) drives it; tests call it directly.
 *
 * Recipes (train-vae --recipe):
 *   seed      (../shared/docs/seed-models.md, "VAE") the seed's network (config seed:
 *             decoder skips, no output tanh, no blur before downsampling), image only;
 *             loss MSE(recon, x) + KL with the seed's defect 3 (the KL receives the
 *             standard deviation where the mean belongs; kl = fixed puts the mean there);
 *             SGD lr 1e-4, momentum 0.9; batch 5 with gradients accumulated over 10
 *             micro-batches -- averaged (accum_mode mean) or summed as the seed's bug did
 *             (sum); ReduceLROnPlateau(min, factor 0.5, patience 3, torch's other
 *             defaults) on the validation loss; keep-best; after every 3 epochs without
 *             improvement the weights go back to the best ones (revert deep: a real copy;
 *             shallow: the seed's bug -- it copied a state_dict of references, so nothing
 *             changed); early stop after 10 such epochs.
 *   improved  config improved (a real bottleneck without skips, tanh output, anti-aliased
 *             downsampling); KL fixed with kl_weight 1e-4: with the seed's defect the KL
 *             is at least ln(2)/2 per latent element whatever the model does and never
 *             constrains the mean, so its weight 1 only added a constant; the true KL at
 *             weight 1 against a per-pixel MSE of ~3e-3 would pull every latent to N(0, 1)
 *             and wash out the reconstructions, while 1e-4 keeps the latents near unit
 *             scale (what the diffusion prior and decoding from noise need) and lets the
 *             MSE lead; AdamW(lr 2e-4, betas 0.9/0.999, eps 1e-8, decoupled weight decay
 *             0.01 on convolution and linear weights and biases, not on norms); cosine
 *             decay to 0 after a linear warmup of one epoch; EMA weights (decay 0.999,
 *             ramped min(decay, (1+s)/(10+s)) over the first steps as train-seg's) used for
 *             validation, keep-best and the best checkpoint; batch 5, accum 1; no revert
 *             (it would fight the schedule and the EMA), early stop after 10 bad epochs.
 * Either recipe trains on images alone (channels 1) or on [image, mask] (channels 2,
 * --with-masks: the mask 0/1 mapped to -1/+1, the MSE over both channels; validation also
 * reports the MSE of the image channel alone, comparable with the seed's 0.003076).
 * Data in [-1, 1] (NORM_SYMMETRIC). The reparameterization noise is Philox (seed, step,
 * micro-batch), so a resumed run continues bit for bit on the CPU. */
#ifndef SDSEG_VAE_TRAINER_H
#define SDSEG_VAE_TRAINER_H

#include <stdint.h>

#include "../core/dataset.h"
#include "../core/safetensors.h"
#include "../models/vae.h"
#include "../ops/schedule.h"
#include "config_fields.h"
#include "keep_best.h"
#include "optim_step.h"

typedef enum { VAE_ARCH_SEED, VAE_ARCH_IMPROVED } VaeArch; /* VaeConfig skips/tanh_out/antialias 1/0/0, 0/1/1 */
typedef enum { VAE_KL_SEED, VAE_KL_FIXED } VaeKl;
typedef enum { VAE_SCHEDULE_PLATEAU, VAE_SCHEDULE_COSINE } VaeSchedule;

typedef struct {
    int width, latent, groups;     /* VaeConfig base, latent, groups */
    int batch, accum, epochs, tile_h, tile_w;
    int kl, accum_mode, revert;    /* VaeKl, AccumMode, RevertMode (keep_best.h) */
    double lr, momentum, kl_weight, plateau_factor;
    int plateau_patience, revert_patience, stop_patience; /* epochs; revert 0 = never */
    long steps_per_epoch;
    uint64_t seed;
    /* since format 2 (a format-1 checkpoint reads as the seed recipe's values) */
    int config, channels;  /* VaeArch; 1: image, 2: image + mask */
    int optim, schedule;   /* GenOptim (optim_step.h), VaeSchedule */
    double wd, ema;        /* weight decay (SGD: torch's coupled L2; AdamW: decoupled); EMA decay, 0 = off */
    long warmup;           /* cosine: linear warmup steps (-1 in a recipe: one epoch, set with the data) */
} VaeTrainConfig;

/* The seed recipe (improved = 0) or the improved one; tile sizes and steps_per_epoch are
 * left 0 for the data to fill, warmup -1 (improved) for one epoch. */
VaeTrainConfig vae_recipe(int improved);
/* The fields by name: train-vae's options (with '-' for '_') and the checkpoint keys. */
const CfgTable *vae_train_fields(void);
int vae_train_config_check(const VaeTrainConfig *c);
/* The network a training configuration trains. */
VaeConfig vae_train_model_config(const VaeTrainConfig *c);
/* The configuration of a train-vae checkpoint (best or last, format 1 or 2); SD_ERR
 * naming the file when it is another model's or its settings are missing or bad. */
int vae_train_config_read(const StFile *f, VaeTrainConfig *c);

typedef struct {
    VaeTrainConfig cfg;
    const Backend *be;
    Vae model;
    Params params;
    Workspace ws;
    real *images, *eps; /* backend: one micro-batch of model inputs and its noise */
    real *best_w;       /* a deep copy of the best (validated) weights so far */
    real *ema_w;        /* the EMA of the weights, or NULL */
    float *host;        /* channels 2: one micro-batch of [image, mask] inputs on the host */
    PlateauConfig plateau_cfg;
    PlateauState plateau;
    CosineSchedule cosine;
    long step;            /* optimizer steps done */
    KeepBest keep;        /* best validation loss, bad epochs, early stop */
} VaeTrainer;

/* A fresh run: PyTorch's default initialization from cfg->seed, optimizer state zero,
 * the EMA (when on) equal to the weights. */
int vae_trainer_create(VaeTrainer *t, const Backend *be, const VaeTrainConfig *cfg);
void vae_trainer_free(VaeTrainer *t);
/* The learning rate of the next step. */
double vae_trainer_lr(const VaeTrainer *t);
/* One optimizer step on accum * batch host tiles [accum*batch, 1, h, w] in [-1, 1], with
 * their masks (0/1, same shape) when channels is 2, else masks NULL. *loss: the mean over
 * the micro-batches. SD_ERR when the loss is not finite. */
int vae_trainer_step(VaeTrainer *t, const float *images, const float *masks, VaeLoss *loss);
/* The optimizer update on the gradients in t->params.grad at vae_trainer_lr, then the EMA;
 * counts the step. (vae_trainer_step ends with it.) */
void vae_trainer_update(VaeTrainer *t);

/* Validation results in the seed's units: per-element MSE + kl_weight * KL as configured. */
typedef struct {
    double total, mse, kl;
    double mse_image; /* the MSE of the image channel alone (= mse with channels 1) */
} VaeVal;

/* The loss over a loader, with the EMA weights when on. */
int vae_trainer_validate(VaeTrainer *t, Loader *val, VaeVal *out);

/* After an epoch's validation: the EPOCH_* flags of keep_best.h, the weights copied or
 * reverted accordingly. */
int vae_trainer_epoch_end(VaeTrainer *t, double val_loss);

/* last: the whole state (weights, optimizer state, best weights, EMA, schedule, counters,
 * config). best: the best weights (the EMA ones when on) with the configuration, for
 * encode/decode/predict. */
int vae_trainer_save_last(const VaeTrainer *t, const char *path);
int vae_trainer_save_best(const VaeTrainer *t, const char *path, long epoch, double val_loss);
/* Restore a last checkpoint into a trainer created with the configuration in it. */
int vae_trainer_load(VaeTrainer *t, const StFile *f);

#endif
