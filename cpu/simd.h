/* AVX-512 helpers shared by cpu/gemm.c and cpu/conv_direct.c (internal to cpu/).
 * CPU_AVX512 is 1 where the float32 build may use AVX-512; the float64 build and other
 * machines take the portable paths. */
#ifndef SDSEG_CPU_SIMD_H
#define SDSEG_CPU_SIMD_H

#if defined(__AVX512F__) && !defined(SDSEG_DOUBLE)
#define CPU_AVX512 1
#include <immintrin.h>

/* In-register transpose of 16 rows of 16 floats: unpack pairs of rows, then pairs of
 * pairs (64-bit), then exchange the 128-bit lanes. Afterwards r[c] holds column c. */
static inline void transpose16(__m512 r[16])
{
    __m512 t[16], u[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    /* u[4g + c]: lane L holds column 4L + c of rows 4g .. 4g+3 */
    for (int g = 0; g < 4; g++)
        for (int c = 0; c < 4; c++) {
            __m512d lo = _mm512_castps_pd(t[4 * g + (c >> 1)]), hi = _mm512_castps_pd(t[4 * g + 2 + (c >> 1)]);
            u[4 * g + c] = _mm512_castpd_ps(c & 1 ? _mm512_unpackhi_pd(lo, hi) : _mm512_unpacklo_pd(lo, hi));
        }
    for (int c = 0; c < 4; c++) {
        __m512 v0 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x44), v1 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xEE);
        __m512 v2 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x44), v3 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xEE);
        r[c] = _mm512_shuffle_f32x4(v0, v2, 0x88);
        r[4 + c] = _mm512_shuffle_f32x4(v0, v2, 0xDD);
        r[8 + c] = _mm512_shuffle_f32x4(v1, v3, 0x88);
        r[12 + c] = _mm512_shuffle_f32x4(v1, v3, 0xDD);
    }
}
#else
#define CPU_AVX512 0
#endif

#endif
