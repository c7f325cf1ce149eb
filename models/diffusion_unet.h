/* The seed's latent diffusion U-Net (../shared/docs/seed-models.md, "Diffusion model"):
 * an SD-1.x-like U-Net without cross-attention on 32x32x32 latents, predicting the noise,
 * and its "improved" config (FiLM time conditioning, pre-norm, anti-aliased downsampling,
 * SiLU, fewer attention levels) with the same parameter names.
 * Parameters are named and shaped exactly as checkpoint-keys/diffusion.tsv for the seed
 * config (801.4 M values), including each residual block's declared-but-unused
 * groupnorm_feature. Widths, levels, blocks per level and attention placement are
 * configurable so small versions train on a CPU; the names follow the same scheme:
 *   unet.encoders.0            Conv3x3(in, base)
 *   unet.encoders.k            per level l: `blocks` x [DRes (+ DAttn if attn[l])], then a
 *                              Conv3x3 stride 2 unless l is the last level
 *   unet.bottleneck.0..2       DRes, DAttn, DRes at the last width
 *   unet.decoders.k            per level from the last: blocks + 1 x [cat(x, skip) -> DRes
 *                              (+ DAttn if attn[l])], the last of a level followed by Up
 *                              (nearest x2 + Conv3x3) unless l == 0
 *   time_embedding.linear_1/2  320 -> 640 -> 640;  final.groupnorm, final.conv */
#ifndef SDSEG_DIFFUSION_UNET_H
#define SDSEG_DIFFUSION_UNET_H

#include "layers.h"

#define UNET_MAX_LEVELS 4
#define UNET_MAX_BLOCKS 3

typedef struct {
    int in_ch;                  /* latent channels: 32 */
    int base;                   /* 320 */
    int levels;                 /* 4 */
    int mult[UNET_MAX_LEVELS];  /* width of level l = base * mult[l]: 1, 2, 4, 4 */
    int attn[UNET_MAX_LEVELS];  /* transformer blocks at level l: 1, 1, 1, 0 */
    int blocks;                 /* residual blocks per encoder level: 2 */
    int heads;                  /* attention heads: 8 */
    int time_in;                /* sinusoidal timestep embedding width: 320 */
    int time_dim;               /* time embedding width: 640 */
    int groups;                 /* GroupNorm groups: 8 */
    /* The "improved" config's fixes (seed-readme.md critique); all 0 / LeakyReLU 0.3 in the seed. */
    int time_film;              /* 1: linear_time emits 2 x width, the time embedding scales and shifts
                                   (FiLM) the block's group-normalized features; 0: the seed's shift only */
    int pre_norm;               /* 1: groupnorm_feature normalizes the block input before conv_feature
                                   (the seed declares it and never applies it) */
    int antialias;              /* 1: 3x3 blur (stride 1) before every stride-2 downsampling convolution,
                                   which keeps its stride 2 and padding 1 (blur, then subsample) */
    Act act;                    /* the activation of the residual blocks (before linear_time too) and
                                   the output layer: ACT_LEAKY_RELU (seed) or ACT_SILU; the time MLP
                                   keeps the seed's LeakyReLU(0.3) and SiLU in every config */
    float slope;                /* LeakyReLU slope: 0.3 */
} UnetConfig;

/* DRes(cin, cout), act = the config's activation:
 *   f = Conv3x3(act(x)), or Conv3x3(act(GN_feature(x))) with pre_norm (the seed declares
 *       groupnorm_feature and never applies it)
 *   seed:      m = GN_merged(f + Linear(act(t)))
 *   time_film: (scale, shift) = the two halves of Linear(act(t)) (2 cout wide);
 *              m = GN_merged(f) * (1 + scale) + shift
 *   out = Conv3x3(act(m)) + skip(x). */
typedef struct {
    NormParams groupnorm_feature, groupnorm_merged;
    ConvParams conv_feature, conv_merged, residual_layer; /* residual_layer.w = -1: identity */
    LinearParams linear_time;
} UnetResParams;

/* DAttn(heads, c): GN(eps 1e-6) -> Conv1x1 -> tokens; x += MHA(LN1(x)) (in_proj without
 * bias); x += Linear(4c, c)(GeGLU(Linear(c, 8c)(LN2(x)))); -> Conv1x1 + residual. */
typedef struct {
    NormParams groupnorm, layernorm_1, layernorm_2;
    ConvParams conv_input, conv_output;
    LinearParams in_proj, out_proj, linear_geglu_1, linear_geglu_2;
} UnetAttnParams;

/* One encoder or decoder entry: a residual block and optionally attention and Up. */
typedef struct {
    UnetResParams res;
    UnetAttnParams attn;
    ConvParams up; /* Up's Conv3x3 */
    int has_attn, has_up;
} UnetEntryParams;

typedef struct {
    UnetConfig cfg;
    LinearParams time_linear_1, time_linear_2;
    ConvParams conv_in;
    UnetEntryParams enc[UNET_MAX_LEVELS][UNET_MAX_BLOCKS];
    ConvParams down[UNET_MAX_LEVELS]; /* levels - 1 of them */
    UnetResParams mid_res1, mid_res2;
    UnetAttnParams mid_attn;
    UnetEntryParams dec[UNET_MAX_LEVELS][UNET_MAX_BLOCKS + 1];
    NormParams final_norm;
    ConvParams final_conv;
} DiffusionUnet;

UnetConfig unet_config_seed(void);
/* The seed's widths with every fix on: FiLM, pre-norm, anti-aliased downsampling, SiLU,
 * attention at the bottleneck and at one high resolution only (attn = 0, 1, 0, 0). */
UnetConfig unet_config_improved(void);
/* SD_ERR for an impossible config (levels, blocks, widths the GroupNorms or heads cannot split). */
int unet_config_check(const UnetConfig *cfg);
/* Declare every parameter into p (in state_dict order). SD_ERR on a bad config. */
int unet_declare(DiffusionUnet *m, const UnetConfig *cfg, Params *p);

/* The prediction for latents x [n, in_ch, h, w] at timesteps t [n] (HOST reals, as the
 * seed feeds them to the sinusoidal embedding) into out [n, in_ch, h, w]; x and out in
 * backend memory, weights in p (declared by unet_declare, allocated). Activations come
 * from ws and stay there. SD_ERR when h or w is not a multiple of 2^(levels-1). */
int unet_forward(const DiffusionUnet *m, const Params *p, Workspace *ws, int n, int h, int w, const real *t,
                 const real *x, real *out);
/* The same without the copy: *out is the prediction in the workspace (valid until the next
 * pass on ws), so a training pass writes d(loss)/d(out) into ws_grad(ws, *out). The input is
 * copied into the workspace (layer_input): after layers_backward, layers_input_grad(ws) is
 * d(loss)/d(x). */
int unet_forward_ws(const DiffusionUnet *m, const Params *p, Workspace *ws, int n, int h, int w, const real *t,
                    const real *x, real **out);

/* The U-Net as the samplers' network (DenoiseFn of models/diffusion_sched.h) on latents
 * of h x w: pass unet_denoise with a UnetDenoiser as `user`. */
typedef struct {
    const DiffusionUnet *m;
    const Params *p;
    Workspace *ws;
    int h, w;
} UnetDenoiser;
int unet_denoise(void *user, int t, int n, real *out, const real *x);

#endif
