/* Multi-head self-attention core (reference), one (sample, head) at a time on cpu_gemm:
 *   S = Q K^T / sqrt(head_dim), P = softmax_rows(S), O = P V.
 * Q, K, V of head j are column blocks of the packed qkv rows (row stride 3C), and O a
 * column block of out (row stride C), so no head is ever copied out. */
#include <math.h>

#include "cpu.h"

/* Where one (sample, head) lives inside the packed qkv (and its gradient). */
typedef struct {
    const real *q, *k, *v; /* rows of stride ld */
    real *dq, *dk, *dv;    /* same layout in dqkv */
    int ld;
} Head;

static Head head_at(const AttnShape *s, int b, int j, const real *qkv, real *dqkv)
{
    int C = s->heads * s->head_dim;
    long off = (long)b * s->len * 3 * C + (long)j * s->head_dim;
    Head h = {.q = qkv + off, .k = qkv + off + C, .v = qkv + off + 2 * C, .ld = 3 * C};
    if (dqkv) {
        h.dq = dqkv + off;
        h.dk = h.dq + C;
        h.dv = h.dq + 2 * C;
    }
    return h;
}

/* Offset of head j's column block of sample b in an [n, len, C] tensor. */
static long out_offset(const AttnShape *s, int b, int j)
{
    return (long)b * s->len * s->heads * s->head_dim + (long)j * s->head_dim;
}

/* Offset of the [len, len] probabilities of (sample b, head j). */
static long probs_offset(const AttnShape *s, int b, int j) { return ((long)b * s->heads + j) * s->len * s->len; }

/* In place, each row of p [len, len] becomes its softmax (max subtracted first). */
static void softmax_rows(int len, real *p)
{
#pragma omp parallel for schedule(static) if ((long)len * len > 32768)
    for (int r = 0; r < len; r++) {
        real *row = p + (long)r * len, max = row[0], sum = 0;
        for (int c = 1; c < len; c++) max = row[c] > max ? row[c] : max;
        for (int c = 0; c < len; c++) {
            row[c] = (real)exp(row[c] - max);
            sum += row[c];
        }
        for (int c = 0; c < len; c++) row[c] /= sum;
    }
}

/* In place, dp [len, len] (= dL/dP) becomes dL/dS = P * (dP - sum_c dP P) per row. */
static void softmax_rows_backward(int len, real *dp, const real *p)
{
#pragma omp parallel for schedule(static) if ((long)len * len > 32768)
    for (int r = 0; r < len; r++) {
        real *drow = dp + (long)r * len;
        const real *prow = p + (long)r * len;
        real dot = 0;
        for (int c = 0; c < len; c++) dot += drow[c] * prow[c];
        for (int c = 0; c < len; c++) drow[c] = prow[c] * (drow[c] - dot);
    }
}

/* o: rows of stride C; p: [len, len]. */
static void head_forward(const AttnShape *s, const Head *h, real scale, real *o, real *p)
{
    int L = s->len, d = s->head_dim, C = s->heads * d;
    cpu_gemm(0, 1, L, L, d, scale, h->q, h->ld, h->k, h->ld, 0, p, L);
    softmax_rows(L, p);
    cpu_gemm(0, 0, L, d, L, 1, p, L, h->v, h->ld, 0, o, C);
}

/* dout: rows of stride C; p: the forward's [len, len]; ds: [len, len] scratch. */
static void head_backward(const AttnShape *s, const Head *h, real scale, const real *dout, const real *p, real *ds)
{
    int L = s->len, d = s->head_dim, C = s->heads * d;
    cpu_gemm(0, 1, L, L, d, 1, dout, C, h->v, h->ld, 0, ds, L);               /* dP = dO V^T */
    cpu_gemm(1, 0, L, d, L, 1, p, L, dout, C, 1, h->dv, h->ld);                /* dV += P^T dO */
    softmax_rows_backward(L, ds, p);                                           /* dS */
    cpu_gemm(0, 0, L, d, L, scale, ds, L, h->k, h->ld, 1, h->dq, h->ld);       /* dQ += dS K */
    cpu_gemm(1, 0, L, d, L, scale, ds, L, h->q, h->ld, 1, h->dk, h->ld);       /* dK += dS^T Q */
}

void cpu_attention_forward(void *ctx, const AttnShape *s, real *out, real *probs, const real *qkv)
{
    (void)ctx;
    real scale = (real)(1 / sqrt((double)s->head_dim));
    for (int b = 0; b < s->n; b++)
        for (int j = 0; j < s->heads; j++) {
            Head h = head_at(s, b, j, qkv, NULL);
            head_forward(s, &h, scale, out + out_offset(s, b, j), probs + probs_offset(s, b, j));
        }
}

void cpu_attention_backward(void *ctx, const AttnShape *s, real *dqkv, const real *dout, const real *qkv,
                            const real *probs)
{
    if (!dqkv) return;
    real scale = (real)(1 / sqrt((double)s->head_dim));
    real *ds = cpu_scratch(ctx, (size_t)s->len * s->len);
    for (int b = 0; b < s->n; b++)
        for (int j = 0; j < s->heads; j++) {
            Head h = head_at(s, b, j, qkv, dqkv);
            head_backward(s, &h, scale, dout + out_offset(s, b, j), probs + probs_offset(s, b, j), ds);
        }
}
