/* One operator test case, ggml test-backend-ops style: a few lines per case.
 *
 * The harness (tests/test_ops.c) allocates every tensor named here in the backend's
 * memory, fills inputs uniformly in their range from Philox, and runs the case in up
 * to three modes:
 *   grad   (float64 build) analytic backward vs central finite differences of
 *          L = sum_k <out_k, r_k>, r_k random;
 *   oracle (float32 build) forward outputs and input gradients vs Debian's PyTorch
 *          (tests/oracle.py computes them from the same inputs, dumped as .npy);
 *   gpu    (float32, where CUDA runs) the CUDA backend vs the CPU backend.
 *
 * Tensor specs are strings: "2x3x7x9" (a shape) optionally followed by ":lo:hi", the
 * uniform range of an input (default -1:1). `params` is "key=value key=v1,v2 ..." and is
 * read both here (case_int, case_float, case_ints) and by the oracle. */
#ifndef SDSEG_OP_CASE_H
#define SDSEG_OP_CASE_H

#include "../ops/ops.h"

#define CASE_MAX_T 8

typedef struct OpCase OpCase;

/* in/out/aux are arrays of pointers into the backend's memory, in spec order. */
typedef void (*CaseForward)(const Backend *be, const OpCase *c, real *const *in, real *const *out, real *const *aux);
/* dout: gradients of the outputs; din: gradients of the inputs, zeroed by the harness
 * (backward ops accumulate); din[i] is NULL for inputs without a gradient. */
typedef void (*CaseBackward)(const Backend *be, const OpCase *c, real *const *in, real *const *out, real *const *aux,
                             real *const *dout, real *const *din);

struct OpCase {
    const char *name;   /* unique, "op/variant" */
    const char *op;     /* operator key of the oracle (tests/oracle_*.py) */
    const char *params; /* "k=3 stride=2 pad=0,1,0,1" */
    const char *in[CASE_MAX_T];
    const char *out[CASE_MAX_T];
    const char *aux[CASE_MAX_T]; /* saved state and temporaries; not compared */
    unsigned grad;               /* bit i set: input i has a gradient */
    unsigned flags;
    CaseForward forward;
    CaseBackward backward; /* NULL when nothing has a gradient */
};

/* flags */
#define CASE_CPU_ONLY 1u  /* host-side code (schedules): no GPU comparison */
#define CASE_NO_GRAD 2u   /* no finite-difference check (no gradient, or not differentiable) */
#define CASE_NO_ORACLE 4u /* no PyTorch counterpart (documented where used) */

int case_int(const OpCase *c, const char *key, int def);
double case_float(const OpCase *c, const char *key, double def);
/* Up to `max` comma-separated ints of `key` into v; returns how many were found (0 if absent). */
int case_ints(const OpCase *c, const char *key, int *v, int max);
/* Dimensions of tensor spec s into dims (up to 4); returns ndim. numel from spec_numel. */
int spec_dims(const char *s, int *dims);
size_t spec_numel(const char *s);

/* The case tables, one per group of operators, each ended by an entry with name == NULL. */
extern const OpCase cases_conv[];   /* tests/cases_conv.c:  conv2d, conv_transpose2d, linear */
extern const OpCase cases_norm[];   /* tests/cases_norm.c:  batch/group/layer norm */
extern const OpCase cases_elem[];   /* tests/cases_elem.c:  activations, pooling, resampling, plumbing, FiLM, GeGLU, timestep embedding */
extern const OpCase cases_attn[];   /* tests/cases_attn.c:  attention core and full multi-head self-attention */
extern const OpCase cases_loss[];   /* tests/cases_loss.c:  losses, VAE reparameterization */
extern const OpCase cases_optim[];  /* tests/cases_optim.c: optimizers, clipping, EMA, LR schedules */

#endif
