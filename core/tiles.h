/* Writing tile-dataset files (sdseg prep). Reading them is tileset_open in dataset.h;
 * the on-disk format is documented at the top of core/tiles.c. */
#ifndef SDSEG_TILES_H
#define SDSEG_TILES_H

#include "dataset.h"

#define TILES_VERSION 1

/* Where the tiles came from; recorded in the header. */
typedef struct {
    int stride_y, stride_x;     /* tile placement step */
    int src_pages, src_h, src_w; /* source stack */
    int src_bits;               /* bits per sample of the source image stack */
    const char *split;          /* "train", "val" or "all" */
    const char *image_source;   /* file names as given to prep */
    const char *mask_source;    /* NULL for an image-only dataset */
} TileMeta;

/* Write ts (count >= 1; ts->mask may be NULL) atomically with its checksum. */
int tileset_write(const char *path, const TileSet *ts, const TileMeta *meta);
/* The checksum the header stores for a whole file image of len >= 72 bytes. */
uint64_t tiles_checksum(const uint8_t *file, size_t len);

/* The provenance recorded in an open dataset's header (strings point into the map). */
void tileset_meta(const TileSet *ts, TileMeta *meta);

#endif
