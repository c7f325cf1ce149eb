/* The CUDA backend: gpu_<op> for every operator of ops/ops.h (float32 storage). */
#ifndef SDSEG_GPU_H
#define SDSEG_GPU_H

#include "../ops/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

SDSEG_OPS(SDSEG_GPU_PROTO)

/* Open the CUDA backend on the current device. fast = 0: float32 everywhere, TF32 off
 * (the checked mode); fast = 1: bf16 operands for convolutions and matrix products with
 * float32 accumulation (sm_80+; falls back to float32 with a notice elsewhere).
 * SD_ERR with a message when no usable GPU is present. */
int gpu_backend_open(Backend *be, int fast);
void gpu_backend_close(Backend *be);

#ifdef __cplusplus
}
#endif

#endif
