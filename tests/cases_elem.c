/* Cases for elementwise, pooling, resampling, channel plumbing, FiLM, GeGLU and the
 * timestep embedding. */
#include "op_case.h"

/* ------------------------------------------------------------ helpers */

/* Dimension i of tensor spec s. */
static int dim_of(const char *s, int i)
{
    int d[4];
    spec_dims(s, d);
    return d[i];
}

static ImageShape image_of(const char *spec)
{
    int d[4];
    spec_dims(spec, d);
    ImageShape s = {d[0], d[1], d[2], d[3]};
    return s;
}

/* din[i] += alpha * dout[k] when input i has a gradient (linear ops' backward). */
static void pass_grad(const Backend *be, const OpCase *c, real *const *dout, int k, real *const *din, int i,
                      real alpha)
{
    if (din[i]) be->axpy(be->ctx, spec_numel(c->out[k]), alpha, dout[k], din[i]);
}

/* ------------------------------------------------------------ activations */

/* act: params act=<Act enum value> slope=<float>; x -> y */
static void act_fwd(const Backend *be, const OpCase *c, real *const *in, real *const *out, real *const *aux)
{
    (void)aux;
    be->act_forward(be->ctx, (Act)case_int(c, "act", 0), (float)case_float(c, "slope", 0), spec_numel(c->in[0]),
                    out[0], in[0]);
}

static void act_bwd(const Backend *be, const OpCase *c, real *const *in, real *const *out, real *const *aux,
                    real *const *dout, real *const *din)
{
    (void)out;
    (void)aux;
    be->act_backward(be->ctx, (Act)case_int(c, "act", 0), (float)case_float(c, "slope", 0), spec_numel(c->in[0]),
                     din[0], dout[0], in[0]);
}

#define ACT_CASE(nm, a, shape, extra) \
    {.name = "act/" nm, .op = "act", .params = "act=" #a extra, .in = {shape}, .out = {shape}, .grad = 1, \
     .forward = act_fwd, .backward = act_bwd}

/* ------------------------------------------------------------ arithmetic */

/* add: a, b -> a + b; the gradient reaches both through axpy. */
static void add_fwd(const Backend *be, const OpCase *c, real *const *in, real *const *out, real *const *aux)
{
    (void)aux;
    be->add_forward(be->ctx, spec_numel(c->out[0]), out[0], in[0], in[1]);
}

static void add_bwd(const Backend *be, const OpCase *c, real *const *in, real *const *out, real *const *aux,
                    real *const *dout, real *const *din)
{
    (void)in;
    (void)out;
    (void)aux;
    pass_grad(be, c, dout, 0, din, 0, 1);
    pass_grad(be, c, dout, 0, din, 1, 1);
}

/* axpy: params alpha; x, y0 -> y0 + alpha * x (y0 copied to the output, then axpy). */
static void axpy_fwd(const Backend *be, const OpCase *c, real *const *in, real *const *out, real *const *aux)
{
    (void)aux;
    size_t n = spec_numel(c->out[0]);
    be->copy(be->ctx, out[0], in[1], n * sizeof(real));
    be->axpy(be->ctx, n, (real)case_float(c, "alpha", 1), in[0], out[0]);
}

static void axpy_bwd(const Backend *be, const OpCase *c, real *const *in, real *const *out, real *const *aux,
                     real *const *dout, real *const *din)
{
    (void)in;
    (void)out;
    (void)aux;
    pass_grad(be, c, dout, 0, din, 0, (real)case_float(c, "alpha", 1));
    pass_grad(be, c, dout, 0, din, 1, 1);
}

/* scale: params alpha; x -> alpha * x (x copied to the output, scaled in place). */
static void scale_fwd(const Backend *be, const OpCase *c, real *const *in, real *const *out, real *const *aux)
{
    (void)aux;
    size_t n = spec_numel(c->out[0]);
    be->copy(be->ctx, out[0], in[0], n * sizeof(real));
    be->scale(be->ctx, n, (real)case_float(c, "alpha", 1), out[0]);
}

static void scale_bwd(const Backend *be, const OpCase *c, real *const *in, real *const *out, real *const *aux,
                      real *const *dout, real *const *din)
{
    (void)in;
    (void)out;
    (void)aux;
    pass_grad(be, c, dout, 0, din, 0, (real)case_float(c, "alpha", 1));
}

/* ------------------------------------------------------------ pooling and resampling */

static void max_pool_fwd(const Backend *be, const OpCase *c, real *const *in, real *const *out, real *const *aux)
{
    (void)aux;
    ImageShape s = image_of(c->in[0]);
    be->max_pool2x2_forward(be->ctx, &s, out[0], in[0]);
}

static void max_pool_bwd(const Backend *be, const OpCase *c, real *const *in, real *const *out, real *const *aux,
                         real *const *dout, real *const *din)
{
    (void)out;
    (void)aux;
    ImageShape s = image_of(c->in[0]);
    be->max_pool2x2_backward(be->ctx, &s, din[0], dout[0], in[0]);
}

/* max_pool ties: x is upsampled 2x, so every window holds four equal values; the
 * outputs are the pooled values and where max_pool2x2_backward routes them (the pooled
 * values used as the upstream gradient), which must be the window's top-left, as PyTorch. */
static void max_pool_ties_fwd(const Backend *be, const OpCase *c, real *const *in, real *const *out,
                              real *const *aux)
{
    ImageShape s = image_of(c->in[0]);
    ImageShape up = {s.n, s.c, 2 * s.h, 2 * s.w};
    be->upsample2x_forward(be->ctx, &s, aux[0], in[0]);
    be->max_pool2x2_forward(be->ctx, &up, out[0], aux[0]);
    be->zero(be->ctx, out[1], spec_numel(c->out[1]) * sizeof(real));
    be->max_pool2x2_backward(be->ctx, &up, out[1], out[0], aux[0]);
}

static void avg_pool_fwd(const Backend *be, const OpCase *c, real *const *in, real *const *out, real *const *aux)
{
    (void)aux;
    ImageShape s = image_of(c->in[0]);
    be->avg_pool2x2_forward(be->ctx, &s, out[0], in[0]);
}

static void avg_pool_bwd(const Backend *be, const OpCase *c, real *const *in, real *const *out, real *const *aux,
                         real *const *dout, real *const *din)
{
    (void)in;
    (void)out;
    (void)aux;
    ImageShape s = image_of(c->in[0]);
    be->avg_pool2x2_backward(be->ctx, &s, din[0], dout[0]);
}

/* blur: params stride */
static void blur_fwd(const Backend *be, const OpCase *c, real *const *in, real *const *out, real *const *aux)
{
    (void)aux;
    ImageShape s = image_of(c->in[0]);
    be->blur3x3_forward(be->ctx, &s, case_int(c, "stride", 1), out[0], in[0]);
}

static void blur_bwd(const Backend *be, const OpCase *c, real *const *in, real *const *out, real *const *aux,
                     real *const *dout, real *const *din)
{
    (void)in;
    (void)out;
    (void)aux;
    ImageShape s = image_of(c->in[0]);
    be->blur3x3_backward(be->ctx, &s, case_int(c, "stride", 1), din[0], dout[0]);
}

static void upsample_fwd(const Backend *be, const OpCase *c, real *const *in, real *const *out, real *const *aux)
{
    (void)aux;
    ImageShape s = image_of(c->in[0]);
    be->upsample2x_forward(be->ctx, &s, out[0], in[0]);
}

static void upsample_bwd(const Backend *be, const OpCase *c, real *const *in, real *const *out, real *const *aux,
                         real *const *dout, real *const *din)
{
    (void)in;
    (void)out;
    (void)aux;
    ImageShape s = image_of(c->in[0]);
    be->upsample2x_backward(be->ctx, &s, din[0], dout[0]);
}

#define IMAGE_CASE(nm, op_, fn, params_, x, y)                                                            \
    {.name = nm, .op = op_, .params = params_, .in = {x}, .out = {y}, .grad = 1, .forward = fn##_fwd, \
     .backward = fn##_bwd}

/* ------------------------------------------------------------ channel plumbing */

/* concat: a [n, ca, hw], b [n, cb, hw] -> [n, ca+cb, hw] */
static void concat_fwd(const Backend *be, const OpCase *c, real *const *in, real *const *out, real *const *aux)
{
    (void)aux;
    be->concat_forward(be->ctx, dim_of(c->in[0], 0), dim_of(c->in[0], 1), dim_of(c->in[1], 1), dim_of(c->in[0], 2),
                       out[0], in[0], in[1]);
}

static void concat_bwd(const Backend *be, const OpCase *c, real *const *in, real *const *out, real *const *aux,
                       real *const *dout, real *const *din)
{
    (void)in;
    (void)out;
    (void)aux;
    be->concat_backward(be->ctx, dim_of(c->in[0], 0), dim_of(c->in[0], 1), dim_of(c->in[1], 1),
                        dim_of(c->in[0], 2), din[0], din[1], dout[0]);
}

/* film: x [n, c, hw], scale [n, c], shift [n, c] */
static void film_fwd(const Backend *be, const OpCase *c, real *const *in, real *const *out, real *const *aux)
{
    (void)aux;
    be->film_forward(be->ctx, dim_of(c->in[0], 0), dim_of(c->in[0], 1), dim_of(c->in[0], 2), out[0], in[0], in[1],
                     in[2]);
}

static void film_bwd(const Backend *be, const OpCase *c, real *const *in, real *const *out, real *const *aux,
                     real *const *dout, real *const *din)
{
    (void)out;
    (void)aux;
    be->film_backward(be->ctx, dim_of(c->in[0], 0), dim_of(c->in[0], 1), dim_of(c->in[0], 2), din[0], din[1], din[2],
                      dout[0], in[0], in[1]);
}

/* nchw_to_nlc: x [n, c, hw] -> [n, hw, c] */
static void to_nlc_fwd(const Backend *be, const OpCase *c, real *const *in, real *const *out, real *const *aux)
{
    (void)aux;
    be->nchw_to_nlc_forward(be->ctx, dim_of(c->in[0], 0), dim_of(c->in[0], 1), dim_of(c->in[0], 2), out[0], in[0]);
}

static void to_nlc_bwd(const Backend *be, const OpCase *c, real *const *in, real *const *out, real *const *aux,
                       real *const *dout, real *const *din)
{
    (void)in;
    (void)out;
    (void)aux;
    be->nchw_to_nlc_backward(be->ctx, dim_of(c->in[0], 0), dim_of(c->in[0], 1), dim_of(c->in[0], 2), din[0],
                             dout[0]);
}

/* nlc_to_nchw: x [n, hw, c] -> [n, c, hw] */
static void to_nchw_fwd(const Backend *be, const OpCase *c, real *const *in, real *const *out, real *const *aux)
{
    (void)aux;
    be->nlc_to_nchw_forward(be->ctx, dim_of(c->in[0], 0), dim_of(c->in[0], 2), dim_of(c->in[0], 1), out[0], in[0]);
}

static void to_nchw_bwd(const Backend *be, const OpCase *c, real *const *in, real *const *out, real *const *aux,
                        real *const *dout, real *const *din)
{
    (void)in;
    (void)out;
    (void)aux;
    be->nlc_to_nchw_backward(be->ctx, dim_of(c->in[0], 0), dim_of(c->in[0], 2), dim_of(c->in[0], 1), din[0],
                             dout[0]);
}

/* ------------------------------------------------------------ transformer pieces */

/* geglu: x [rows, 2*dim] -> [rows, dim] */
static void geglu_fwd(const Backend *be, const OpCase *c, real *const *in, real *const *out, real *const *aux)
{
    (void)aux;
    be->geglu_forward(be->ctx, dim_of(c->out[0], 0), dim_of(c->out[0], 1), out[0], in[0]);
}

static void geglu_bwd(const Backend *be, const OpCase *c, real *const *in, real *const *out, real *const *aux,
                      real *const *dout, real *const *din)
{
    (void)out;
    (void)aux;
    be->geglu_backward(be->ctx, dim_of(c->out[0], 0), dim_of(c->out[0], 1), din[0], dout[0], in[0]);
}

/* timestep embedding: t [n] -> [n, dim] (dim also in params, for the oracle); no gradient */
static void temb_fwd(const Backend *be, const OpCase *c, real *const *in, real *const *out, real *const *aux)
{
    (void)aux;
    be->timestep_embedding(be->ctx, dim_of(c->out[0], 0), dim_of(c->out[0], 1), out[0], in[0]);
}

/* ------------------------------------------------------------ the table */

const OpCase cases_elem[] = {
    ACT_CASE("relu", 0, "2x3x5x7:-2:2", ""),
    ACT_CASE("leaky_relu", 1, "2x3x5x7:-2:2", " slope=0.3"),
    ACT_CASE("silu", 2, "3x37:-4:4", ""),
    ACT_CASE("gelu_erf", 3, "3x37:-4:4", ""),
    ACT_CASE("gelu_tanh", 4, "3x37:-4:4", ""),
    ACT_CASE("sigmoid", 5, "3x37:-6:6", ""),
    ACT_CASE("tanh", 6, "3x37:-3:3", ""),
    {.name = "add/odd", .op = "add", .in = {"3x5x37:-2:2", "3x5x37:-2:2"}, .out = {"3x5x37"}, .grad = 3,
     .forward = add_fwd, .backward = add_bwd},
    {.name = "axpy/odd", .op = "axpy", .params = "alpha=-0.7", .in = {"3x5x37:-2:2", "3x5x37:-2:2"},
     .out = {"3x5x37"}, .grad = 3, .forward = axpy_fwd, .backward = axpy_bwd},
    {.name = "scale/odd", .op = "scale", .params = "alpha=1.3", .in = {"3x5x37:-2:2"}, .out = {"3x5x37"}, .grad = 1,
     .forward = scale_fwd, .backward = scale_bwd},
    /* uniform random inputs are tie-free, so the finite differences never straddle a max switch */
    IMAGE_CASE("max_pool/odd", "max_pool", max_pool, "", "2x3x7x9", "2x3x3x4"),
    IMAGE_CASE("max_pool/even", "max_pool", max_pool, "", "3x5x6x8", "3x5x3x4"),
    {.name = "max_pool/ties", .op = "max_pool_ties", .in = {"2x3x3x5"}, .out = {"2x3x3x5", "2x3x6x10"},
     .aux = {"2x3x6x10"}, .flags = CASE_NO_GRAD, .forward = max_pool_ties_fwd},
    IMAGE_CASE("avg_pool/odd", "avg_pool", avg_pool, "", "2x3x7x9", "2x3x3x4"),
    IMAGE_CASE("avg_pool/even", "avg_pool", avg_pool, "", "3x5x6x8", "3x5x3x4"),
    IMAGE_CASE("blur/s1_odd", "blur", blur, "stride=1", "2x3x7x9", "2x3x7x9"),
    IMAGE_CASE("blur/s2_odd", "blur", blur, "stride=2", "2x5x7x9", "2x5x4x5"),
    IMAGE_CASE("blur/s2_even", "blur", blur, "stride=2", "3x3x8x6", "3x3x4x3"),
    IMAGE_CASE("blur/s2_smallest", "blur", blur, "stride=2", "2x3x2x3", "2x3x1x2"),
    IMAGE_CASE("upsample/odd", "upsample", upsample, "", "2x3x5x7", "2x3x10x14"),
    {.name = "concat/odd", .op = "concat", .in = {"2x3x35", "2x5x35"}, .out = {"2x8x35"}, .grad = 3,
     .forward = concat_fwd, .backward = concat_bwd},
    {.name = "film/odd", .op = "film", .in = {"2x5x33:-2:2", "2x5", "2x5"}, .out = {"2x5x33"}, .grad = 7,
     .forward = film_fwd, .backward = film_bwd},
    {.name = "nchw_to_nlc/small", .op = "nchw_to_nlc", .in = {"2x5x33"}, .out = {"2x33x5"}, .grad = 1,
     .forward = to_nlc_fwd, .backward = to_nlc_bwd},
    /* more than one 32x32 transpose tile along both axes, partial tiles at the ends */
    {.name = "nchw_to_nlc/tiles", .op = "nchw_to_nlc", .in = {"2x37x70"}, .out = {"2x70x37"}, .grad = 1,
     .forward = to_nlc_fwd, .backward = to_nlc_bwd},
    {.name = "nlc_to_nchw/small", .op = "nlc_to_nchw", .in = {"2x33x5"}, .out = {"2x5x33"}, .grad = 1,
     .forward = to_nchw_fwd, .backward = to_nchw_bwd},
    {.name = "nlc_to_nchw/tiles", .op = "nlc_to_nchw", .in = {"2x70x37"}, .out = {"2x37x70"}, .grad = 1,
     .forward = to_nchw_fwd, .backward = to_nchw_bwd},
    {.name = "geglu/odd", .op = "geglu", .in = {"21x26:-3:3"}, .out = {"21x13"}, .grad = 1, .forward = geglu_fwd,
     .backward = geglu_bwd},
    {.name = "timestep_embedding/320", .op = "timestep_embedding", .params = "dim=320", .in = {"5:0:999"},
     .out = {"5x320"}, .flags = CASE_NO_GRAD, .forward = temb_fwd},
    /* an odd half (7 frequencies) */
    {.name = "timestep_embedding/14", .op = "timestep_embedding", .params = "dim=14", .in = {"3:0:999"},
     .out = {"3x14"}, .flags = CASE_NO_GRAD, .forward = temb_fwd},
    {0},
};
