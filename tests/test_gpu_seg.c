/* The same training code on both backends (make test-gpu): a tiny segmentation U-Net
 * (width 4, 32 x 32 tiles, batch 4) trained STEPS steps with the seed recipe
 * (BCE-with-logits, Adam with the coupled Keras L2, batch norm in training mode) through
 * seg_trainer_step, once on the CPU backend and once on the CUDA backend in float32 mode,
 * from the same initial weights (the CPU's, uploaded to the GPU) and the same batches.
 * Prints every step's two losses and their relative difference; exit status 1 when one
 * differs by more than TOL (cuDNN and cuBLAS sum in other orders than the CPU, and Adam
 * carries those roundings from step to step), or when device memory is still allocated
 * once the backend is closed; 0 with "skipped" where no CUDA device is usable. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "../core/err.h"
#include "../core/rng.h"
#include "../cpu/cpu.h"
#include "../gpu/gpu.h"
#include "../src/seg_trainer.h"

#define TILE 32
#define BATCH 4
#define WIDTH 4
#define STEPS 5
#define TOL 1e-4
#define DATA_SEED 77u
#define PIXELS ((size_t)BATCH * TILE * TILE)

/* Phantom-like batch `step`: per tile a disc (Philox centre and radius) of intensity 0.7
 * over uniform noise in [0, 0.3]; the mask is the disc. */
static void make_batch(int step, float *images, float *masks)
{
    float disc[3 * BATCH];
    rng_fill_uniform(disc, 3 * BATCH, 0, 1, DATA_SEED, (uint64_t)step, 0);
    rng_fill_uniform(images, PIXELS, 0, 0.3f, DATA_SEED, 1000 + (uint64_t)step, 0);
    for (int b = 0; b < BATCH; b++) {
        float cx = TILE * disc[3 * b], cy = TILE * disc[3 * b + 1], r = 4 + 8 * disc[3 * b + 2];
        for (int y = 0; y < TILE; y++)
            for (int x = 0; x < TILE; x++) {
                size_t i = ((size_t)b * TILE + y) * TILE + x;
                masks[i] = (x - cx) * (x - cx) + (y - cy) * (y - cy) < r * r;
                images[i] += 0.7f * masks[i];
            }
    }
}

static int trainer_open(SegTrainer *t, const Backend *be)
{
    SegTrainConfig c = seg_recipe(0);
    c.width = WIDTH, c.batch = BATCH, c.tile_h = c.tile_w = TILE;
    c.epochs = 1, c.steps_per_epoch = STEPS, c.seed = 3;
    return seg_trainer_create(t, be, &c);
}

/* dst = src for n reals of backend memory on two backends, through the host. */
static int copy_across(const Backend *dst_be, real *dst, const Backend *src_be, const real *src, size_t n)
{
    float *host = malloc(n * sizeof *host + 1);
    if (!host) return sd_fail("out of memory");
    src_be->download(src_be->ctx, host, src, n * sizeof *host);
    dst_be->upload(dst_be->ctx, dst, host, n * sizeof *host);
    free(host);
    return SD_OK;
}

/* The GPU trainer starts from the CPU trainer's weights and batch-norm buffers. */
static int share_init(SegTrainer *gpu, const SegTrainer *cpu)
{
    const Params *g = &gpu->model->net.params, *c = &cpu->model->net.params;
    if (copy_across(gpu->be, g->w, cpu->be, c->w, c->list.numel)) return SD_ERR;
    return copy_across(gpu->be, g->buf, cpu->be, c->buf, c->buffers.numel);
}

/* Train both; returns the number of steps whose losses differ by more than TOL, or -1. */
static int compare_training(SegTrainer *cpu, SegTrainer *gpu)
{
    float *images = malloc(PIXELS * sizeof *images), *masks = malloc(PIXELS * sizeof *masks);
    int bad = images && masks ? 0 : -1;
    if (bad) sd_fail("out of memory");
    printf("%-5s %-14s %-14s %s\n", "step", "cpu loss", "cuda loss", "rel diff");
    for (int s = 0; s < STEPS && bad >= 0; s++) {
        double lc, lg;
        make_batch(s, images, masks);
        if (seg_trainer_step(cpu, images, masks, &lc) || seg_trainer_step(gpu, images, masks, &lg)) {
            bad = -1;
            break;
        }
        double rel = fabs(lg - lc) / fabs(lc);
        int ok = rel <= TOL; /* false for NaN too */
        bad += !ok;
        printf("%-5d %-14.8f %-14.8f %-10.2e %s\n", s + 1, lc, lg, rel, ok ? "ok" : "FAIL");
    }
    free(images);
    free(masks);
    return bad;
}

int main(void)
{
    Backend cpu = cpu_backend(), gpu;
    if (gpu_backend_open(&gpu, 0)) {
        printf("gpu seg training: skipped: no GPU (%s)\n", sd_last_error());
        cpu_ctx_destroy(cpu.ctx);
        return 0;
    }
    SegTrainer tc = {0}, tg = {0}; /* seg_trainer_free is safe on these after a failed create */
    int bad = -1;
    if (!trainer_open(&tc, &cpu) && !trainer_open(&tg, &gpu) && !share_init(&tg, &tc))
        bad = compare_training(&tc, &tg);
    seg_trainer_free(&tc);
    seg_trainer_free(&tg);
    if (bad < 0) fprintf(stderr, "test_gpu_seg: %s\n", sd_last_error());
    gpu_backend_close(&gpu);
    cpu_ctx_destroy(cpu.ctx);
    long live = gpu_memory_stats().allocations;
    if (live) printf("device memory: %ld allocations still live\n", live);
    printf("gpu seg training (limit %.0e relative): %s\n", TOL, bad || live ? "FAIL" : "ok");
    return bad || live ? 1 : 0;
}
