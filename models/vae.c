/* The VAE, seed and improved configs (see vae.h). */
#include "vae.h"

#include <stdio.h>

#include "../core/err.h"

VaeConfig vae_config_seed(void)
{
    return (VaeConfig){.in_ch = 1, .base = 128, .latent = 32, .groups = 32, .skips = 1};
}

VaeConfig vae_config_improved(void)
{
    VaeConfig cfg = vae_config_seed();
    cfg.skips = 0;
    cfg.tanh_out = cfg.antialias = 1;
    return cfg;
}

int vae_config_check(const VaeConfig *cfg)
{
    if (cfg->in_ch < 1 || cfg->latent < 1 || cfg->groups < 1)
        return sd_fail("VAE: channels, latent channels and groups must be positive");
    if (cfg->base < 2 || cfg->base % 2 || cfg->base % cfg->groups)
        return sd_fail("VAE: base width %d must be even and a multiple of the %d GroupNorm groups", cfg->base,
                       cfg->groups);
    return SD_OK;
}

static VaeResParams declare_res(Params *p, int c_in, int c_out, const char *name)
{
    VaeResParams r;
    r.groupnorm_1 = declare_norm(p, c_in, "%s.groupnorm_1", name);
    r.conv_1 = declare_conv(p, c_in, c_out, 3, "%s.conv_1", name);
    r.groupnorm_2 = declare_norm(p, c_out, "%s.groupnorm_2", name);
    r.conv_2 = declare_conv(p, c_out, c_out, 3, "%s.conv_2", name);
    r.residual_layer = (ConvParams){-1, -1, c_in, c_out, 1};
    if (c_in != c_out) r.residual_layer = declare_conv(p, c_in, c_out, 1, "%s.residual_layer", name);
    return r;
}

static VaeAttnParams declare_attn(Params *p, int c, const char *name)
{
    VaeAttnParams a;
    a.groupnorm = declare_norm(p, c, "%s.groupnorm", name);
    a.in_proj = declare_linear(p, c, 3 * c, 1, "%s.attention.in_proj", name);
    a.out_proj = declare_linear(p, c, c, 1, "%s.attention.out_proj", name);
    return a;
}

static void declare_encoder(VaeEncoderParams *e, const VaeConfig *cfg, Params *p)
{
    int b = cfg->base, width[3] = {b, 2 * b, 4 * b}, c = b;
    char name[32];
    e->conv_in = declare_conv(p, cfg->in_ch, b, 3, "encoder.main.0");
    for (int s = 0; s < 3; s++) {
        snprintf(name, sizeof name, "encoder.main.%d", 1 + 2 * s);
        e->stage_res[s] = declare_res(p, c, width[s], name);
        c = width[s];
        e->stage_down[s] = declare_conv(p, c, c, 3, "encoder.main.%d", 2 + 2 * s);
    }
    e->mid_res1 = declare_res(p, c, c, "encoder.main.7");
    e->mid_attn = declare_attn(p, c, "encoder.main.8");
    e->mid_res2 = declare_res(p, c, c, "encoder.main.9");
    e->norm_out = declare_norm(p, c, "encoder.main.10");
    e->conv_out1 = declare_conv(p, c, 2 * cfg->latent, 3, "encoder.main.12");
    e->conv_out2 = declare_conv(p, 2 * cfg->latent, 2 * cfg->latent, 3, "encoder.main.13");
}

/* In-channels of a stage's merge 1x1: the decoder path, plus the skip feature with skips. */
static int merge_in(const VaeConfig *cfg, int path, int skip) { return cfg->skips ? path + skip : path; }

/* Stage 1 at 32x32: [cat(z, f3)] -> 1x1 -> 3x3 -> VRes -> VAttn -> VRes -> ConvT (64x64). */
static void declare_stage1(VaeDecoderParams *d, const VaeConfig *cfg, Params *p)
{
    int b = cfg->base;
    d->s1_merge = declare_conv(p, merge_in(cfg, cfg->latent, 4 * b), 2 * b, 1, "decoder.stg1.0");
    d->s1_conv = declare_conv(p, 2 * b, 4 * b, 3, "decoder.stg1.1");
    d->s1_res1 = declare_res(p, 4 * b, 4 * b, "decoder.stg1.2");
    d->s1_attn = declare_attn(p, 4 * b, "decoder.stg1.3");
    d->s1_res2 = declare_res(p, 4 * b, 4 * b, "decoder.stg1.4");
    d->s1_up = declare_conv_transpose(p, 4 * b, 4 * b, 4, "decoder.stg1.5");
}

/* Stage 2 at 64x64: [cat(x, f2)] -> 1x1 -> 3x3 -> VRes -> ConvT (128x128) -> 1x1. */
static void declare_stage2(VaeDecoderParams *d, const VaeConfig *cfg, Params *p)
{
    int b = cfg->base;
    d->s2_merge = declare_conv(p, merge_in(cfg, 4 * b, 2 * b), 4 * b, 1, "decoder.stg2.0");
    d->s2_conv = declare_conv(p, 4 * b, 4 * b, 3, "decoder.stg2.1");
    d->s2_res = declare_res(p, 4 * b, 4 * b, "decoder.stg2.2");
    d->s2_up = declare_conv_transpose(p, 4 * b, 4 * b, 4, "decoder.stg2.3");
    d->s2_out = declare_conv(p, 4 * b, 4 * b, 1, "decoder.stg2.4");
}

/* Stage 3 at 128x128: [cat(x, f1)] -> 1x1 -> 3x3 -> VRes x2 -> ConvT (256x256) -> 3x3 ->
 * VRes x2 -> GN -> LeakyReLU -> 3x3 -> 3x3 (-> tanh with tanh_out). */
static void declare_stage3(VaeDecoderParams *d, const VaeConfig *cfg, Params *p)
{
    int b = cfg->base;
    d->s3_merge = declare_conv(p, merge_in(cfg, 4 * b, b), 4 * b, 1, "decoder.stg3.0");
    d->s3_conv = declare_conv(p, 4 * b, 4 * b, 3, "decoder.stg3.1");
    d->s3_res1 = declare_res(p, 4 * b, 2 * b, "decoder.stg3.2");
    d->s3_res2 = declare_res(p, 2 * b, 2 * b, "decoder.stg3.3");
    d->s3_up = declare_conv_transpose(p, 2 * b, 2 * b, 4, "decoder.stg3.4");
    d->s3_conv2 = declare_conv(p, 2 * b, 2 * b, 3, "decoder.stg3.5");
    d->s3_res3 = declare_res(p, 2 * b, b, "decoder.stg3.6");
    d->s3_res4 = declare_res(p, b, b, "decoder.stg3.7");
    d->norm_out = declare_norm(p, b, "decoder.stg3.8");
    d->conv_out1 = declare_conv(p, b, b / 2, 3, "decoder.stg3.10");
    d->conv_out2 = declare_conv(p, b / 2, cfg->in_ch, 3, "decoder.stg3.11");
}

int vae_declare(Vae *m, const VaeConfig *cfg, Params *p)
{
    if (vae_config_check(cfg)) return SD_ERR;
    m->cfg = *cfg;
    declare_encoder(&m->enc, cfg, p);
    declare_stage1(&m->dec, cfg, p);
    declare_stage2(&m->dec, cfg, p);
    declare_stage3(&m->dec, cfg, p);
    return p->failed ? SD_ERR : SD_OK;
}

/* ------------------------------------------------------------------ forward */

#define LEAKY_SLOPE 0.3f
#define GN_EPS 1e-5f

static Fmap leaky(Pass *ps, Fmap x) { return layer_act(ps, ACT_LEAKY_RELU, LEAKY_SLOPE, x); }

static Fmap res_forward(Pass *ps, const VaeResParams *r, int groups, Fmap x)
{
    Fmap y = layer_conv(ps, &r->conv_1, leaky(ps, layer_group_norm(ps, &r->groupnorm_1, x, groups, GN_EPS)), 1, 1);
    y = layer_conv(ps, &r->conv_2, leaky(ps, layer_group_norm(ps, &r->groupnorm_2, y, groups, GN_EPS)), 1, 1);
    Fmap skip = r->residual_layer.w < 0 ? x : layer_conv(ps, &r->residual_layer, x, 1, 0);
    return layer_add(ps, y, skip);
}

/* x + OutProj(SDPA(InProj(x))) over the h*w tokens, one head (its groupnorm is unused). */
static Fmap attn_forward(Pass *ps, const VaeAttnParams *a, Fmap x)
{
    int len = x.h * x.w, rows = ps->n * len;
    real *qkv = layer_linear(ps, &a->in_proj, layer_to_tokens(ps, x), rows);
    real *y = layer_linear(ps, &a->out_proj, layer_attention(ps, qkv, len, 1, x.c), rows);
    return layer_add(ps, layer_from_tokens(ps, y, x.c, x.h, x.w), x);
}

/* The seed's downsampling: F.pad(x, (0, 1, 0, 1)) then Conv3x3 stride 2, padding 0.
 * Anti-aliased: the [1 2 1]^2 / 16 blur (stride 1) first, then the same padded strided
 * convolution (blur, then subsample; the parameters stay the seed's). */
static Fmap down_forward(Pass *ps, const ConvParams *c, int antialias, Fmap x)
{
    if (antialias) x = layer_blur(ps, x, 1);
    return layer_conv_padded(ps, c, x, 2, (const int[]){0, 1, 0, 1});
}

static int bad_size(int n, int h, int w)
{
    if (n < 1 || h < 8 || w < 8 || h % 8 || w % 8)
        return sd_fail("VAE: input %dx%d (batch %d) must be a positive multiple of 8", h, w, n);
    return SD_OK;
}

int vae_encode(const Vae *m, const Params *p, Workspace *ws, int n, int h, int w, const real *x, VaeEncoding *e)
{
    if (bad_size(n, h, w)) return SD_ERR;
    const VaeEncoderParams *enc = &m->enc;
    int g = m->cfg.groups;
    ws_rewind(ws);
    Pass ps = {p->be, p, ws, n};
    Fmap y = layer_input(&ps, (Fmap){(real *)x, m->cfg.in_ch, h, w});
    y = layer_conv(&ps, &enc->conv_in, y, 1, 1);
    Fmap *skip[3] = {&e->f1, &e->f2, &e->f3};
    for (int s = 0; s < 3; s++) {
        y = res_forward(&ps, &enc->stage_res[s], g, y);
        *skip[s] = y = down_forward(&ps, &enc->stage_down[s], m->cfg.antialias, y);
    }
    y = res_forward(&ps, &enc->mid_res1, g, y);
    y = attn_forward(&ps, &enc->mid_attn, y);
    y = res_forward(&ps, &enc->mid_res2, g, y);
    y = leaky(&ps, layer_group_norm(&ps, &enc->norm_out, y, g, GN_EPS));
    y = layer_conv(&ps, &enc->conv_out2, layer_conv(&ps, &enc->conv_out1, y, 1, 1), 1, 1);
    Fmap mean, logvar;
    layer_split(&ps, y, &mean, &logvar);
    e->mean = mean.d, e->logvar = logvar.d;
    return SD_OK;
}

/* A stage's merge 1x1 convolution of cat(x, skip), or of x alone without skips. */
static Fmap merge_forward(Pass *ps, const Vae *m, const ConvParams *merge, Fmap x, Fmap skip)
{
    return layer_conv(ps, merge, m->cfg.skips ? layer_concat(ps, x, skip) : x, 1, 0);
}

static Fmap stage1_forward(Pass *ps, const Vae *m, Fmap z, Fmap f3)
{
    const VaeDecoderParams *d = &m->dec;
    int g = m->cfg.groups;
    Fmap x = layer_conv(ps, &d->s1_conv, merge_forward(ps, m, &d->s1_merge, z, f3), 1, 1);
    x = res_forward(ps, &d->s1_res2, g, attn_forward(ps, &d->s1_attn, res_forward(ps, &d->s1_res1, g, x)));
    return layer_conv_transpose(ps, &d->s1_up, x, 2, 1);
}

static Fmap stage2_forward(Pass *ps, const Vae *m, Fmap x, Fmap f2)
{
    const VaeDecoderParams *d = &m->dec;
    x = layer_conv(ps, &d->s2_conv, merge_forward(ps, m, &d->s2_merge, x, f2), 1, 1);
    x = layer_conv_transpose(ps, &d->s2_up, res_forward(ps, &d->s2_res, m->cfg.groups, x), 2, 1);
    return layer_conv(ps, &d->s2_out, x, 1, 0);
}

static Fmap stage3_forward(Pass *ps, const Vae *m, Fmap x, Fmap f1)
{
    const VaeDecoderParams *d = &m->dec;
    int g = m->cfg.groups;
    x = layer_conv(ps, &d->s3_conv, merge_forward(ps, m, &d->s3_merge, x, f1), 1, 1);
    x = res_forward(ps, &d->s3_res2, g, res_forward(ps, &d->s3_res1, g, x));
    x = layer_conv(ps, &d->s3_conv2, layer_conv_transpose(ps, &d->s3_up, x, 2, 1), 1, 1);
    x = res_forward(ps, &d->s3_res4, g, res_forward(ps, &d->s3_res3, g, x));
    x = leaky(ps, layer_group_norm(ps, &d->norm_out, x, g, GN_EPS));
    x = layer_conv(ps, &d->conv_out2, layer_conv(ps, &d->conv_out1, x, 1, 1), 1, 1);
    return m->cfg.tanh_out ? layer_act(ps, ACT_TANH, 0, x) : x;
}

/* Latents z [n, latent, h/8, w/8] -> [n, in_ch, h, w]; the skips are read only with cfg.skips. */
static Fmap decode(const Vae *m, Pass *ps, const VaeEncoding *e, const real *z)
{
    Fmap x = {(real *)z, m->cfg.latent, e->f3.h, e->f3.w};
    x = stage1_forward(ps, m, x, e->f3);
    x = stage2_forward(ps, m, x, e->f2);
    return stage3_forward(ps, m, x, e->f1);
}

void vae_decode(const Vae *m, const Params *p, Workspace *ws, int n, const VaeEncoding *e, const real *z, real *out)
{
    Pass ps = {p->be, p, ws, n};
    Fmap x = decode(m, &ps, e, z);
    p->be->copy(p->be->ctx, out, x.d, fmap_numel(&ps, x) * sizeof(real));
}

/* The skip features an h x w image would give (f1: base channels at h/2, f2: 2 base at h/4,
 * f3: 4 base at h/8), all zero -- allocated only when the decoder reads them. */
static VaeEncoding zero_skips(const Vae *m, Pass *ps, int h, int w)
{
    VaeEncoding e = {.mean = NULL, .logvar = NULL};
    Fmap *f[3] = {&e.f1, &e.f2, &e.f3};
    for (int s = 0; s < 3; s++) {
        *f[s] = (Fmap){NULL, m->cfg.base << s, h >> (s + 1), w >> (s + 1)};
        if (!m->cfg.skips) continue;
        size_t numel = fmap_numel(ps, *f[s]);
        f[s]->d = ws_take(ps->ws, numel);
        ps->be->zero(ps->be->ctx, f[s]->d, numel * sizeof(real));
    }
    return e;
}

int vae_generate(const Vae *m, const Params *p, Workspace *ws, int n, int h, int w, const real *z, real *out)
{
    if (bad_size(n, h, w)) return SD_ERR;
    ws_rewind(ws);
    Pass ps = {p->be, p, ws, n};
    VaeEncoding e = zero_skips(m, &ps, h, w);
    Fmap x = decode(m, &ps, &e, z);
    p->be->copy(p->be->ctx, out, x.d, fmap_numel(&ps, x) * sizeof(real));
    return SD_OK;
}

/* ------------------------------------------------------------------ training */

int vae_forward(const Vae *m, const Params *p, Workspace *ws, int n, int h, int w, const real *x, const real *eps,
                VaeForward *o)
{
    if (vae_encode(m, p, ws, n, h, w, x, &o->enc)) return SD_ERR;
    Pass ps = {p->be, p, ws, n};
    size_t latent = (size_t)n * m->cfg.latent * o->enc.f3.h * o->enc.f3.w;
    o->z = layer_reparameterize(&ps, o->enc.mean, o->enc.logvar, eps, latent);
    o->recon = decode(m, &ps, &o->enc, o->z).d;
    o->n = n;
    o->pixels = (size_t)n * m->cfg.in_ch * h * w;
    o->latent = latent;
    return SD_OK;
}

void vae_loss(const Params *p, Workspace *ws, const VaeLossConfig *lc, const VaeForward *o, const real *x,
              double scale, VaeLoss *out)
{
    const Backend *be = p->be;
    Pass ps = {be, p, ws, o->n};
    const real *logvar = o->enc.logvar, *mu = o->enc.mean;
    if (lc->kl_std_for_mean) /* std = 0 + exp(clamp(logvar)/2) * 1, recorded for the backward */
        mu = layer_reparameterize(&ps, layer_constant(&ps, o->latent, 0), logvar, layer_constant(&ps, o->latent, 1),
                                  o->latent);
    real *scalars = ws_take(ws, 2), host[2];
    be->mse_forward(be->ctx, o->pixels, scalars, o->recon, x);
    be->kl_gauss_forward(be->ctx, o->latent, scalars + 1, mu, logvar);
    be->download(be->ctx, host, scalars, sizeof host);
    out->mse = host[0], out->kl = host[1];
    out->total = out->mse + lc->kl_weight * out->kl;
    if (!ws->training) return;
    ws_zero_grads(ws);
    be->mse_backward(be->ctx, o->pixels, (real)scale, ws_grad(ws, o->recon), o->recon, x);
    be->kl_gauss_backward(be->ctx, o->latent, (real)(scale * lc->kl_weight), ws_grad(ws, mu), ws_grad(ws, logvar), mu,
                          logvar);
    layers_backward(p, ws);
}
