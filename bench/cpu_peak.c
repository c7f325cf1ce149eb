/* CPU peak detection (see cpu_peak.h). */
#include "cpu_peak.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static double clock_ghz(void)
{
#if defined(__x86_64__)
    double best = 0;
    for (int i = 0; i < 20; i++) {
        long n = 20000000, x = 0, one = 1;
        double t = now();
        __asm__ volatile("1: add %2, %0\n add %2, %0\n add %2, %0\n add %2, %0\n sub $4, %1\n jnz 1b"
                         : "+r"(x), "+r"(n)
                         : "r"(one));
        t = now() - t;
        if (20000000.0 / t / 1e9 > best) best = 20000000.0 / t / 1e9;
    }
    return best;
#else
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[256];
    double mhz = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "cpu MHz : %lf", &mhz) == 1) break;
    if (f) fclose(f);
    return mhz / 1000;
#endif
}

static int simd_lanes(const char **isa)
{
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return *isa = "AVX-512", 16;
    if (__builtin_cpu_supports("avx2")) return *isa = "AVX2", 8;
    return *isa = "SSE", 4;
}

CpuPeak cpu_peak_detect(int threads)
{
    CpuPeak p = {.threads = threads};
    p.lanes = simd_lanes(&p.isa);
    p.ghz = clock_ghz();
    p.gflops = threads * p.ghz * p.lanes * 2 * 2;
    return p;
}

double cpu_bandwidth_gbs(int threads)
{
    const long n = 16L << 20; /* floats: 64 MiB per array */
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), *c = malloc(n * sizeof *c);
    double best = 0;
    if (a && b && c) {
#pragma omp parallel for num_threads(threads) schedule(static)
        for (long i = 0; i < n; i++) a[i] = 0, b[i] = 1, c[i] = 2; /* first touch by the timed threads */
        for (int rep = 0; rep < 10; rep++) {
            double t = now();
#pragma omp parallel for num_threads(threads) schedule(static)
            for (long i = 0; i < n; i++) a[i] = b[i] + 0.5f * c[i];
            t = now() - t;
            if (12.0 * n / t / 1e9 > best) best = 12.0 * n / t / 1e9;
        }
    }
    free(a);
    free(b);
    free(c);
    return best;
}
