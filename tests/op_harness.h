/* Running an OpCase on a backend: tensors, inputs, forward, backward. Used by the CPU
 * checks (tests/test_ops.c) and the CPU-vs-CUDA comparison (tests/test_gpu_ops.c). */
#ifndef SDSEG_OP_HARNESS_H
#define SDSEG_OP_HARNESS_H

#include "op_case.h"

typedef struct {
    int count;
    size_t len[CASE_MAX_T];   /* elements */
    real *ptr[CASE_MAX_T];    /* backend memory */
} TensorSet;

typedef struct {
    const Backend *be;
    const OpCase *c;
    TensorSet in, out, aux, dout, din;
} CaseRun;

/* Allocate every tensor of c on be (inputs filled later, poison elsewhere). */
void case_run_init(CaseRun *r, const Backend *be, const OpCase *c);
void case_run_free(CaseRun *r);
/* Fill inputs in their ranges and dout with N(0,1), from Philox streams keyed by seed. */
void case_fill(CaseRun *r, uint64_t seed);
/* Overwrite outputs and aux with a NaN-free poison pattern so untouched values show. */
void case_poison(CaseRun *r);
void case_forward(CaseRun *r);
/* Run the case's backward with the current dout into din (checked to accumulate). */
void case_backward(CaseRun *r);

/* max|a-b| / max(max|b|, 1e-8) over n host values. */
double rel_error(const real *a, const double *b, size_t n);
/* Host copy of backend tensor t of a set (caller frees). */
real *set_download(const CaseRun *r, const TensorSet *s, int i);

/* All cases of every group, in order, terminated by NULL (a static list). */
const OpCase *const *all_cases(void);

#endif
