/* conv_transpose2d (reference). A transposed convolution from x [n, c_in, h, w] to
 * y [n, c_out, h_out, w_out] is the input gradient of the convolution c that maps
 * y-shaped images to x-shaped ones with the same weight tensor ([c_in, c_out, k, k] is
 * c's [c_out, c_in, kh, kw] layout) and stride and padding. So
 *   y   = c's data gradient of x,   dx += c(dy),   dw += c's weight gradient (x, dy). */
#include "conv.h"

/* The convolution c, with x's place taken by y (c's output size is h, w exactly). */
static Conv2dShape adjoint_conv(const ConvT2dShape *t)
{
    Conv2dShape c = {.n = t->n, .c_in = t->c_out, .h = t->h_out, .w = t->w_out, .c_out = t->c_in,
                     .kh = t->k, .kw = t->k, .stride_h = t->stride, .stride_w = t->stride,
                     .pad_top = t->pad, .pad_bottom = t->pad, .pad_left = t->pad, .pad_right = t->pad,
                     .h_out = t->h, .w_out = t->w};
    return c;
}

void cpu_conv_transpose2d_forward(void *ctx, const ConvT2dShape *s, real *y, const real *x, const real *w,
                                  const real *b)
{
    Conv2dShape c = adjoint_conv(s);
    channel_fill(s->n, s->c_out, (size_t)s->h_out * s->w_out, y, b);
    conv_gemm_backward_data(ctx, &c, y, x, w);
}

void cpu_conv_transpose2d_backward(void *ctx, const ConvT2dShape *s, real *dx, real *dw, real *db, const real *dy,
                                   const real *x, const real *w)
{
    Conv2dShape c = adjoint_conv(s);
    if (db) channel_bias_grad(s->n, s->c_out, (size_t)s->h_out * s->w_out, db, dy);
    if (dw) conv_gemm_backward_weight(&c, dw, x, dy);
    if (dx) conv_gemm_forward(ctx, &c, dx, dy, w, NULL, 1);
}
