/* A model's parameter set: named tensors in ONE flat buffer each for the weights, their
 * gradients and the optimizer state (all in backend memory, all with the same layout), so
 * zeroing gradients, an optimizer step or a checkpoint is one pass over one buffer.
 * Non-trainable buffers (batch-norm running statistics) live in a separate flat buffer.
 *
 * Usage: params_init, then params_add / params_add_buffer for every tensor (ids are
 * returned in order), then params_alloc; pointers come from param_w / param_grad /
 * param_buf. Trainable tensors are laid out group by group, so each ParamGroup is one
 * contiguous span [group_begin[g], group_begin[g+1]) of every flat buffer. */
#ifndef SDSEG_PARAMS_H
#define SDSEG_PARAMS_H

#include <stddef.h>

#include "../ops/ops.h"
#include "safetensors.h"

#define PARAM_NAME_MAX 96
#define PARAM_MAX_DIMS 4

typedef struct {
    char name[PARAM_NAME_MAX];
    int ndim;
    int shape[PARAM_MAX_DIMS];
    size_t numel, offset; /* elements; offset into the flat buffer, set by params_alloc */
    int group;
} NamedTensor;

typedef struct {
    int count;
    NamedTensor *t;
    size_t numel; /* all tensors together */
} TensorList;

/* Weight decay (L2) applies to DECAY (convolution kernels and biases), never to NO_DECAY
 * (normalization scales and shifts). */
typedef enum { PARAM_DECAY, PARAM_NO_DECAY, PARAM_GROUPS } ParamGroup;

typedef struct {
    const Backend *be;
    TensorList list;    /* trainable */
    TensorList buffers; /* non-trainable */
    size_t group_begin[PARAM_GROUPS + 1];
    real *w, *grad;     /* [list.numel]; grad is NULL unless allocated for training */
    real *m, *v;        /* optimizer state (Adam's moments; SGD's momentum in m) or NULL */
    real *buf;          /* [buffers.numel] */
    int failed;         /* an add failed (name too long, too many dims): params_alloc reports it */
} Params;

void params_init(Params *p, const Backend *be);
int params_add(Params *p, const char *name, int ndim, const int *shape, ParamGroup group);
int params_add_buffer(Params *p, const char *name, int ndim, const int *shape);
/* Lay out and allocate the weights (zeroed), the buffers and, when training, the gradients. */
int params_alloc(Params *p, int training);
/* Optimizer state: m, and v when nstate == 2, zeroed. */
void params_alloc_optimizer(Params *p, int nstate);
void params_free(Params *p);

real *param_w(const Params *p, int id);
real *param_grad(const Params *p, int id);
real *param_buf(const Params *p, int id);
void params_zero_grad(const Params *p);

/* ------------------------------------------------------------ checkpoints
 * A section is one flat backend buffer with the layout of `list`, stored under the
 * list's names with `prefix` prepended ("" for the model's own tensors, "optim.m." ...). */
typedef struct {
    const char *prefix;
    const TensorList *list;
    real *data;
} CkptSection;

/* Write the sections and metadata as one safetensors file (F32), atomically. */
int ckpt_save(const char *path, const Backend *be, const CkptSection *sec, int nsec, const StMeta *meta, int nmeta);
/* Fill a section's buffer from f: every tensor prefix+name must be present, F32, with
 * exactly the list's shape (other tensors of f are ignored). One upload. */
int ckpt_load(const StFile *f, const Backend *be, const CkptSection *sec);

#endif
