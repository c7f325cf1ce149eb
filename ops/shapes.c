/* Shape validation shared by both backends: impossible parameters become an error
 * message here, so no backend ever sees them. */
#include "ops.h"

#include "../core/err.h"

static int positive(const char *op, const char *what, long v)
{
    return v > 0 ? SD_OK : sd_fail("%s: %s must be positive (got %ld)", op, what, v);
}

Conv2dShape conv2d_shape(int n, int c_in, int h, int w, int c_out, int k, int stride, int pad)
{
    Conv2dShape s = {.n = n, .c_in = c_in, .h = h, .w = w, .c_out = c_out, .kh = k, .kw = k,
                     .stride_h = stride, .stride_w = stride,
                     .pad_top = pad, .pad_bottom = pad, .pad_left = pad, .pad_right = pad};
    return s;
}

int conv2d_shape_check(Conv2dShape *s)
{
    const char *op = "conv2d";
    if (positive(op, "batch", s->n) || positive(op, "input channels", s->c_in) ||
        positive(op, "height", s->h) || positive(op, "width", s->w) ||
        positive(op, "output channels", s->c_out) || positive(op, "kernel height", s->kh) ||
        positive(op, "kernel width", s->kw) || positive(op, "stride", s->stride_h) ||
        positive(op, "stride", s->stride_w))
        return SD_ERR;
    if (s->pad_top < 0 || s->pad_bottom < 0 || s->pad_left < 0 || s->pad_right < 0)
        return sd_fail("conv2d: padding must not be negative");
    int hp = s->h + s->pad_top + s->pad_bottom, wp = s->w + s->pad_left + s->pad_right;
    if (s->kh > hp || s->kw > wp)
        return sd_fail("conv2d: kernel %dx%d larger than the padded input %dx%d", s->kh, s->kw, hp, wp);
    s->h_out = (hp - s->kh) / s->stride_h + 1;
    s->w_out = (wp - s->kw) / s->stride_w + 1;
    return SD_OK;
}

int conv_transpose2d_shape_check(ConvT2dShape *s)
{
    const char *op = "conv_transpose2d";
    if (positive(op, "batch", s->n) || positive(op, "input channels", s->c_in) ||
        positive(op, "height", s->h) || positive(op, "width", s->w) ||
        positive(op, "output channels", s->c_out) || positive(op, "kernel size", s->k) ||
        positive(op, "stride", s->stride))
        return SD_ERR;
    if (s->pad < 0 || s->pad >= s->k)
        return sd_fail("conv_transpose2d: padding %d must be in [0, kernel size %d)", s->pad, s->k);
    s->h_out = (s->h - 1) * s->stride - 2 * s->pad + s->k;
    s->w_out = (s->w - 1) * s->stride - 2 * s->pad + s->k;
    if (s->h_out <= 0 || s->w_out <= 0)
        return sd_fail("conv_transpose2d: output would be empty (%dx%d)", s->h_out, s->w_out);
    return SD_OK;
}

int linear_shape_check(const LinearShape *s)
{
    return positive("linear", "rows", s->rows) || positive("linear", "input features", s->in) ||
                   positive("linear", "output features", s->out)
               ? SD_ERR
               : SD_OK;
}

int batch_norm_shape_check(const BatchNormShape *s)
{
    if (positive("batch_norm", "batch", s->n) || positive("batch_norm", "channels", s->c) ||
        positive("batch_norm", "spatial size", s->hw))
        return SD_ERR;
    if (s->n * (long)s->hw < 2)
        return sd_fail("batch_norm: training needs more than one value per channel");
    if (!(s->eps > 0) || !(s->momentum >= 0 && s->momentum <= 1))
        return sd_fail("batch_norm: eps must be > 0 and momentum in [0,1]");
    return SD_OK;
}

int group_norm_shape_check(const GroupNormShape *s)
{
    if (positive("group_norm", "batch", s->n) || positive("group_norm", "channels", s->c) ||
        positive("group_norm", "spatial size", s->hw) || positive("group_norm", "groups", s->groups))
        return SD_ERR;
    if (s->c % s->groups)
        return sd_fail("group_norm: %d groups do not divide %d channels", s->groups, s->c);
    if (!(s->eps > 0)) return sd_fail("group_norm: eps must be > 0");
    return SD_OK;
}

int layer_norm_shape_check(const LayerNormShape *s)
{
    if (positive("layer_norm", "rows", s->rows) || positive("layer_norm", "dimension", s->dim))
        return SD_ERR;
    if (!(s->eps > 0)) return sd_fail("layer_norm: eps must be > 0");
    return SD_OK;
}

int image_shape_check(const ImageShape *s, int min_hw)
{
    if (positive("image", "batch", s->n) || positive("image", "channels", s->c) ||
        positive("image", "height", s->h) || positive("image", "width", s->w))
        return SD_ERR;
    if (s->h < min_hw || s->w < min_hw)
        return sd_fail("image %dx%d is smaller than the %dx%d this operator needs", s->h, s->w, min_hw, min_hw);
    return SD_OK;
}

int attn_shape_check(const AttnShape *s)
{
    if (positive("attention", "batch", s->n) || positive("attention", "length", s->len) ||
        positive("attention", "heads", s->heads) || positive("attention", "head size", s->head_dim))
        return SD_ERR;
    return SD_OK;
}

int blur3x3_out(int h, int stride) { return (h - 1) / stride + 1; }
