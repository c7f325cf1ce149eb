/* Batch, group and layer normalization. Statistics are block reductions accumulated in
 * double (gpu/reduce.h), in both precision modes; the normalization itself is an
 * elementwise pass. Backward accumulates into dx, dgamma, dbeta (each may be NULL). */
#include "reduce.h"

/* mean and 1/sqrt(biased var + eps) from the sums of x and x^2 over `count` values. */
__device__ static void moments(const double *acc, double count, float eps, double *mean, double *var, float *rstd)
{
    *mean = acc[0] / count;
    *var = acc[1] / count - *mean * *mean;
    if (*var < 0) *var = 0; /* rounding, for constant inputs */
    *rstd = (float)(1.0 / sqrt(*var + eps));
}

/* ------------------------------------------------------------ batch norm: per channel over (n, hw) */

struct BnStats {
    int c, hw;
    double count; /* n*hw */
    float eps, momentum;
    const real *x;
    real *mean, *rstd, *running_mean, *running_var;
    __device__ void add(long long ch, long long i, double *acc) const
    {
        double v = x[channel_term(ch, i, c, hw)];
        acc[0] += v;
        acc[1] += v * v;
    }
    __device__ void done(long long ch, const double *acc) const
    {
        double m, var;
        float r;
        moments(acc, count, eps, &m, &var, &r);
        mean[ch] = (float)m;
        rstd[ch] = r;
        /* PyTorch: the running variance takes the unbiased batch variance */
        running_mean[ch] = (float)((1.0 - momentum) * running_mean[ch] + momentum * m);
        running_var[ch] = (float)((1.0 - momentum) * running_var[ch] + momentum * var * count / (count - 1));
    }
};

/* y = (x - mean[ch]) * rstd[ch] * gamma[ch] + beta[ch], ch = channel of element i. */
struct ChannelNormalize {
    int c, hw;
    real *y;
    const real *x, *mean, *rstd, *gamma, *beta;
    __device__ void operator()(size_t i) const
    {
        int ch = (int)((i / hw) % c);
        y[i] = (x[i] - mean[ch]) * rstd[ch] * gamma[ch] + beta[ch];
    }
};

void gpu_batch_norm_forward_train(void *ctx, const BatchNormShape *s, real *y, const real *x, const real *gamma,
                                  const real *beta, real *save_mean, real *save_rstd, real *running_mean,
                                  real *running_var)
{
    GpuCtx *g = gctx(ctx);
    check_channel_terms("batch_norm", s->n, s->hw);
    BnStats st = {s->c, s->hw, (double)s->n * s->hw, s->eps, s->momentum, x, save_mean, save_rstd, running_mean,
                  running_var};
    segment_reduce<2>(g, s->c, (long long)s->n * s->hw, st);
    launch_foreach(g, (size_t)s->n * s->c * s->hw, ChannelNormalize{s->c, s->hw, y, x, save_mean, save_rstd, gamma, beta});
}

struct BnEval {
    int c, hw;
    float eps;
    real *y;
    const real *x, *gamma, *beta, *running_mean, *running_var;
    __device__ void operator()(size_t i) const
    {
        int ch = (int)((i / hw) % c);
        y[i] = (x[i] - running_mean[ch]) / sqrtf(running_var[ch] + eps) * gamma[ch] + beta[ch];
    }
};

void gpu_batch_norm_forward_eval(void *ctx, const BatchNormShape *s, real *y, const real *x, const real *gamma,
                                 const real *beta, const real *running_mean, const real *running_var)
{
    launch_foreach(gctx(ctx), (size_t)s->n * s->c * s->hw,
                   BnEval{s->c, s->hw, s->eps, y, x, gamma, beta, running_mean, running_var});
}

/* Per channel: sum dy and sum dy*xhat (for dx) and the parameter gradients. */
struct BnGradSums {
    int c, hw;
    const real *dy, *x, *mean, *rstd;
    double *sum_dy, *sum_dy_xhat;
    real *dgamma, *dbeta;
    __device__ void add(long long ch, long long i, double *acc) const
    {
        size_t k = channel_term(ch, i, c, hw);
        float xhat = (x[k] - mean[ch]) * rstd[ch];
        acc[0] += dy[k];
        acc[1] += (double)dy[k] * xhat;
    }
    __device__ void done(long long ch, const double *acc) const
    {
        sum_dy[ch] = acc[0];
        sum_dy_xhat[ch] = acc[1];
        if (dgamma) dgamma[ch] += (float)acc[1];
        if (dbeta) dbeta[ch] += (float)acc[0];
    }
};

/* dx += gamma*rstd * (dy - mean(dy) - xhat*mean(dy*xhat)), means over the channel. */
struct BnInputGrad {
    int c, hw;
    double count;
    real *dx;
    const real *dy, *x, *gamma, *mean, *rstd;
    const double *sum_dy, *sum_dy_xhat;
    __device__ void operator()(size_t i) const
    {
        int ch = (int)((i / hw) % c);
        float xhat = (x[i] - mean[ch]) * rstd[ch];
        float mdy = (float)(sum_dy[ch] / count), mdyx = (float)(sum_dy_xhat[ch] / count);
        dx[i] += gamma[ch] * rstd[ch] * (dy[i] - mdy - xhat * mdyx);
    }
};

void gpu_batch_norm_backward(void *ctx, const BatchNormShape *s, real *dx, real *dgamma, real *dbeta, const real *dy,
                             const real *x, const real *gamma, const real *save_mean, const real *save_rstd)
{
    GpuCtx *g = gctx(ctx);
    check_channel_terms("batch_norm", s->n, s->hw);
    ArenaScope scope(g);
    double *sum_dy = ws_array<double>(g, s->c), *sum_dy_xhat = ws_array<double>(g, s->c);
    segment_reduce<2>(g, s->c, (long long)s->n * s->hw,
                      BnGradSums{s->c, s->hw, dy, x, save_mean, save_rstd, sum_dy, sum_dy_xhat, dgamma, dbeta});
    if (dx)
        launch_foreach(g, (size_t)s->n * s->c * s->hw,
                       BnInputGrad{s->c, s->hw, (double)s->n * s->hw, dx, dy, x, gamma, save_mean, save_rstd, sum_dy,
                                   sum_dy_xhat});
}

/* ------------------------------------------------------------ group and layer norm: contiguous rows */

/* Statistics of `rows` contiguous rows of `len` values (group norm: one row per (sample,
 * group), since a group's channels are adjacent; layer norm: one row per token). */
struct RowStats {
    long long len;
    float eps;
    const real *x;
    real *mean, *rstd;
    __device__ void add(long long row, long long i, double *acc) const
    {
        double v = x[row * len + i];
        acc[0] += v;
        acc[1] += v * v;
    }
    __device__ void done(long long row, const double *acc) const
    {
        double m, var;
        float r;
        moments(acc, (double)len, eps, &m, &var, &r);
        mean[row] = (float)m;
        rstd[row] = r;
    }
};

/* Group norm element i of x [n, c, hw]: its channel and its (sample, group) row. */
struct GnIndex {
    int c, hw, groups;
    __device__ int channel(size_t i) const { return (int)((i / hw) % c); }
    __device__ size_t row(size_t i) const { return i / ((size_t)c * hw) * groups + channel(i) / (c / groups); }
};

struct GnNormalize {
    GnIndex ix;
    real *y;
    const real *x, *gamma, *beta, *mean, *rstd;
    __device__ void operator()(size_t i) const
    {
        int ch = ix.channel(i);
        size_t r = ix.row(i);
        y[i] = (x[i] - mean[r]) * rstd[r] * gamma[ch] + beta[ch];
    }
};

void gpu_group_norm_forward(void *ctx, const GroupNormShape *s, real *y, const real *x, const real *gamma,
                            const real *beta, real *save_mean, real *save_rstd)
{
    GpuCtx *g = gctx(ctx);
    long long len = (long long)(s->c / s->groups) * s->hw;
    segment_reduce<2>(g, (long long)s->n * s->groups, len, RowStats{len, s->eps, x, save_mean, save_rstd});
    launch_foreach(g, (size_t)s->n * s->c * s->hw,
                   GnNormalize{GnIndex{s->c, s->hw, s->groups}, y, x, gamma, beta, save_mean, save_rstd});
}

/* Per (sample, channel) over hw: sum dy and sum dy*xhat. */
struct GnChannelSums {
    int hw;
    GnIndex ix;
    const real *dy, *x, *mean, *rstd;
    double *s_dy, *s_dyx; /* [n, c] */
    __device__ void add(long long nc, long long p, double *acc) const
    {
        size_t k = (size_t)nc * hw + p, r = ix.row(k);
        float xhat = (x[k] - mean[r]) * rstd[r];
        acc[0] += dy[k];
        acc[1] += (double)dy[k] * xhat;
    }
    __device__ void done(long long nc, const double *acc) const
    {
        s_dy[nc] = acc[0];
        s_dyx[nc] = acc[1];
    }
};

/* Per (sample, group): the means of dy*gamma and dy*gamma*xhat over the group. */
struct GnGroupMeans {
    int c, groups;
    double count;
    const real *gamma;
    const double *s_dy, *s_dyx;
    float *m_dyg, *m_dygx;
    __device__ void operator()(size_t r) const
    {
        int cpg = c / groups;
        size_t ni = r / groups, c0 = (r % groups) * cpg;
        double a = 0, b = 0;
        for (int k = 0; k < cpg; k++) {
            a += gamma[c0 + k] * s_dy[ni * c + c0 + k];
            b += gamma[c0 + k] * s_dyx[ni * c + c0 + k];
        }
        m_dyg[r] = (float)(a / count);
        m_dygx[r] = (float)(b / count);
    }
};

/* dx += rstd * (dy*gamma - mean(dy*gamma) - xhat * mean(dy*gamma*xhat)) */
struct GnInputGrad {
    GnIndex ix;
    real *dx;
    const real *dy, *x, *gamma, *mean, *rstd;
    const float *m_dyg, *m_dygx;
    __device__ void operator()(size_t i) const
    {
        int ch = ix.channel(i);
        size_t r = ix.row(i);
        float xhat = (x[i] - mean[r]) * rstd[r];
        dx[i] += rstd[r] * (dy[i] * gamma[ch] - m_dyg[r] - xhat * m_dygx[r]);
    }
};

/* dgamma[ch] += sum over samples of sum dy*xhat; dbeta[ch] += sum of sum dy. */
struct GnParamGrad {
    int n, c;
    const double *s_dy, *s_dyx;
    real *dgamma, *dbeta;
    __device__ void operator()(size_t ch) const
    {
        double a = 0, b = 0;
        for (int ni = 0; ni < n; ni++) {
            a += s_dyx[(size_t)ni * c + ch];
            b += s_dy[(size_t)ni * c + ch];
        }
        if (dgamma) dgamma[ch] += (float)a;
        if (dbeta) dbeta[ch] += (float)b;
    }
};

void gpu_group_norm_backward(void *ctx, const GroupNormShape *s, real *dx, real *dgamma, real *dbeta, const real *dy,
                             const real *x, const real *gamma, const real *save_mean, const real *save_rstd)
{
    GpuCtx *g = gctx(ctx);
    ArenaScope scope(g);
    GnIndex ix = {s->c, s->hw, s->groups};
    size_t nc = (size_t)s->n * s->c, ng = (size_t)s->n * s->groups;
    double *s_dy = ws_array<double>(g, nc), *s_dyx = ws_array<double>(g, nc);
    segment_reduce<2>(g, (long long)nc, s->hw, GnChannelSums{s->hw, ix, dy, x, save_mean, save_rstd, s_dy, s_dyx});
    if (dx) {
        float *m_dyg = ws_array<float>(g, ng), *m_dygx = ws_array<float>(g, ng);
        double count = (double)(s->c / s->groups) * s->hw;
        launch_foreach(g, ng, GnGroupMeans{s->c, s->groups, count, gamma, s_dy, s_dyx, m_dyg, m_dygx});
        launch_foreach(g, nc * s->hw, GnInputGrad{ix, dx, dy, x, gamma, save_mean, save_rstd, m_dyg, m_dygx});
    }
    if (dgamma || dbeta) launch_foreach(g, (size_t)s->c, GnParamGrad{s->n, s->c, s_dy, s_dyx, dgamma, dbeta});
}

/* ------------------------------------------------------------ layer norm over the last dimension */

struct LnNormalize {
    int dim;
    real *y;
    const real *x, *gamma, *beta, *mean, *rstd;
    __device__ void operator()(size_t i) const
    {
        size_t r = i / dim;
        int j = (int)(i % dim);
        y[i] = (x[i] - mean[r]) * rstd[r] * gamma[j] + beta[j];
    }
};

void gpu_layer_norm_forward(void *ctx, const LayerNormShape *s, real *y, const real *x, const real *gamma,
                            const real *beta, real *save_mean, real *save_rstd)
{
    GpuCtx *g = gctx(ctx);
    segment_reduce<2>(g, s->rows, s->dim, RowStats{s->dim, s->eps, x, save_mean, save_rstd});
    launch_foreach(g, (size_t)s->rows * s->dim, LnNormalize{s->dim, y, x, gamma, beta, save_mean, save_rstd});
}

/* Per row: the means of dy*gamma and dy*gamma*xhat. */
struct LnRowMeans {
    int dim;
    const real *dy, *x, *gamma, *mean, *rstd;
    float *m_dyg, *m_dygx;
    __device__ void add(long long r, long long j, double *acc) const
    {
        size_t k = (size_t)r * dim + j;
        float dyg = dy[k] * gamma[j], xhat = (x[k] - mean[r]) * rstd[r];
        acc[0] += dyg;
        acc[1] += (double)dyg * xhat;
    }
    __device__ void done(long long r, const double *acc) const
    {
        m_dyg[r] = (float)(acc[0] / dim);
        m_dygx[r] = (float)(acc[1] / dim);
    }
};

struct LnInputGrad {
    int dim;
    real *dx;
    const real *dy, *x, *gamma, *mean, *rstd;
    const float *m_dyg, *m_dygx;
    __device__ void operator()(size_t i) const
    {
        size_t r = i / dim;
        int j = (int)(i % dim);
        float xhat = (x[i] - mean[r]) * rstd[r];
        dx[i] += rstd[r] * (dy[i] * gamma[j] - m_dyg[r] - xhat * m_dygx[r]);
    }
};

/* Per column: dgamma += sum over rows of dy*xhat, dbeta += sum of dy. */
struct LnParamGrad {
    int dim;
    const real *dy, *x, *mean, *rstd;
    real *dgamma, *dbeta;
    __device__ void add(long long r, int j, double *acc) const
    {
        size_t k = (size_t)r * dim + j;
        acc[0] += (double)dy[k] * ((x[k] - mean[r]) * rstd[r]);
        acc[1] += dy[k];
    }
    __device__ void done(long long j, const double *acc) const
    {
        if (dgamma) dgamma[j] += (float)acc[0];
        if (dbeta) dbeta[j] += (float)acc[1];
    }
};

void gpu_layer_norm_backward(void *ctx, const LayerNormShape *s, real *dx, real *dgamma, real *dbeta, const real *dy,
                             const real *x, const real *gamma, const real *save_mean, const real *save_rstd)
{
    GpuCtx *g = gctx(ctx);
    ArenaScope scope(g);
    if (dx) {
        float *m_dyg = ws_array<float>(g, s->rows), *m_dygx = ws_array<float>(g, s->rows);
        segment_reduce<2>(g, s->rows, s->dim, LnRowMeans{s->dim, dy, x, gamma, save_mean, save_rstd, m_dyg, m_dygx});
        launch_foreach(g, (size_t)s->rows * s->dim,
                       LnInputGrad{s->dim, dx, dy, x, gamma, save_mean, save_rstd, m_dyg, m_dygx});
    }
    if (dgamma || dbeta)
        column_reduce<2>(g, s->rows, s->dim, LnParamGrad{s->dim, dy, x, save_mean, save_rstd, dgamma, dbeta});
}
