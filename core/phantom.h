/* Synthetic EM-like volumes with exact mitochondria masks (sdseg phantom, and the
 * embedded default data of the demo and the tests). Implemented in core/phantom.c. */
#ifndef SDSEG_PHANTOM_H
#define SDSEG_PHANTOM_H

#include <stdint.h>

/* Fill image (pages*h*w 8-bit gray, page after page) and mask (same size, 0/1: inside a
 * mitochondrion) with a volume that is a pure function of (pages, h, w, seed). Pages
 * are consecutive slices of one isotropic volume, so structures persist across them.
 * SD_ERR for sizes outside 1..4096 (pages) or 16..8192 (sides). */
int phantom_make(int pages, int h, int w, uint64_t seed, uint8_t *image, uint8_t *mask);

#endif
