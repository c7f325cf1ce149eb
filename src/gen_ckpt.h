/* The generative models loaded for inference from their training checkpoints (best or
 * last .safetensors of train-vae / train-ddpm): sample, encode, decode, predict, fidelity
 * and the benchmarks use these. The configuration comes from the checkpoint's metadata.
 * Failures (missing file, not that model, damaged) are one line via sd_fail. */
#ifndef SDSEG_GEN_CKPT_H
#define SDSEG_GEN_CKPT_H

#include <stddef.h>

#include "../models/diffusion_sched.h"
#include "../models/diffusion_unet.h"
#include "../models/vae.h"

typedef struct {
    Vae m;
    Params p;
} VaeModel;

/* src/vae_trainer.c: the weights of a train-vae checkpoint (section "", the model's own
 * parameter names, loadable by PyTorch). A best checkpoint's section "" holds the weights
 * validation used: the EMA ones when the run had EMA on. A last checkpoint of such a run
 * gives its EMA weights (section "ema."), otherwise its raw weights (section ""). */
int vae_model_load(VaeModel *v, const Backend *be, const char *path);
void vae_model_free(VaeModel *v);

typedef struct {
    DiffusionUnet m;
    Params p;
    NoiseSchedule sched;
    double latent_scale;   /* the U-Net works on z * latent_scale (1 / std of the training latents) */
    int latent_h, latent_w; /* latent size of the training tiles */
    char vae_path[4096];    /* the VAE checkpoint it was trained on, as given to train-ddpm */
} DdpmModel;

/* src/ddpm_trainer.c: the U-Net weights (the EMA weights when ema and the checkpoint has
 * them, else the raw ones), its schedule and latent scale. */
int ddpm_model_load(DdpmModel *d, const Backend *be, const char *path, int ema);
void ddpm_model_free(DdpmModel *d);

#endif
