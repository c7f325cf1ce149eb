/* The seed's segmentation U-Net, built from operators (see seg_unet.h). */
#include "seg_unet.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/err.h"

/* Host images are float and go to the backend as they are. */
_Static_assert(sizeof(real) == sizeof(float), "models are built in float32");

#define LEVELS 4

/* Block(c) = [Conv3x3(c, same) -> BatchNorm -> ReLU] x 2, named <name>.conv1, .bn1, .conv2, .bn2 */
static int block(Net *n, int x, const char *name, int c, float bn_momentum)
{
    char conv[48], bn[48];
    for (int i = 1; i <= 2; i++) {
        snprintf(conv, sizeof conv, "%s.conv%d", name, i);
        snprintf(bn, sizeof bn, "%s.bn%d", name, i);
        x = net_relu(n, net_batch_norm(n, net_conv(n, x, conv, c, 3, 1), bn, SEG_BN_EPS, bn_momentum));
    }
    return x;
}

static void build(SegUnet *m, float bn_momentum)
{
    Net *n = &m->net;
    char name[32];
    int skip[LEVELS];
    int x = m->in = net_input(n, 1, m->h, m->w);
    for (int i = 0; i < LEVELS; i++) { /* encoder: Block(w 2^i) -> MaxPool 2x2 */
        snprintf(name, sizeof name, "enc.%d", i);
        skip[i] = x = block(n, x, name, m->width << i, bn_momentum);
        x = net_max_pool(n, x);
    }
    x = block(n, x, "bridge", m->width << LEVELS, bn_momentum);
    for (int i = 0; i < LEVELS; i++) { /* decoder: ConvT 2x2 s2 -> concat [up, skip] -> Block(c) */
        int level = LEVELS - 1 - i, c = m->width << level;
        snprintf(name, sizeof name, "up.%d", i);
        x = net_concat(n, net_conv_transpose(n, x, name, c, 2), skip[level]);
        snprintf(name, sizeof name, "dec.%d", i);
        x = block(n, x, name, c, bn_momentum);
    }
    m->out = net_conv(n, x, "head", 1, 1, 0); /* logits */
}

SegUnet *seg_unet_create(const Backend *be, int width, int max_batch, int h, int w, int training, float bn_momentum)
{
    if (width < 1 || width > 4096) {
        sd_fail("U-Net width must be in 1..4096 (got %d)", width);
        return NULL;
    }
    if (h < 32 || w < 32 || h % 16 || w % 16) {
        sd_fail("U-Net input must be a multiple of 16, at least 32 (got %dx%d)", h, w);
        return NULL;
    }
    SegUnet *m = calloc(1, sizeof *m);
    if (!m) {
        sd_fail("out of memory");
        return NULL;
    }
    *m = (SegUnet){.width = width, .h = h, .w = w};
    net_init(&m->net, be);
    build(m, bn_momentum);
    if (net_alloc(&m->net, max_batch, training)) {
        seg_unet_free(m);
        return NULL;
    }
    return m;
}

void seg_unet_free(SegUnet *m)
{
    if (!m) return;
    net_free(&m->net);
    free(m);
}

void seg_unet_init(SegUnet *m, uint64_t seed) { net_init_params(&m->net, seed); }

/* ------------------------------------------------------------ checkpoints */

static int checkpoint_width(const StFile *f)
{
    const char *model = st_meta(f, "model");
    if (model && strcmp(model, SEG_UNET_MODEL))
        return sd_fail("%s: holds a '%s' model, not a %s", f->path, model, SEG_UNET_MODEL);
    const StTensor *t = st_find(f, "enc.0.conv1.weight");
    if (!t || t->ndim != 4 || t->shape[0] < 1 || t->shape[0] > 4096)
        return sd_fail("%s: not a segmentation U-Net checkpoint (no valid enc.0.conv1.weight)", f->path);
    return (int)t->shape[0];
}

SegUnet *seg_unet_from_file(const StFile *f, const Backend *be, int max_batch, int h, int w)
{
    int width = checkpoint_width(f);
    if (width < 0) return NULL;
    SegUnet *m = seg_unet_create(be, width, max_batch, h, w, 0, 0);
    if (!m) return NULL;
    Params *p = &m->net.params;
    CkptSection weights = {"", &p->list, p->w}, buffers = {"", &p->buffers, p->buf};
    if (ckpt_load(f, be, &weights) || ckpt_load(f, be, &buffers)) {
        seg_unet_free(m);
        return NULL;
    }
    return m;
}

SegUnet *seg_unet_load(const char *weights_path, const Backend *be, int max_batch, int tile)
{
    StFile f;
    if (st_read(weights_path, &f)) return NULL;
    SegUnet *m = seg_unet_from_file(&f, be, max_batch, tile, tile);
    st_free(&f);
    return m;
}

/* ------------------------------------------------------------ inference */

int seg_unet_set_input(SegUnet *m, int n, const float *images)
{
    if (n < 1 || n > m->net.max_batch)
        return sd_fail("batch of %d images; this model takes 1..%d", n, m->net.max_batch);
    const Backend *be = m->net.be;
    be->upload(be->ctx, net_value(&m->net, m->in), images, net_act_numel(&m->net, m->in, n) * sizeof(float));
    return SD_OK;
}

int seg_unet_logits(SegUnet *m, int n, const float *images, float *logits)
{
    if (seg_unet_set_input(m, n, images)) return SD_ERR;
    const Backend *be = m->net.be;
    net_forward(&m->net, n, 0);
    be->download(be->ctx, logits, net_value(&m->net, m->out), net_act_numel(&m->net, m->out, n) * sizeof(float));
    return SD_OK;
}

int seg_unet_infer(SegUnet *m, int n, const float *images, float *probs)
{
    if (seg_unet_logits(m, n, images, probs)) return SD_ERR;
    size_t count = net_act_numel(&m->net, m->out, n);
    for (size_t i = 0; i < count; i++) probs[i] = 1 / (1 + expf(-probs[i]));
    return SD_OK;
}
