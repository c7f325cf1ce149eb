/* Deterministic sums on the GPU, accumulated in double (CUDA C++ header).
 *
 * Two shapes of reduction cover every operator:
 *   segment_reduce: `rows` independent sums of `len` terms each (per channel, per group,
 *     per row, or one global sum); long rows are split over several blocks whose
 *     partial sums are added in a fixed order by a second kernel;
 *   column_reduce: the column sums of a [rows, cols] layout, coalesced along cols.
 * The split counts depend on the shape only, so results are bitwise reproducible. The
 * functor F supplies the terms and consumes the totals:
 *   __device__ void add(long long row, long long i, double *acc) const;   (segment)
 *   __device__ void add(long long row, int col, double *acc) const;       (column)
 *   __device__ void done(long long row_or_col, const double *acc) const;
 * K is the number of sums computed together (acc[0..K-1]). */
#ifndef SDSEG_GPU_REDUCE_H
#define SDSEG_GPU_REDUCE_H

#include "internal.h"

#define SEG_CHUNK 8192    /* terms per block before a segment is split */
#define COL_CHUNK 128     /* rows per block of a column reduction */
#define MAX_SPLITS 1024

/* Term i of channel ch of x [n, c, hw] when summing over (sample, position): sample
 * i / hw, position i % hw. 32-bit division; callers check n*hw < 2^32 with
 * check_channel_terms. */
__device__ __forceinline__ size_t channel_term(long long ch, long long i, int c, int hw)
{
    unsigned k = (unsigned)i, ni = k / (unsigned)hw, p = k % (unsigned)hw;
    return ((size_t)ni * c + ch) * hw + p;
}

static inline void check_channel_terms(const char *op, int n, int hw)
{
    if ((unsigned long long)n * hw >= (1ull << 32))
        sd_die(3, "%s: %d x %d values per channel exceed the GPU kernels' 2^32", op, n, hw);
}

__device__ __forceinline__ double warp_sum(double v)
{
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    return v;
}

/* Sum acc over the whole block (a multiple of 32 threads, at most 1024); the totals
 * land in thread 0's acc. Call once per kernel. */
template <int K> __device__ void block_sum(double (&acc)[K])
{
    __shared__ double part[K][32];
    int t = threadIdx.x + threadIdx.y * blockDim.x, lane = t & 31, warp = t >> 5;
    int warps = (blockDim.x * blockDim.y + 31) >> 5;
    for (int k = 0; k < K; k++) {
        double v = warp_sum(acc[k]);
        if (lane == 0) part[k][warp] = v;
    }
    __syncthreads();
    if (warp == 0)
        for (int k = 0; k < K; k++) acc[k] = warp_sum(lane < warps ? part[k][lane] : 0.0);
}

template <int K, class F>
__global__ void segment_partial_kernel(long long len, int splits, long long chunk, F f, double *partial)
{
    long long row = blockIdx.x / splits;
    int s = blockIdx.x % splits;
    long long lo = s * chunk, hi = lo + chunk < len ? lo + chunk : len;
    double acc[K];
    for (int k = 0; k < K; k++) acc[k] = 0;
    for (long long i = lo + threadIdx.x; i < hi; i += blockDim.x) f.add(row, i, acc);
    block_sum<K>(acc);
    if (threadIdx.x != 0) return;
    if (splits == 1) f.done(row, acc);
    else
        for (int k = 0; k < K; k++) partial[(row * splits + s) * K + k] = acc[k];
}

template <int K, class F> __global__ void segment_final_kernel(long long rows, int splits, F f, const double *partial)
{
    for (long long row = blockIdx.x * (long long)blockDim.x + threadIdx.x; row < rows;
         row += (long long)gridDim.x * blockDim.x) {
        double acc[K];
        for (int k = 0; k < K; k++) acc[k] = 0;
        for (int s = 0; s < splits; s++)
            for (int k = 0; k < K; k++) acc[k] += partial[(row * splits + s) * K + k];
        f.done(row, acc);
    }
}

static inline int split_count(long long len, long long chunk)
{
    long long s = (len + chunk - 1) / chunk;
    return s < 1 ? 1 : s > MAX_SPLITS ? MAX_SPLITS : (int)s;
}

template <int K, class F> void segment_reduce(GpuCtx *g, long long rows, long long len, F f)
{
    if (rows <= 0) return;
    int splits = split_count(len, SEG_CHUNK);
    long long chunk = (len + splits - 1) / splits;
    if (rows * splits > 0x7fffffffLL) sd_die(3, "segment_reduce: %lld rows is too many", rows);
    ArenaScope scope(g);
    double *partial = splits > 1 ? ws_array<double>(g, (size_t)(rows * splits * K)) : NULL;
    segment_partial_kernel<K, F><<<(unsigned)(rows * splits), BLOCK, 0, g->stream>>>(len, splits, chunk, f, partial);
    LAUNCH_CHECK();
    if (splits == 1) return;
    segment_final_kernel<K, F><<<grid_for((size_t)rows), BLOCK, 0, g->stream>>>(rows, splits, f, partial);
    LAUNCH_CHECK();
}

#define COL_TX 32
#define COL_TY 8

template <int K, class F>
__global__ void column_partial_kernel(long long rows, int cols, long long chunk, F f, double *partial)
{
    __shared__ double part[K][COL_TY][COL_TX + 1];
    int col = blockIdx.x * COL_TX + threadIdx.x, s = blockIdx.y;
    long long lo = s * chunk, hi = lo + chunk < rows ? lo + chunk : rows;
    double acc[K];
    for (int k = 0; k < K; k++) acc[k] = 0;
    if (col < cols)
        for (long long r = lo + threadIdx.y; r < hi; r += COL_TY) f.add(r, col, acc);
    for (int k = 0; k < K; k++) part[k][threadIdx.y][threadIdx.x] = acc[k];
    __syncthreads();
    if (threadIdx.y != 0 || col >= cols) return;
    for (int k = 0; k < K; k++) {
        acc[k] = 0;
        for (int y = 0; y < COL_TY; y++) acc[k] += part[k][y][threadIdx.x];
    }
    if (gridDim.y == 1) f.done(col, acc);
    else
        for (int k = 0; k < K; k++) partial[((long long)s * cols + col) * K + k] = acc[k];
}

template <int K, class F> __global__ void column_final_kernel(int cols, int splits, F f, const double *partial)
{
    int col = blockIdx.x * blockDim.x + threadIdx.x;
    if (col >= cols) return;
    double acc[K];
    for (int k = 0; k < K; k++) acc[k] = 0;
    for (int s = 0; s < splits; s++)
        for (int k = 0; k < K; k++) acc[k] += partial[((long long)s * cols + col) * K + k];
    f.done(col, acc);
}

template <int K, class F> void column_reduce(GpuCtx *g, long long rows, int cols, F f)
{
    if (cols <= 0) return;
    int splits = split_count(rows, COL_CHUNK);
    long long chunk = (rows + splits - 1) / splits;
    ArenaScope scope(g);
    double *partial = splits > 1 ? ws_array<double>(g, (size_t)splits * cols * K) : NULL;
    dim3 grid((cols + COL_TX - 1) / COL_TX, splits), block(COL_TX, COL_TY);
    column_partial_kernel<K, F><<<grid, block, 0, g->stream>>>(rows, cols, chunk, f, partial);
    LAUNCH_CHECK();
    if (splits == 1) return;
    column_final_kernel<K, F><<<(cols + BLOCK - 1) / BLOCK, BLOCK, 0, g->stream>>>(cols, splits, f, partial);
    LAUNCH_CHECK();
}

#endif
