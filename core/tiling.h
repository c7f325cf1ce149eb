/* Whole-slice inference by overlapping tiles: slices of any size are cut into square
 * tiles (reflect-padded where a slice is smaller than a tile), a callback maps batches
 * of tiles to per-pixel outputs, and the outputs are blended back with a smooth window so
 * tile seams do not show. Implemented in core/tiling.c. */
#ifndef SDSEG_TILING_H
#define SDSEG_TILING_H

/* Maps n tiles [n,1,tile,tile] (host) to outputs of the same shape. SD_OK or SD_ERR. */
typedef int (*TileFn)(void *user, int n, const float *tiles, float *out);
/* Called after every batch with the tiles done so far and the total. */
typedef void (*TileProgress)(void *user, long done, long total);

typedef struct {
    int tile;                   /* tile side in pixels */
    int overlap;                /* minimum overlap of neighbouring tiles, 0 <= overlap < tile */
    int batch;                  /* tiles per callback call (the last call may get fewer) */
    TileProgress progress;      /* optional */
    void *progress_user;
} Tiling;

/* Tiles per slice of h x w pixels (SD_ERR on invalid settings). */
long tiling_count(const Tiling *t, int h, int w);

/* out[pages,h,w] = fn applied to in[pages,h,w] tile by tile, blended. Tiles start on an
 * even grid from the first to the last pixel so neighbours overlap by at least `overlap`;
 * a slice smaller than a tile is centred in it and reflect-padded (numpy's 'reflect').
 * Each pixel is sum_t wt(p) out_t(p) / sum_t wt(p) with wt a separable raised-cosine
 * (Hann) window floored away from 0, so an identity fn gives back the input exactly. */
int tiling_run(const Tiling *t, int pages, int h, int w, const float *in, TileFn fn, void *user, float *out);

#endif
