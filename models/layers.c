/* Layer declarations and forward helpers (see layers.h). */
#include "layers.h"

#include <stdarg.h>
#include <stdio.h>

#include "../core/err.h"

/* ------------------------------------------------------------ declarations */

/* Declares <name>.<leaf>; over-long names are caught by params_add (PARAM_NAME_MAX). */
static int declare(Params *p, const char *name, const char *leaf, int ndim, const int *shape, ParamGroup group)
{
    char full[PARAM_NAME_MAX + 16];
    snprintf(full, sizeof full, "%s.%s", name, leaf);
    return params_add(p, full, ndim, shape, group);
}

#define FORMAT_NAME(buf, fmt)                \
    char buf[PARAM_NAME_MAX];                \
    do {                                     \
        va_list ap;                          \
        va_start(ap, fmt);                   \
        vsnprintf(buf, sizeof buf, fmt, ap); \
        va_end(ap);                          \
    } while (0)

ConvParams declare_conv(Params *p, int c_in, int c_out, int k, const char *fmt, ...)
{
    FORMAT_NAME(name, fmt);
    ConvParams c = {0, 0, c_in, c_out, k};
    c.w = declare(p, name, "weight", 4, (const int[]){c_out, c_in, k, k}, PARAM_DECAY);
    c.b = declare(p, name, "bias", 1, &c_out, PARAM_DECAY);
    return c;
}

ConvTParams declare_conv_transpose(Params *p, int c_in, int c_out, int k, const char *fmt, ...)
{
    FORMAT_NAME(name, fmt);
    ConvTParams c = {0, 0, c_in, c_out, k};
    c.w = declare(p, name, "weight", 4, (const int[]){c_in, c_out, k, k}, PARAM_DECAY);
    c.b = declare(p, name, "bias", 1, &c_out, PARAM_DECAY);
    return c;
}

LinearParams declare_linear(Params *p, int in, int out, int bias, const char *fmt, ...)
{
    FORMAT_NAME(name, fmt);
    LinearParams l = {0, -1, in, out};
    l.w = declare(p, name, "weight", 2, (const int[]){out, in}, PARAM_DECAY);
    if (bias) l.b = declare(p, name, "bias", 1, &out, PARAM_DECAY);
    return l;
}

NormParams declare_norm(Params *p, int c, const char *fmt, ...)
{
    FORMAT_NAME(name, fmt);
    NormParams n = {0, 0, c};
    n.w = declare(p, name, "weight", 1, &c, PARAM_NO_DECAY);
    n.b = declare(p, name, "bias", 1, &c, PARAM_NO_DECAY);
    return n;
}

/* ----------------------------------------------------------------- forward */

static real *w_of(const Pass *ps, int id) { return id < 0 ? NULL : param_w(ps->p, id); }

size_t fmap_numel(const Pass *ps, Fmap x) { return (size_t)ps->n * x.c * x.h * x.w; }

static Fmap fmap_take(Pass *ps, int c, int h, int w)
{
    Fmap y = {NULL, c, h, w};
    y.d = ws_take(ps->ws, fmap_numel(ps, y));
    return y;
}

/* Shapes come from a validated model config: a failing check is a bug, not bad input. */
static void shape_ok(int rc)
{
    if (rc) sd_die(4, "internal error: %s", sd_last_error());
}

Fmap layer_conv_padded(Pass *ps, const ConvParams *c, Fmap x, int stride, const int pad[4])
{
    Conv2dShape s = conv2d_shape(ps->n, x.c, x.h, x.w, c->c_out, c->k, stride, 0);
    s.pad_top = pad[0];
    s.pad_bottom = pad[1];
    s.pad_left = pad[2];
    s.pad_right = pad[3];
    shape_ok(conv2d_shape_check(&s));
    Fmap y = fmap_take(ps, c->c_out, s.h_out, s.w_out);
    ps->be->conv2d_forward(ps->be->ctx, &s, y.d, x.d, w_of(ps, c->w), w_of(ps, c->b));
    return y;
}

Fmap layer_conv(Pass *ps, const ConvParams *c, Fmap x, int stride, int pad)
{
    return layer_conv_padded(ps, c, x, stride, (const int[]){pad, pad, pad, pad});
}

Fmap layer_conv_transpose(Pass *ps, const ConvTParams *c, Fmap x, int stride, int pad)
{
    ConvT2dShape s = {.n = ps->n, .c_in = x.c, .h = x.h, .w = x.w, .c_out = c->c_out, .k = c->k, .stride = stride,
                      .pad = pad};
    shape_ok(conv_transpose2d_shape_check(&s));
    Fmap y = fmap_take(ps, c->c_out, s.h_out, s.w_out);
    ps->be->conv_transpose2d_forward(ps->be->ctx, &s, y.d, x.d, w_of(ps, c->w), w_of(ps, c->b));
    return y;
}

Fmap layer_group_norm(Pass *ps, const NormParams *g, Fmap x, int groups, float eps)
{
    GroupNormShape s = {ps->n, x.c, x.h * x.w, groups, eps};
    shape_ok(group_norm_shape_check(&s));
    Fmap y = fmap_take(ps, x.c, x.h, x.w);
    real *mean = ws_take(ps->ws, (size_t)ps->n * groups), *rstd = ws_take(ps->ws, (size_t)ps->n * groups);
    ps->be->group_norm_forward(ps->be->ctx, &s, y.d, x.d, w_of(ps, g->w), w_of(ps, g->b), mean, rstd);
    return y;
}

Fmap layer_act(Pass *ps, Act act, float slope, Fmap x)
{
    Fmap y = fmap_take(ps, x.c, x.h, x.w);
    ps->be->act_forward(ps->be->ctx, act, slope, fmap_numel(ps, x), y.d, x.d);
    return y;
}

real *layer_sum(Pass *ps, const real *a, const real *b, size_t n)
{
    real *y = ws_take(ps->ws, n);
    ps->be->add_forward(ps->be->ctx, n, y, a, b);
    return y;
}

Fmap layer_add(Pass *ps, Fmap a, Fmap b)
{
    return (Fmap){layer_sum(ps, a.d, b.d, fmap_numel(ps, a)), a.c, a.h, a.w};
}

Fmap layer_concat(Pass *ps, Fmap a, Fmap b)
{
    Fmap y = fmap_take(ps, a.c + b.c, a.h, a.w);
    ps->be->concat_forward(ps->be->ctx, ps->n, a.c, b.c, a.h * a.w, y.d, a.d, b.d);
    return y;
}

Fmap layer_upsample(Pass *ps, Fmap x)
{
    ImageShape s = {ps->n, x.c, x.h, x.w};
    Fmap y = fmap_take(ps, x.c, 2 * x.h, 2 * x.w);
    ps->be->upsample2x_forward(ps->be->ctx, &s, y.d, x.d);
    return y;
}

real *layer_linear(Pass *ps, const LinearParams *l, const real *x, int rows)
{
    LinearShape s = {rows, l->in, l->out};
    shape_ok(linear_shape_check(&s));
    real *y = ws_take(ps->ws, (size_t)rows * l->out);
    ps->be->linear_forward(ps->be->ctx, &s, y, x, w_of(ps, l->w), w_of(ps, l->b));
    return y;
}

real *layer_layer_norm(Pass *ps, const NormParams *g, const real *x, int rows, float eps)
{
    LayerNormShape s = {rows, g->c, eps};
    shape_ok(layer_norm_shape_check(&s));
    real *y = ws_take(ps->ws, (size_t)rows * g->c);
    real *mean = ws_take(ps->ws, rows), *rstd = ws_take(ps->ws, rows);
    ps->be->layer_norm_forward(ps->be->ctx, &s, y, x, w_of(ps, g->w), w_of(ps, g->b), mean, rstd);
    return y;
}

real *layer_attention(Pass *ps, const real *qkv, int len, int heads, int c)
{
    AttnShape s = {ps->n, len, heads, c / heads};
    shape_ok(attn_shape_check(&s));
    real *out = ws_take(ps->ws, (size_t)ps->n * len * c);
    real *probs = ws_take(ps->ws, (size_t)ps->n * heads * len * len);
    ps->be->attention_forward(ps->be->ctx, &s, out, probs, qkv);
    return out;
}

real *layer_to_tokens(Pass *ps, Fmap x)
{
    real *y = ws_take(ps->ws, fmap_numel(ps, x));
    ps->be->nchw_to_nlc_forward(ps->be->ctx, ps->n, x.c, x.h * x.w, y, x.d);
    return y;
}

Fmap layer_from_tokens(Pass *ps, const real *tokens, int c, int h, int w)
{
    Fmap y = fmap_take(ps, c, h, w);
    ps->be->nlc_to_nchw_forward(ps->be->ctx, ps->n, c, h * w, y.d, tokens);
    return y;
}
