/* Fixed feature vectors for fidelity scores (sdseg fidelity), from a trained segmentation
 * U-Net instead of an Inception network (nothing is downloaded):
 *
 *   feature = [ GAP(enc.3 block output) (8 w values), GAP(bridge output) (16 w values) ]
 *
 * GAP = global average pool over the positions of the post-ReLU activations, w = the
 * checkpoint's base width, so 24 w values: 384 for w = 16, 768 for w = 32, 1536 for the
 * seed's w = 64. These are the two deepest levels, the ones with the largest receptive
 * fields (the bridge sees about 140 x 140 pixels) and the most semantic content
 * (membranes, mitochondria, vesicles and their arrangement), like Inception's pool3;
 * shallower levels mostly encode local intensity and texture, which the histogram and
 * spectrum distances of core/fidelity.h already measure. The decoder is not run. */
#ifndef SDSEG_SEG_FEATURES_H
#define SDSEG_SEG_FEATURES_H

#include <stdint.h>

#include "seg_unet.h"

typedef struct {
    SegUnet *unet;
    int tile, dim;
    int deep, bridge; /* activation ids: enc.3 block output and bridge output */
    int layers;       /* the forward prefix that computes both */
    float *host;      /* staging: input images, then each activation */
} SegFeatures;

/* A train-seg checkpoint for batches of up to max_batch tiles of tile x tile (a multiple
 * of 16, at least 32). NULL + sd_fail on error. */
SegFeatures *seg_features_load(const char *weights_path, const Backend *be, int max_batch, int tile);
/* n <= max_batch 8-bit tiles [n][tile][tile] (seen as x/255, as in training) -> out [n][dim]. */
int seg_features_run(SegFeatures *f, int n, const uint8_t *tiles, double *out);
void seg_features_free(SegFeatures *f);

#endif
