/* The CPU's peak float32 rate, for the benchmarks' utilisation figures:
 * peak = threads x clock x SIMD float lanes x 2 FMA units x 2 flops per FMA.
 * The clock is measured (a chain of dependent integer adds retires one per cycle), so
 * turbo and virtual-machine clocks count as they run; two FMA units per core is what
 * the AVX-512 and AVX2 server cores of x86-64 have (an assumption on other cores). */
#ifndef SDSEG_CPU_PEAK_H
#define SDSEG_CPU_PEAK_H

typedef struct {
    int threads, lanes;
    double ghz, gflops;
    const char *isa; /* "AVX-512", "AVX2" or "SSE" */
} CpuPeak;

/* Measures the clock (about 0.2 s: best of 20 short runs, since a run that loses its
 * core to another process only reads low). */
CpuPeak cpu_peak_detect(int threads);

/* Main-memory bandwidth in GB/s: the best of 10 STREAM-style triads a[i] = b[i] + s c[i]
 * over 3 x 64 MiB float arrays (far beyond the caches) on `threads` OpenMP threads, counting
 * 12 bytes per element (the write-allocate read of a[] is not counted, as STREAM). 0 when
 * memory runs out. About 0.3 s. */
double cpu_bandwidth_gbs(int threads);

#endif
