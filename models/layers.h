/* The common layers of the generative models: parameter declarations with PyTorch's names
 * and layouts into a Params set (core/params.h), and forward passes through the Backend
 * table over a Workspace of activations.
 *
 * Declarations: <name>.weight and <name>.bias, names given as printf formats, e.g.
 * declare_conv(p, 128, 256, 3, "encoder.main.%d.conv_1", i). Convolution and linear
 * weights and biases go to PARAM_DECAY, normalization affines to PARAM_NO_DECAY. A failed
 * declaration is recorded in p and reported by params_alloc.
 *
 * Forward helpers take a Pass (backend, parameters, workspace, batch) and return a new
 * activation taken from the workspace; inputs are never overwritten.
 *
 * Backward: in a training pass (ws_set_training) every helper also records itself on the
 * workspace's tape; layers_backward then runs the recorded layers in reverse, from the
 * gradients of the pass's outputs to the parameter gradients. So a model written with
 * these helpers needs no backward code of its own -- provided every operation of its
 * training pass goes through a helper (an operator called directly would not pass its
 * gradient on). */
#ifndef SDSEG_LAYERS_H
#define SDSEG_LAYERS_H

#include "../core/params.h"
#include "workspace.h"

typedef struct { int w, b, c_in, c_out, k; } ConvParams;  /* weight [c_out, c_in, k, k] */
typedef struct { int w, b, c_in, c_out, k; } ConvTParams; /* weight [c_in, c_out, k, k] */
typedef struct { int w, b, in, out; } LinearParams;       /* weight [out, in]; b = -1 without bias */
typedef struct { int w, b, c; } NormParams;               /* group/layer norm affine [c] */

ConvParams declare_conv(Params *p, int c_in, int c_out, int k, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
ConvTParams declare_conv_transpose(Params *p, int c_in, int c_out, int k, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
LinearParams declare_linear(Params *p, int in, int out, int bias, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
NormParams declare_norm(Params *p, int c, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* PyTorch's default initialization of every declared tensor, from Philox streams (seed,
 * tensor id): convolution, transposed-convolution and linear weights kaiming_uniform(a =
 * sqrt(5)) and their biases U(+-1/sqrt(fan_in)) -- both bounds 1/sqrt(fan_in), fan_in =
 * weight numel / shape[0] (torch's, for all three layouts) -- and normalization weights 1,
 * biases 0. */
void layers_init_torch(const Params *p, uint64_t seed);

/* ------------------------------------------------------------------ forward */

typedef struct {
    const Backend *be;
    const Params *p;
    Workspace *ws;
    int n; /* batch */
} Pass;

/* A batch of feature maps [n, c, h, w] in backend memory. */
typedef struct {
    real *d;
    int c, h, w;
} Fmap;

size_t fmap_numel(const Pass *ps, Fmap x);
/* Convolution with zero padding `pad` on every side, or pad[4] = (top, bottom, left, right). */
Fmap layer_conv(Pass *ps, const ConvParams *c, Fmap x, int stride, int pad);
Fmap layer_conv_padded(Pass *ps, const ConvParams *c, Fmap x, int stride, const int pad[4]);
Fmap layer_conv_transpose(Pass *ps, const ConvTParams *c, Fmap x, int stride, int pad);
Fmap layer_group_norm(Pass *ps, const NormParams *g, Fmap x, int groups, float eps);
Fmap layer_act(Pass *ps, Act act, float slope, Fmap x);
Fmap layer_add(Pass *ps, Fmap a, Fmap b);
real *layer_sum(Pass *ps, const real *a, const real *b, size_t n); /* a + b, n values */
Fmap layer_concat(Pass *ps, Fmap a, Fmap b); /* channels of a, then b */
/* The inverse of concat: channels [0, c/2) of x into *a, [c/2, c) into *b. */
void layer_split(Pass *ps, Fmap x, Fmap *a, Fmap *b);
Fmap layer_upsample(Pass *ps, Fmap x);       /* nearest x2 */
/* Depthwise [1 2 1]x[1 2 1]/16 blur with reflect padding, stride 1 or 2 (anti-aliasing). */
Fmap layer_blur(Pass *ps, Fmap x, int stride);
/* y = x * (1 + scale[n, c]) + shift[n, c], per sample and channel (FiLM); scale and shift
 * are [n, c] rows, e.g. the two halves of a time projection (pass its row stride). */
Fmap layer_film(Pass *ps, Fmap x, const real *scale, const real *shift);
/* GeGLU over rows of x [rows, 2 dim] -> [rows, dim]: a * gelu(b), a, b the two halves. */
real *layer_geglu(Pass *ps, const real *x, int rows, int dim);
/* x [rows, in] -> [rows, out]; rows counts the whole batch. */
real *layer_linear(Pass *ps, const LinearParams *l, const real *x, int rows);
real *layer_layer_norm(Pass *ps, const NormParams *g, const real *x, int rows, float eps);
/* Multi-head self-attention core over tokens qkv [n, len, 3c] -> [n, len, c]. */
real *layer_attention(Pass *ps, const real *qkv, int len, int heads, int c);
/* Tokens: [n, c, h*w] <-> [n, h*w, c]. */
real *layer_to_tokens(Pass *ps, Fmap x);
Fmap layer_from_tokens(Pass *ps, const real *tokens, int c, int h, int w);
/* z = mean + exp(clamp(logvar, -30, 20) / 2) * eps, n values (eps gets no gradient). */
real *layer_reparameterize(Pass *ps, const real *mean, const real *logvar, const real *eps, size_t n);
/* n copies of `value` (a constant: no gradient, not recorded). */
real *layer_constant(Pass *ps, size_t n, real value);
/* The pass's input x copied into the workspace, so that a training pass keeps its gradient
 * (layers_input_grad). Must be the pass's first buffer: call it right after ws_rewind. */
Fmap layer_input(Pass *ps, Fmap x);

/* ------------------------------------------------------------------ backward */

/* Backpropagate through the tape of the training pass just run on ws, last layer first.
 * Before: ws_zero_grads(ws), then the gradients of the pass's outputs written (added)
 * into ws_grad(ws, output). Parameter gradients ACCUMULATE into p->grad (zero them once
 * per optimizer step); gradients of the pass's inputs (pointers not from ws) are dropped. */
void layers_backward(const Params *p, Workspace *ws);
/* After layers_backward: d(loss)/d(input) of the pass's layer_input copy, in the workspace;
 * NULL after an inference pass. */
const real *layers_input_grad(const Workspace *ws);

#endif
