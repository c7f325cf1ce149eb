#include "workspace.h"

#include <stdlib.h>
#include <string.h>

#include "../core/err.h"

void ws_init(Workspace *ws, const Backend *be)
{
    memset(ws, 0, sizeof *ws);
    ws->be = be;
}

void ws_rewind(Workspace *ws) { ws->next = 0; }

static void ws_grow_table(Workspace *ws)
{
    int cap = ws->cap ? 2 * ws->cap : 64;
    real **buf = realloc(ws->buf, cap * sizeof *buf);
    if (buf) ws->buf = buf;
    size_t *len = realloc(ws->len, cap * sizeof *len);
    if (!buf || !len) sd_die(3, "out of memory for the activation table");
    ws->len = len;
    ws->cap = cap;
}

real *ws_take(Workspace *ws, size_t n)
{
    if (ws->next == ws->count) {
        if (ws->count == ws->cap) ws_grow_table(ws);
        ws->buf[ws->count] = NULL;
        ws->len[ws->count++] = 0;
    }
    int i = ws->next++;
    if (ws->len[i] < n) {
        if (ws->buf[i]) ws->be->release(ws->be->ctx, ws->buf[i]);
        ws->buf[i] = ws->be->alloc(ws->be->ctx, n * sizeof(real));
        ws->len[i] = n;
    }
    return ws->buf[i];
}

void ws_free(Workspace *ws)
{
    for (int i = 0; i < ws->count; i++)
        if (ws->buf[i]) ws->be->release(ws->be->ctx, ws->buf[i]);
    free(ws->buf);
    free(ws->len);
    memset(ws, 0, sizeof *ws);
}
