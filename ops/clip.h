/* Gradient clipping by global norm, backend-neutral (built from Backend operators). */
#ifndef SDSEG_CLIP_H
#define SDSEG_CLIP_H

#include "ops.h"

/* torch.nn.utils.clip_grad_norm_ over the flat gradient buffer g [n] (backend memory):
 * norm = ||g||_2 (sum of squares accumulated in double), written to *norm_out when it is
 * not NULL; when max_norm / (norm + 1e-6) < 1, g *= max_norm / (norm + 1e-6).
 * tmp1 is one element of backend memory. Unlike torch's default, a non-finite norm is an
 * error (torch's error_if_nonfinite=True) and g is left unchanged; so is max_norm <= 0. */
int clip_grad_norm(const Backend *be, real *g, size_t n, real *tmp1, float max_norm, float *norm_out);

#endif
