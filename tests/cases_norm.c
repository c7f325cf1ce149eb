/* Cases for batch, group and layer normalization. Shapes come from the x spec:
 * [n, c, rest...] (hw = product of the rest) for batch/group norm, [rows, dim] for layer
 * norm. Inputs: x, gamma, beta (, running_mean, running_var for batch norm). */
#include "op_case.h"

static void nchw_dims(const char *spec, int *n, int *c, int *hw)
{
    int d[4];
    int nd = spec_dims(spec, d);
    *n = d[0];
    *c = d[1];
    *hw = 1;
    for (int i = 2; i < nd; i++) *hw *= d[i];
}

/* ----------------------------------------------------------- batch norm */

static BatchNormShape bn_shape(const OpCase *c)
{
    BatchNormShape s = {.eps = (float)case_float(c, "eps", 1e-5), .momentum = (float)case_float(c, "momentum", 0.1)};
    nchw_dims(c->in[0], &s.n, &s.c, &s.hw);
    return s;
}

/* Training forward; the running stats start as copies of in[3], in[4] (so the case can
 * run twice) and are updated in rm, rv. aux: save_mean, save_rstd. */
static void bn_train(const Backend *be, const OpCase *c, real *const *in, real *y, real *const *aux, real *rm,
                     real *rv)
{
    BatchNormShape s = bn_shape(c);
    be->copy(be->ctx, rm, in[3], (size_t)s.c * sizeof(real));
    be->copy(be->ctx, rv, in[4], (size_t)s.c * sizeof(real));
    be->batch_norm_forward_train(be->ctx, &s, y, in[0], in[1], in[2], aux[0], aux[1], rm, rv);
}

/* Output y only (running stats in aux[2], aux[3]): their dependence on x has no
 * backward, so they stay out of the finite-difference loss. */
static void bn_train_fwd(const Backend *be, const OpCase *c, real *const *in, real *const *out, real *const *aux)
{
    bn_train(be, c, in, out[0], aux, aux[2], aux[3]);
}

/* Outputs y, running_mean, running_var (oracle only). */
static void bn_train_stats_fwd(const Backend *be, const OpCase *c, real *const *in, real *const *out,
                               real *const *aux)
{
    bn_train(be, c, in, out[0], aux, out[1], out[2]);
}

static void bn_train_bwd(const Backend *be, const OpCase *c, real *const *in, real *const *out, real *const *aux,
                         real *const *dout, real *const *din)
{
    (void)out;
    BatchNormShape s = bn_shape(c);
    be->batch_norm_backward(be->ctx, &s, din[0], din[1], din[2], dout[0], in[0], in[1], aux[0], aux[1]);
}

static void bn_eval_fwd(const Backend *be, const OpCase *c, real *const *in, real *const *out, real *const *aux)
{
    (void)aux;
    BatchNormShape s = bn_shape(c);
    be->batch_norm_forward_eval(be->ctx, &s, out[0], in[0], in[1], in[2], in[3], in[4]);
}

#define BN_IN(x, ch) {x, ch, ch, ch, ch ":0.5:2"}
#define BN_AUX(ch) {ch, ch, ch, ch}

#define BN_TRAIN_CASE(nm, x, ch, prm) \
    {.name = "batch_norm/train/" nm, .op = "batch_norm_train", .params = prm, .in = BN_IN(x, ch), \
     .out = {x}, .aux = BN_AUX(ch), .grad = 7, .forward = bn_train_fwd, .backward = bn_train_bwd}

#define BN_STATS_CASE(nm, x, ch, prm) \
    {.name = "batch_norm/train_stats/" nm, .op = "batch_norm_train_stats", .params = prm, .in = BN_IN(x, ch), \
     .out = {x, ch, ch}, .aux = BN_AUX(ch), .forward = bn_train_stats_fwd}

/* eval mode has no backward operator (training always uses batch statistics) */
#define BN_EVAL_CASE(nm, x, ch, prm) \
    {.name = "batch_norm/eval/" nm, .op = "batch_norm_eval", .params = prm, .in = BN_IN(x, ch), .out = {x}, \
     .forward = bn_eval_fwd}

/* ----------------------------------------------------------- group norm */

static GroupNormShape gn_shape(const OpCase *c)
{
    GroupNormShape s = {.groups = case_int(c, "groups", 1), .eps = (float)case_float(c, "eps", 1e-5)};
    nchw_dims(c->in[0], &s.n, &s.c, &s.hw);
    return s;
}

static void gn_fwd(const Backend *be, const OpCase *c, real *const *in, real *const *out, real *const *aux)
{
    GroupNormShape s = gn_shape(c);
    be->group_norm_forward(be->ctx, &s, out[0], in[0], in[1], in[2], aux[0], aux[1]);
}

static void gn_bwd(const Backend *be, const OpCase *c, real *const *in, real *const *out, real *const *aux,
                   real *const *dout, real *const *din)
{
    (void)out;
    GroupNormShape s = gn_shape(c);
    be->group_norm_backward(be->ctx, &s, din[0], din[1], din[2], dout[0], in[0], in[1], aux[0], aux[1]);
}

/* stats: the n*groups spec of the saved mean/rstd */
#define GN_CASE(nm, x, ch, stats, prm) \
    {.name = "group_norm/" nm, .op = "group_norm", .params = prm, .in = {x, ch, ch}, .out = {x}, \
     .aux = {stats, stats}, .grad = 7, .forward = gn_fwd, .backward = gn_bwd}

/* ----------------------------------------------------------- layer norm */

static LayerNormShape ln_shape(const OpCase *c)
{
    int d[4];
    spec_dims(c->in[0], d);
    LayerNormShape s = {.rows = d[0], .dim = d[1], .eps = (float)case_float(c, "eps", 1e-5)};
    return s;
}

static void ln_fwd(const Backend *be, const OpCase *c, real *const *in, real *const *out, real *const *aux)
{
    LayerNormShape s = ln_shape(c);
    be->layer_norm_forward(be->ctx, &s, out[0], in[0], in[1], in[2], aux[0], aux[1]);
}

static void ln_bwd(const Backend *be, const OpCase *c, real *const *in, real *const *out, real *const *aux,
                   real *const *dout, real *const *din)
{
    (void)out;
    LayerNormShape s = ln_shape(c);
    be->layer_norm_backward(be->ctx, &s, din[0], din[1], din[2], dout[0], in[0], in[1], aux[0], aux[1]);
}

#define LN_CASE(nm, x, dim, rows, prm) \
    {.name = "layer_norm/" nm, .op = "layer_norm", .params = prm, .in = {x, dim, dim}, .out = {x}, \
     .aux = {rows, rows}, .grad = 7, .forward = ln_fwd, .backward = ln_bwd}

const OpCase cases_norm[] = {
    BN_TRAIN_CASE("2x5x7", "2x5x7:-2:3", "5", "eps=1e-5 momentum=0.1"),
    BN_TRAIN_CASE("4x3x3x3", "4x3x3x3", "3", "eps=1e-3 momentum=0.1"),
    BN_TRAIN_CASE("1x9x3", "1x9x3", "9", "eps=1e-5 momentum=0.1"),
    BN_TRAIN_CASE("3x20x17", "3x20x17", "20", "eps=1e-5 momentum=0.1"),
    BN_STATS_CASE("3x6x5", "3x6x5:-1:2", "6", "eps=1e-5 momentum=0.1"),
    BN_STATS_CASE("2x11x2x3", "2x11x2x3", "11", "eps=1e-3 momentum=0.3"),
    BN_EVAL_CASE("2x5x7", "2x5x7", "5", "eps=1e-5"),
    BN_EVAL_CASE("3x10x2x2", "3x10x2x2", "10", "eps=1e-3"),
    GN_CASE("g32_2x64x15", "2x64x15", "64", "2x32", "groups=32 eps=1e-5"),
    GN_CASE("g8_3x16x3x5", "3x16x3x5", "16", "3x8", "groups=8 eps=1e-6"),
    GN_CASE("g8_2x40x13", "2x40x13:-1:2", "40", "2x8", "groups=8 eps=1e-5"),
    GN_CASE("g1_2x12x7", "2x12x7", "12", "2x1", "groups=1 eps=1e-5"),
    GN_CASE("gc_2x6x9", "2x6x9", "6", "2x6", "groups=6 eps=1e-5"),
    GN_CASE("g4_1x20x11", "1x20x11", "20", "1x4", "groups=4 eps=1e-5"),
    LN_CASE("7x13", "7x13", "13", "7", "eps=1e-5"),
    LN_CASE("4x33", "4x33:-2:1", "33", "4", "eps=1e-5"),
    LN_CASE("5x80", "5x80", "80", "5", "eps=1e-6"),
    {0},
};
