/* A feed-forward network built once from operators: a list of layers over activations
 * that live in ONE arena of backend memory (and, for training, one arena of their
 * gradients), with the parameters in a Params set. Models describe themselves with the
 * net_* builders, which return activation ids, e.g.
 *
 *     int x = net_input(n, 1, 256, 256);
 *     x = net_relu(n, net_batch_norm(n, net_conv(n, x, "enc.0.conv1", 64, 3, 1), "enc.0.bn1"));
 *
 * then net_forward / net_backward run the list in order / in reverse through the Backend
 * table, so the same model runs on every backend. Activations are sized for max_batch
 * samples; a pass may use fewer. Builder errors (impossible shapes) are recorded and
 * reported by net_alloc. */
#ifndef SDSEG_NET_H
#define SDSEG_NET_H

#include <stdint.h>

#include "../core/params.h"
#include "../ops/ops.h"

typedef enum { LAYER_CONV, LAYER_CONVT, LAYER_BN, LAYER_RELU, LAYER_MAXPOOL, LAYER_CONCAT } LayerKind;

/* An activation: per-sample shape [c, h, w] (or a per-batch statistic when !batched). */
typedef struct {
    int c, h, w;
    int batched, grad; /* grad: has a gradient in the gradient arena */
    size_t offset;     /* into the arenas, in reals */
} NetAct;

typedef struct {
    LayerKind kind;
    int in, in2, out; /* activation ids; in2 is concat's second input */
    int w, b;         /* parameter ids: conv weight/bias, batch-norm gamma/beta */
    int mean, var;    /* buffer ids: batch-norm running statistics */
    int saved;        /* activation id of batch-norm's saved mean and rstd, [2c] */
    union {
        Conv2dShape conv;
        ConvT2dShape convt;
        BatchNormShape bn;
        ImageShape img;
    } s; /* shape for max_batch; passes set .n */
} NetLayer;

typedef struct {
    const Backend *be;
    Params params;
    int nact, nlayer, max_batch, failed;
    NetAct *act;
    NetLayer *layer;
    real *value, *grad; /* the arenas; grad is NULL for inference */
    size_t arena_len;   /* reals in each arena */
} Net;

void net_init(Net *n, const Backend *be);
int net_input(Net *n, int c, int h, int w);
/* Convolution with bias: k x k, stride 1, zero padding `pad`; parameters name.weight, name.bias. */
int net_conv(Net *n, int x, const char *name, int c_out, int k, int pad);
/* Transposed convolution k x k, stride k (no overlap), with bias. */
int net_conv_transpose(Net *n, int x, const char *name, int c_out, int k);
/* Batch norm with affine name.weight/name.bias and buffers name.running_mean/var. */
int net_batch_norm(Net *n, int x, const char *name, float eps, float momentum);
int net_relu(Net *n, int x);
int net_max_pool(Net *n, int x);
int net_concat(Net *n, int a, int b); /* channels of a, then b */

/* Allocate parameters and arenas for max_batch samples (gradients when training). */
int net_alloc(Net *n, int max_batch, int training);
void net_free(Net *n);
/* PyTorch's default initialization from Philox streams (seed, tensor id): conv and
 * transposed-conv weights kaiming_uniform(a=sqrt(5)) and biases U(+-1/sqrt(fan_in)) (both
 * bounds are 1/sqrt(fan_in)); batch norm gamma 1, beta 0, running mean 0, variance 1. */
void net_init_params(Net *n, uint64_t seed);

real *net_value(const Net *n, int act);
real *net_grad(const Net *n, int act);
size_t net_act_numel(const Net *n, int act, int batch);
/* Forward for `batch` samples from the input activation; batch norm uses batch
 * statistics (and updates running ones) when train, running statistics otherwise. */
void net_forward(Net *n, int batch, int train);
/* net_forward through the first `count` layers only (a prefix of the network, e.g. the
 * encoder of a U-Net whose features are wanted without its decoder). */
void net_forward_layers(Net *n, int count, int batch, int train);
/* Zero the activation gradients, then backpropagate from the gradient of the last
 * activation, which the caller writes after this zeroing: net_backward_begin, write
 * the output gradient into net_grad(n, out), net_backward. Parameter gradients accumulate
 * (zero them once per optimizer step). Needs a training-mode forward just before. */
void net_backward_begin(Net *n);
void net_backward(Net *n, int batch);

#endif
