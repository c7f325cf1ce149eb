#include "gen_batch.h"

#include "../core/err.h"
#include "device.h"

int gen_with_vae(const char *cmd, const char *device, const char *vae_path, VaeJob job, const void *ctx)
{
    Backend be;
    if (device_open(device, 0, &be)) return cli_fail(cmd, 2);
    VaeModel v;
    int st = 2;
    if (vae_model_load(&v, &be, vae_path) == SD_OK) {
        st = job(ctx, &v, &be);
        vae_model_free(&v);
    }
    device_close(&be);
    return st ? cli_fail(cmd, st) : 0;
}

int vae_runner_init(VaeRunner *r, const VaeModel *v, const Backend *be, int batch, int h, int w)
{
    if (batch < 1 || h < 8 || w < 8 || h % 8 || w % 8)
        return sd_fail("the VAE takes images whose sides are positive multiples of 8 (got %dx%d)", h, w);
    *r = (VaeRunner){.v = v, .be = be, .batch = batch, .h = h, .w = w};
    r->image = (size_t)v->m.cfg.in_ch * h * w;
    r->latent = (size_t)v->m.cfg.latent * (h / 8) * (w / 8);
    ws_init(&r->ws, be);
    r->x = be->alloc(be->ctx, batch * r->image * sizeof(real));
    r->out = be->alloc(be->ctx, batch * r->image * sizeof(real));
    r->z = be->alloc(be->ctx, batch * r->latent * sizeof(real));
    r->eps = be->alloc(be->ctx, batch * r->latent * sizeof(real));
    return SD_OK;
}

void vae_runner_free(VaeRunner *r)
{
    real *bufs[] = {r->x, r->out, r->z, r->eps};
    for (int i = 0; i < 4; i++) r->be->release(r->be->ctx, bufs[i]);
    ws_free(&r->ws);
}

/* One batch: k samples from index `first`, their inputs uploaded into `in`; returns the
 * backend buffer holding the k results, or NULL after sd_fail. */
typedef const real *(*BatchFn)(VaeRunner *r, int first, int k, const real *in, const void *arg);

/* The n samples of `in` (in_per values each) through fn, batch by batch, into `out`. */
static int run_batches(VaeRunner *r, int n, const real *in, size_t in_per, real *in_buf, real *out, size_t out_per,
                       BatchFn fn, const void *arg, Progress *pr)
{
    const Backend *be = r->be;
    for (int at = 0; at < n; at += r->batch) {
        int k = n - at < r->batch ? n - at : r->batch;
        be->upload(be->ctx, in_buf, in + (size_t)at * in_per, (size_t)k * in_per * sizeof(real));
        const real *res = fn(r, at, k, in_buf, arg);
        if (!res) return SD_ERR;
        be->download(be->ctx, out + (size_t)at * out_per, res, (size_t)k * out_per * sizeof(real));
        if (pr) progress_step(pr, at + k);
    }
    return SD_OK;
}

typedef struct {
    int sample;
    uint64_t seed;
} Draw;

static const real *encode_batch(VaeRunner *r, int first, int k, const real *in, const void *arg)
{
    const Draw *d = arg;
    const Backend *be = r->be;
    VaeEncoding e;
    if (vae_encode(&r->v->m, &r->v->p, &r->ws, k, r->h, r->w, in, &e)) return NULL;
    if (!d->sample) return e.mean;
    size_t n = (size_t)k * r->latent;
    be->fill_normal(be->ctx, n, r->eps, 0, 1, d->seed, 0, (uint64_t)first * r->latent);
    be->reparameterize_forward(be->ctx, n, r->z, e.mean, e.logvar, r->eps);
    return r->z;
}

int vae_runner_encode(VaeRunner *r, int n, const real *x, real *z, int sample, uint64_t seed, Progress *pr)
{
    Draw d = {sample, seed};
    return run_batches(r, n, x, r->image, r->x, z, r->latent, encode_batch, &d, pr);
}

static const real *generate_batch(VaeRunner *r, int first, int k, const real *in, const void *arg)
{
    (void)first, (void)arg;
    return vae_generate(&r->v->m, &r->v->p, &r->ws, k, r->h, r->w, in, r->out) ? NULL : r->out;
}

int vae_runner_generate(VaeRunner *r, int n, const real *z, real *images, Progress *pr)
{
    return run_batches(r, n, z, r->latent, r->z, images, r->image, generate_batch, NULL, pr);
}

static const real *reconstruct_batch(VaeRunner *r, int first, int k, const real *in, const void *arg)
{
    (void)first, (void)arg;
    VaeEncoding e;
    if (vae_encode(&r->v->m, &r->v->p, &r->ws, k, r->h, r->w, in, &e)) return NULL;
    vae_decode(&r->v->m, &r->v->p, &r->ws, k, &e, e.mean, r->out);
    return r->out;
}

int vae_runner_reconstruct(VaeRunner *r, int n, const real *x, real *out, Progress *pr)
{
    return run_batches(r, n, x, r->image, r->x, out, r->image, reconstruct_batch, NULL, pr);
}

uint8_t gen_to_u8(real v)
{
    double u = ((double)v + 1.0) * 127.5 + 0.5;
    if (!(u > 0)) return 0;
    return u >= 255 ? 255 : (uint8_t)u;
}

real gen_from_unit(float v) { return (real)(2.0f * v - 1.0f); }

void gen_pages_u8(const real *images, int n, int in_ch, size_t plane, int ch, int is_mask, uint8_t *pages)
{
    for (int i = 0; i < n; i++) {
        const real *src = images + ((size_t)i * in_ch + ch) * plane;
        uint8_t *dst = pages + (size_t)i * plane;
        for (size_t j = 0; j < plane; j++) dst[j] = is_mask ? (src[j] > 0 ? 255 : 0) : gen_to_u8(src[j]);
    }
}
