/* Training the latent diffusion U-Net (models/diffusion_unet.h) on the posteriors of a
 * frozen VAE: configuration by name, the step with gradient accumulation, validation,
 * the epoch-end logic (ReduceLROnPlateau, keep-best, revert-to-best, early stop) and
 * checkpoints holding the whole training state. `sdseg train-ddpm` (cmd_train_ddpm.c)
 * encodes the tiles and drives it; tests call it directly too.
 *
 * The data: every tile's posterior mean and logvar, encoded once (DdpmLatents, host
 * memory). Each step draws z = mean + exp(logvar/2) eps and trains on x0 = z * latent_scale,
 * latent_scale = 1 / std of the training means (ddpm_latent_scale), with
 * x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise and the loss MSE(unet(x_t, t), target),
 * target = noise (epsilon) or v. Batches are a Philox shuffle of the training latents per
 * epoch, all noise and timesteps Philox draws of (seed, step, micro-batch): a resumed run
 * continues bit for bit on the CPU.
 *
 * Recipes (train-ddpm --recipe; every field can be overridden):
 *   seed      the seed's U-Net (config seed: shift-only time conditioning, no input
 *             GroupNorm, strided downsampling, LeakyReLU 0.3, attention 1,1,1,0), the
 *             scaled-linear schedule, epsilon prediction, T = 1000, t = T-1 always (its
 *             defect 1: t_sampling fixed999); SGD lr 1e-4 momentum 0.9; batch 2 with 10
 *             micro-batches accumulated (the seed's VAE count), averaged, or summed as the
 *             seed's defect 4 did; ReduceLROnPlateau(factor 0.5, patience 3) on the
 *             validation loss; keep-best; revert to the best weights after every 3 epochs
 *             without improvement (deep, or shallow: the seed's no-op); early stop after 10.
 *   improved  config improved (FiLM time conditioning, pre-norm, anti-aliased
 *             downsampling, SiLU; attention 0,1,0,0), the cosine noise schedule, t ~
 *             U{0..T-1}; AdamW(lr 1e-4, wd 0.01 on weights and biases) with a linear warmup
 *             of one epoch and cosine decay; EMA of the weights (0.999, ramped as
 *             min(decay, (1+s)/(10+s))) used for validation and saved beside the raw ones;
 *             no revert.
 * The validation loss is the MSE of the prediction on the validation latents at fixed
 * seeded timesteps drawn uniformly from 0..T-1 (whatever t_sampling), with fixed noise, so
 * numbers compare across recipes and epochs. */
#ifndef SDSEG_DDPM_TRAINER_H
#define SDSEG_DDPM_TRAINER_H

#include <stdint.h>

#include "../core/safetensors.h"
#include "../models/diffusion_sched.h"
#include "../models/diffusion_unet.h"
#include "../ops/schedule.h"
#include "config_fields.h"
#include "keep_best.h"
#include "optim_step.h"

typedef enum { T_FIXED999, T_UNIFORM } TSampling; /* fixed999: t = T-1 (999 for T = 1000) */
typedef enum { LR_PLATEAU, LR_COSINE } DdpmLrSchedule;
typedef enum { ARCH_SEED, ARCH_IMPROVED } DdpmArch; /* unet_config_seed / unet_config_improved flags */

typedef struct {
    int width, levels, blocks, heads, groups; /* U-Net base width; time_in = width, time_dim = 2 width */
    int mult, attn, config;                   /* presets by name ("1,2,4,4", "1,1,1,0"), DdpmArch */
    int schedule, prediction, timesteps;      /* ScheduleKind, Prediction, T */
    int t_sampling, optim, lr_schedule;       /* TSampling, GenOptim (optim_step.h), DdpmLrSchedule */
    int batch, accum, accum_mode, epochs;     /* accum_mode: AccumMode (keep_best.h) */
    double lr, momentum, wd, ema, plateau_factor; /* wd on weights and biases; ema: decay, 0 = off */
    long warmup;                              /* cosine warmup steps; -1: one epoch (resolved with the data) */
    int plateau_patience, revert, revert_patience, stop_patience; /* RevertMode; epochs, revert_patience 0 = never */
    int latent, latent_h, latent_w;           /* from the VAE and the tiles */
    long steps_per_epoch;
    uint64_t seed;
} DdpmTrainConfig;

/* The seed (improved = 0) or improved recipe; latent sizes and steps_per_epoch left 0. */
DdpmTrainConfig ddpm_recipe(int improved);
/* The fields by name: train-ddpm's options (with '-' for '_') and the checkpoint keys. */
const CfgTable *ddpm_train_fields(void);
int ddpm_train_config_check(const DdpmTrainConfig *c);
/* The U-Net the configuration describes. */
UnetConfig ddpm_unet_config(const DdpmTrainConfig *c);

/* Posteriors of `count` tiles, `per` = latent * latent_h * latent_w values each. */
typedef struct {
    int count;
    size_t per;
    float *mean, *logvar; /* host, [count * per] */
} DdpmLatents;

/* 1 / (population standard deviation of all training means); SD_ERR when it is 0 or not finite. */
int ddpm_latent_scale(const DdpmLatents *train, double *scale);

typedef struct {
    DdpmTrainConfig cfg;
    const Backend *be;
    DiffusionUnet model;
    Params params;
    Workspace ws;
    NoiseSchedule sched;
    const DdpmLatents *train, *val; /* not owned */
    double latent_scale;
    char vae_path[4096];
    int32_t *order;   /* training latents in the order of epoch order_epoch */
    long order_epoch;
    float *stage;     /* host: one micro-batch of means, then of logvars */
    int *steps;       /* host: the micro-batch's timesteps, and as reals for the U-Net */
    real *t_real;
    real *mean, *logvar, *x0, *noise, *x_t, *target, *scalar; /* backend, one micro-batch */
    real *ema_w, *best_w, *best_ema; /* EMA weights; copies of the best for revert (or NULL) */
    PlateauConfig plateau_cfg;
    PlateauState plateau;
    CosineSchedule cosine;
    long step;                    /* optimizer steps done */
    KeepBest keep;                /* best validation loss, bad epochs, early stop */
} DdpmTrainer;

/* A fresh run: PyTorch's default initialization from cfg->seed, optimizer state zero.
 * The latents (cfg->latent x latent_h x latent_w each) stay the caller's. */
int ddpm_trainer_create(DdpmTrainer *t, const Backend *be, const DdpmTrainConfig *cfg, const DdpmLatents *train,
                        const DdpmLatents *val, double latent_scale, const char *vae_path);
void ddpm_trainer_free(DdpmTrainer *t);
double ddpm_trainer_lr(const DdpmTrainer *t);
/* Micro-batch k (0..accum-1) of the next optimizer step into the trainer's buffers:
 * t->steps (and t_real), mean, logvar, x0, noise, x_t and target -- what the step trains on,
 * a pure function of (seed, step, k). */
void ddpm_trainer_batch(DdpmTrainer *t, int k);
/* One optimizer step; *loss: the mean MSE of its micro-batches. SD_ERR when not finite.
 * The parameter gradients stay in t->params.grad until the next step. */
int ddpm_trainer_step(DdpmTrainer *t, double *loss);
/* The validation loss (with the EMA weights when on). */
int ddpm_trainer_validate(DdpmTrainer *t, double *loss);
/* After an epoch's validation: the EPOCH_* flags of keep_best.h, the best copies made or
 * restored accordingly. */
int ddpm_trainer_epoch_end(DdpmTrainer *t, double val_loss);

/* last: the whole state (weights, optimizer moments, EMA, best copies, schedules,
 * counters, configuration, latent scale, VAE path). best: the weights (and "ema.") with
 * the configuration, latent scale and VAE path, for ddpm_model_load (gen_ckpt.h). */
int ddpm_trainer_save_last(const DdpmTrainer *t, const char *path);
int ddpm_trainer_save_best(const DdpmTrainer *t, const char *path, long epoch, double val_loss);
/* Restore a last checkpoint into a trainer created with the configuration in it. */
int ddpm_trainer_load(DdpmTrainer *t, const StFile *f);
/* The latent scale and VAE path a checkpoint records (vae_path: n bytes). */
int ddpm_ckpt_identity(const StFile *f, double *latent_scale, char *vae_path, size_t n);

#endif
