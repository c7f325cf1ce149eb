/* Gradient accumulation averages (seg_trainer_step with accum = K).
 *
 * Train-mode batch norm normalizes each micro-batch by its own statistics, so K = 2
 * micro-batches of b tiles are NOT the same computation as one batch of 2b tiles in
 * general. Two comparisons are exact in exact arithmetic anyway, and are checked to
 * float32 rounding:
 *  1. batch 2b = [M, M] against K = 2 micro-batches [M], [M]: the statistics of [M, M]
 *     are those of M and its mean loss is M's, so both must give grad loss(M). Summing
 *     instead of averaging would double it; overwriting would halve it.
 *  2. K = 2 over different micro-batches [M1], [M2] against the mean of the gradients of
 *     two K = 1 steps on M1 and on M2 from the same initialization: same per-micro-batch
 *     statistics, only the order of the final sums differs.
 * The reported step losses must agree the same way. */
#include <stdlib.h>
#include <string.h>

#include "../core/err.h"
#include "../core/rng.h"
#include "../cpu/cpu.h"
#include "../src/seg_trainer.h"
#include "check.h"

#define TILE 32
#define B 2 /* tiles per micro-batch */
#define PIXELS ((size_t)TILE * TILE)

static Backend be;

typedef struct {
    double loss;
    size_t n;
    float *grad; /* host copy of the flat gradient buffer */
} StepResult;

/* One step of a fresh trainer (same initialization every time) on `tiles` tiles. */
static StepResult step(int batch, int accum, const float *images, const float *masks)
{
    SegTrainConfig c = seg_recipe(0);
    c.width = 4, c.batch = batch, c.accum = accum, c.tile_h = c.tile_w = TILE;
    c.epochs = 1, c.steps_per_epoch = 1, c.seed = 5;
    SegTrainer t;
    StepResult r = {0};
    if (seg_trainer_create(&t, &be, &c) || seg_trainer_step(&t, images, masks, &r.loss))
        sd_die(1, "t_seg_accum: %s", sd_last_error());
    const Params *p = &t.model->net.params;
    r.n = p->list.numel;
    r.grad = malloc(r.n * sizeof *r.grad);
    be.download(be.ctx, r.grad, p->grad, r.n * sizeof *r.grad);
    seg_trainer_free(&t);
    return r;
}

/* max|a - b| / max|b|, b = (b1 + b2) / 2 when b2 is given. */
static double grad_error(const StepResult *a, const StepResult *b1, const StepResult *b2)
{
    double diff = 0, scale = 0;
    for (size_t i = 0; i < a->n; i++) {
        double want = b2 ? 0.5 * ((double)b1->grad[i] + b2->grad[i]) : b1->grad[i];
        diff = fmax(diff, fabs(a->grad[i] - want));
        scale = fmax(scale, fabs(want));
    }
    return scale > 0 ? diff / scale : INFINITY;
}

/* Random images and 0/1 masks for `tiles` tiles from Philox stream `stream`. */
static void tiles(float *images, float *masks, int count, uint64_t stream)
{
    size_t n = (size_t)count * PIXELS;
    rng_fill_uniform(images, n, 0, 1, 9, stream, 0);
    rng_fill_uniform(masks, n, 0, 1, 9, stream + 100, 0);
    for (size_t i = 0; i < n; i++) masks[i] = masks[i] < 0.3f;
}

int main(void)
{
    be = cpu_backend();
    size_t half = B * PIXELS;
    float *img = malloc(2 * half * sizeof *img), *msk = malloc(2 * half * sizeof *msk);

    /* 1: [M, M] as one batch of 2b and as two micro-batches of b */
    tiles(img, msk, B, 1);
    memcpy(img + half, img, half * sizeof *img);
    memcpy(msk + half, msk, half * sizeof *msk);
    StepResult big = step(2 * B, 1, img, msk), acc = step(B, 2, img, msk);
    double e1 = grad_error(&acc, &big, NULL);
    printf("  accum 2 x [M] vs batch [M, M]: gradient error %.2e, losses %.7f / %.7f\n", e1, acc.loss, big.loss);
    CHECK(e1 < 1e-5);
    CHECK_NEAR(acc.loss, big.loss, 1e-6 * big.loss);

    /* 2: [M1], [M2] accumulated vs the mean of separate steps */
    tiles(img + half, msk + half, B, 2);
    StepResult mixed = step(B, 2, img, msk), one = step(B, 1, img, msk), two = step(B, 1, img + half, msk + half);
    double e2 = grad_error(&mixed, &one, &two);
    printf("  accum [M1], [M2] vs mean of two steps: gradient error %.2e, losses %.7f / %.7f\n", e2, mixed.loss,
           0.5 * (one.loss + two.loss));
    CHECK(e2 < 1e-5);
    CHECK_NEAR(mixed.loss, 0.5 * (one.loss + two.loss), 1e-6 * mixed.loss);
    CHECK(grad_error(&one, &two, NULL) > 1e-2); /* the two micro-batches really differ */

    StepResult *all[] = {&big, &acc, &mixed, &one, &two};
    for (int i = 0; i < 5; i++) free(all[i]->grad);
    free(img), free(msk);
    cpu_ctx_destroy(be.ctx);
    return check_exit("t_seg_accum");
}
