/* The CUDA backend: gpu_<op> for every operator of ops/ops.h (float32 storage). */
#ifndef SDSEG_GPU_H
#define SDSEG_GPU_H

#ifdef __cplusplus
extern "C" { /* ops/ops.h declares C functions (the shape checks) without C++ guards */
#endif

#include "../ops/ops.h"

SDSEG_OPS(SDSEG_GPU_PROTO)

/* Open the CUDA backend on the current device. fast = 0: float32 everywhere, TF32 off
 * (the checked mode); fast = 1: bf16 operands for convolutions and matrix products with
 * float32 accumulation (sm_80+; falls back to float32 with a notice elsewhere), except
 * attention's two products that feed the softmax and its backward (gpu/attention.cu).
 * Weights, optimizer state and normalization statistics stay float32 in both modes.
 * SD_ERR with a message when no usable GPU is present. */
int gpu_backend_open(Backend *be, int fast);
void gpu_backend_close(Backend *be);

/* The device-memory accountant (gpu/memory.cu): every device allocation of the backend
 * (tensors, workspace, library workspaces) goes through it. Bytes as passed to cudaMalloc. */
typedef struct {
    size_t current, peak; /* bytes allocated now, and the most at any time */
    long allocations;     /* live allocations */
} GpuMemoryStats;
GpuMemoryStats gpu_memory_stats(void);
void gpu_memory_reset_peak(void); /* peak = current */

#ifdef __cplusplus
}
#endif

#endif
