/* Activation buffers of a model pass, in backend memory. Buffers are handed out in the
 * order a pass asks for them and kept: the next pass, asking in the same order, gets the
 * same buffers back (so nothing is allocated in steady state, and a backward pass can
 * read what its forward saved). A buffer grows when a pass needs more, e.g. a larger
 * batch. */
#ifndef SDSEG_WORKSPACE_H
#define SDSEG_WORKSPACE_H

#include <stddef.h>

#include "../ops/ops.h"

typedef struct {
    const Backend *be;
    int count, next, cap;
    real **buf;
    size_t *len; /* reals */
} Workspace;

void ws_init(Workspace *ws, const Backend *be);
/* Start a pass: the next ws_take returns the first buffer again. */
void ws_rewind(Workspace *ws);
/* The pass's next buffer, of at least n reals (contents undefined). */
real *ws_take(Workspace *ws, size_t n);
void ws_free(Workspace *ws);

#endif
