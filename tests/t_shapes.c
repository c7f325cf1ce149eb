/* Misuse is an error, not a crash: the shape checks of ops/shapes.c must reject every
 * impossible parameter set below with a message (printed here), and accept the valid
 * ones with the right output sizes. Exit status non-zero when any verdict is wrong. */
#include <math.h>
#include <stdio.h>

#include "../core/err.h"
#include "../ops/ops.h"
#include "check.h"

/* rc must be SD_ERR with a fresh, non-empty message. */
static void expect_rejected(const char *what, int rc)
{
    const char *msg = sd_last_error();
    if (rc == SD_ERR && msg[0]) {
        printf("rejected  %-46s %s\n", what, msg);
        return;
    }
    printf("ACCEPTED  %s (rc %d)\n", what, rc);
    check_failures++;
}

/* Clear the message so that a rejection without one shows. */
static void reset_error(void) { sd_fail("%s", ""); }

/* A macro so that the message is cleared before `call` runs. */
#define REJECT(what, call)           \
    do {                             \
        reset_error();               \
        expect_rejected(what, call); \
    } while (0)

static int conv(int n, int c_in, int h, int w, int c_out, int k, int stride, int pad)
{
    Conv2dShape s = conv2d_shape(n, c_in, h, w, c_out, k, stride, pad);
    return conv2d_shape_check(&s);
}

static int conv_pads(int h, int k, int top, int bottom, int left, int right)
{
    Conv2dShape s = conv2d_shape(1, 3, h, h, 4, k, 1, 0);
    s.pad_top = top;
    s.pad_bottom = bottom;
    s.pad_left = left;
    s.pad_right = right;
    return conv2d_shape_check(&s);
}

static int convt(int n, int c_in, int h, int c_out, int k, int stride, int pad)
{
    ConvT2dShape s = {.n = n, .c_in = c_in, .h = h, .w = h, .c_out = c_out, .k = k, .stride = stride, .pad = pad};
    return conv_transpose2d_shape_check(&s);
}

static int bn(int n, int c, int hw, float eps, float momentum)
{
    BatchNormShape s = {.n = n, .c = c, .hw = hw, .eps = eps, .momentum = momentum};
    return batch_norm_shape_check(&s);
}

static int gn(int n, int c, int hw, int groups, float eps)
{
    GroupNormShape s = {.n = n, .c = c, .hw = hw, .groups = groups, .eps = eps};
    return group_norm_shape_check(&s);
}

static int ln(int rows, int dim, float eps)
{
    LayerNormShape s = {.rows = rows, .dim = dim, .eps = eps};
    return layer_norm_shape_check(&s);
}

static int lin(int rows, int in, int out)
{
    LinearShape s = {.rows = rows, .in = in, .out = out};
    return linear_shape_check(&s);
}

static int img(int n, int c, int h, int w, int min_hw)
{
    ImageShape s = {.n = n, .c = c, .h = h, .w = w};
    return image_shape_check(&s, min_hw);
}

static int attn(int n, int len, int heads, int head_dim)
{
    AttnShape s = {.n = n, .len = len, .heads = heads, .head_dim = head_dim};
    return attn_shape_check(&s);
}

static void rejects_conv(void)
{
    REJECT("conv2d: zero batch", conv(0, 3, 8, 8, 4, 3, 1, 1));
    REJECT("conv2d: zero input channels", conv(1, 0, 8, 8, 4, 3, 1, 1));
    REJECT("conv2d: zero height", conv(1, 3, 0, 8, 4, 3, 1, 1));
    REJECT("conv2d: negative width", conv(1, 3, 8, -8, 4, 3, 1, 1));
    REJECT("conv2d: zero output channels", conv(1, 3, 8, 8, 0, 3, 1, 1));
    REJECT("conv2d: zero kernel", conv(1, 3, 8, 8, 4, 0, 1, 1));
    REJECT("conv2d: zero stride", conv(1, 3, 8, 8, 4, 3, 0, 1));
    REJECT("conv2d: negative stride", conv(1, 3, 8, 8, 4, 3, -2, 1));
    REJECT("conv2d: negative padding", conv(1, 3, 8, 8, 4, 3, 1, -1));
    REJECT("conv2d: one negative side of padding", conv_pads(8, 3, 1, 1, 1, -1));
    REJECT("conv2d: kernel 5 > padded input 2+2", conv(1, 3, 2, 2, 4, 5, 1, 1));
    REJECT("conv2d: kernel 4 > input 3, no padding", conv_pads(3, 4, 0, 0, 0, 0));
    REJECT("conv_transpose2d: padding == kernel", convt(1, 4, 8, 4, 2, 2, 2));
    REJECT("conv_transpose2d: padding > kernel", convt(1, 4, 8, 4, 4, 2, 5));
    REJECT("conv_transpose2d: negative padding", convt(1, 4, 8, 4, 4, 2, -1));
    REJECT("conv_transpose2d: zero stride", convt(1, 4, 8, 4, 4, 0, 1));
    REJECT("conv_transpose2d: zero kernel", convt(1, 4, 8, 4, 0, 2, 0));
    REJECT("conv_transpose2d: zero batch", convt(0, 4, 8, 4, 4, 2, 1));
    REJECT("conv_transpose2d: zero input size", convt(1, 4, 0, 4, 4, 2, 1));
    REJECT("conv_transpose2d: zero output channels", convt(1, 4, 8, 0, 4, 2, 1));
    REJECT("linear: zero rows", lin(0, 8, 8));
    REJECT("linear: negative input features", lin(4, -8, 8));
    REJECT("linear: zero output features", lin(4, 8, 0));
}

static void rejects_norm_and_others(void)
{
    REJECT("batch_norm: one value per channel", bn(1, 8, 1, 1e-5f, 0.1f));
    REJECT("batch_norm: zero channels", bn(2, 0, 4, 1e-5f, 0.1f));
    REJECT("batch_norm: zero spatial size", bn(2, 8, 0, 1e-5f, 0.1f));
    REJECT("batch_norm: eps 0", bn(2, 8, 4, 0, 0.1f));
    REJECT("batch_norm: momentum 1.5", bn(2, 8, 4, 1e-5f, 1.5f));
    REJECT("batch_norm: momentum NaN", bn(2, 8, 4, 1e-5f, NAN));
    REJECT("group_norm: 4 groups do not divide 10 channels", gn(2, 10, 9, 4, 1e-5f));
    REJECT("group_norm: 32 groups of 16 channels", gn(2, 16, 9, 32, 1e-5f));
    REJECT("group_norm: zero groups", gn(2, 16, 9, 0, 1e-5f));
    REJECT("group_norm: negative groups", gn(2, 16, 9, -4, 1e-5f));
    REJECT("group_norm: zero spatial size", gn(2, 16, 0, 4, 1e-5f));
    REJECT("group_norm: eps NaN", gn(2, 16, 9, 4, NAN));
    REJECT("layer_norm: zero dimension", ln(4, 0, 1e-5f));
    REJECT("layer_norm: zero rows", ln(0, 8, 1e-5f));
    REJECT("layer_norm: negative eps", ln(4, 8, -1e-5f));
    REJECT("image: zero channels", img(1, 0, 8, 8, 1));
    REJECT("image: 1x8 below the 2x2 minimum", img(1, 3, 1, 8, 2));
    REJECT("attention: zero heads", attn(1, 16, 0, 8));
    REJECT("attention: zero head size", attn(1, 16, 8, 0));
    REJECT("attention: zero length", attn(1, 0, 8, 8));
}

/* The checks must not reject everything: valid shapes pass with the right sizes. */
static void accepts_valid(void)
{
    Conv2dShape down = conv2d_shape(2, 128, 256, 256, 128, 3, 2, 0);
    down.pad_right = down.pad_bottom = 1; /* the seed VAE's F.pad(0,1,0,1) + stride-2 conv */
    CHECK(conv2d_shape_check(&down) == SD_OK && down.h_out == 128 && down.w_out == 128);
    Conv2dShape same = conv2d_shape(1, 3, 7, 5, 4, 3, 1, 1);
    CHECK(conv2d_shape_check(&same) == SD_OK && same.h_out == 7 && same.w_out == 5);
    Conv2dShape whole = conv2d_shape(1, 3, 4, 4, 4, 4, 1, 0); /* kernel == input */
    CHECK(conv2d_shape_check(&whole) == SD_OK && whole.h_out == 1 && whole.w_out == 1);
    ConvT2dShape up = {.n = 1, .c_in = 512, .h = 32, .w = 32, .c_out = 512, .k = 4, .stride = 2, .pad = 1};
    CHECK(conv_transpose2d_shape_check(&up) == SD_OK && up.h_out == 64 && up.w_out == 64);
    ConvT2dShape up2 = {.n = 1, .c_in = 64, .h = 16, .w = 9, .c_out = 32, .k = 2, .stride = 2, .pad = 0};
    CHECK(conv_transpose2d_shape_check(&up2) == SD_OK && up2.h_out == 32 && up2.w_out == 18);
    CHECK(bn(1, 8, 2, 1e-5f, 0.1f) == SD_OK);
    CHECK(gn(2, 64, 9, 32, 1e-5f) == SD_OK && gn(2, 6, 9, 6, 1e-6f) == SD_OK && gn(1, 5, 1, 1, 1e-5f) == SD_OK);
    CHECK(ln(1, 1, 1e-5f) == SD_OK);
    CHECK(lin(1, 1, 1) == SD_OK);
    CHECK(img(1, 1, 2, 2, 2) == SD_OK);
    CHECK(attn(2, 1, 8, 40) == SD_OK);
}

int main(void)
{
    rejects_conv();
    rejects_norm_and_others();
    accepts_valid();
    return check_exit("t_shapes");
}
