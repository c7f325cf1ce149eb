/* Parameter sets and checkpoints (see params.h). */
#include "params.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

void params_init(Params *p, const Backend *be)
{
    memset(p, 0, sizeof *p);
    p->be = be;
}

static int list_add(Params *p, TensorList *l, const char *name, int ndim, const int *shape, int group)
{
    NamedTensor *t = realloc(l->t, (l->count + 1) * sizeof *t);
    if (!t || strlen(name) >= PARAM_NAME_MAX || ndim < 1 || ndim > PARAM_MAX_DIMS) {
        if (t) l->t = t;
        if (!p->failed) sd_fail("cannot add tensor %.120s (out of memory, name too long or bad rank)", name);
        p->failed = 1;
        return -1;
    }
    l->t = t;
    t = &l->t[l->count];
    memset(t, 0, sizeof *t);
    strcpy(t->name, name);
    t->ndim = ndim;
    t->numel = 1;
    for (int d = 0; d < ndim; d++) {
        t->shape[d] = shape[d];
        t->numel *= (size_t)shape[d];
    }
    t->group = group;
    l->numel += t->numel;
    return l->count++;
}

int params_add(Params *p, const char *name, int ndim, const int *shape, ParamGroup group)
{
    return list_add(p, &p->list, name, ndim, shape, group);
}

int params_add_buffer(Params *p, const char *name, int ndim, const int *shape)
{
    return list_add(p, &p->buffers, name, ndim, shape, 0);
}

/* Offsets group by group, in the order tensors were added within a group. */
static void layout(Params *p)
{
    size_t off = 0;
    for (int g = 0; g < PARAM_GROUPS; g++) {
        p->group_begin[g] = off;
        for (int i = 0; i < p->list.count; i++) {
            if (p->list.t[i].group != g) continue;
            p->list.t[i].offset = off;
            off += p->list.t[i].numel;
        }
    }
    p->group_begin[PARAM_GROUPS] = off;
    off = 0;
    for (int i = 0; i < p->buffers.count; i++) {
        p->buffers.t[i].offset = off;
        off += p->buffers.t[i].numel;
    }
}

static real *alloc_zeroed(const Backend *be, size_t n)
{
    real *x = be->alloc(be->ctx, n * sizeof(real));
    be->zero(be->ctx, x, n * sizeof(real));
    return x;
}

int params_alloc(Params *p, int training)
{
    if (p->failed) return SD_ERR;
    layout(p);
    p->w = alloc_zeroed(p->be, p->list.numel);
    p->buf = alloc_zeroed(p->be, p->buffers.numel);
    if (training) p->grad = alloc_zeroed(p->be, p->list.numel);
    return SD_OK;
}

void params_alloc_optimizer(Params *p, int nstate)
{
    if (!p->m) p->m = alloc_zeroed(p->be, p->list.numel);
    if (nstate == 2 && !p->v) p->v = alloc_zeroed(p->be, p->list.numel);
}

void params_free(Params *p)
{
    real *bufs[] = {p->w, p->grad, p->m, p->v, p->buf};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        if (bufs[i]) p->be->release(p->be->ctx, bufs[i]);
    free(p->list.t);
    free(p->buffers.t);
    params_init(p, p->be);
}

real *param_w(const Params *p, int id) { return p->w + p->list.t[id].offset; }
real *param_grad(const Params *p, int id) { return p->grad + p->list.t[id].offset; }
real *param_buf(const Params *p, int id) { return p->buf + p->buffers.t[id].offset; }

void params_zero_grad(const Params *p) { p->be->zero(p->be->ctx, p->grad, p->list.numel * sizeof(real)); }

/* ------------------------------------------------------------ checkpoints */

/* Host float32 copy of n backend reals (files are float32 in both builds). */
static float *download_f32(const Backend *be, const real *src, size_t n)
{
    float *h = malloc(n * sizeof(float) + 1);
    if (!h) return NULL;
#ifdef SDSEG_DOUBLE
    real *tmp = malloc(n * sizeof(real) + 1);
    if (!tmp) {
        free(h);
        return NULL;
    }
    be->download(be->ctx, tmp, src, n * sizeof(real));
    for (size_t i = 0; i < n; i++) h[i] = (float)tmp[i];
    free(tmp);
#else
    be->download(be->ctx, h, src, n * sizeof(real));
#endif
    return h;
}

static void upload_f32(const Backend *be, real *dst, const float *h, size_t n)
{
#ifdef SDSEG_DOUBLE
    real *tmp = malloc(n * sizeof(real) + 1);
    if (!tmp) sd_die(3, "out of memory loading a checkpoint");
    for (size_t i = 0; i < n; i++) tmp[i] = h[i];
    be->upload(be->ctx, dst, tmp, n * sizeof(real));
    free(tmp);
#else
    be->upload(be->ctx, dst, h, n * sizeof(real));
#endif
}

static int total_tensors(const CkptSection *sec, int nsec)
{
    int n = 0;
    for (int s = 0; s < nsec; s++) n += sec[s].list->count;
    return n;
}

/* One write entry per tensor, named prefix+name, pointing into the host copies. */
typedef char TensorName[2 * PARAM_NAME_MAX];

static int describe(const CkptSection *sec, int nsec, float *const *host, StWriteTensor *w, TensorName *names)
{
    int k = 0;
    for (int s = 0; s < nsec; s++) {
        const TensorList *l = sec[s].list;
        for (int i = 0; i < l->count; i++, k++) {
            const NamedTensor *t = &l->t[i];
            if (snprintf(names[k], sizeof names[k], "%s%s", sec[s].prefix, t->name) >= (int)sizeof names[k])
                return sd_fail("checkpoint tensor name too long: %s%s", sec[s].prefix, t->name);
            w[k] = (StWriteTensor){.name = names[k], .dtype = ST_F32, .ndim = t->ndim, .data = host[s] + t->offset};
            for (int d = 0; d < t->ndim; d++) w[k].shape[d] = t->shape[d];
        }
    }
    return SD_OK;
}

int ckpt_save(const char *path, const Backend *be, const CkptSection *sec, int nsec, const StMeta *meta, int nmeta)
{
    int n = total_tensors(sec, nsec), rc = SD_ERR;
    float **host = calloc((size_t)nsec + 1, sizeof *host);
    StWriteTensor *w = malloc(((size_t)n + 1) * sizeof *w);
    TensorName *names = malloc(((size_t)n + 1) * sizeof *names);
    int ok = host && w && names;
    for (int s = 0; s < nsec && ok; s++) ok = (host[s] = download_f32(be, sec[s].data, sec[s].list->numel)) != NULL;
    if (!ok) sd_fail("%s: out of memory writing a checkpoint", path);
    else if (!describe(sec, nsec, host, w, names)) rc = st_write(path, w, n, meta, nmeta);
    for (int s = 0; host && s < nsec; s++) free(host[s]);
    free(host);
    free(w);
    free(names);
    return rc;
}

static void shape_text(char *buf, size_t n, int ndim, const int64_t *dims)
{
    size_t len = 0;
    buf[0] = 0;
    for (int d = 0; d < ndim && len < n; d++)
        len += (size_t)snprintf(buf + len, n - len, "%s%lld", d ? "," : "", (long long)dims[d]);
}

static int copy_tensor(const StFile *f, const char *prefix, const NamedTensor *t, float *dst)
{
    char name[2 * PARAM_NAME_MAX];
    snprintf(name, sizeof name, "%s%s", prefix, t->name);
    const StTensor *s = st_find(f, name);
    if (!s) return sd_fail("%s: tensor %s is missing", f->path, name);
    int64_t want[PARAM_MAX_DIMS];
    int same = s->dtype == ST_F32 && s->ndim == t->ndim;
    for (int d = 0; d < t->ndim; d++) {
        want[d] = t->shape[d];
        same = same && s->shape[d] == want[d];
    }
    if (same) {
        st_copy_f32(s, dst);
        return SD_OK;
    }
    char want_s[64], got_s[64];
    shape_text(want_s, sizeof want_s, t->ndim, want);
    shape_text(got_s, sizeof got_s, s->ndim, s->shape);
    return sd_fail("%s: tensor %s is %s [%s], expected F32 [%s]", f->path, name, s->dtype == ST_F32 ? "F32" : "I64",
                   got_s, want_s);
}

int ckpt_load(const StFile *f, const Backend *be, const CkptSection *sec)
{
    const TensorList *l = sec->list;
    float *h = malloc(l->numel * sizeof(float) + 1);
    if (!h) return sd_fail("%s: out of memory loading a checkpoint", f->path);
    int rc = SD_OK;
    for (int i = 0; i < l->count && !rc; i++) rc = copy_tensor(f, sec->prefix, &l->t[i], h + l->t[i].offset);
    if (!rc) upload_f32(be, sec->data, h, l->numel);
    free(h);
    return rc;
}
