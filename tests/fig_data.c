/* Panels of the data-pipeline figure (reports/make-data-figure.sh): the first tile of a
 * tile dataset as the loader returns it without augmentation and under several
 * augmentation settings, each image/mask pair written as gnuplot matrix files
 * OUT/<name>_image.dat (0..255) and OUT/<name>_mask.dat (0/1).
 *
 * usage: fig_data TILES OUTDIR */
#include <stdio.h>
#include <stdlib.h>

#include "../core/dataset.h"
#include "../core/err.h"

static int write_matrix(const char *dir, const char *name, const char *kind, const float *x, int h, int w,
                        float scale)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s_%s.dat", dir, name, kind);
    FILE *f = fopen(path, "w");
    if (!f) return sd_fail("cannot write %s", path);
    for (int r = 0; r < h; r++)
        for (int c = 0; c < w; c++) fprintf(f, "%.0f%c", x[r * w + c] * scale, c + 1 < w ? ' ' : '\n');
    return fclose(f) == 0 ? SD_OK : sd_fail("writing %s failed", path);
}

/* Tile 0 (file order) of `epoch` under augmentation a (NULL: none). */
static int panel(const TileSet *ts, const char *dir, const char *name, const Augment *a, long epoch)
{
    size_t n = (size_t)ts->h * ts->w;
    float *img = malloc(n * sizeof(float)), *msk = malloc(n * sizeof(float));
    Loader *l = loader_create(ts, 1, NORM_UNIT, a, 2024, 0, 0);
    int rc = img && msk && l && loader_get(l, epoch, 0, img, msk) == 1 ? SD_OK : SD_ERR;
    if (rc == SD_OK) rc = write_matrix(dir, name, "image", img, ts->h, ts->w, 255.0f);
    if (rc == SD_OK) rc = write_matrix(dir, name, "mask", msk, ts->h, ts->w, 1.0f);
    loader_destroy(l);
    free(img);
    free(msk);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc != 3) return fprintf(stderr, "usage: fig_data TILES OUTDIR\n"), 2;
    TileSet ts;
    if (tileset_open(argv[1], &ts) || !ts.mask) {
        fprintf(stderr, "fig_data: %s\n", ts.mask ? sd_last_error() : "the dataset has no masks");
        return 1;
    }
    Augment seed = augment_seed(), elastic = augment_none(), levels = augment_none(), all = augment_seed();
    elastic.elastic_alpha = 300, elastic.elastic_sigma = 10;
    levels.brightness = 0.1f, levels.contrast = 0.3f, levels.gamma = 0.3f, levels.noise_std = 0.06f;
    levels.blur_sigma = 1.5f;
    all.rot90 = 1, all.elastic_alpha = 300, all.elastic_sigma = 10, all.brightness = 0.1f, all.contrast = 0.3f;
    all.gamma = 0.3f, all.noise_std = 0.06f, all.blur_sigma = 1.5f;
    int rc = panel(&ts, argv[2], "none", NULL, 0) || panel(&ts, argv[2], "seed1", &seed, 1) ||
             panel(&ts, argv[2], "seed2", &seed, 2) || panel(&ts, argv[2], "seed3", &seed, 3) ||
             panel(&ts, argv[2], "elastic", &elastic, 1) || panel(&ts, argv[2], "levels", &levels, 1) ||
             panel(&ts, argv[2], "all", &all, 4);
    if (rc) fprintf(stderr, "fig_data: %s\n", sd_last_error());
    tileset_close(&ts);
    return rc ? 1 : 0;
}
