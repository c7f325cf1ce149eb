/* The device-memory accountant and the per-context workspace arena.
 *
 * Every device allocation of the backend (tensors, workspace chunks, the cuBLAS
 * workspace) goes through gpu_mem_alloc/gpu_mem_free, which keep the size of each
 * live block in a small open-addressing table so that current and peak bytes are
 * exact. (cuDNN and cuBLAS handles keep a little internal state of their own, which
 * no API lets us route here.) */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "internal.h"

typedef struct {
    void *key;
    size_t bytes;
} Block;

static struct {
    pthread_mutex_t lock;
    Block *slot;
    size_t cap; /* power of two; 0 before the first allocation */
    size_t used;
    size_t current, peak;
} acct = {PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0, 0, 0};

static size_t slot_of(const void *p, size_t cap)
{
    uint64_t h = (uint64_t)(uintptr_t)p;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull; /* murmur3 finalizer: device pointers share their low bits */
    h ^= h >> 33;
    return (size_t)h & (cap - 1);
}

static void table_put(Block *slot, size_t cap, void *p, size_t bytes)
{
    size_t i = slot_of(p, cap);
    while (slot[i].key) i = (i + 1) & (cap - 1);
    slot[i].key = p;
    slot[i].bytes = bytes;
}

/* Keep the load at most one half. */
static void table_grow(void)
{
    if (2 * (acct.used + 1) <= acct.cap) return;
    size_t cap = acct.cap ? 2 * acct.cap : 1024;
    Block *slot = (Block *)calloc(cap, sizeof *slot);
    if (!slot) sd_die(3, "out of host memory in the GPU memory accountant");
    for (size_t i = 0; i < acct.cap; i++)
        if (acct.slot[i].key) table_put(slot, cap, acct.slot[i].key, acct.slot[i].bytes);
    free(acct.slot);
    acct.slot = slot;
    acct.cap = cap;
}

/* Remove p (linear probing with backward-shift deletion, so no tombstones); returns
 * its size, or 0 when p was not allocated here. */
static size_t table_remove(void *p)
{
    if (!acct.cap) return 0;
    size_t mask = acct.cap - 1, i = slot_of(p, acct.cap);
    while (acct.slot[i].key && acct.slot[i].key != p) i = (i + 1) & mask;
    if (!acct.slot[i].key) return 0;
    size_t bytes = acct.slot[i].bytes;
    size_t hole = i;
    for (size_t j = (i + 1) & mask; acct.slot[j].key; j = (j + 1) & mask) {
        size_t home = slot_of(acct.slot[j].key, acct.cap);
        /* move j into the hole unless its home lies cyclically in (hole, j] */
        int stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (stays) continue;
        acct.slot[hole] = acct.slot[j];
        hole = j;
    }
    acct.slot[hole].key = NULL;
    acct.used--;
    return bytes;
}

void *gpu_mem_alloc(size_t bytes, const char *what)
{
    void *p = NULL;
    size_t n = bytes ? bytes : 1; /* cudaMalloc(0) gives NULL */
    cudaError_t e = cudaMalloc(&p, n);
    if (e != cudaSuccess) {
        GpuMemoryStats s = gpu_memory_stats();
        sd_die(3, "out of GPU memory: %s of %zu bytes failed (%s); %zu bytes in use, peak %zu", what, n,
               cudaGetErrorString(e), s.current, s.peak);
    }
    pthread_mutex_lock(&acct.lock);
    table_grow();
    table_put(acct.slot, acct.cap, p, n);
    acct.used++;
    acct.current += n;
    if (acct.current > acct.peak) acct.peak = acct.current;
    pthread_mutex_unlock(&acct.lock);
    return p;
}

void gpu_mem_free(void *p)
{
    if (!p) return;
    pthread_mutex_lock(&acct.lock);
    size_t bytes = table_remove(p);
    acct.current -= bytes;
    pthread_mutex_unlock(&acct.lock);
    if (!bytes) sd_die(3, "gpu_mem_free: %p was not allocated by the GPU backend", p);
    CUDA_CHECK(cudaFree(p));
}

extern "C" GpuMemoryStats gpu_memory_stats(void)
{
    pthread_mutex_lock(&acct.lock);
    GpuMemoryStats s = {acct.current, acct.peak, (long)acct.used};
    pthread_mutex_unlock(&acct.lock);
    return s;
}

extern "C" void gpu_memory_reset_peak(void)
{
    pthread_mutex_lock(&acct.lock);
    acct.peak = acct.current;
    pthread_mutex_unlock(&acct.lock);
}

/* ------------------------------------------------------------ workspace arena */

#define ARENA_ALIGN 256
#define ARENA_MIN_CHUNK ((size_t)8 << 20)

void *ws_take(GpuCtx *g, size_t bytes)
{
    Arena *a = &g->arena;
    bytes = (bytes + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
    if (!bytes) bytes = ARENA_ALIGN;
    for (; a->cur < a->count; a->cur++, a->off = 0) {
        if (a->off + bytes <= a->size[a->cur]) {
            void *p = a->base[a->cur] + a->off;
            a->off += bytes;
            return p;
        }
        if (a->cur + 1 == a->count) break;
    }
    if (a->count == ARENA_MAX_CHUNKS) sd_die(3, "GPU workspace: more than %d chunks in one operator", ARENA_MAX_CHUNKS);
    size_t size = bytes > ARENA_MIN_CHUNK ? bytes : ARENA_MIN_CHUNK;
    a->base[a->count] = (char *)gpu_mem_alloc(size, "workspace chunk");
    a->size[a->count] = size;
    a->cur = a->count++;
    a->off = bytes;
    return a->base[a->cur];
}

/* One chunk as large as all of them together, so the next call fits in one. */
static void arena_merge(GpuCtx *g)
{
    Arena *a = &g->arena;
    size_t total = 0;
    CUDA_CHECK(cudaStreamSynchronize(g->stream)); /* kernels may still read the chunks */
    for (int i = 0; i < a->count; i++) {
        total += a->size[i];
        gpu_mem_free(a->base[i]);
    }
    a->base[0] = (char *)gpu_mem_alloc(total, "workspace chunk");
    a->size[0] = total;
    a->count = 1;
}

ArenaScope::~ArenaScope()
{
    g->arena.cur = cur;
    g->arena.off = off;
    if (cur == 0 && off == 0 && g->arena.count > 1) arena_merge(g);
}

void arena_release_all(GpuCtx *g)
{
    Arena *a = &g->arena;
    CUDA_CHECK(cudaStreamSynchronize(g->stream));
    for (int i = 0; i < a->count; i++) gpu_mem_free(a->base[i]);
    a->count = a->cur = 0;
    a->off = 0;
}
