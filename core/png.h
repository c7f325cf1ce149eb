/* A minimal PNG writer: 8-bit grayscale or RGB, no compression library -- the image data
 * goes into zlib "stored" (uncompressed) deflate blocks, every scanline with filter 0.
 * Files are written atomically (core/fileio.h). */
#ifndef SDSEG_PNG_H
#define SDSEG_PNG_H

#include <stddef.h>
#include <stdint.h>

/* Write an h x w image of `channels` (1: gray, 3: RGB, interleaved) bytes per pixel,
 * row-major. SD_ERR with a one-line message for bad sizes or a failed write. */
int png_write(const char *path, int h, int w, int channels, const uint8_t *pixels);

/* The n tiles [n, h, w, channels] laid out row by row in a grid of `cols` columns and
 * ceil(n / cols) rows, each cell framed by a PNG_GRID_BORDER-pixel white border (cells
 * after the last tile stay white). */
#define PNG_GRID_BORDER 2
int png_write_grid(const char *path, int n, int h, int w, int channels, const uint8_t *tiles, int cols);

/* n gray pages [n, h, w] as RGB [n, h, w, 3] with the outline of each page's mask (nonzero
 * pixels of masks [n, h, w] that have a 4-neighbour outside the mask; the image border is no
 * edge) painted red. */
void png_outline_rgb(const uint8_t *gray, const uint8_t *masks, int n, int h, int w, uint8_t *rgb);

/* The checksums, continued from a previous value as zlib's crc32()/adler32(): start from
 * 0 (CRC-32) or 1 (Adler-32). */
uint32_t png_crc32(uint32_t crc, const uint8_t *data, size_t n);
uint32_t png_adler32(uint32_t adler, const uint8_t *data, size_t n);

#endif
