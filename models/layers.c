/* Layer declarations and forward helpers (see layers.h). */
#include "layers.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* ------------------------------------------------------------------- tape */

/* The layers with parameters come first (up to OP_LAYER_NORM). */
typedef enum {
    OP_CONV, OP_CONVT, OP_LINEAR, OP_GROUP_NORM, OP_LAYER_NORM,
    OP_ACT, OP_SUM, OP_CONCAT, OP_SPLIT, OP_UPSAMPLE, OP_ATTENTION, OP_TO_TOKENS, OP_FROM_TOKENS, OP_REPARAM,
    OP_BLUR, OP_FILM, OP_GEGLU
} TapeOp;

/* One layer of a training pass: what its backward needs. */
struct TapeEntry {
    TapeOp op;
    union {
        Conv2dShape conv;
        ConvT2dShape convt;
        GroupNormShape gn;
        LayerNormShape ln;
        LinearShape lin;
        AttnShape attn;
        ImageShape img;
    } s;
    int n, c, c2, hw;        /* plumbing: batch, channels (of each part), positions; blur: stride */
    size_t numel;            /* elementwise ops */
    Act act;
    float slope;
    int w, b;                /* layers with parameters: their ids, -1 for none (no bias) */
    const real *x, *x2, *x3; /* inputs (reparameterize: mean, logvar, eps) */
    const real *y, *y2;      /* outputs (split: both halves) */
    const real *saved, *saved2; /* normalization mean/rstd, attention probabilities */
};
typedef struct TapeEntry TapeEntry;

/* Append e to the tape of a training pass (no-op in inference). */
static void record(Pass *ps, const TapeEntry *e)
{
    Workspace *ws = ps->ws;
    if (!ws->training) return;
    if (ws->tape_len == ws->tape_cap) {
        int cap = ws->tape_cap ? 2 * ws->tape_cap : 256;
        TapeEntry *t = realloc(ws->tape, cap * sizeof *t);
        if (!t) sd_die(3, "out of memory for the layer tape");
        ws->tape = t;
        ws->tape_cap = cap;
    }
    ws->tape[ws->tape_len++] = *e;
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
    TapeEntry e = {.op = OP_CONV, .w = c->w, .b = c->b, .x = x.d};
    Conv2dShape *s = &e.s.conv;
    *s = conv2d_shape(ps->n, x.c, x.h, x.w, c->c_out, c->k, stride, 0);
    s->pad_top = pad[0];
    s->pad_bottom = pad[1];
    s->pad_left = pad[2];
    s->pad_right = pad[3];
    shape_ok(conv2d_shape_check(s));
    Fmap y = fmap_take(ps, c->c_out, s->h_out, s->w_out);
    ps->be->conv2d_forward(ps->be->ctx, s, y.d, x.d, w_of(ps, c->w), w_of(ps, c->b));
    e.y = y.d;
    record(ps, &e);
    return y;
}

Fmap layer_conv(Pass *ps, const ConvParams *c, Fmap x, int stride, int pad)
{
    return layer_conv_padded(ps, c, x, stride, (const int[]){pad, pad, pad, pad});
}

Fmap layer_conv_transpose(Pass *ps, const ConvTParams *c, Fmap x, int stride, int pad)
{
    TapeEntry e = {.op = OP_CONVT, .w = c->w, .b = c->b, .x = x.d};
    e.s.convt = (ConvT2dShape){.n = ps->n, .c_in = x.c, .h = x.h, .w = x.w, .c_out = c->c_out, .k = c->k,
                               .stride = stride, .pad = pad};
    shape_ok(conv_transpose2d_shape_check(&e.s.convt));
    Fmap y = fmap_take(ps, c->c_out, e.s.convt.h_out, e.s.convt.w_out);
    ps->be->conv_transpose2d_forward(ps->be->ctx, &e.s.convt, y.d, x.d, w_of(ps, c->w), w_of(ps, c->b));
    e.y = y.d;
    record(ps, &e);
    return y;
}

Fmap layer_group_norm(Pass *ps, const NormParams *g, Fmap x, int groups, float eps)
{
    TapeEntry e = {.op = OP_GROUP_NORM, .w = g->w, .b = g->b, .x = x.d};
    e.s.gn = (GroupNormShape){ps->n, x.c, x.h * x.w, groups, eps};
    shape_ok(group_norm_shape_check(&e.s.gn));
    Fmap y = fmap_take(ps, x.c, x.h, x.w);
    real *mean = ws_take(ps->ws, (size_t)ps->n * groups), *rstd = ws_take(ps->ws, (size_t)ps->n * groups);
    ps->be->group_norm_forward(ps->be->ctx, &e.s.gn, y.d, x.d, w_of(ps, g->w), w_of(ps, g->b), mean, rstd);
    e.y = y.d, e.saved = mean, e.saved2 = rstd;
    record(ps, &e);
    return y;
}

Fmap layer_act(Pass *ps, Act act, float slope, Fmap x)
{
    Fmap y = fmap_take(ps, x.c, x.h, x.w);
    TapeEntry e = {.op = OP_ACT, .numel = fmap_numel(ps, x), .act = act, .slope = slope, .x = x.d, .y = y.d};
    ps->be->act_forward(ps->be->ctx, act, slope, e.numel, y.d, x.d);
    record(ps, &e);
    return y;
}

real *layer_sum(Pass *ps, const real *a, const real *b, size_t n)
{
    real *y = ws_take(ps->ws, n);
    ps->be->add_forward(ps->be->ctx, n, y, a, b);
    record(ps, &(TapeEntry){.op = OP_SUM, .numel = n, .x = a, .x2 = b, .y = y});
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
    record(ps, &(TapeEntry){.op = OP_CONCAT, .n = ps->n, .c = a.c, .c2 = b.c, .hw = a.h * a.w, .x = a.d, .x2 = b.d,
                            .y = y.d});
    return y;
}

/* x [n, 2, half] (two channel halves per sample) <-> a, b [n, half]. */
static void split_halves(const Backend *be, int n, size_t half, real *a, real *b, const real *x)
{
    for (int s = 0; s < n; s++) {
        be->copy(be->ctx, a + s * half, x + 2 * s * half, half * sizeof(real));
        be->copy(be->ctx, b + s * half, x + (2 * s + 1) * half, half * sizeof(real));
    }
}

static void split_halves_backward(const Backend *be, int n, size_t half, real *dx, const real *da, const real *db)
{
    for (int s = 0; s < n; s++) {
        be->axpy(be->ctx, half, 1, da + s * half, dx + 2 * s * half);
        be->axpy(be->ctx, half, 1, db + s * half, dx + (2 * s + 1) * half);
    }
}

void layer_split(Pass *ps, Fmap x, Fmap *a, Fmap *b)
{
    int c = x.c / 2;
    size_t half = (size_t)c * x.h * x.w;
    *a = fmap_take(ps, c, x.h, x.w);
    *b = fmap_take(ps, c, x.h, x.w);
    split_halves(ps->be, ps->n, half, a->d, b->d, x.d);
    record(ps, &(TapeEntry){.op = OP_SPLIT, .n = ps->n, .c = c, .hw = x.h * x.w, .x = x.d, .y = a->d, .y2 = b->d});
}

Fmap layer_upsample(Pass *ps, Fmap x)
{
    TapeEntry e = {.op = OP_UPSAMPLE, .x = x.d};
    e.s.img = (ImageShape){ps->n, x.c, x.h, x.w};
    Fmap y = fmap_take(ps, x.c, 2 * x.h, 2 * x.w);
    ps->be->upsample2x_forward(ps->be->ctx, &e.s.img, y.d, x.d);
    e.y = y.d;
    record(ps, &e);
    return y;
}

Fmap layer_blur(Pass *ps, Fmap x, int stride)
{
    TapeEntry e = {.op = OP_BLUR, .c2 = stride, .x = x.d};
    e.s.img = (ImageShape){ps->n, x.c, x.h, x.w};
    Fmap y = fmap_take(ps, x.c, blur3x3_out(x.h, stride), blur3x3_out(x.w, stride));
    ps->be->blur3x3_forward(ps->be->ctx, &e.s.img, stride, y.d, x.d);
    e.y = y.d;
    record(ps, &e);
    return y;
}

Fmap layer_film(Pass *ps, Fmap x, const real *scale, const real *shift)
{
    Fmap y = fmap_take(ps, x.c, x.h, x.w);
    ps->be->film_forward(ps->be->ctx, ps->n, x.c, x.h * x.w, y.d, x.d, scale, shift);
    record(ps, &(TapeEntry){.op = OP_FILM, .n = ps->n, .c = x.c, .hw = x.h * x.w, .x = x.d, .x2 = scale,
                            .x3 = shift, .y = y.d});
    return y;
}

real *layer_geglu(Pass *ps, const real *x, int rows, int dim)
{
    real *y = ws_take(ps->ws, (size_t)rows * dim);
    ps->be->geglu_forward(ps->be->ctx, rows, dim, y, x);
    record(ps, &(TapeEntry){.op = OP_GEGLU, .n = rows, .c = dim, .x = x, .y = y});
    return y;
}

real *layer_linear(Pass *ps, const LinearParams *l, const real *x, int rows)
{
    TapeEntry e = {.op = OP_LINEAR, .w = l->w, .b = l->b, .x = x};
    e.s.lin = (LinearShape){rows, l->in, l->out};
    shape_ok(linear_shape_check(&e.s.lin));
    real *y = ws_take(ps->ws, (size_t)rows * l->out);
    ps->be->linear_forward(ps->be->ctx, &e.s.lin, y, x, w_of(ps, l->w), w_of(ps, l->b));
    e.y = y;
    record(ps, &e);
    return y;
}

real *layer_layer_norm(Pass *ps, const NormParams *g, const real *x, int rows, float eps)
{
    TapeEntry e = {.op = OP_LAYER_NORM, .w = g->w, .b = g->b, .x = x};
    e.s.ln = (LayerNormShape){rows, g->c, eps};
    shape_ok(layer_norm_shape_check(&e.s.ln));
    real *y = ws_take(ps->ws, (size_t)rows * g->c);
    real *mean = ws_take(ps->ws, rows), *rstd = ws_take(ps->ws, rows);
    ps->be->layer_norm_forward(ps->be->ctx, &e.s.ln, y, x, w_of(ps, g->w), w_of(ps, g->b), mean, rstd);
    e.y = y, e.saved = mean, e.saved2 = rstd;
    record(ps, &e);
    return y;
}

real *layer_attention(Pass *ps, const real *qkv, int len, int heads, int c)
{
    TapeEntry e = {.op = OP_ATTENTION, .x = qkv};
    e.s.attn = (AttnShape){ps->n, len, heads, c / heads};
    shape_ok(attn_shape_check(&e.s.attn));
    real *out = ws_take(ps->ws, (size_t)ps->n * len * c);
    real *probs = ws_take(ps->ws, (size_t)ps->n * heads * len * len);
    ps->be->attention_forward(ps->be->ctx, &e.s.attn, out, probs, qkv);
    e.y = out, e.saved = probs;
    record(ps, &e);
    return out;
}

real *layer_to_tokens(Pass *ps, Fmap x)
{
    real *y = ws_take(ps->ws, fmap_numel(ps, x));
    ps->be->nchw_to_nlc_forward(ps->be->ctx, ps->n, x.c, x.h * x.w, y, x.d);
    record(ps, &(TapeEntry){.op = OP_TO_TOKENS, .n = ps->n, .c = x.c, .hw = x.h * x.w, .x = x.d, .y = y});
    return y;
}

Fmap layer_from_tokens(Pass *ps, const real *tokens, int c, int h, int w)
{
    Fmap y = fmap_take(ps, c, h, w);
    ps->be->nlc_to_nchw_forward(ps->be->ctx, ps->n, c, h * w, y.d, tokens);
    record(ps, &(TapeEntry){.op = OP_FROM_TOKENS, .n = ps->n, .c = c, .hw = h * w, .x = tokens, .y = y.d});
    return y;
}

real *layer_reparameterize(Pass *ps, const real *mean, const real *logvar, const real *eps, size_t n)
{
    real *z = ws_take(ps->ws, n);
    ps->be->reparameterize_forward(ps->be->ctx, n, z, mean, logvar, eps);
    record(ps, &(TapeEntry){.op = OP_REPARAM, .numel = n, .x = mean, .x2 = logvar, .x3 = eps, .y = z});
    return z;
}

/* x[0..n) = value, in backend memory. */
static void fill_constant(const Backend *be, real *x, size_t n, real value)
{
    real *h = malloc(n * sizeof *h + 1);
    if (!h) sd_die(3, "out of memory for a constant of %zu values", n);
    for (size_t i = 0; i < n; i++) h[i] = value;
    be->upload(be->ctx, x, h, n * sizeof *h);
    free(h);
}

real *layer_constant(Pass *ps, size_t n, real value)
{
    real *y = ws_take(ps->ws, n);
    fill_constant(ps->be, y, n, value);
    return y;
}

Fmap layer_input(Pass *ps, Fmap x)
{
    if (ps->ws->next != 0) sd_die(4, "internal error: layer_input after the pass's first buffer");
    Fmap y = fmap_take(ps, x.c, x.h, x.w);
    ps->be->copy(ps->be->ctx, y.d, x.d, fmap_numel(ps, x) * sizeof(real));
    return y;
}

void layers_init_torch(const Params *p, uint64_t seed)
{
    const Backend *be = p->be;
    double fan_in = 1;
    for (int i = 0; i < p->list.count; i++) {
        const NamedTensor *t = &p->list.t[i];
        real *w = param_w(p, i);
        if (t->group == PARAM_NO_DECAY) {
            fill_constant(be, w, t->numel, strstr(t->name, ".weight") ? 1 : 0);
            continue;
        }
        if (t->ndim > 1) fan_in = (double)t->numel / t->shape[0]; /* a bias follows its weight */
        real bound = (real)(1 / sqrt(fan_in));
        be->fill_uniform(be->ctx, t->numel, w, -bound, bound, seed, (uint64_t)i, 0);
    }
}

/* ------------------------------------------------------------------ backward */

static real *g_of(const Params *p, int id) { return id < 0 ? NULL : param_grad(p, id); }

/* Layers whose gradient reaches only their input(s) through one operator. */
static void plumbing_backward(const Backend *be, Workspace *ws, const TapeEntry *e, const real *dy)
{
    void *ctx = be->ctx;
    real *dx = ws_grad(ws, e->x);
    switch (e->op) {
    case OP_SUM:
        if (dx) be->axpy(ctx, e->numel, 1, dy, dx);
        if (ws_grad(ws, e->x2)) be->axpy(ctx, e->numel, 1, dy, ws_grad(ws, e->x2));
        break;
    case OP_CONCAT: be->concat_backward(ctx, e->n, e->c, e->c2, e->hw, dx, ws_grad(ws, e->x2), dy); break;
    case OP_SPLIT:
        if (dx) split_halves_backward(be, e->n, (size_t)e->c * e->hw, dx, dy, ws_grad(ws, e->y2));
        break;
    case OP_UPSAMPLE:
        if (dx) be->upsample2x_backward(ctx, &e->s.img, dx, dy);
        break;
    case OP_TO_TOKENS:
        if (dx) be->nchw_to_nlc_backward(ctx, e->n, e->c, e->hw, dx, dy);
        break;
    case OP_FROM_TOKENS:
        if (dx) be->nlc_to_nchw_backward(ctx, e->n, e->c, e->hw, dx, dy);
        break;
    case OP_ACT:
        if (dx) be->act_backward(ctx, e->act, e->slope, e->numel, dx, dy, e->x);
        break;
    case OP_ATTENTION:
        if (dx) be->attention_backward(ctx, &e->s.attn, dx, dy, e->x, e->saved);
        break;
    case OP_BLUR:
        if (dx) be->blur3x3_backward(ctx, &e->s.img, e->c2, dx, dy);
        break;
    case OP_FILM:
        be->film_backward(ctx, e->n, e->c, e->hw, dx, ws_grad(ws, e->x2), ws_grad(ws, e->x3), dy, e->x, e->x2);
        break;
    case OP_GEGLU:
        if (dx) be->geglu_backward(ctx, e->n, e->c, dx, dy, e->x);
        break;
    case OP_REPARAM: be->reparameterize_backward(ctx, e->numel, dx, ws_grad(ws, e->x2), dy, e->x2, e->x3); break;
    default: break;
    }
}

/* Layers with parameters. */
static void weighted_backward(const Params *p, Workspace *ws, const TapeEntry *e, const real *dy)
{
    const Backend *be = p->be;
    void *ctx = be->ctx;
    real *dx = ws_grad(ws, e->x), *dw = g_of(p, e->w), *db = g_of(p, e->b);
    const real *w = e->w < 0 ? NULL : param_w(p, e->w);
    switch (e->op) {
    case OP_CONV: be->conv2d_backward(ctx, &e->s.conv, dx, dw, db, dy, e->x, w); break;
    case OP_CONVT: be->conv_transpose2d_backward(ctx, &e->s.convt, dx, dw, db, dy, e->x, w); break;
    case OP_LINEAR: be->linear_backward(ctx, &e->s.lin, dx, dw, db, dy, e->x, w); break;
    case OP_GROUP_NORM: be->group_norm_backward(ctx, &e->s.gn, dx, dw, db, dy, e->x, w, e->saved, e->saved2); break;
    case OP_LAYER_NORM: be->layer_norm_backward(ctx, &e->s.ln, dx, dw, db, dy, e->x, w, e->saved, e->saved2); break;
    default: break;
    }
}

const real *layers_input_grad(const Workspace *ws) { return ws->next > 0 ? ws_grad(ws, ws->buf[0]) : NULL; }

void layers_backward(const Params *p, Workspace *ws)
{
    if (!ws->training) sd_die(4, "internal error: layers_backward after an inference pass");
    for (int i = ws->tape_len - 1; i >= 0; i--) {
        const TapeEntry *e = &ws->tape[i];
        const real *dy = ws_grad(ws, e->y);
        if (e->op <= OP_LAYER_NORM) weighted_backward(p, ws, e, dy);
        else plumbing_backward(p->be, ws, e, dy);
    }
}
