/* The CPU backend table, its context and its (host) memory functions. */
#include "cpu.h"

#include <stdlib.h>
#include <string.h>

#include "../core/err.h"
#include "../core/rng.h"

void *cpu_ctx_create(void)
{
    CpuCtx *c = calloc(1, sizeof *c);
    if (!c) sd_die(3, "out of memory creating the CPU context");
    return c;
}

void cpu_ctx_destroy(void *ctx)
{
    CpuCtx *c = ctx;
    if (!c) return;
    free(c->scratch);
    free(c);
}

real *cpu_scratch(void *ctx, size_t n)
{
    CpuCtx *c = ctx;
    if (n > c->scratch_len) {
        free(c->scratch);
        c->scratch = aligned_alloc(64, ((n * sizeof(real) + 63) / 64) * 64);
        if (!c->scratch) sd_die(3, "out of memory: CPU scratch of %zu bytes", n * sizeof(real));
        c->scratch_len = n;
    }
    return c->scratch;
}

void *cpu_alloc(void *ctx, size_t bytes)
{
    (void)ctx;
    void *p = aligned_alloc(64, ((bytes + 63) / 64) * 64 + 64);
    if (!p) sd_die(3, "out of memory: host allocation of %zu bytes", bytes);
    return p;
}

void cpu_release(void *ctx, void *p) { (void)ctx; free(p); }
void cpu_upload(void *ctx, void *dst, const void *src, size_t bytes) { (void)ctx; memcpy(dst, src, bytes); }
void cpu_download(void *ctx, void *dst, const void *src, size_t bytes) { (void)ctx; memcpy(dst, src, bytes); }
void cpu_copy(void *ctx, void *dst, const void *src, size_t bytes) { (void)ctx; memmove(dst, src, bytes); }
void cpu_zero(void *ctx, void *p, size_t bytes) { (void)ctx; memset(p, 0, bytes); }
void cpu_sync(void *ctx) { (void)ctx; }

#ifdef SDSEG_DOUBLE
void cpu_fill_uniform(void *ctx, size_t n, real *x, real lo, real hi, uint64_t seed, uint64_t stream, uint64_t offset)
{
    (void)ctx;
    rng_fill_uniform_f64(x, n, lo, hi, seed, stream, offset);
}
void cpu_fill_normal(void *ctx, size_t n, real *x, real mean, real std, uint64_t seed, uint64_t stream, uint64_t offset)
{
    (void)ctx;
    rng_fill_normal_f64(x, n, mean, std, seed, stream, offset);
}
#else
void cpu_fill_uniform(void *ctx, size_t n, real *x, real lo, real hi, uint64_t seed, uint64_t stream, uint64_t offset)
{
    (void)ctx;
    rng_fill_uniform(x, n, lo, hi, seed, stream, offset);
}
void cpu_fill_normal(void *ctx, size_t n, real *x, real mean, real std, uint64_t seed, uint64_t stream, uint64_t offset)
{
    (void)ctx;
    rng_fill_normal(x, n, mean, std, seed, stream, offset);
}
#endif

#define CPU_FIELD(ret, name, args) .name = cpu_##name,

Backend cpu_backend(void)
{
    Backend be = {.name = "cpu", .ctx = cpu_ctx_create(), SDSEG_OPS(CPU_FIELD)};
    return be;
}
