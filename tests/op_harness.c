#include "op_harness.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/err.h"
#include "../core/rng.h"

/* ---------------------------------------------------------- spec parsing */

int spec_dims(const char *s, int *dims)
{
    int nd = 0;
    while (*s && *s != ':' && nd < 4) {
        dims[nd++] = (int)strtol(s, (char **)&s, 10);
        if (*s == 'x') s++;
    }
    return nd;
}

size_t spec_numel(const char *s)
{
    int d[4];
    int nd = spec_dims(s, d);
    size_t n = 1;
    for (int i = 0; i < nd; i++) n *= (size_t)d[i];
    return n;
}

static void spec_range(const char *s, double *lo, double *hi)
{
    const char *p = strchr(s, ':');
    *lo = -1.0;
    *hi = 1.0;
    if (p) {
        *lo = strtod(p + 1, (char **)&p);
        if (*p == ':') *hi = strtod(p + 1, NULL);
    }
}

/* Pointer to the value text of " key=" in params, or NULL. */
static const char *param_value(const OpCase *c, const char *key)
{
    size_t kl = strlen(key);
    for (const char *p = c->params; p && *p;) {
        while (*p == ' ') p++;
        if (strncmp(p, key, kl) == 0 && p[kl] == '=') return p + kl + 1;
        p = strchr(p, ' ');
    }
    return NULL;
}

int case_int(const OpCase *c, const char *key, int def)
{
    const char *v = param_value(c, key);
    return v ? (int)strtol(v, NULL, 10) : def;
}

double case_float(const OpCase *c, const char *key, double def)
{
    const char *v = param_value(c, key);
    return v ? strtod(v, NULL) : def;
}

int case_ints(const OpCase *c, const char *key, int *v, int max)
{
    const char *p = param_value(c, key);
    int n = 0;
    while (p && n < max) {
        v[n++] = (int)strtol(p, (char **)&p, 10);
        if (*p != ',') break;
        p++;
    }
    return n;
}

/* ---------------------------------------------------------- running a case */

static void set_alloc(TensorSet *s, const Backend *be, const char *const *specs)
{
    memset(s, 0, sizeof *s);
    for (int i = 0; i < CASE_MAX_T && specs[i]; i++) {
        s->len[i] = spec_numel(specs[i]);
        s->ptr[i] = be->alloc(be->ctx, s->len[i] * sizeof(real) + 64);
        s->count++;
    }
}

static void set_free(TensorSet *s, const Backend *be)
{
    for (int i = 0; i < s->count; i++)
        if (s->ptr[i]) be->release(be->ctx, s->ptr[i]);
}

void case_run_init(CaseRun *r, const Backend *be, const OpCase *c)
{
    memset(r, 0, sizeof *r);
    r->be = be;
    r->c = c;
    set_alloc(&r->in, be, c->in);
    set_alloc(&r->out, be, c->out);
    set_alloc(&r->aux, be, c->aux);
    set_alloc(&r->dout, be, c->out);
    r->din.count = r->in.count;
    for (int i = 0; i < r->in.count; i++) {
        r->din.len[i] = r->in.len[i];
        if (c->grad & (1u << i)) r->din.ptr[i] = be->alloc(be->ctx, r->in.len[i] * sizeof(real) + 64);
    }
    case_poison(r);
}

void case_run_free(CaseRun *r)
{
    set_free(&r->in, r->be);
    set_free(&r->out, r->be);
    set_free(&r->aux, r->be);
    set_free(&r->dout, r->be);
    set_free(&r->din, r->be);
}

static void upload_real(const Backend *be, real *dst, const real *host, size_t n)
{
    be->upload(be->ctx, dst, host, n * sizeof(real));
}

void case_fill(CaseRun *r, uint64_t seed)
{
    for (int i = 0; i < r->in.count; i++) {
        double lo, hi;
        spec_range(r->c->in[i], &lo, &hi);
        r->be->fill_uniform(r->be->ctx, r->in.len[i], r->in.ptr[i], (real)lo, (real)hi, seed, 100 + i, 0);
    }
    for (int i = 0; i < r->dout.count; i++)
        r->be->fill_normal(r->be->ctx, r->dout.len[i], r->dout.ptr[i], 0, 1, seed, 200 + i, 0);
}

static void poison_set(const Backend *be, TensorSet *s)
{
    for (int i = 0; i < s->count; i++) {
        if (!s->ptr[i]) continue;
        real *h = malloc(s->len[i] * sizeof(real) + 1);
        for (size_t j = 0; j < s->len[i]; j++) h[j] = (real)(1e3 + (double)(j % 7)); /* obviously wrong */
        upload_real(be, s->ptr[i], h, s->len[i]);
        free(h);
    }
}

void case_poison(CaseRun *r)
{
    poison_set(r->be, &r->out);
    poison_set(r->be, &r->aux);
}

void case_forward(CaseRun *r)
{
    r->c->forward(r->be, r->c, r->in.ptr, r->out.ptr, r->aux.ptr);
}

/* Backward ops accumulate: running the backward twice onto zeroed gradients must give
 * exactly twice the gradient (x + x and the halving are exact), so an op that overwrites
 * instead of adding ends up at half its gradient and fails. */
void case_backward(CaseRun *r)
{
    const Backend *be = r->be;
    for (int i = 0; i < r->din.count; i++)
        if (r->din.ptr[i]) be->zero(be->ctx, r->din.ptr[i], r->din.len[i] * sizeof(real));
    for (int pass = 0; pass < 2; pass++)
        r->c->backward(be, r->c, r->in.ptr, r->out.ptr, r->aux.ptr, r->dout.ptr, r->din.ptr);
    for (int i = 0; i < r->din.count; i++)
        if (r->din.ptr[i]) be->scale(be->ctx, r->din.len[i], (real)0.5, r->din.ptr[i]);
}

real *set_download(const CaseRun *r, const TensorSet *s, int i)
{
    real *h = malloc(s->len[i] * sizeof(real) + 1);
    r->be->download(r->be->ctx, h, s->ptr[i], s->len[i] * sizeof(real));
    return h;
}

double rel_error(const real *a, const double *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= num) && !isnan(num)) num = d; /* a NaN sticks */
        if (fabs(b[i]) > den) den = fabs(b[i]);
    }
    return num / (den > 1e-8 ? den : 1e-8);
}

const OpCase *const *all_cases(void)
{
    static const OpCase *list[1024];
    static int built;
    if (!built) {
        const OpCase *groups[] = {cases_conv, cases_norm, cases_elem, cases_attn, cases_loss, cases_optim};
        int n = 0;
        for (size_t g = 0; g < sizeof groups / sizeof *groups; g++)
            for (const OpCase *c = groups[g]; c->name; c++) list[n++] = c;
        list[n] = NULL;
        built = 1;
    }
    return list;
}
