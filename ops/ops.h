/* sdseg operators: the one declaration of every operator, shared by both backends.
 *
 * Each operator is implemented twice with identical semantics: cpu/<op>.c (OpenMP C,
 * the reference, scalar type `real`) and gpu/<op>.cu (CUDA, float). Models call them
 * through a Backend (the table at the end), so one model file runs on either backend.
 *
 * Conventions (all operators):
 *  - Tensors are dense, row-major, NCHW for images; pointers live in the backend's
 *    memory (host for cpu, device for cuda). Shapes come in small structs that the
 *    model fills once and validates with the *_shape_check() functions of ops/shapes.c.
 *    Backends assume validated shapes.
 *  - Forward functions overwrite their outputs. Backward functions ACCUMULATE (+=) into
 *    every gradient they produce, inputs and parameters alike, so the caller zeroes
 *    gradients once per step, and a tensor used twice simply receives both terms.
 *    A gradient pointer may be NULL when that gradient is not wanted.
 *  - Outputs never alias inputs unless an entry says so.
 *  - Scalars that are results (losses, norms) are one element in backend memory;
 *    scalars that are arguments (learning rate, loss scale) are host values.
 *  - Semantics follow PyTorch; every difference is written at the operator.
 */
#ifndef SDSEG_OPS_H
#define SDSEG_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "../core/real.h"

/* ---------------------------------------------------------------- shapes */

/* conv2d: x [n, c_in, h, w] * weight [c_out, c_in, kh, kw] + bias [c_out] -> y [n, c_out, h_out, w_out]
 * Zero padding, possibly asymmetric (pad right/bottom only reproduces the seed VAE's
 * F.pad(x, (0,1,0,1)) + conv(stride 2, pad 0)). Cross-correlation, as torch.nn.Conv2d. */
typedef struct {
    int n, c_in, h, w;
    int c_out, kh, kw;
    int stride_h, stride_w;
    int pad_top, pad_bottom, pad_left, pad_right;
    int h_out, w_out; /* set by conv2d_shape_check */
} Conv2dShape;

/* conv_transpose2d: x [n, c_in, h, w], weight [c_in, c_out, k, k] (PyTorch's layout),
 * bias [c_out] -> y [n, c_out, (h-1)*stride - 2*pad + k, same for w]. */
typedef struct {
    int n, c_in, h, w;
    int c_out, k, stride, pad;
    int h_out, w_out; /* set by conv_transpose2d_shape_check */
} ConvT2dShape;

/* linear: x [rows, in] -> y [rows, out] = x W^T + b, W [out, in], b [out] (may be NULL). */
typedef struct { int rows, in, out; } LinearShape;

/* batch_norm over (n, hw) per channel c. Training mode normalizes by the batch's biased
 * variance and updates running_mean/var with `momentum` (PyTorch: new = (1-m)*old + m*batch,
 * using the UNBIASED batch variance for running_var). Eval mode uses the running stats. */
typedef struct { int n, c, hw; float eps, momentum; } BatchNormShape;

/* group_norm: channels split into `groups` contiguous groups; statistics per (sample, group)
 * over (c/groups * hw) values; affine gamma/beta [c]. */
typedef struct { int n, c, hw, groups; float eps; } GroupNormShape;

/* layer_norm over the last dimension: x [rows, dim], gamma/beta [dim]. */
typedef struct { int rows, dim; float eps; } LayerNormShape;

/* 2x2 pooling with stride 2 (floor for odd sizes), nearest upsampling x2, 3x3 blur,
 * channel-wise ops: x [n, c, h, w]. */
typedef struct { int n, c, h, w; } ImageShape;

/* Multi-head self-attention core over `len` positions (h*w tokens):
 * qkv [n, len, 3*C] with C = heads*head_dim, laid out [q | k | v] along the last dimension,
 * head j using columns j*head_dim .. (j+1)*head_dim-1 of each (torch.nn.MultiheadAttention's
 * packed in_proj convention) -> out [n, len, C] = softmax(q k^T / sqrt(head_dim)) v.
 * probs [n, heads, len, len] is saved by forward for backward. The in/out projections are
 * separate linear ops (with or without bias). */
typedef struct { int n, len, heads, head_dim; } AttnShape;

/* Elementwise activations. GELU_ERF is x*Phi(x) (torch default), GELU_TANH torch's
 * approximate='tanh'. LEAKY_RELU takes `slope` (the seed uses 0.3). */
typedef enum { ACT_RELU, ACT_LEAKY_RELU, ACT_SILU, ACT_GELU_ERF, ACT_GELU_TANH, ACT_SIGMOID, ACT_TANH } Act;

/* Shape checks: return 0, or SD_ERR with a message (see core/err.h) for impossible
 * parameters; the conv checks also fill h_out/w_out. */
int conv2d_shape_check(Conv2dShape *s);
int conv_transpose2d_shape_check(ConvT2dShape *s);
int linear_shape_check(const LinearShape *s);
int batch_norm_shape_check(const BatchNormShape *s);
int group_norm_shape_check(const GroupNormShape *s);
int layer_norm_shape_check(const LayerNormShape *s);
int image_shape_check(const ImageShape *s, int min_hw);
int attn_shape_check(const AttnShape *s);
/* Convenience constructor for the common square case. */
Conv2dShape conv2d_shape(int n, int c_in, int h, int w, int c_out, int k, int stride, int pad);
/* Output size of blur3x3 along one axis: stride 1 keeps it, stride 2 gives (h+1)/2. */
int blur3x3_out(int h, int stride);

/* ------------------------------------------------------- the operator list
 * X(return, name, (arguments)) for every operator; expanded below into the prototypes
 * of each backend (cpu_<name>, gpu_<name>) and into the Backend table. `ctx` is the
 * backend's context (scratch memory, library handles, stream). */
#define SDSEG_OPS(X) \
    /* --- memory: backends own their memory; the model never touches it directly */ \
    X(void *, alloc, (void *ctx, size_t bytes)) \
    X(void, release, (void *ctx, void *p)) \
    X(void, upload, (void *ctx, void *dst, const void *host_src, size_t bytes)) \
    X(void, download, (void *ctx, void *host_dst, const void *src, size_t bytes)) \
    X(void, copy, (void *ctx, void *dst, const void *src, size_t bytes)) \
    X(void, zero, (void *ctx, void *p, size_t bytes)) \
    X(void, sync, (void *ctx)) \
    /* --- random fills from core/philox.h streams: value i = (offset+i) of (seed, stream) */ \
    X(void, fill_uniform, (void *ctx, size_t n, real *x, real lo, real hi, uint64_t seed, uint64_t stream, uint64_t offset)) \
    X(void, fill_normal, (void *ctx, size_t n, real *x, real mean, real std, uint64_t seed, uint64_t stream, uint64_t offset)) \
    /* --- convolutions and matrix products */ \
    X(void, conv2d_forward, (void *ctx, const Conv2dShape *s, real *y, const real *x, const real *w, const real *b)) \
    X(void, conv2d_backward, (void *ctx, const Conv2dShape *s, real *dx, real *dw, real *db, const real *dy, const real *x, const real *w)) \
    X(void, conv_transpose2d_forward, (void *ctx, const ConvT2dShape *s, real *y, const real *x, const real *w, const real *b)) \
    X(void, conv_transpose2d_backward, (void *ctx, const ConvT2dShape *s, real *dx, real *dw, real *db, const real *dy, const real *x, const real *w)) \
    X(void, linear_forward, (void *ctx, const LinearShape *s, real *y, const real *x, const real *w, const real *b)) \
    X(void, linear_backward, (void *ctx, const LinearShape *s, real *dx, real *dw, real *db, const real *dy, const real *x, const real *w)) \
    /* --- normalization; mean/rstd are saved per channel (bn) or per (sample, group/row) */ \
    X(void, batch_norm_forward_train, (void *ctx, const BatchNormShape *s, real *y, const real *x, const real *gamma, const real *beta, real *save_mean, real *save_rstd, real *running_mean, real *running_var)) \
    X(void, batch_norm_forward_eval, (void *ctx, const BatchNormShape *s, real *y, const real *x, const real *gamma, const real *beta, const real *running_mean, const real *running_var)) \
    X(void, batch_norm_backward, (void *ctx, const BatchNormShape *s, real *dx, real *dgamma, real *dbeta, const real *dy, const real *x, const real *gamma, const real *save_mean, const real *save_rstd)) \
    X(void, group_norm_forward, (void *ctx, const GroupNormShape *s, real *y, const real *x, const real *gamma, const real *beta, real *save_mean, real *save_rstd)) \
    X(void, group_norm_backward, (void *ctx, const GroupNormShape *s, real *dx, real *dgamma, real *dbeta, const real *dy, const real *x, const real *gamma, const real *save_mean, const real *save_rstd)) \
    X(void, layer_norm_forward, (void *ctx, const LayerNormShape *s, real *y, const real *x, const real *gamma, const real *beta, real *save_mean, real *save_rstd)) \
    X(void, layer_norm_backward, (void *ctx, const LayerNormShape *s, real *dx, real *dgamma, real *dbeta, const real *dy, const real *x, const real *gamma, const real *save_mean, const real *save_rstd)) \
    /* --- elementwise; backward reads the forward INPUT x */ \
    X(void, act_forward, (void *ctx, Act act, float slope, size_t n, real *y, const real *x)) \
    X(void, act_backward, (void *ctx, Act act, float slope, size_t n, real *dx, const real *dy, const real *x)) \
    X(void, add_forward, (void *ctx, size_t n, real *y, const real *a, const real *b)) \
    X(void, axpy, (void *ctx, size_t n, real alpha, const real *x, real *y)) /* y += alpha*x */ \
    X(void, scale, (void *ctx, size_t n, real alpha, real *x))             /* x *= alpha  */ \
    /* --- pooling and resampling, x [n, c, h, w] */ \
    X(void, max_pool2x2_forward, (void *ctx, const ImageShape *s, real *y, const real *x)) \
    X(void, max_pool2x2_backward, (void *ctx, const ImageShape *s, real *dx, const real *dy, const real *x)) /* ties: first in raster order */ \
    X(void, avg_pool2x2_forward, (void *ctx, const ImageShape *s, real *y, const real *x)) \
    X(void, avg_pool2x2_backward, (void *ctx, const ImageShape *s, real *dx, const real *dy)) \
    /* depthwise [1 2 1]^T[1 2 1]/16 blur, reflect padding 1, stride 1 or 2 (anti-aliased downsampling) */ \
    X(void, blur3x3_forward, (void *ctx, const ImageShape *s, int stride, real *y, const real *x)) \
    X(void, blur3x3_backward, (void *ctx, const ImageShape *s, int stride, real *dx, const real *dy)) \
    X(void, upsample2x_forward, (void *ctx, const ImageShape *s, real *y, const real *x)) /* nearest, y [n,c,2h,2w] */ \
    X(void, upsample2x_backward, (void *ctx, const ImageShape *s, real *dx, const real *dy)) \
    /* --- channel plumbing: concat a [n,ca,hw], b [n,cb,hw] -> y [n,ca+cb,hw] */ \
    X(void, concat_forward, (void *ctx, int n, int ca, int cb, int hw, real *y, const real *a, const real *b)) \
    X(void, concat_backward, (void *ctx, int n, int ca, int cb, int hw, real *da, real *db, const real *dy)) \
    /* FiLM: y = x*(1+scale)+shift, x [n,c,hw], scale/shift [n,c] */ \
    X(void, film_forward, (void *ctx, int n, int c, int hw, real *y, const real *x, const real *scale, const real *shift)) \
    X(void, film_backward, (void *ctx, int n, int c, int hw, real *dx, real *dscale, real *dshift, const real *dy, const real *x, const real *scale)) \
    /* tokens: x [n,c,hw] <-> y [n,hw,c] */ \
    X(void, nchw_to_nlc_forward, (void *ctx, int n, int c, int hw, real *y, const real *x)) \
    X(void, nchw_to_nlc_backward, (void *ctx, int n, int c, int hw, real *dx, const real *dy)) \
    X(void, nlc_to_nchw_forward, (void *ctx, int n, int c, int hw, real *y, const real *x)) \
    X(void, nlc_to_nchw_backward, (void *ctx, int n, int c, int hw, real *dx, const real *dy)) \
    /* --- attention and transformer pieces */ \
    X(void, attention_forward, (void *ctx, const AttnShape *s, real *out, real *probs, const real *qkv)) \
    X(void, attention_backward, (void *ctx, const AttnShape *s, real *dqkv, const real *dout, const real *qkv, const real *probs)) \
    /* GeGLU: x [rows, 2*dim] = [a | g] -> y [rows, dim] = a * gelu_erf(g) (diffusers' GEGLU) */ \
    X(void, geglu_forward, (void *ctx, int rows, int dim, real *y, const real *x)) \
    X(void, geglu_backward, (void *ctx, int rows, int dim, real *dx, const real *dy, const real *x)) \
    /* sinusoidal timestep embedding: t [n] -> y [n, dim], half = dim/2, f_i = 10000^(-i/half),  \
     * y = [cos(t f_0..f_{half-1}), sin(t f_0..)] (cos first, as the seed); an odd dim leaves \
     * the last column 0 (as diffusers). No gradient. */ \
    X(void, timestep_embedding, (void *ctx, int n, int dim, real *y, const real *t)) \
    /* --- losses: mean over all n elements; loss is one element; backward scales by `scale` */ \
    X(void, mse_forward, (void *ctx, size_t n, real *loss, const real *pred, const real *target)) \
    X(void, mse_backward, (void *ctx, size_t n, real scale, real *dpred, const real *pred, const real *target)) \
    /* KL(N(mean, exp(logvar)) || N(0,1)) = -0.5 * mean(1 + logvar - mean^2 - exp(logvar)) */ \
    X(void, kl_gauss_forward, (void *ctx, size_t n, real *loss, const real *mean, const real *logvar)) \
    X(void, kl_gauss_backward, (void *ctx, size_t n, real scale, real *dmean, real *dlogvar, const real *mean, const real *logvar)) \
    /* VAE reparameterization z = mean + exp(clamp(logvar, -30, 20) / 2) * eps over n elements; \
     * backward: dmean += dz, dlogvar += dz * eps * exp(logvar/2) / 2 where -30 <= logvar <= 20 \
     * and nothing where clamped (torch.clamp's gradient); eps has no gradient */ \
    X(void, reparameterize_forward, (void *ctx, size_t n, real *z, const real *mean, const real *logvar, const real *eps)) \
    X(void, reparameterize_backward, (void *ctx, size_t n, real *dmean, real *dlogvar, const real *dz, const real *logvar, const real *eps)) \
    /* BCE with logits, stable form max(x,0) - x*t + log1p(exp(-|x|)) */ \
    X(void, bce_logits_forward, (void *ctx, size_t n, real *loss, const real *logits, const real *target)) \
    X(void, bce_logits_backward, (void *ctx, size_t n, real scale, real *dlogits, const real *logits, const real *target)) \
    /* soft Dice 1 - (2*sum(pt)+s)/(sum(p)+sum(t)+s) and soft IoU 1 - (sum(pt)+s)/(sum(p)+sum(t)-sum(pt)+s) \
     * over the whole tensor, on probabilities p (apply ACT_SIGMOID first) */ \
    X(void, soft_dice_forward, (void *ctx, size_t n, real smooth, real *loss, const real *prob, const real *target)) \
    X(void, soft_dice_backward, (void *ctx, size_t n, real smooth, real scale, real *dprob, const real *prob, const real *target)) \
    X(void, soft_iou_forward, (void *ctx, size_t n, real smooth, real *loss, const real *prob, const real *target)) \
    X(void, soft_iou_backward, (void *ctx, size_t n, real smooth, real scale, real *dprob, const real *prob, const real *target)) \
    /* --- optimizers: one pass over the flat parameter buffer; step is 1-based */ \
    /* SGD as torch.optim.SGD: g += wd*w; with momentum == 0: w -= lr*g (buf unused, may be NULL); \
     * else buf = step==1 ? g : momentum*buf + (1-dampening)*g; w -= lr * (nesterov ? g + momentum*buf : buf) */ \
    X(void, sgd_step, (void *ctx, size_t n, real *w, const real *g, real *buf, float lr, float momentum, float dampening, float weight_decay, int nesterov, long step)) \
    /* Adam (decoupled=0: g += wd*w) and AdamW (decoupled=1: w *= 1-lr*wd), bias-corrected, \
     * torch's update form w -= (lr/bc1) * m / (sqrt(v)/sqrt(bc2) + eps) */ \
    X(void, adam_step, (void *ctx, size_t n, real *w, const real *g, real *m, real *v, float lr, float beta1, float beta2, float eps, float weight_decay, int decoupled, long step)) \
    X(void, ema_update, (void *ctx, size_t n, real *ema, const real *w, float decay)) /* ema = decay*ema + (1-decay)*w */ \
    X(void, sum_squares, (void *ctx, size_t n, real *out, const real *x)) /* out[0] = sum x^2 (accumulated in double) */

#define SDSEG_OP_PROTO(prefix, ret, name, args) ret prefix##name args;
#define SDSEG_CPU_PROTO(ret, name, args) SDSEG_OP_PROTO(cpu_, ret, name, args)
#define SDSEG_GPU_PROTO(ret, name, args) SDSEG_OP_PROTO(gpu_, ret, name, args)
#define SDSEG_OP_FIELD(ret, name, args) ret (*name) args;

/* A backend: its name, its context and one function pointer per operator. */
typedef struct Backend {
    const char *name; /* "cpu" or "cuda" */
    void *ctx;
    SDSEG_OPS(SDSEG_OP_FIELD)
} Backend;

#endif
