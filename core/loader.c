/* The batch loader (dataset.h).
 *
 * A batch is a pure function of (seed, epoch, index): the epoch's order is a Fisher-Yates
 * shuffle drawn from Philox stream SHUFFLE_STREAM(epoch), and tile t's augmentation in
 * epoch e uses stream AUG_STREAM(e, t). So any batch can be rebuilt on its own, which is
 * what makes prefetching safe and resuming bit-identical.
 *
 * One background thread builds the batch that follows the last one requested into its
 * own buffers. loader_get copies it out when it is the one asked for, and otherwise
 * builds the requested batch itself (a seek or resume); either way the bytes are equal. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "augment.h"
#include "dataset.h"
#include "err.h"
#include "philox.h"

/* Tiles are < 2^31, so AUG_STREAM never equals SHUFFLE_STREAM. */
#define AUG_STREAM(epoch, tile) ((uint64_t)(epoch) << 32 | (uint32_t)(tile))
#define SHUFFLE_STREAM(epoch) ((uint64_t)(epoch) << 32 | 0xFFFFFFFFu)

/* What one thread needs to build batches: its own order cache, buffers and one
 * augmentation scratch area per batch slot. */
typedef struct {
    long perm_epoch; /* epoch whose order is in perm, -1 for none */
    int32_t *perm;
    float *images, *masks, *scratch;
} Builder;

struct Loader {
    const TileSet *ts;
    int batch, shuffle, drop_last, has_aug;
    Norm norm;
    Augment aug;
    uint64_t seed;
    long batches;
    Builder caller, worker;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int want_valid, busy, ready, quit; /* worker state, under lock */
    long want_epoch, want_index, ready_epoch, ready_index, busy_epoch, busy_index;
    int ready_count;
};

/* ---- building one batch ---- */

static void epoch_order(const Loader *l, Builder *b, long epoch)
{
    if (b->perm_epoch == epoch) return;
    int n = l->ts->count;
    for (int i = 0; i < n; i++) b->perm[i] = i;
    if (l->shuffle)
        for (int i = n - 1; i > 0; i--) {
            philox_u32x4 r = philox4x32_10(l->seed, SHUFFLE_STREAM(epoch), (uint64_t)i);
            int j = (int)(((uint64_t)r.v[0] * (uint64_t)(i + 1)) >> 32); /* uniform in [0, i] */
            int32_t t = b->perm[i];
            b->perm[i] = b->perm[j];
            b->perm[j] = t;
        }
    b->perm_epoch = epoch;
}

static void load_tile(const Loader *l, float *scratch, long epoch, int tile, float *img, float *mask)
{
    const TileSet *ts = l->ts;
    size_t n = (size_t)ts->h * ts->w, at = (size_t)tile * n;
    for (size_t i = 0; i < n; i++) img[i] = (float)ts->image[at + i] / 255.0f;
    if (mask)
        for (size_t i = 0; i < n; i++) mask[i] = ts->mask[at + i];
    if (l->has_aug) augment_tile(&l->aug, l->seed, AUG_STREAM(epoch, tile), ts->h, ts->w, img, mask, scratch);
    if (l->norm == NORM_SYMMETRIC)
        for (size_t i = 0; i < n; i++) img[i] = (img[i] - 0.5f) / 0.5f;
}

/* Build batch (epoch, index) into images/masks; returns the number of tiles. */
static int build_batch(const Loader *l, Builder *b, long epoch, long index, float *images, float *masks)
{
    epoch_order(l, b, epoch);
    size_t n = (size_t)l->ts->h * l->ts->w;
    long first = index * l->batch;
    int count = (int)(l->ts->count - first < l->batch ? l->ts->count - first : l->batch);
    size_t per = augment_scratch_floats(l->ts->h, l->ts->w);
    /* Tiles are independent (own streams, own scratch): augment them in parallel. */
#pragma omp parallel for schedule(dynamic) if (count > 1 && l->has_aug)
    for (int k = 0; k < count; k++)
        load_tile(l, b->scratch + k * per, epoch, b->perm[first + k], images + k * n, masks ? masks + k * n : NULL);
    return count;
}

/* ---- the prefetch thread ---- */

static void *worker_main(void *arg)
{
    Loader *l = arg;
    float *masks = l->ts->mask ? l->worker.masks : NULL;
    pthread_mutex_lock(&l->lock);
    for (;;) {
        while (!l->quit && !l->want_valid) pthread_cond_wait(&l->cond, &l->lock);
        if (l->quit) break;
        long epoch = l->want_epoch, index = l->want_index;
        l->want_valid = 0;
        l->busy = 1, l->ready = 0;
        l->busy_epoch = epoch, l->busy_index = index;
        pthread_mutex_unlock(&l->lock);
        int count = build_batch(l, &l->worker, epoch, index, l->worker.images, masks);
        pthread_mutex_lock(&l->lock);
        l->busy = 0, l->ready = 1;
        l->ready_epoch = epoch, l->ready_index = index, l->ready_count = count;
        pthread_cond_broadcast(&l->cond);
    }
    pthread_mutex_unlock(&l->lock);
    return NULL;
}

/* Ask the worker for a batch (under lock). */
static void request(Loader *l, long epoch, long index)
{
    l->want_epoch = epoch, l->want_index = index, l->want_valid = 1;
    pthread_cond_broadcast(&l->cond);
}

/* ---- public ---- */

static int builder_init(Builder *b, const TileSet *ts, int batch)
{
    size_t n = (size_t)ts->h * ts->w;
    b->perm_epoch = -1;
    b->perm = malloc(sizeof(int32_t) * (size_t)ts->count);
    b->images = malloc(sizeof(float) * n * (size_t)batch);
    b->masks = ts->mask ? malloc(sizeof(float) * n * (size_t)batch) : NULL;
    b->scratch = malloc(sizeof(float) * augment_scratch_floats(ts->h, ts->w) * (size_t)batch);
    return b->perm && b->images && (b->masks || !ts->mask) && b->scratch ? SD_OK : SD_ERR;
}

static void builder_free(Builder *b)
{
    free(b->perm);
    free(b->images);
    free(b->masks);
    free(b->scratch);
}

static int loader_check(const TileSet *ts, int batch, int drop_last)
{
    if (!ts || ts->count < 1 || !ts->image) return sd_fail("loader: empty tile dataset");
    if (batch < 1) return sd_fail("loader: batch size %d must be >= 1", batch);
    if (drop_last && batch > ts->count)
        return sd_fail("loader: batch size %d exceeds the %d tiles (every batch would be dropped)", batch, ts->count);
    return SD_OK;
}

Loader *loader_create(const TileSet *ts, int batch, Norm norm, const Augment *aug, uint64_t seed, int shuffle,
                      int drop_last)
{
    if (loader_check(ts, batch, drop_last)) return NULL;
    Loader *l = calloc(1, sizeof *l);
    if (!l) return sd_fail("loader: out of memory"), NULL;
    *l = (Loader){.ts = ts, .batch = batch, .shuffle = shuffle, .drop_last = drop_last, .has_aug = aug != NULL,
                  .norm = norm, .aug = aug ? *aug : augment_none(), .seed = seed};
    l->batches = drop_last ? ts->count / batch : (ts->count + batch - 1) / batch;
    int ok = builder_init(&l->caller, ts, batch) == SD_OK && builder_init(&l->worker, ts, batch) == SD_OK;
    if (ok) {
        pthread_mutex_init(&l->lock, NULL); /* default attributes: cannot fail on Linux */
        pthread_cond_init(&l->cond, NULL);
        ok = pthread_create(&l->thread, NULL, worker_main, l) == 0;
        if (!ok) pthread_cond_destroy(&l->cond), pthread_mutex_destroy(&l->lock);
    }
    if (!ok) {
        builder_free(&l->caller);
        builder_free(&l->worker);
        free(l);
        sd_fail("loader: cannot allocate buffers or start the prefetch thread");
        return NULL;
    }
    pthread_mutex_lock(&l->lock);
    request(l, 0, 0); /* training usually starts here */
    pthread_mutex_unlock(&l->lock);
    return l;
}

long loader_batches(const Loader *l) { return l->batches; }

int loader_get(Loader *l, long epoch, long index, float *images, float *masks)
{
    if (epoch < 0 || epoch > 0x7FFFFFFFL || index < 0 || index >= l->batches)
        return sd_fail("loader: no batch %ld of epoch %ld (%ld batches per epoch)", index, epoch, l->batches);
    if (masks && !l->ts->mask) return sd_fail("loader: masks requested from an image-only dataset");
    size_t n = (size_t)l->ts->h * l->ts->w;
    int count = -1;
    pthread_mutex_lock(&l->lock);
    while (l->busy && l->busy_epoch == epoch && l->busy_index == index) pthread_cond_wait(&l->cond, &l->lock);
    if (!l->busy && l->ready && l->ready_epoch == epoch && l->ready_index == index) {
        count = l->ready_count;
        memcpy(images, l->worker.images, sizeof(float) * n * (size_t)count);
        if (masks) memcpy(masks, l->worker.masks, sizeof(float) * n * (size_t)count);
    }
    pthread_mutex_unlock(&l->lock);
    if (count < 0) count = build_batch(l, &l->caller, epoch, index, images, masks);
    pthread_mutex_lock(&l->lock);
    if (index + 1 < l->batches) request(l, epoch, index + 1);
    else if (epoch < 0x7FFFFFFFL) request(l, epoch + 1, 0);
    pthread_mutex_unlock(&l->lock);
    return count;
}

void loader_destroy(Loader *l)
{
    if (!l) return;
    pthread_mutex_lock(&l->lock);
    l->quit = 1;
    pthread_cond_broadcast(&l->cond);
    pthread_mutex_unlock(&l->lock);
    pthread_join(l->thread, NULL);
    pthread_cond_destroy(&l->cond);
    pthread_mutex_destroy(&l->lock);
    builder_free(&l->caller);
    builder_free(&l->worker);
    free(l);
}
