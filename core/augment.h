/* Joint image/mask augmentation of one tile (used by the loader) and the image helpers
 * it shares with the phantom generator. Implemented in core/augment.c. */
#ifndef SDSEG_AUGMENT_H
#define SDSEG_AUGMENT_H

#include <stddef.h>
#include <stdint.h>

#include "dataset.h"

/* Floats of scratch memory augment_tile needs for an h x w tile. */
size_t augment_scratch_floats(int h, int w);

/* Augment img (h x w, values in [0,1]) and mask (0/1, or NULL) in place. Every random
 * draw is Philox value k of (seed, stream): the result is a pure function of
 * (a, seed, stream, input). Masks follow the image through every geometric step and
 * are re-binarized (bilinear, then >= 0.5), so they stay exactly 0/1; the intensity
 * steps (contrast, brightness, gamma, blur, noise) touch the image only. */
void augment_tile(const Augment *a, uint64_t seed, uint64_t stream, int h, int w, float *img, float *mask,
                  float *scratch);

/* In-place separable Gaussian blur, reflect borders, taps out to 3 sigma (at most 255);
 * leaves x as it is if its line buffer cannot be allocated. */
void image_blur(float *x, int h, int w, float sigma);

#endif
