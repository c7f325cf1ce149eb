/* The latent diffusion U-Net, seed and improved configs (see diffusion_unet.h). */
#include "diffusion_unet.h"

#include <stdio.h>
#include <stdlib.h>

#include "../core/err.h"

UnetConfig unet_config_seed(void)
{
    return (UnetConfig){.in_ch = 32,
                        .base = 320,
                        .levels = 4,
                        .mult = {1, 2, 4, 4},
                        .attn = {1, 1, 1, 0},
                        .blocks = 2,
                        .heads = 8,
                        .time_in = 320,
                        .time_dim = 640,
                        .groups = 8,
                        .act = ACT_LEAKY_RELU,
                        .slope = 0.3f};
}

UnetConfig unet_config_improved(void)
{
    UnetConfig cfg = unet_config_seed();
    const int attn[UNET_MAX_LEVELS] = {0, 1, 0, 0};
    for (int l = 0; l < UNET_MAX_LEVELS; l++) cfg.attn[l] = attn[l];
    cfg.time_film = cfg.pre_norm = cfg.antialias = 1;
    cfg.act = ACT_SILU;
    return cfg;
}

int unet_config_check(const UnetConfig *cfg)
{
    if (cfg->levels < 1 || cfg->levels > UNET_MAX_LEVELS || cfg->blocks < 1 || cfg->blocks > UNET_MAX_BLOCKS)
        return sd_fail("U-Net: %d levels of %d blocks (allowed 1..%d levels, 1..%d blocks)", cfg->levels, cfg->blocks,
                       UNET_MAX_LEVELS, UNET_MAX_BLOCKS);
    if (cfg->in_ch < 1 || cfg->base < 1 || cfg->heads < 1 || cfg->groups < 1 || cfg->time_dim < 1 ||
        cfg->time_in < 2 || cfg->time_in % 2)
        return sd_fail("U-Net: channels, heads, groups must be positive and the time input width even");
    if ((unsigned)cfg->act > ACT_TANH) return sd_fail("U-Net: unknown activation %d", (int)cfg->act);
    /* pre-norm normalizes every block input: the decoder's concatenations include conv_in's base channels */
    if (cfg->pre_norm && cfg->base % cfg->groups)
        return sd_fail("U-Net: with pre-norm the base width %d must be a multiple of %d groups", cfg->base,
                       cfg->groups);
    for (int l = 0; l < cfg->levels; l++) {
        int c = cfg->base * cfg->mult[l];
        if (cfg->mult[l] < 1 || c % cfg->groups || c % cfg->heads)
            return sd_fail("U-Net: level %d width %d must be a multiple of %d groups and %d heads", l, c, cfg->groups,
                           cfg->heads);
    }
    return SD_OK;
}

static UnetResParams declare_res(Params *p, const UnetConfig *cfg, int c_in, int c_out, const char *name)
{
    UnetResParams r;
    r.groupnorm_feature = declare_norm(p, c_in, "%s.groupnorm_feature", name);
    r.conv_feature = declare_conv(p, c_in, c_out, 3, "%s.conv_feature", name);
    r.linear_time = declare_linear(p, cfg->time_dim, cfg->time_film ? 2 * c_out : c_out, 1, "%s.linear_time", name);
    r.groupnorm_merged = declare_norm(p, c_out, "%s.groupnorm_merged", name);
    r.conv_merged = declare_conv(p, c_out, c_out, 3, "%s.conv_merged", name);
    r.residual_layer = (ConvParams){-1, -1, c_in, c_out, 1};
    if (c_in != c_out) r.residual_layer = declare_conv(p, c_in, c_out, 1, "%s.residual_layer", name);
    return r;
}

static UnetAttnParams declare_attn(Params *p, int c, const char *name)
{
    UnetAttnParams a;
    a.groupnorm = declare_norm(p, c, "%s.groupnorm", name);
    a.conv_input = declare_conv(p, c, c, 1, "%s.conv_input", name);
    a.layernorm_1 = declare_norm(p, c, "%s.layernorm_1", name);
    a.in_proj = declare_linear(p, c, 3 * c, 0, "%s.attention_1.in_proj", name);
    a.out_proj = declare_linear(p, c, c, 1, "%s.attention_1.out_proj", name);
    a.layernorm_2 = declare_norm(p, c, "%s.layernorm_2", name);
    a.linear_geglu_1 = declare_linear(p, c, 8 * c, 1, "%s.linear_geglu_1", name);
    a.linear_geglu_2 = declare_linear(p, 4 * c, c, 1, "%s.linear_geglu_2", name);
    a.conv_output = declare_conv(p, c, c, 1, "%s.conv_output", name);
    return a;
}

/* DRes (+ DAttn) (+ Up) as entry "<group>.<index>", its modules numbered from 0. */
static UnetEntryParams declare_entry(Params *p, const UnetConfig *cfg, const char *group, int index, int c_in,
                                     int c_out, int attn, int up)
{
    UnetEntryParams e = {.has_attn = attn, .has_up = up};
    char name[64];
    int module = 0;
    snprintf(name, sizeof name, "%s.%d.%d", group, index, module++);
    e.res = declare_res(p, cfg, c_in, c_out, name);
    if (attn) {
        snprintf(name, sizeof name, "%s.%d.%d", group, index, module++);
        e.attn = declare_attn(p, c_out, name);
    }
    if (up) e.up = declare_conv(p, c_out, c_out, 3, "%s.%d.%d.conv", group, index, module);
    return e;
}

/* Channels of the encoder outputs the decoder concatenates, pushed in encoder order. */
typedef struct {
    int count, c[1 + UNET_MAX_LEVELS * (UNET_MAX_BLOCKS + 1)];
} SkipStack;

static int declare_encoder(DiffusionUnet *m, const UnetConfig *cfg, Params *p, SkipStack *skips)
{
    int index = 0, c = cfg->base;
    m->conv_in = declare_conv(p, cfg->in_ch, c, 3, "unet.encoders.%d.0", index++);
    skips->c[skips->count++] = c;
    for (int l = 0; l < cfg->levels; l++) {
        int width = cfg->base * cfg->mult[l];
        for (int j = 0; j < cfg->blocks; j++) {
            m->enc[l][j] = declare_entry(p, cfg, "unet.encoders", index++, c, width, cfg->attn[l], 0);
            skips->c[skips->count++] = c = width;
        }
        if (l + 1 < cfg->levels) {
            m->down[l] = declare_conv(p, c, c, 3, "unet.encoders.%d.0", index++);
            skips->c[skips->count++] = c;
        }
    }
    return c;
}

static int declare_decoder(DiffusionUnet *m, const UnetConfig *cfg, Params *p, SkipStack *skips, int c)
{
    int index = 0;
    for (int l = cfg->levels - 1; l >= 0; l--) {
        int width = cfg->base * cfg->mult[l];
        for (int j = 0; j <= cfg->blocks; j++) {
            int c_in = c + skips->c[--skips->count];
            m->dec[l][j] = declare_entry(p, cfg, "unet.decoders", index++, c_in, width, cfg->attn[l],
                                         j == cfg->blocks && l > 0);
            c = width;
        }
    }
    return c;
}

int unet_declare(DiffusionUnet *m, const UnetConfig *cfg, Params *p)
{
    if (unet_config_check(cfg)) return SD_ERR;
    m->cfg = *cfg;
    m->time_linear_1 = declare_linear(p, cfg->time_in, cfg->time_dim, 1, "time_embedding.linear_1");
    m->time_linear_2 = declare_linear(p, cfg->time_dim, cfg->time_dim, 1, "time_embedding.linear_2");
    SkipStack skips = {0, {0}};
    int c = declare_encoder(m, cfg, p, &skips);
    m->mid_res1 = declare_res(p, cfg, c, c, "unet.bottleneck.0");
    m->mid_attn = declare_attn(p, c, "unet.bottleneck.1");
    m->mid_res2 = declare_res(p, cfg, c, c, "unet.bottleneck.2");
    c = declare_decoder(m, cfg, p, &skips, c);
    m->final_norm = declare_norm(p, c, "final.groupnorm");
    m->final_conv = declare_conv(p, c, cfg->in_ch, 3, "final.conv");
    return p->failed ? SD_ERR : SD_OK;
}

/* ------------------------------------------------------------------ forward */

#define TIME_MLP_SLOPE 0.3f /* the seed's time MLP, kept as it is in every config */
#define GN_EPS 1e-5f
#define ATTN_GN_EPS 1e-6f
#define LN_EPS 1e-5f

/* One forward pass: the activated time embedding act(t), shared by every residual block's
 * linear_time, and (seed path) zeros for the FiLM op that adds the time projection
 * (y = x * (1 + 0) + shift). */
typedef struct {
    Pass ps;
    const UnetConfig *cfg;
    const real *time_act, *zeros;
} UnetPass;

/* The config's activation (LeakyReLU(slope) in the seed, SiLU in the improved config). */
static Fmap act(UnetPass *u, Fmap x) { return layer_act(&u->ps, u->cfg->act, u->cfg->slope, x); }

static Fmap time_leaky(Pass *ps, Fmap x) { return layer_act(ps, ACT_LEAKY_RELU, TIME_MLP_SLOPE, x); }

/* Linear(320, 640) -> LeakyReLU -> SiLU -> Linear(640, 640) -> LeakyReLU (the seed's MLP in
 * every config), then the activation every DRes applies before its linear_time. */
static const real *time_forward(UnetPass *u, const DiffusionUnet *m, const real *t_host)
{
    Pass *ps = &u->ps;
    const UnetConfig *cfg = &m->cfg;
    real *t = ws_take(ps->ws, ps->n);
    ps->be->upload(ps->be->ctx, t, t_host, ps->n * sizeof(real));
    real *sinusoid = ws_take(ps->ws, (size_t)ps->n * cfg->time_in);
    ps->be->timestep_embedding(ps->be->ctx, ps->n, cfg->time_in, sinusoid, t);
    Fmap h = {layer_linear(ps, &m->time_linear_1, sinusoid, ps->n), cfg->time_dim, 1, 1};
    h = layer_act(ps, ACT_SILU, 0, time_leaky(ps, h));
    h.d = layer_linear(ps, &m->time_linear_2, h.d, ps->n);
    return act(u, time_leaky(ps, h)).d;
}

/* The time conditioning of conv_feature's output f, group-normalized: the seed adds the
 * time projection before GN_merged; time_film splits a 2c projection into (scale, shift)
 * and modulates GN_merged(f) with them. */
static Fmap res_condition(UnetPass *u, const UnetResParams *r, Fmap f)
{
    Pass *ps = &u->ps;
    Fmap proj = {layer_linear(ps, &r->linear_time, u->time_act, ps->n), r->linear_time.out, 1, 1};
    if (!u->cfg->time_film) {
        Fmap merged = layer_film(ps, f, u->zeros, proj.d);
        return layer_group_norm(ps, &r->groupnorm_merged, merged, u->cfg->groups, GN_EPS);
    }
    Fmap scale, shift;
    layer_split(ps, proj, &scale, &shift);
    Fmap normed = layer_group_norm(ps, &r->groupnorm_merged, f, u->cfg->groups, GN_EPS);
    return layer_film(ps, normed, scale.d, shift.d);
}

/* DRes: conv_merged(act(condition(conv_feature(act(x or GN_feature(x)))))) + skip(x). */
static Fmap res_forward(UnetPass *u, const UnetResParams *r, Fmap x)
{
    Pass *ps = &u->ps;
    Fmap in = u->cfg->pre_norm ? layer_group_norm(ps, &r->groupnorm_feature, x, u->cfg->groups, GN_EPS) : x;
    Fmap f = layer_conv(ps, &r->conv_feature, act(u, in), 1, 1);
    Fmap merged = layer_conv(ps, &r->conv_merged, act(u, res_condition(u, r, f)), 1, 1);
    Fmap skip = r->residual_layer.w < 0 ? x : layer_conv(ps, &r->residual_layer, x, 1, 0);
    return layer_add(ps, merged, skip);
}

/* Self-attention and GeGLU feed-forward over the h*w tokens, between 1x1 convolutions. */
static Fmap attn_forward(UnetPass *u, const UnetAttnParams *a, Fmap x)
{
    Pass *ps = &u->ps;
    int c = x.c, len = x.h * x.w, rows = ps->n * len;
    size_t numel = (size_t)rows * c;
    Fmap g = layer_conv(ps, &a->conv_input, layer_group_norm(ps, &a->groupnorm, x, u->cfg->groups, ATTN_GN_EPS), 1, 0);
    real *tokens = layer_to_tokens(ps, g);
    real *qkv = layer_linear(ps, &a->in_proj, layer_layer_norm(ps, &a->layernorm_1, tokens, rows, LN_EPS), rows);
    real *attended = layer_linear(ps, &a->out_proj, layer_attention(ps, qkv, len, u->cfg->heads, c), rows);
    tokens = layer_sum(ps, tokens, attended, numel);
    real *hidden = layer_linear(ps, &a->linear_geglu_1, layer_layer_norm(ps, &a->layernorm_2, tokens, rows, LN_EPS),
                                rows);
    real *gated = layer_geglu(ps, hidden, rows, 4 * c);
    tokens = layer_sum(ps, tokens, layer_linear(ps, &a->linear_geglu_2, gated, rows), numel);
    Fmap y = layer_from_tokens(ps, tokens, c, x.h, x.w);
    return layer_add(ps, layer_conv(ps, &a->conv_output, y, 1, 0), x);
}

static Fmap entry_forward(UnetPass *u, const UnetEntryParams *e, Fmap x)
{
    x = res_forward(u, &e->res, x);
    if (e->has_attn) x = attn_forward(u, &e->attn, x);
    if (e->has_up) x = layer_conv(&u->ps, &e->up, layer_upsample(&u->ps, x), 1, 1);
    return x;
}

/* Conv3x3 stride 2, padding 1. Anti-aliased ("BlurPool"-style): the [1 2 1]^2 / 16 blur at
 * stride 1 first, so the strided convolution samples a low-passed map instead of aliasing
 * the frequencies above the new Nyquist limit; the convolution keeps its stride, padding
 * and weights, so the parameters are the seed's. */
static Fmap down_forward(UnetPass *u, const ConvParams *c, Fmap x)
{
    if (u->cfg->antialias) x = layer_blur(&u->ps, x, 1);
    return layer_conv(&u->ps, c, x, 2, 1);
}

typedef struct {
    int count;
    Fmap f[UNET_MAX_LEVELS * (UNET_MAX_BLOCKS + 1)];
} FmapStack;

static Fmap encoder_forward(UnetPass *u, const DiffusionUnet *m, Fmap x, FmapStack *skips)
{
    x = layer_conv(&u->ps, &m->conv_in, x, 1, 1);
    skips->f[skips->count++] = x;
    for (int l = 0; l < m->cfg.levels; l++) {
        for (int j = 0; j < m->cfg.blocks; j++) skips->f[skips->count++] = x = entry_forward(u, &m->enc[l][j], x);
        if (l + 1 < m->cfg.levels) skips->f[skips->count++] = x = down_forward(u, &m->down[l], x);
    }
    return x;
}

static Fmap decoder_forward(UnetPass *u, const DiffusionUnet *m, Fmap x, FmapStack *skips)
{
    for (int l = m->cfg.levels - 1; l >= 0; l--)
        for (int j = 0; j <= m->cfg.blocks; j++)
            x = entry_forward(u, &m->dec[l][j], layer_concat(&u->ps, x, skips->f[--skips->count]));
    return x;
}

static int widest(const UnetConfig *cfg)
{
    int c = cfg->base;
    for (int l = 0; l < cfg->levels; l++)
        if (cfg->base * cfg->mult[l] > c) c = cfg->base * cfg->mult[l];
    return c;
}

int unet_forward(const DiffusionUnet *m, const Params *p, Workspace *ws, int n, int h, int w, const real *t,
                 const real *x, real *out)
{
    real *y;
    if (unet_forward_ws(m, p, ws, n, h, w, t, x, &y)) return SD_ERR;
    p->be->copy(p->be->ctx, out, y, (size_t)n * m->cfg.in_ch * h * w * sizeof(real));
    return SD_OK;
}

int unet_forward_ws(const DiffusionUnet *m, const Params *p, Workspace *ws, int n, int h, int w, const real *t,
                    const real *x, real **out)
{
    int align = 1 << (m->cfg.levels - 1);
    if (n < 1 || h < align || w < align || h % align || w % align)
        return sd_fail("diffusion U-Net: input %dx%d (batch %d) must be a positive multiple of %d", h, w, n, align);
    ws_rewind(ws);
    UnetPass u = {{p->be, p, ws, n}, &m->cfg, NULL, NULL};
    Fmap y = layer_input(&u.ps, (Fmap){(real *)x, m->cfg.in_ch, h, w});
    if (!m->cfg.time_film) {
        size_t zeros = (size_t)n * widest(&m->cfg);
        real *z = ws_take(ws, zeros);
        p->be->zero(p->be->ctx, z, zeros * sizeof(real));
        u.zeros = z;
    }
    u.time_act = time_forward(&u, m, t);
    FmapStack skips = {0, {{0}}};
    y = encoder_forward(&u, m, y, &skips);
    y = res_forward(&u, &m->mid_res1, y);
    y = attn_forward(&u, &m->mid_attn, y);
    y = res_forward(&u, &m->mid_res2, y);
    y = decoder_forward(&u, m, y, &skips);
    y = layer_group_norm(&u.ps, &m->final_norm, y, m->cfg.groups, GN_EPS);
    *out = layer_conv(&u.ps, &m->final_conv, act(&u, y), 1, 1).d;
    return SD_OK;
}

int unet_denoise(void *user, int t, int n, real *out, const real *x)
{
    const UnetDenoiser *d = user;
    real *times = malloc(n * sizeof *times);
    if (!times) return sd_fail("out of memory for %d timesteps", n);
    for (int i = 0; i < n; i++) times[i] = (real)t;
    int rc = unet_forward(d->m, d->p, d->ws, n, d->h, d->w, times, x, out);
    free(times);
    return rc;
}
