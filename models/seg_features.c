/* Segmentation U-Net encoder features (see seg_features.h). */
#include "seg_features.h"

#include <stdlib.h>

#include "../core/err.h"

/* The U-Net of seg_unet.c appends its layers in order: encoder, bridge, then the decoder,
 * whose first layer is up.0's transposed convolution of the bridge output, concatenated
 * with enc.3's output as the skip. Both are found from those two layers, and their shapes
 * are checked so that a change of the layout is an error, not wrong features. */
static int locate(SegFeatures *f)
{
    const Net *n = &f->unet->net;
    int width = f->unet->width;
    f->deep = f->bridge = f->layers = -1;
    for (int i = 0; i < n->nlayer; i++) {
        if (f->bridge < 0 && n->layer[i].kind == LAYER_CONVT) f->bridge = n->layer[i].in, f->layers = i;
        if (f->deep < 0 && n->layer[i].kind == LAYER_CONCAT) f->deep = n->layer[i].in2;
    }
    const NetAct *b = f->bridge >= 0 ? &n->act[f->bridge] : NULL, *d = f->deep >= 0 ? &n->act[f->deep] : NULL;
    if (!b || !d || b->c != 16 * width || b->h != f->tile / 16 || d->c != 8 * width || d->h != f->tile / 8)
        return sd_fail("segmentation U-Net: unexpected layer layout (no bridge and enc.3 outputs found)");
    f->dim = d->c + b->c;
    return SD_OK;
}

SegFeatures *seg_features_load(const char *weights_path, const Backend *be, int max_batch, int tile)
{
    SegFeatures *f = calloc(1, sizeof *f);
    if (!f) {
        sd_fail("out of memory");
        return NULL;
    }
    f->tile = tile;
    f->unet = seg_unet_load(weights_path, be, max_batch, tile);
    if (f->unet && locate(f) == SD_OK) {
        int staged[3] = {f->unet->in, f->deep, f->bridge};
        size_t most = 0;
        for (int i = 0; i < 3; i++) {
            size_t numel = net_act_numel(&f->unet->net, staged[i], max_batch);
            most = numel > most ? numel : most;
        }
        f->host = malloc(most * sizeof *f->host);
        if (f->host) return f;
        sd_fail("out of memory for %d tiles of %d x %d", max_batch, tile, tile);
    }
    seg_features_free(f);
    return NULL;
}

void seg_features_free(SegFeatures *f)
{
    if (!f) return;
    seg_unet_free(f->unet);
    free(f->host);
    free(f);
}

/* Channel means of activation `act` for n samples into out[i * stride + c]. */
static void pool(SegFeatures *f, int act, int n, double *out, int stride)
{
    const Net *net = &f->unet->net;
    const NetAct *a = &net->act[act];
    size_t hw = (size_t)a->h * a->w;
    net->be->download(net->be->ctx, f->host, net_value(net, act), net_act_numel(net, act, n) * sizeof(float));
    for (int i = 0; i < n; i++)
        for (int c = 0; c < a->c; c++) {
            const float *x = f->host + ((size_t)i * a->c + c) * hw;
            double sum = 0;
            for (size_t p = 0; p < hw; p++) sum += x[p];
            out[(size_t)i * stride + c] = sum / (double)hw;
        }
}

int seg_features_run(SegFeatures *f, int n, const uint8_t *tiles, double *out)
{
    size_t count = (size_t)n * f->tile * f->tile;
    for (size_t i = 0; i < count; i++) f->host[i] = tiles[i] / 255.0f;
    if (seg_unet_set_input(f->unet, n, f->host)) return SD_ERR;
    net_forward_layers(&f->unet->net, f->layers, n, 0);
    pool(f, f->deep, n, out, f->dim);
    pool(f, f->bridge, n, out + f->unet->net.act[f->deep].c, f->dim);
    return SD_OK;
}
