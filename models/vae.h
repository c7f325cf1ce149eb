/* The seed's VAE (../shared/docs/seed-models.md, "VAE"): encoder 1x256x256 -> latent
 * 32x32x32, decoder fed by the encoder's skip features f1, f2, f3; and its "improved"
 * config: a real bottleneck (no skips), tanh output, anti-aliased downsampling. Any number
 * of image channels (in_ch 2: image + mask). Parameters are named
 * and shaped exactly as checkpoint-keys/vae.tsv for the seed config (55.0 M values),
 * including the declared-but-unused GroupNorm of each attention block. Widths scale with
 * `base` (stages base, 2 base, 4 base; the decoder's first 1x1 goes to 2 base, its last
 * 3x3 to base / 2) so small versions train on a CPU. */
#ifndef SDSEG_VAE_H
#define SDSEG_VAE_H

#include "layers.h"

typedef struct {
    int in_ch;  /* image channels: 1 */
    int base;   /* 128 */
    int latent; /* latent channels: 32 (the encoder emits mean and logvar, 2 * latent) */
    int groups; /* GroupNorm groups: 32 */
    int skips;     /* 1: the seed's decoder reads the encoder features f1, f2, f3 (its defect 2:
                      generation from noise alone cannot decode); 0: a real bottleneck, the
                      merge 1x1 convolutions take the decoder path alone */
    int tanh_out;  /* 1: tanh on the output, matching the [-1, 1] data; 0: the seed's none */
    int antialias; /* 1: 3x3 blur (stride 1) before every stride-2 downsampling convolution,
                      which keeps the seed's right/bottom pad (blur, then subsample) */
} VaeConfig;

/* VRes(cin, cout): GN -> LeakyReLU(0.3) -> Conv3x3 -> GN -> LeakyReLU -> Conv3x3, plus skip. */
typedef struct {
    NormParams groupnorm_1, groupnorm_2;
    ConvParams conv_1, conv_2, residual_layer; /* residual_layer.w = -1: identity */
} VaeResParams;

/* VAttn(c): x + OutProj(SDPA(InProj(x))), one head; `groupnorm` is declared, never applied. */
typedef struct {
    NormParams groupnorm;
    LinearParams in_proj, out_proj;
} VaeAttnParams;

typedef struct {
    ConvParams conv_in;                   /* main.0 */
    VaeResParams stage_res[3];            /* main.1, 3, 5 */
    ConvParams stage_down[3];             /* main.2, 4, 6: pad right/bottom 1, 3x3 stride 2 -> f1, f2, f3 */
    VaeResParams mid_res1, mid_res2;      /* main.7, 9 */
    VaeAttnParams mid_attn;               /* main.8 */
    NormParams norm_out;                  /* main.10 (main.11 is the LeakyReLU) */
    ConvParams conv_out1, conv_out2;      /* main.12, 13 -> mean | logvar */
} VaeEncoderParams;

typedef struct {
    ConvParams s1_merge, s1_conv;         /* stg1.0 (1x1 of cat(z, f3), of z without skips), stg1.1 */
    VaeResParams s1_res1, s1_res2;        /* stg1.2, 4 */
    VaeAttnParams s1_attn;                /* stg1.3 */
    ConvTParams s1_up;                    /* stg1.5: ConvT 4x4 s2 p1 */
    ConvParams s2_merge, s2_conv;         /* stg2.0 (1x1 of cat(x, f2)), stg2.1 */
    VaeResParams s2_res;                  /* stg2.2 */
    ConvTParams s2_up;                    /* stg2.3 */
    ConvParams s2_out;                    /* stg2.4: 1x1 */
    ConvParams s3_merge, s3_conv;         /* stg3.0 (1x1 of cat(x, f1)), stg3.1 */
    VaeResParams s3_res1, s3_res2;        /* stg3.2, 3 */
    ConvTParams s3_up;                    /* stg3.4 */
    ConvParams s3_conv2;                  /* stg3.5 */
    VaeResParams s3_res3, s3_res4;        /* stg3.6, 7 */
    NormParams norm_out;                  /* stg3.8 (stg3.9 is the LeakyReLU) */
    ConvParams conv_out1, conv_out2;      /* stg3.10, 11 */
} VaeDecoderParams;

typedef struct {
    VaeConfig cfg;
    VaeEncoderParams enc;
    VaeDecoderParams dec;
} Vae;

VaeConfig vae_config_seed(void); /* skips 1, tanh_out 0, antialias 0 */
/* The seed's widths with the fixes: skips 0, tanh_out 1, antialias 1. */
VaeConfig vae_config_improved(void);
/* SD_ERR for widths the GroupNorms cannot split (base, 2 latent not multiples of groups). */
int vae_config_check(const VaeConfig *cfg);
/* Declare every parameter into p (in state_dict order). SD_ERR on a bad config. */
int vae_declare(Vae *m, const VaeConfig *cfg, Params *p);

/* The encoder's outputs: the skip features the seed's decoder reads and the posterior
 * N(mean, exp(logvar)), each [n, latent, h/8, w/8], in backend memory owned by the
 * workspace. logvar is as the encoder emits it; the reparameterization clamps it to
 * [-30, 20]. */
typedef struct {
    Fmap f1, f2, f3;
    real *mean, *logvar;
} VaeEncoding;

/* Encode images x [n, in_ch, h, w] (backend memory; h, w positive multiples of 8). Starts
 * a pass on ws, copying x into it (layer_input: after a training pass's layers_backward,
 * layers_input_grad(ws) is d(loss)/d(x)). SD_ERR on a bad size. */
int vae_encode(const Vae *m, const Params *p, Workspace *ws, int n, int h, int w, const real *x, VaeEncoding *e);
/* Decode latents z [n, latent, h/8, w/8] with the skips of the vae_encode just before (the
 * pass continues on the same ws; a model without skips reads only their sizes) into out
 * [n, in_ch, h, w]. */
void vae_decode(const Vae *m, const Params *p, Workspace *ws, int n, const VaeEncoding *e, const real *z, real *out);
/* Generation: decode latents z [n, latent, h/8, w/8] alone into out [n, in_ch, h, w],
 * starting a pass on ws. A model with skips gets all-zero skip features (the only thing
 * pure generation can give the seed's decoder: its defect 2, kept visible). SD_ERR on a
 * bad size. */
int vae_generate(const Vae *m, const Params *p, Workspace *ws, int n, int h, int w, const real *z, real *out);

/* ------------------------------------------------------------------ training */

/* A whole pass, as the seed trained it: encode x, z = mean + exp(clamp(logvar)/2) eps
 * (eps [n, latent, h/8, w/8] from the caller), decode z with the skips. Everything lives in
 * ws; in a training pass (ws_set_training) it is recorded for vae_loss's backward. */
typedef struct {
    VaeEncoding enc;
    real *z, *recon; /* recon [n, in_ch, h, w] */
    int n;
    size_t pixels, latent; /* values of recon and of z */
} VaeForward;

int vae_forward(const Vae *m, const Params *p, Workspace *ws, int n, int h, int w, const real *x, const real *eps,
                VaeForward *o);

/* The seed's loss MSE(recon, x) + kl_weight * KL, KL = -0.5 mean(1 + logvar - mu^2 -
 * exp(logvar)) over the latent elements, where mu is the mean -- or, with the seed's defect
 * 3 (kl_std_for_mean), the standard deviation exp(clamp(logvar)/2). The KL reads logvar as
 * the encoder emits it (the clamp only acts outside [-30, 20], where exp overflows anyway).
 * With the defect, KL >= ln(2)/2 = 0.347 per element whatever the model does. */
typedef struct {
    double kl_weight;    /* beta: 1 */
    int kl_std_for_mean; /* 1: the seed's defect 3 */
} VaeLossConfig;

typedef struct {
    double mse, kl, total; /* total = mse + kl_weight * kl */
} VaeLoss;

/* The loss of the vae_forward just run on ws (x: its input). After a training pass it
 * also backpropagates scale * d(total) into p->grad (accumulated; activation gradients
 * are zeroed first). */
void vae_loss(const Params *p, Workspace *ws, const VaeLossConfig *lc, const VaeForward *o, const real *x,
              double scale, VaeLoss *out);

#endif
