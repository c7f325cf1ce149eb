/* The seed's segmentation U-Net (Keras, transcribed to PyTorch naming; see
 * ../shared/docs/seed-models.md and checkpoint-keys/seg_unet.tsv):
 *
 *   Block(c) = [Conv3x3(c, same) -> BatchNorm -> ReLU] x 2
 *   encoder  enc.i = Block(w * 2^i), i = 0..3, each followed by MaxPool 2x2
 *   bridge   Block(16 w)
 *   decoder  up.i = ConvTranspose 2x2 stride 2 to c = w * 2^(3-i) -> concat [up, enc.(3-i)]
 *            -> dec.i = Block(c)
 *   head     Conv1x1(w, 1) -> logits (the sigmoid belongs to the loss and to inference)
 *
 * Base width w = 64 in the seed (31.0 M parameters); 16 or 32 suit CPUs. Batch norm uses
 * Keras's epsilon 1e-3. Input [n, 1, h, w] in [0,1] with h, w multiples of 16. */
#ifndef SDSEG_SEG_UNET_H
#define SDSEG_SEG_UNET_H

#include "../core/safetensors.h"
#include "../ops/ops.h"
#include "net.h"

#define SEG_UNET_MODEL "seg_unet" /* the checkpoint's __metadata__ "model" */
#define SEG_BN_EPS 1e-3f          /* keras.layers.BatchNormalization's default */

typedef struct SegUnet SegUnet;

struct SegUnet {
    Net net;
    int width, h, w;
    int in, out; /* activation ids: input image, logits */
};

/* ------------------------------------------------------------ inference */

/* NULL + sd_fail on error; width read from the checkpoint. Eval mode. */
SegUnet *seg_unet_load(const char *weights_path, const Backend *be, int max_batch, int tile);
/* images: host [n,1,tile,tile] in [0,1]; probs: host, sigmoid of the logits. n <= max_batch. */
int seg_unet_infer(SegUnet *m, int n, const float *images, float *probs);
void seg_unet_free(SegUnet *m);

/* ------------------------------------------------------------ building blocks */

/* A freshly built model (weights zero until seg_unet_init or a checkpoint load) for inputs
 * of h x w. training: allocate gradients; bn_momentum: PyTorch convention (Keras's 0.99
 * is 0.01). NULL + sd_fail on error. */
SegUnet *seg_unet_create(const Backend *be, int width, int max_batch, int h, int w, int training, float bn_momentum);
/* Weights and batch-norm buffers of an opened checkpoint (width from its tensors). */
SegUnet *seg_unet_from_file(const StFile *f, const Backend *be, int max_batch, int h, int w);
void seg_unet_init(SegUnet *m, uint64_t seed);
/* Upload host images [n,1,h,w] into the input activation. */
int seg_unet_set_input(SegUnet *m, int n, const float *images);
/* Eval-mode forward; logits to host [n,1,h,w]. */
int seg_unet_logits(SegUnet *m, int n, const float *images, float *logits);

#endif
