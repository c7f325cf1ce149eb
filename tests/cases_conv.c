/* Cases for the 'conv' operator group (see tests/op_case.h): conv2d, conv_transpose2d,
 * linear. Inputs are x, weight and, when a third spec is given, bias; all three have
 * gradients. Shapes come from the specs; params give the rest:
 *   conv2d           stride=sh[,sw] pad=p or pad=top,bottom,left,right
 *   conv_transpose2d stride=s pad=p (weight [c_in, c_out, k, k])
 * The declared output spec must match the operator's output shape. */
#include <stdlib.h>

#include "../core/err.h"
#include "op_case.h"

static void check_output(const OpCase *c, int n, int ch, int h, int w)
{
    int d[4];
    if (spec_dims(c->out[0], d) != 4 || d[0] != n || d[1] != ch || d[2] != h || d[3] != w)
        sd_die(2, "case %s: output spec %s, the operator gives %dx%dx%dx%d", c->name, c->out[0], n, ch, h, w);
}

static const real *bias_of(const OpCase *c, real *const *t) { return c->in[2] ? t[2] : NULL; }

/* ------------------------------------------------------------ conv2d */

static Conv2dShape conv_shape(const OpCase *c)
{
    int x[4], w[4], st[2] = {1, 1}, pad[4] = {0, 0, 0, 0};
    spec_dims(c->in[0], x);
    spec_dims(c->in[1], w);
    if (case_ints(c, "stride", st, 2) == 1) st[1] = st[0];
    if (case_ints(c, "pad", pad, 4) == 1) pad[1] = pad[2] = pad[3] = pad[0];
    Conv2dShape s = {.n = x[0], .c_in = x[1], .h = x[2], .w = x[3], .c_out = w[0], .kh = w[2], .kw = w[3],
                     .stride_h = st[0], .stride_w = st[1],
                     .pad_top = pad[0], .pad_bottom = pad[1], .pad_left = pad[2], .pad_right = pad[3]};
    if (w[1] != s.c_in || conv2d_shape_check(&s)) sd_die(2, "case %s: bad conv2d shape: %s", c->name, sd_last_error());
    check_output(c, s.n, s.c_out, s.h_out, s.w_out);
    return s;
}

static void conv2d_fwd(const Backend *be, const OpCase *c, real *const *in, real *const *out, real *const *aux)
{
    (void)aux;
    Conv2dShape s = conv_shape(c);
    be->conv2d_forward(be->ctx, &s, out[0], in[0], in[1], bias_of(c, in));
}

static void conv2d_bwd(const Backend *be, const OpCase *c, real *const *in, real *const *out, real *const *aux,
                       real *const *dout, real *const *din)
{
    (void)out;
    (void)aux;
    Conv2dShape s = conv_shape(c);
    be->conv2d_backward(be->ctx, &s, din[0], din[1], c->in[2] ? din[2] : NULL, dout[0], in[0], in[1]);
}

#define CONV(NAME, PARAMS, X, W, B, Y) \
    {.name = "conv2d/" NAME, .op = "conv2d", .params = PARAMS, .in = {X, W, B}, .out = {Y}, .grad = 7, \
     .forward = conv2d_fwd, .backward = conv2d_bwd}

/* ------------------------------------------------------------ conv_transpose2d */

static ConvT2dShape convt_shape(const OpCase *c)
{
    int x[4], w[4];
    spec_dims(c->in[0], x);
    spec_dims(c->in[1], w);
    ConvT2dShape s = {.n = x[0], .c_in = x[1], .h = x[2], .w = x[3], .c_out = w[1], .k = w[2],
                      .stride = case_int(c, "stride", 1), .pad = case_int(c, "pad", 0)};
    if (w[0] != s.c_in || w[2] != w[3] || conv_transpose2d_shape_check(&s))
        sd_die(2, "case %s: bad conv_transpose2d shape: %s", c->name, sd_last_error());
    check_output(c, s.n, s.c_out, s.h_out, s.w_out);
    return s;
}

static void convt_fwd(const Backend *be, const OpCase *c, real *const *in, real *const *out, real *const *aux)
{
    (void)aux;
    ConvT2dShape s = convt_shape(c);
    be->conv_transpose2d_forward(be->ctx, &s, out[0], in[0], in[1], bias_of(c, in));
}

static void convt_bwd(const Backend *be, const OpCase *c, real *const *in, real *const *out, real *const *aux,
                      real *const *dout, real *const *din)
{
    (void)out;
    (void)aux;
    ConvT2dShape s = convt_shape(c);
    be->conv_transpose2d_backward(be->ctx, &s, din[0], din[1], c->in[2] ? din[2] : NULL, dout[0], in[0], in[1]);
}

#define CONVT(NAME, PARAMS, X, W, B, Y) \
    {.name = "conv_transpose2d/" NAME, .op = "conv_transpose2d", .params = PARAMS, .in = {X, W, B}, .out = {Y}, \
     .grad = 7, .forward = convt_fwd, .backward = convt_bwd}

/* ------------------------------------------------------------ linear */

static LinearShape linear_shape(const OpCase *c)
{
    int x[2], w[2];
    spec_dims(c->in[0], x);
    spec_dims(c->in[1], w);
    LinearShape s = {.rows = x[0], .in = x[1], .out = w[0]};
    int y[2];
    if (w[1] != s.in || linear_shape_check(&s) || spec_dims(c->out[0], y) != 2 || y[0] != s.rows || y[1] != s.out)
        sd_die(2, "case %s: bad linear shapes", c->name);
    return s;
}

static void linear_fwd(const Backend *be, const OpCase *c, real *const *in, real *const *out, real *const *aux)
{
    (void)aux;
    LinearShape s = linear_shape(c);
    be->linear_forward(be->ctx, &s, out[0], in[0], in[1], bias_of(c, in));
}

static void linear_bwd(const Backend *be, const OpCase *c, real *const *in, real *const *out, real *const *aux,
                       real *const *dout, real *const *din)
{
    (void)out;
    (void)aux;
    LinearShape s = linear_shape(c);
    be->linear_backward(be->ctx, &s, din[0], din[1], c->in[2] ? din[2] : NULL, dout[0], in[0], in[1]);
}

#define LINEAR(NAME, X, W, B, Y) \
    {.name = "linear/" NAME, .op = "linear", .params = "", .in = {X, W, B}, .out = {Y}, .grad = 7, \
     .forward = linear_fwd, .backward = linear_bwd}

const OpCase cases_conv[] = {
    CONV("3x3_pad1", "pad=1", "2x3x7x9", "5x3x3x3", "5", "2x5x7x9"),
    CONV("3x3_pad1_nobias", "pad=1", "1x4x6x5", "3x4x3x3", NULL, "1x3x6x5"),
    CONV("3x3_batch3_c10_c11", "pad=1", "3x10x6x6", "11x10x3x3", "11", "3x11x6x6"),
    CONV("3x3_k270_deep", "pad=1", "1x30x5x5", "13x30x3x3", "13", "1x13x5x5"), /* K > one GEMM depth block */
    CONV("3x3_wide_2304", "pad=1", "1x2x48x48", "3x2x3x3", "3", "1x3x48x48"), /* positions > one block */
    CONV("3x3_unpadded", "", "2x3x6x7", "4x3x3x3", "4", "2x4x4x5"),
    CONV("3x3_tiny_13ch", "pad=1", "2x4x3x3", "13x4x3x3", "13", "2x13x3x3"), /* computed as C^T */
    CONV("3x3_w33", "pad=1", "1x2x3x33", "2x2x3x3", "2", "1x2x3x33"), /* a 32-wide run ending in padding */
    /* 16 to 128 output channels, rows >= 24: the direct AVX-512 path (forward; data gradient) */
    CONV("3x3_direct_c33", "pad=1", "2x5x4x27", "33x5x3x3", "33", "2x33x4x27"),
    CONV("3x3_direct_c20", "pad=1", "1x3x3x25", "20x3x3x3", "20", "1x20x3x25"),
    CONV("3x3_direct_dx_c17", "pad=1", "1x17x2x24", "4x17x3x3", "4", "1x4x2x24"),
    CONV("3x3_direct_dx_c34", "pad=1", "1x34x3x26", "8x34x3x3", "8", "1x8x3x26"),
    CONV("3x3_direct_k270", "pad=1", "1x30x2x24", "32x30x3x3", "32", "1x32x2x24"),
    CONV("5x3_direct_pad2_2_1_1", "pad=2,2,1,1", "1x3x6x25", "40x3x5x3", NULL, "1x40x6x25"),
    CONV("1x1", "", "2x5x4x6", "7x5x1x1", "7", "2x7x4x6"),
    CONV("1x1_nobias", "", "1x9x3x5", "3x9x1x1", NULL, "1x3x3x5"),
    CONV("1x1_pad1", "pad=1", "1x3x4x5", "2x3x1x1", "2", "1x2x6x7"),
    CONV("3x3_s2_pad1", "stride=2 pad=1", "2x3x9x7", "4x3x3x3", "4", "2x4x5x4"),
    CONV("3x3_s2_pad1_nobias", "stride=2 pad=1", "1x6x8x8", "5x6x3x3", NULL, "1x5x4x4"),
    CONV("3x3_s2_pad0101_vae", "stride=2 pad=0,1,0,1", "1x6x8x10", "6x6x3x3", "6", "1x6x4x5"),
    CONV("3x3_s2_pad0101_odd", "stride=2 pad=0,1,0,1", "2x3x7x5", "5x3x3x3", NULL, "2x5x3x2"),
    CONV("3x3_s2_pad1_col2im_chunks", "stride=2 pad=1", "1x3x400x400", "2x3x3x3", "2", "1x2x200x200"),
    CONV("5x3_pad2_2_1_1", "pad=2,2,1,1", "2x3x8x7", "4x3x5x3", "4", "2x4x8x7"),
    CONV("5x3_stride2_1", "stride=2,1", "1x2x9x6", "3x2x5x3", NULL, "1x3x3x4"),
    CONVT("2x2_s2", "stride=2 pad=0", "2x3x4x5", "3x4x2x2", "4", "2x4x8x10"),
    CONVT("2x2_s2_nobias", "stride=2 pad=0", "1x5x3x3", "5x2x2x2", NULL, "1x2x6x6"),
    CONVT("4x4_s2_p1", "stride=2 pad=1", "2x3x4x3", "3x5x4x4", "5", "2x5x8x6"),
    CONVT("4x4_s2_p1_nobias", "stride=2 pad=1", "1x4x5x5", "4x3x4x4", NULL, "1x3x10x10"),
    CONVT("3x3_s1_p1", "stride=1 pad=1", "1x3x5x4", "3x2x3x3", "2", "1x2x5x4"),
    CONVT("3x3_s2_p0_odd", "stride=2 pad=0", "1x2x3x4", "2x3x3x3", "3", "1x3x7x9"),
    LINEAR("bias", "5x7", "3x7", "3", "5x3"),
    LINEAR("nobias", "4x33", "17x33", NULL, "4x17"),
    LINEAR("one_row", "1x9", "4x9", "4", "1x4"),
    LINEAR("k300", "37x300", "45x300", "45", "37x45"),
    {0},
};
