/* Multipage grayscale TIFF stacks (libtiff). Implemented in core/tiff.c. */
#ifndef SDSEG_TIFF_H
#define SDSEG_TIFF_H

#include <stdint.h>

/* A stack of `pages` slices of h x w pixels, row-major, page after page. Values are
 * scaled to [0,1]: 8-bit /255, 16-bit /65535, float32 pages as stored. RGB/RGBA pages
 * are converted to gray (ITU-R 601 luma). */
typedef struct {
    int pages, h, w;
    int bits;    /* bits per sample of the source (8, 16 or 32) */
    float *data; /* pages*h*w values; free with stack_free */
} Stack;

/* Read every page; all pages must share one size. SD_ERR with a one-line message
 * naming the file and the problem (not a TIFF, truncated, zero pages, unsupported
 * sample format, pages of different sizes, absurd dimensions, ...). */
int tiff_read_stack(const char *path, Stack *out);
void stack_free(Stack *s);

/* Write multipage stacks atomically (temp file + rename); readable by Fiji/ImageJ
 * and Python's tifffile. */
int tiff_write_u8(const char *path, int pages, int h, int w, const uint8_t *data);
int tiff_write_f32(const char *path, int pages, int h, int w, const float *data);

#endif
