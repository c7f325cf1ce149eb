/* Cases for the losses and the VAE reparameterization. Losses: inputs (prediction, target)
 * or (mean, logvar), output the loss [1]. The backward scale is the loss's output gradient
 * dout[0], read back to the host, so the scale argument is exercised with an arbitrary
 * value. */
#include "op_case.h"

static real host_scalar(const Backend *be, const real *x)
{
    real v;
    be->download(be->ctx, &v, x, sizeof v);
    return v;
}

static void mse_fwd(const Backend *be, const OpCase *c, real *const *in, real *const *out, real *const *aux)
{
    (void)aux;
    be->mse_forward(be->ctx, spec_numel(c->in[0]), out[0], in[0], in[1]);
}

static void mse_bwd(const Backend *be, const OpCase *c, real *const *in, real *const *out, real *const *aux,
                    real *const *dout, real *const *din)
{
    (void)out;
    (void)aux;
    be->mse_backward(be->ctx, spec_numel(c->in[0]), host_scalar(be, dout[0]), din[0], in[0], in[1]);
}

static void kl_fwd(const Backend *be, const OpCase *c, real *const *in, real *const *out, real *const *aux)
{
    (void)aux;
    be->kl_gauss_forward(be->ctx, spec_numel(c->in[0]), out[0], in[0], in[1]);
}

static void kl_bwd(const Backend *be, const OpCase *c, real *const *in, real *const *out, real *const *aux,
                   real *const *dout, real *const *din)
{
    (void)out;
    (void)aux;
    be->kl_gauss_backward(be->ctx, spec_numel(c->in[0]), host_scalar(be, dout[0]), din[0], din[1], in[0], in[1]);
}

static void bce_fwd(const Backend *be, const OpCase *c, real *const *in, real *const *out, real *const *aux)
{
    (void)aux;
    be->bce_logits_forward(be->ctx, spec_numel(c->in[0]), out[0], in[0], in[1]);
}

static void bce_bwd(const Backend *be, const OpCase *c, real *const *in, real *const *out, real *const *aux,
                    real *const *dout, real *const *din)
{
    (void)out;
    (void)aux;
    be->bce_logits_backward(be->ctx, spec_numel(c->in[0]), host_scalar(be, dout[0]), din[0], in[0], in[1]);
}

static real smooth(const OpCase *c) { return (real)case_float(c, "smooth", 1); }

static void dice_fwd(const Backend *be, const OpCase *c, real *const *in, real *const *out, real *const *aux)
{
    (void)aux;
    be->soft_dice_forward(be->ctx, spec_numel(c->in[0]), smooth(c), out[0], in[0], in[1]);
}

static void dice_bwd(const Backend *be, const OpCase *c, real *const *in, real *const *out, real *const *aux,
                     real *const *dout, real *const *din)
{
    (void)out;
    (void)aux;
    be->soft_dice_backward(be->ctx, spec_numel(c->in[0]), smooth(c), host_scalar(be, dout[0]), din[0], in[0],
                           in[1]);
}

static void iou_fwd(const Backend *be, const OpCase *c, real *const *in, real *const *out, real *const *aux)
{
    (void)aux;
    be->soft_iou_forward(be->ctx, spec_numel(c->in[0]), smooth(c), out[0], in[0], in[1]);
}

static void iou_bwd(const Backend *be, const OpCase *c, real *const *in, real *const *out, real *const *aux,
                    real *const *dout, real *const *din)
{
    (void)out;
    (void)aux;
    be->soft_iou_backward(be->ctx, spec_numel(c->in[0]), smooth(c), host_scalar(be, dout[0]), din[0], in[0],
                          in[1]);
}

/* reparameterize: mean, logvar, eps -> z; gradients to mean and logvar. */
static void reparam_fwd(const Backend *be, const OpCase *c, real *const *in, real *const *out, real *const *aux)
{
    (void)aux;
    be->reparameterize_forward(be->ctx, spec_numel(c->in[0]), out[0], in[0], in[1], in[2]);
}

static void reparam_bwd(const Backend *be, const OpCase *c, real *const *in, real *const *out, real *const *aux,
                        real *const *dout, real *const *din)
{
    (void)out;
    (void)aux;
    be->reparameterize_backward(be->ctx, spec_numel(c->in[0]), din[0], din[1], dout[0], in[1], in[2]);
}

#define REPARAM_CASE(nm, shape, logvar_range, prm) \
    {.name = "reparameterize/" nm, .op = "reparameterize", .params = prm, \
     .in = {shape ":-2:2", shape logvar_range, shape ":-2:2"}, .out = {shape}, .grad = 3, \
     .forward = reparam_fwd, .backward = reparam_bwd}

/* grad: bit mask of the inputs with a gradient (the target never has one) */
#define LOSS_ENTRY(nm, key, pred, target, prm, grad_bits, fn, fl) \
    {.name = #key "/" nm, .op = #key, .params = prm, .in = {pred, target}, .out = {"1"}, .grad = grad_bits, \
     .flags = fl, .forward = fn##_fwd, .backward = fn##_bwd}

#define LOSS_CASE(nm, key, pred, target, prm, grad_bits, fn) LOSS_ENTRY(nm, key, pred, target, prm, grad_bits, fn, 0)

/* The "large" cases (n > 32768, the threaded path) have gradients of about 1/n against a
 * loss of about 1, so float64 central differences carry ~1e-5 relative rounding noise,
 * above the 1e-6 limit: the oracle alone checks their values and gradients. */
#define LARGE_CASE(key, pred, target, prm, grad_bits, fn) \
    LOSS_ENTRY("large", key, pred, target, prm, grad_bits, fn, CASE_NO_GRAD)

const OpCase cases_loss[] = {
    LOSS_CASE("3x41", mse, "3x41", "3x41", "", 1, mse),
    LARGE_CASE(mse, "5x9001:-2:2", "5x9001", "", 1, mse),
    LOSS_CASE("2x4x5x5", kl_gauss, "2x4x5x5", "2x4x5x5:-3:3", "", 3, kl),
    LARGE_CASE(kl_gauss, "3x12001", "3x12001:-4:2", "", 3, kl),
    LOSS_CASE("2x50", bce_logits, "2x50:-8:8", "2x50:0:1", "", 1, bce),
    LOSS_CASE("wide_logits", bce_logits, "3x37:-60:60", "3x37:0:1", "", 1, bce),
    LARGE_CASE(bce_logits, "4x10007:-5:5", "4x10007:0:1", "", 1, bce),
    LOSS_CASE("s1_4x31", soft_dice, "4x31:0:1", "4x31:0:1", "smooth=1", 1, dice),
    LOSS_CASE("s1e-3_2x3x9", soft_dice, "2x3x9:0:1", "2x3x9:0:1", "smooth=0.001", 1, dice),
    LARGE_CASE(soft_dice, "2x20011:0:1", "2x20011:0:1", "smooth=1", 1, dice),
    LOSS_CASE("s1_4x31", soft_iou, "4x31:0:1", "4x31:0:1", "smooth=1", 1, iou),
    LOSS_CASE("s1e-3_2x3x9", soft_iou, "2x3x9:0:1", "2x3x9:0:1", "smooth=0.001", 1, iou),
    LARGE_CASE(soft_iou, "2x20011:0:1", "2x20011:0:1", "smooth=1", 1, iou),
    REPARAM_CASE("2x4x5x5", "2x4x5x5", ":-3:3", ""),
    /* logvar beyond both clamp bounds: z saturates there and its logvar gradient is 0. z
     * reaches 2 exp(10), so the weighted loss is ~1e6 and its float64 central differences
     * carry ~1e-6 relative noise on the O(1) mean gradient: limit 1e-5 */
    REPARAM_CASE("clamped", "3x7x11", ":-40:28", "gradtol=1e-5"),
    REPARAM_CASE("large", "3x12001", ":-4:2", ""),
    {0},
};
