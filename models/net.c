/* Layer lists over one activation arena (see net.h). */
#include "net.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/err.h"
#include "layers.h"

#define ARENA_ALIGN 16 /* reals: every activation starts on a 64-byte boundary */

void net_init(Net *n, const Backend *be)
{
    memset(n, 0, sizeof *n);
    n->be = be;
    params_init(&n->params, be);
}

/* A builder failed (its message is recorded); later builders see x < 0 and pass it on. */
static int net_fail(Net *n)
{
    n->failed = 1;
    return -1;
}

static int add_act(Net *n, int c, int h, int w, int batched)
{
    NetAct *a = realloc(n->act, (n->nact + 1) * sizeof *a);
    if (!a) {
        sd_fail("out of memory building a network");
        return net_fail(n);
    }
    n->act = a;
    n->act[n->nact] = (NetAct){.c = c, .h = h, .w = w, .batched = batched, .grad = 1};
    return n->nact++;
}

/* Append a fully described layer; returns its output activation or -1. */
static int push_layer(Net *n, const NetLayer *l)
{
    if (l->out < 0 || l->w < 0 || l->b < 0 || l->mean < 0 || l->var < 0 || l->saved < 0) return net_fail(n);
    NetLayer *a = realloc(n->layer, (n->nlayer + 1) * sizeof *a);
    if (!a) {
        sd_fail("out of memory building a network");
        return net_fail(n);
    }
    n->layer = a;
    n->layer[n->nlayer++] = *l;
    return l->out;
}

static int add_buffer(Net *n, const char *layer, const char *what, int c)
{
    char name[PARAM_NAME_MAX];
    snprintf(name, sizeof name, "%s.%s", layer, what);
    return params_add_buffer(&n->params, name, 1, &c);
}

int net_input(Net *n, int c, int h, int w)
{
    int x = add_act(n, c, h, w, 1);
    if (x >= 0) n->act[x].grad = 0; /* nothing upstream needs it */
    return x;
}

int net_conv(Net *n, int x, const char *name, int c_out, int k, int pad)
{
    if (x < 0) return -1;
    NetAct a = n->act[x];
    NetLayer l = {.kind = LAYER_CONV, .in = x, .in2 = -1};
    l.s.conv = conv2d_shape(1, a.c, a.h, a.w, c_out, k, 1, pad);
    if (conv2d_shape_check(&l.s.conv)) return net_fail(n);
    ConvParams p = declare_conv(&n->params, a.c, c_out, k, "%s", name);
    l.w = p.w, l.b = p.b;
    l.out = add_act(n, c_out, l.s.conv.h_out, l.s.conv.w_out, 1);
    return push_layer(n, &l);
}

int net_conv_transpose(Net *n, int x, const char *name, int c_out, int k)
{
    if (x < 0) return -1;
    NetAct a = n->act[x];
    NetLayer l = {.kind = LAYER_CONVT, .in = x, .in2 = -1};
    l.s.convt = (ConvT2dShape){.n = 1, .c_in = a.c, .h = a.h, .w = a.w, .c_out = c_out, .k = k, .stride = k};
    if (conv_transpose2d_shape_check(&l.s.convt)) return net_fail(n);
    ConvTParams p = declare_conv_transpose(&n->params, a.c, c_out, k, "%s", name);
    l.w = p.w, l.b = p.b;
    l.out = add_act(n, c_out, l.s.convt.h_out, l.s.convt.w_out, 1);
    return push_layer(n, &l);
}

int net_batch_norm(Net *n, int x, const char *name, float eps, float momentum)
{
    if (x < 0) return -1;
    NetAct a = n->act[x];
    NetLayer l = {.kind = LAYER_BN, .in = x, .in2 = -1};
    l.s.bn = (BatchNormShape){.n = 1, .c = a.c, .hw = a.h * a.w, .eps = eps, .momentum = momentum};
    if (batch_norm_shape_check(&l.s.bn)) return net_fail(n);
    NormParams p = declare_norm(&n->params, a.c, "%s", name);
    l.w = p.w, l.b = p.b;
    l.mean = add_buffer(n, name, "running_mean", a.c);
    l.var = add_buffer(n, name, "running_var", a.c);
    l.saved = add_act(n, 2 * a.c, 1, 1, 0);
    l.out = add_act(n, a.c, a.h, a.w, 1);
    return push_layer(n, &l);
}

int net_relu(Net *n, int x)
{
    if (x < 0) return -1;
    NetLayer l = {.kind = LAYER_RELU, .in = x, .in2 = -1};
    l.out = add_act(n, n->act[x].c, n->act[x].h, n->act[x].w, 1);
    return push_layer(n, &l);
}

int net_max_pool(Net *n, int x)
{
    if (x < 0) return -1;
    NetAct a = n->act[x];
    NetLayer l = {.kind = LAYER_MAXPOOL, .in = x, .in2 = -1};
    l.s.img = (ImageShape){.n = 1, .c = a.c, .h = a.h, .w = a.w};
    if (image_shape_check(&l.s.img, 2)) return net_fail(n);
    l.out = add_act(n, a.c, a.h / 2, a.w / 2, 1);
    return push_layer(n, &l);
}

int net_concat(Net *n, int a, int b)
{
    if (a < 0 || b < 0) return -1;
    NetAct x = n->act[a], y = n->act[b];
    if (x.h != y.h || x.w != y.w) {
        sd_fail("concat: spatial sizes differ (%dx%d and %dx%d)", x.h, x.w, y.h, y.w);
        return net_fail(n);
    }
    NetLayer l = {.kind = LAYER_CONCAT, .in = a, .in2 = b};
    l.out = add_act(n, x.c + y.c, x.h, x.w, 1);
    return push_layer(n, &l);
}

/* ------------------------------------------------------------ memory */

static size_t act_size(const NetAct *a, int batch) { return (size_t)(a->batched ? batch : 1) * a->c * a->h * a->w; }

int net_alloc(Net *n, int max_batch, int training)
{
    if (n->failed) return SD_ERR;
    if (max_batch < 1) return sd_fail("batch size must be at least 1 (got %d)", max_batch);
    if (params_alloc(&n->params, training)) return SD_ERR;
    size_t total = 0;
    for (int i = 0; i < n->nact; i++) {
        n->act[i].offset = total;
        total += (act_size(&n->act[i], max_batch) + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
    }
    n->max_batch = max_batch;
    n->value = n->be->alloc(n->be->ctx, total * sizeof(real));
    if (training) n->grad = n->be->alloc(n->be->ctx, total * sizeof(real));
    n->arena_len = total;
    return SD_OK;
}

void net_free(Net *n)
{
    if (n->value) n->be->release(n->be->ctx, n->value);
    if (n->grad) n->be->release(n->be->ctx, n->grad);
    params_free(&n->params);
    free(n->act);
    free(n->layer);
    net_init(n, n->be);
}

real *net_value(const Net *n, int act) { return n->value + n->act[act].offset; }
real *net_grad(const Net *n, int act) { return n->act[act].grad ? n->grad + n->act[act].offset : NULL; }
size_t net_act_numel(const Net *n, int act, int batch) { return act_size(&n->act[act], batch); }

/* ------------------------------------------------------------ initialization */

static void fill_const(const Backend *be, real *x, int count, real v)
{
    real *h = malloc((size_t)count * sizeof *h);
    if (!h) sd_die(3, "out of memory initializing a network");
    for (int i = 0; i < count; i++) h[i] = v;
    be->upload(be->ctx, x, h, (size_t)count * sizeof *h);
    free(h);
}

static void fill_fan_in(Net *n, int id, int fan_in, uint64_t seed)
{
    const Params *p = &n->params;
    real bound = (real)(1 / sqrt((double)fan_in));
    n->be->fill_uniform(n->be->ctx, p->list.t[id].numel, param_w(p, id), -bound, bound, seed, (uint64_t)id, 0);
}

void net_init_params(Net *n, uint64_t seed)
{
    const Params *p = &n->params;
    for (int i = 0; i < n->nlayer; i++) {
        const NetLayer *l = &n->layer[i];
        int fan_in = l->kind == LAYER_CONV    ? l->s.conv.c_in * l->s.conv.kh * l->s.conv.kw
                     : l->kind == LAYER_CONVT ? l->s.convt.c_out * l->s.convt.k * l->s.convt.k /* torch: weight dim 1 */
                                              : 0;
        if (fan_in) {
            fill_fan_in(n, l->w, fan_in, seed);
            fill_fan_in(n, l->b, fan_in, seed);
        } else if (l->kind == LAYER_BN) {
            int c = l->s.bn.c;
            fill_const(n->be, param_w(p, l->w), c, 1);
            fill_const(n->be, param_w(p, l->b), c, 0);
            fill_const(n->be, param_buf(p, l->mean), c, 0);
            fill_const(n->be, param_buf(p, l->var), c, 1);
        }
    }
}

/* ------------------------------------------------------------ passes */

static void bn_forward(Net *n, NetLayer *l, int train)
{
    const Params *p = &n->params;
    void *ctx = n->be->ctx;
    real *y = net_value(n, l->out), *saved = net_value(n, l->saved);
    real *mean = param_buf(p, l->mean), *var = param_buf(p, l->var);
    const real *x = net_value(n, l->in), *gamma = param_w(p, l->w), *beta = param_w(p, l->b);
    if (train)
        n->be->batch_norm_forward_train(ctx, &l->s.bn, y, x, gamma, beta, saved, saved + l->s.bn.c, mean, var);
    else
        n->be->batch_norm_forward_eval(ctx, &l->s.bn, y, x, gamma, beta, mean, var);
}

static void layer_forward(Net *n, NetLayer *l, int batch, int train)
{
    const Backend *be = n->be;
    const Params *p = &n->params;
    real *y = net_value(n, l->out);
    const real *x = net_value(n, l->in);
    NetAct a = n->act[l->in];
    switch (l->kind) {
    case LAYER_CONV:
        l->s.conv.n = batch;
        be->conv2d_forward(be->ctx, &l->s.conv, y, x, param_w(p, l->w), param_w(p, l->b));
        break;
    case LAYER_CONVT:
        l->s.convt.n = batch;
        be->conv_transpose2d_forward(be->ctx, &l->s.convt, y, x, param_w(p, l->w), param_w(p, l->b));
        break;
    case LAYER_BN:
        l->s.bn.n = batch;
        bn_forward(n, l, train);
        break;
    case LAYER_RELU: be->act_forward(be->ctx, ACT_RELU, 0, act_size(&a, batch), y, x); break;
    case LAYER_MAXPOOL:
        l->s.img.n = batch;
        be->max_pool2x2_forward(be->ctx, &l->s.img, y, x);
        break;
    case LAYER_CONCAT:
        be->concat_forward(be->ctx, batch, a.c, n->act[l->in2].c, a.h * a.w, y, x, net_value(n, l->in2));
        break;
    }
}

void net_forward_layers(Net *n, int count, int batch, int train)
{
    for (int i = 0; i < count && i < n->nlayer; i++) layer_forward(n, &n->layer[i], batch, train);
}

void net_forward(Net *n, int batch, int train) { net_forward_layers(n, n->nlayer, batch, train); }

void net_backward_begin(Net *n) { n->be->zero(n->be->ctx, n->grad, n->arena_len * sizeof(real)); }

static void layer_backward(Net *n, const NetLayer *l, int batch)
{
    const Backend *be = n->be;
    const Params *p = &n->params;
    const real *dy = net_grad(n, l->out), *x = net_value(n, l->in);
    real *dx = net_grad(n, l->in);
    NetAct a = n->act[l->in];
    switch (l->kind) {
    case LAYER_CONV:
        be->conv2d_backward(be->ctx, &l->s.conv, dx, param_grad(p, l->w), param_grad(p, l->b), dy, x, param_w(p, l->w));
        break;
    case LAYER_CONVT:
        be->conv_transpose2d_backward(be->ctx, &l->s.convt, dx, param_grad(p, l->w), param_grad(p, l->b), dy, x,
                                      param_w(p, l->w));
        break;
    case LAYER_BN: {
        const real *saved = net_value(n, l->saved);
        be->batch_norm_backward(be->ctx, &l->s.bn, dx, param_grad(p, l->w), param_grad(p, l->b), dy, x,
                                param_w(p, l->w), saved, saved + l->s.bn.c);
        break;
    }
    case LAYER_RELU: be->act_backward(be->ctx, ACT_RELU, 0, act_size(&a, batch), dx, dy, x); break;
    case LAYER_MAXPOOL: be->max_pool2x2_backward(be->ctx, &l->s.img, dx, dy, x); break;
    case LAYER_CONCAT:
        be->concat_backward(be->ctx, batch, a.c, n->act[l->in2].c, a.h * a.w, dx, net_grad(n, l->in2), dy);
        break;
    }
}

void net_backward(Net *n, int batch)
{
    for (int i = n->nlayer - 1; i >= 0; i--) layer_backward(n, &n->layer[i], batch);
}
