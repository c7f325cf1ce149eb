#include "workspace.h"

#include <stdlib.h>
#include <string.h>

#include "../core/err.h"

void ws_init(Workspace *ws, const Backend *be)
{
    memset(ws, 0, sizeof *ws);
    ws->be = be;
}

void ws_rewind(Workspace *ws)
{
    ws->next = 0;
    ws->tape_len = 0;
}

static void ws_grow_table(Workspace *ws)
{
    int cap = ws->cap ? 2 * ws->cap : 64;
    real **buf = realloc(ws->buf, cap * sizeof *buf);
    if (buf) ws->buf = buf;
    real **grad = realloc(ws->grad, cap * sizeof *grad);
    if (grad) ws->grad = grad;
    size_t *len = realloc(ws->len, cap * sizeof *len);
    if (!buf || !grad || !len) sd_die(3, "out of memory for the activation table");
    ws->len = len;
    ws->cap = cap;
}

/* (Re)allocate *p for n reals. */
static void ws_realloc(const Backend *be, real **p, size_t n)
{
    if (*p) be->release(be->ctx, *p);
    *p = be->alloc(be->ctx, n * sizeof(real));
}

real *ws_take(Workspace *ws, size_t n)
{
    if (ws->next == ws->count) {
        if (ws->count == ws->cap) ws_grow_table(ws);
        ws->buf[ws->count] = ws->grad[ws->count] = NULL;
        ws->len[ws->count++] = 0;
    }
    int i = ws->next++;
    if (ws->len[i] < n) {
        ws_realloc(ws->be, &ws->buf[i], n);
        if (ws->grad[i]) ws->be->release(ws->be->ctx, ws->grad[i]);
        ws->grad[i] = NULL;
        ws->len[i] = n;
    }
    if (ws->training && !ws->grad[i]) ws_realloc(ws->be, &ws->grad[i], ws->len[i]);
    return ws->buf[i];
}

void ws_set_training(Workspace *ws, int on) { ws->training = on; }

real *ws_grad(const Workspace *ws, const real *value)
{
    if (!ws->training || !value) return NULL;
    for (int i = ws->next - 1; i >= 0; i--) /* backward asks for recent buffers first */
        if (ws->buf[i] == value) return ws->grad[i];
    return NULL;
}

void ws_zero_grads(Workspace *ws)
{
    for (int i = 0; i < ws->next; i++)
        if (ws->grad[i]) ws->be->zero(ws->be->ctx, ws->grad[i], ws->len[i] * sizeof(real));
}

void ws_free(Workspace *ws)
{
    for (int i = 0; i < ws->count; i++) {
        if (ws->buf[i]) ws->be->release(ws->be->ctx, ws->buf[i]);
        if (ws->grad[i]) ws->be->release(ws->be->ctx, ws->grad[i]);
    }
    free(ws->buf);
    free(ws->grad);
    free(ws->len);
    free(ws->tape);
    memset(ws, 0, sizeof *ws);
}
