/* libFuzzer harness for the tile-dataset reader (make fuzz). Inputs that carry the
 * magic get their checksum repaired unless the last byte is odd, so mutations reach
 * the checks behind it; an accepted small dataset goes through the loader with every
 * augmentation on. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../core/dataset.h"
#include "../core/tiles.h"

static const char *memory_file(const uint8_t *data, size_t size)
{
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        fd = memfd_create("fuzz_tiles", 0);
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    if (fd < 0 || ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size) abort();
    return path;
}

static void exercise_loader(const TileSet *ts)
{
    Augment a = augment_seed();
    a.rot90 = 1, a.elastic_alpha = 30, a.elastic_sigma = 3, a.brightness = 0.1f, a.contrast = 0.2f;
    a.gamma = 0.2f, a.noise_std = 0.05f, a.blur_sigma = 1.0f;
    Loader *l = loader_create(ts, 2, NORM_SYMMETRIC, &a, 1, 1, 0);
    if (!l) abort();
    size_t n = 2 * (size_t)ts->h * ts->w;
    float *img = malloc(n * sizeof(float)), *msk = malloc(n * sizeof(float));
    int got = loader_get(l, 0, 0, img, ts->mask ? msk : NULL);
    for (size_t i = 0; ts->mask && got > 0 && i < (size_t)got * ts->h * ts->w; i++)
        if (msk[i] != 0.0f && msk[i] != 1.0f) abort(); /* masks must stay exactly binary */
    free(img);
    free(msk);
    loader_destroy(l);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *copy = malloc(size + 1);
    memcpy(copy, data, size);
    if (size >= 1024 && !memcmp(copy, "SDTILES", 8) && !(copy[size - 1] & 1)) {
        uint64_t sum = tiles_checksum(copy, size);
        for (int k = 0; k < 8; k++) copy[64 + k] = (uint8_t)(sum >> 8 * k);
    }
    TileSet ts;
    if (tileset_open(memory_file(copy, size), &ts) == 0) {
        if ((size_t)ts.count * ts.h * ts.w <= (1u << 16)) exercise_loader(&ts);
        tileset_close(&ts);
    }
    free(copy);
    return 0;
}
