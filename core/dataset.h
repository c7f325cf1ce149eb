/* Tile datasets (written by `sdseg prep`, memory-mapped for training) and the batch
 * loader with its background prefetch thread and joint image/mask augmentation.
 * Implemented in core/tiles.c, core/loader.c and core/augment.c. */
#ifndef SDSEG_DATASET_H
#define SDSEG_DATASET_H

#include <stddef.h>
#include <stdint.h>

/* A tile dataset file, mapped read-only. The on-disk format (versioned header with a
 * checksum, then the arrays) is documented in core/tiles.c. */
typedef struct {
    int count, h, w;
    const uint8_t *image;  /* [count][h][w] 8-bit pixels, exactly as in the source */
    const uint8_t *mask;   /* [count][h][w] 0/1, or NULL for an image-only dataset */
    const int32_t *slice;  /* [count] source slice (page) of each tile */
    const int32_t *origin; /* [count][2] (y, x) of the tile's top-left corner in the slice */
    void *map;             /* mapping, for tileset_close */
    size_t map_len;
} TileSet;

int tileset_open(const char *path, TileSet *ts); /* SD_ERR on a bad header, checksum, size */
void tileset_close(TileSet *ts);

/* Pixel normalization: the seed's generative models see (x/255 - 0.5)/0.5 in [-1,1];
 * its segmentation sees x/255 in [0,1]. */
typedef enum { NORM_UNIT, NORM_SYMMETRIC } Norm;

/* Augmentations, each switchable; all are applied jointly to image and mask (masks stay
 * exactly 0/1) and drawn from Philox streams keyed by (seed, epoch, tile), so a batch is
 * a pure function of (seed, epoch, batch index): resuming reproduces it bit for bit. */
typedef struct {
    int flips, rot90;
    float rotate_deg, shift, shear, zoom; /* the seed's Keras affine set: 90, 0.3, 0.5, 0.3 */
    float elastic_alpha, elastic_sigma;   /* 0 = off */
    float brightness, contrast, gamma;    /* max deviations, 0 = off */
    float noise_std, blur_sigma;          /* 0 = off */
} Augment;

Augment augment_none(void);
Augment augment_seed(void); /* the seed's ImageDataGenerator settings, reflect fill */

typedef struct Loader Loader;

/* Batches of `batch` tiles in an order shuffled per epoch (or in file order when
 * shuffle == 0); the last, partial batch is dropped when drop_last. aug may be NULL. */
Loader *loader_create(const TileSet *ts, int batch, Norm norm, const Augment *aug, uint64_t seed, int shuffle,
                      int drop_last);
long loader_batches(const Loader *l); /* batches per epoch */
/* Batch `index` of `epoch` into images/masks ([batch,1,h,w] float, masks 0/1; masks may be
 * NULL). Returns the number of tiles written. A background thread prepares the next batch
 * while the caller trains, so sequential calls rarely wait. */
int loader_get(Loader *l, long epoch, long index, float *images, float *masks);
void loader_destroy(Loader *l);

#endif
