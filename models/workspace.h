/* Activation buffers of a model pass, in backend memory. Buffers are handed out in the
 * order a pass asks for them and kept: the next pass, asking in the same order, gets the
 * same buffers back (so nothing is allocated in steady state, and a backward pass can
 * read what its forward saved). A buffer grows when a pass needs more, e.g. a larger
 * batch.
 *
 * Training passes (ws_set_training): every buffer also gets a gradient buffer of the same
 * size, and the layers of models/layers.h record themselves on the workspace's tape, so
 * layers_backward can run them in reverse. The tape's entries are defined (and grown) by
 * models/layers.c; ws_rewind empties it. */
#ifndef SDSEG_WORKSPACE_H
#define SDSEG_WORKSPACE_H

#include <stddef.h>

#include "../ops/ops.h"

struct TapeEntry; /* models/layers.c */

typedef struct {
    const Backend *be;
    int count, next, cap;
    real **buf;
    size_t *len; /* reals */
    int training;
    real **grad; /* [cap]: gradient of buf[i] (training), else NULL */
    struct TapeEntry *tape;
    int tape_len, tape_cap;
} Workspace;

void ws_init(Workspace *ws, const Backend *be);
/* Start a pass: the next ws_take returns the first buffer again; the tape is emptied. */
void ws_rewind(Workspace *ws);
/* The pass's next buffer, of at least n reals (contents undefined). */
real *ws_take(Workspace *ws, size_t n);
void ws_free(Workspace *ws);

/* Training passes from now on (1) or inference passes (0: no gradients, no tape). */
void ws_set_training(Workspace *ws, int on);
/* The gradient buffer of `value`, a buffer of the current training pass; NULL for any
 * other pointer (the pass's inputs: nothing upstream needs their gradient). */
real *ws_grad(const Workspace *ws, const real *value);
/* Zero the gradients of the current pass's buffers (before the output gradients are
 * written and layers_backward runs). */
void ws_zero_grads(Workspace *ws);

#endif
