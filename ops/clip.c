/* Gradient clipping by global norm (see clip.h). */
#include "clip.h"

#include <math.h>

#include "../core/err.h"

int clip_grad_norm(const Backend *be, real *g, size_t n, real *tmp1, float max_norm, float *norm_out)
{
    if (!(max_norm > 0 && isfinite(max_norm)))
        return sd_fail("clip_grad_norm: max_norm must be a positive number (got %g)", (double)max_norm);
    real sum_sq;
    be->sum_squares(be->ctx, n, tmp1, g);
    be->download(be->ctx, &sum_sq, tmp1, sizeof sum_sq);
    double norm = sqrt((double)sum_sq);
    if (norm_out) *norm_out = (float)norm;
    if (!isfinite(norm)) return sd_fail("clip_grad_norm: the gradient norm is not finite (%g)", norm);
    double coef = max_norm / (norm + 1e-6);
    if (coef < 1) be->scale(be->ctx, n, (real)coef, g);
    return SD_OK;
}
