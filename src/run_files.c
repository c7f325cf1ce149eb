/* Training run folders, data and logs (see run_files.h). */
#include "run_files.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../core/err.h"
#include "../core/fileio.h"
#include "../core/tiles.h"

int run_dir_prepare(const char *dir, int resume)
{
    char last[4200];
    snprintf(last, sizeof last, "%s/last.safetensors", dir);
    if (mkdir(dir, 0755) && errno != EEXIST) return sd_fail("cannot create %s: %s", dir, strerror(errno));
    struct stat st;
    int exists = stat(last, &st) == 0;
    if (resume && !exists) return sd_fail("%s: nothing to resume (no last.safetensors)", dir);
    if (!resume && exists) return sd_fail("%s already holds a run: use --resume, or another --out", dir);
    return SD_OK;
}

/* Keep the header and the rows of steps <= step (the rest came after the checkpoint). */
static int csv_trim(const char *path, long step)
{
    FILE *in = fopen(path, "r");
    if (!in) return SD_OK;
    AtomicFile af;
    if (atomic_open(&af, path)) {
        fclose(in);
        return SD_ERR;
    }
    char line[1024];
    for (int first = 1; fgets(line, sizeof line, in); first = 0)
        if (first || atol(line) <= step) fputs(line, af.f);
    fclose(in);
    return atomic_commit(&af);
}

FILE *run_csv_open(const char *dir, const char *name, const char *header, int resume, long step)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (resume && csv_trim(path, step)) return NULL;
    FILE *f = fopen(path, resume ? "a" : "w");
    if (!f) sd_fail("cannot write %s: %s", path, strerror(errno));
    else if (!resume) fprintf(f, "%s\n", header);
    return f;
}

int train_run_open(TrainRun *r, const char *data, const char *out, int resume, int with_masks)
{
    *r = (TrainRun){.with_masks = with_masks};
    snprintf(r->last, sizeof r->last, "%s/last.safetensors", out);
    snprintf(r->best, sizeof r->best, "%s/best.safetensors", out);
    char path[4200];
    snprintf(path, sizeof path, "%s/train.tiles", data);
    if (tileset_open(path, &r->train_ts)) return SD_ERR;
    snprintf(path, sizeof path, "%s/val.tiles", data);
    if (tileset_open(path, &r->val_ts)) return SD_ERR;
    if (with_masks && (!r->train_ts.mask || !r->val_ts.mask))
        return sd_fail("%s: the tile datasets hold no masks", data);
    return run_dir_prepare(out, resume);
}

/* The writable arrays of a tile set being assembled in memory. */
typedef struct {
    uint8_t *image, *mask; /* mask NULL: none */
    int32_t *slice, *origin;
} TileArrays;

/* The tiles of s into d from tile `at` on. */
static void copy_tiles(const TileArrays *d, const TileSet *s, size_t at)
{
    size_t px = (size_t)s->h * s->w, n = (size_t)s->count;
    memcpy(d->image + at * px, s->image, n * px);
    if (d->mask) memcpy(d->mask + at * px, s->mask, n * px);
    memcpy(d->slice + at, s->slice, n * sizeof(int32_t));
    memcpy(d->origin + 2 * at, s->origin, 2 * n * sizeof(int32_t));
}

/* a followed by b in one heap block *block (index arrays first, for their alignment);
 * masks only when both have them. */
static int tileset_concat(const TileSet *a, const TileSet *b, TileSet *out, void **block)
{
    size_t n = (size_t)a->count + (size_t)b->count, px = (size_t)a->h * a->w;
    if (n > INT_MAX) return sd_fail("too many training tiles (%zu)", n);
    int masks = a->mask && b->mask;
    uint8_t *p = malloc(3 * n * sizeof(int32_t) + (masks ? 2 : 1) * n * px);
    if (!p) return sd_fail("out of memory for %zu training tiles", n);
    TileArrays d = {.slice = (int32_t *)p, .origin = (int32_t *)p + n, .image = p + 3 * n * sizeof(int32_t)};
    d.mask = masks ? d.image + n * px : NULL;
    copy_tiles(&d, a, 0);
    copy_tiles(&d, b, (size_t)a->count);
    *out = (TileSet){.count = (int)n, .h = a->h, .w = a->w, .image = d.image, .mask = d.mask, .slice = d.slice,
                     .origin = d.origin};
    *block = p;
    return SD_OK;
}

static void release_train_set(TrainRun *r)
{
    if (r->merged) free(r->merged);
    else if (r->train_ts.map) tileset_close(&r->train_ts);
    r->merged = NULL;
    memset(&r->train_ts, 0, sizeof r->train_ts);
}

int train_run_add_train(TrainRun *r, const char *dir, int *count, uint64_t *checksum)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/train.tiles", dir);
    TileSet extra;
    if (tileset_open(path, &extra)) return SD_ERR;
    int rc = SD_OK;
    if (extra.h != r->train_ts.h || extra.w != r->train_ts.w)
        rc = sd_fail("%s holds %dx%d tiles, the training data %dx%d", path, extra.h, extra.w, r->train_ts.h,
                     r->train_ts.w);
    else if (r->with_masks && !extra.mask)
        rc = sd_fail("%s holds no masks", path);
    TileSet merged;
    void *block = NULL;
    if (rc == SD_OK) rc = tileset_concat(&r->train_ts, &extra, &merged, &block);
    if (rc == SD_OK) {
        *count = extra.count;
        *checksum = tiles_checksum(extra.map, extra.map_len);
        release_train_set(r);
        r->train_ts = merged, r->merged = block;
    }
    tileset_close(&extra);
    return rc;
}

int train_run_fit(const TrainRun *r, int batch, int accum, int *tile_h, int *tile_w, long *steps_per_epoch)
{
    *tile_h = r->train_ts.h, *tile_w = r->train_ts.w;
    *steps_per_epoch = r->train_ts.count / ((long)batch * accum);
    if (r->val_ts.h != *tile_h || r->val_ts.w != *tile_w)
        return sd_fail("train and validation tiles differ in size (%dx%d, %dx%d)", *tile_h, *tile_w, r->val_ts.h,
                       r->val_ts.w);
    return SD_OK;
}

int train_run_loaders(TrainRun *r, int batch, int accum, Norm norm, const Augment *aug, uint64_t seed)
{
    size_t n = (size_t)accum * batch * r->train_ts.h * r->train_ts.w;
    r->train = loader_create(&r->train_ts, batch, norm, aug, seed, 1, 1);
    r->val = r->train ? loader_create(&r->val_ts, batch, norm, NULL, seed, 0, 0) : NULL;
    r->images = malloc(n * sizeof(float));
    r->masks = r->with_masks ? malloc(n * sizeof(float)) : NULL;
    if (!r->train || !r->val) return SD_ERR;
    return r->images && (r->masks || !r->with_masks) ? SD_OK : sd_fail("out of memory for %zu tile pixels", n);
}

int train_run_fetch(TrainRun *r, long step, long steps_per_epoch, int batch, int accum)
{
    long epoch = step / steps_per_epoch, first = step % steps_per_epoch * accum;
    size_t micro = (size_t)batch * r->train_ts.h * r->train_ts.w;
    for (int k = 0; k < accum; k++) {
        float *masks = r->masks ? r->masks + k * micro : NULL;
        if (loader_get(r->train, epoch, first + k, r->images + k * micro, masks) < 0) return SD_ERR;
    }
    return SD_OK;
}

int train_run_logs(TrainRun *r, const char *out, const char *steps_header, const char *epochs_header, int resume,
                   long step)
{
    r->steps_csv = run_csv_open(out, "steps.csv", steps_header, resume, step);
    r->epochs_csv = run_csv_open(out, "epochs.csv", epochs_header, resume, step);
    return r->steps_csv && r->epochs_csv ? SD_OK : SD_ERR;
}

void train_run_close(TrainRun *r)
{
    loader_destroy(r->train);
    loader_destroy(r->val);
    release_train_set(r);
    if (r->val_ts.map) tileset_close(&r->val_ts);
    if (r->steps_csv) fclose(r->steps_csv);
    if (r->epochs_csv) fclose(r->epochs_csv);
    free(r->images);
    free(r->masks);
}

static volatile sig_atomic_t stop_signal;
static void on_signal(int sig) { stop_signal = sig; }

void train_stop_on_signals(void)
{
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
}

int train_stop_requested(void) { return stop_signal; }

int train_report_stop(const char *cmd, const char *out)
{
    if (!stop_signal) return 0;
    fprintf(stderr, "%s: stopped by signal %d; the state is in %s/last.safetensors (continue with --resume)\n", cmd,
            (int)stop_signal, out);
    return 1;
}
