/* Choosing a backend by name: "cpu" or "cuda" (with "fast" precision optional). */
#ifndef SDSEG_DEVICE_H
#define SDSEG_DEVICE_H

#include "../ops/ops.h"

/* SD_ERR with a message for an unknown name or when CUDA is unavailable. */
int device_open(const char *name, int fast, Backend *be);
void device_close(Backend *be);

#endif
