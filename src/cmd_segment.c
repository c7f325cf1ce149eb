/* sdseg segment: a whole TIFF stack through the segmentation U-Net by overlapping,
 * blended tiles -> a probability stack and a binary mask stack, with optional
 * small-object removal and hole filling. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/err.h"
#include "../core/morph.h"
#include "../core/tiff.h"
#include "../core/tiling.h"
#include "../models/seg_unet.h"
#include "cli.h"
#include "device.h"

typedef struct {
    const char *weights, *input, *out_prob, *out_mask, *device;
    double threshold;
    int tile, overlap, batch, min_size, fill_holes, fast, threads;
} SegmentArgs;

static int infer_tiles(void *user, int n, const float *tiles, float *out)
{
    return seg_unet_infer(user, n, tiles, out);
}

static void report_progress(void *user, long done, long total)
{
    (void)total;
    progress_step(user, done);
}

/* Probabilities of every pixel of the stack, tile by tile on the chosen device. */
static int predict_stack(const SegmentArgs *a, const Stack *in, float *probs)
{
    Backend be;
    if (device_open(a->device, a->fast, &be) != SD_OK) return SD_ERR;
    SegUnet *m = seg_unet_load(a->weights, &be, a->batch, a->tile);
    int rc = m ? SD_OK : SD_ERR;
    if (rc == SD_OK) {
        Progress p;
        Tiling t = {a->tile, a->overlap, a->batch, report_progress, &p};
        progress_start(&p, "segment: tiles", (long)in->pages * tiling_count(&t, in->h, in->w));
        rc = tiling_run(&t, in->pages, in->h, in->w, in->data, infer_tiles, m, probs);
        if (rc == SD_OK) progress_end(&p);
    }
    seg_unet_free(m);
    device_close(&be);
    return rc;
}

/* Threshold, then the optional clean-up; values 0/255 like the EPFL labels. */
static int make_mask(const SegmentArgs *a, const Stack *in, const float *probs, uint8_t *mask, long *fg)
{
    size_t n = (size_t)in->pages * in->h * in->w;
    for (size_t i = 0; i < n; i++) mask[i] = probs[i] > a->threshold;
    if (a->min_size > 1 && morph_remove_small(mask, in->pages, in->h, in->w, 8, 0, a->min_size) != SD_OK)
        return SD_ERR;
    if (a->fill_holes && morph_fill_holes(mask, in->pages, in->h, in->w) != SD_OK) return SD_ERR;
    *fg = 0;
    for (size_t i = 0; i < n; i++) {
        *fg += mask[i];
        mask[i] = mask[i] ? 255 : 0;
    }
    return SD_OK;
}

/* Both outputs or neither. */
static int write_outputs(const SegmentArgs *a, const Stack *in, const float *probs, const uint8_t *mask)
{
    if (a->out_prob && tiff_write_f32(a->out_prob, in->pages, in->h, in->w, probs) != SD_OK) return SD_ERR;
    if (a->out_mask && tiff_write_u8(a->out_mask, in->pages, in->h, in->w, mask) != SD_OK) {
        if (a->out_prob) remove(a->out_prob);
        return SD_ERR;
    }
    return SD_OK;
}

static int check_args(const char *cmd, const SegmentArgs *a)
{
    if (!a->out_prob && !a->out_mask) return cli_usage_error(cmd, "nothing to write: give --out-prob and/or --out-mask");
    if (!(a->threshold >= 0 && a->threshold <= 1))
        return cli_usage_error(cmd, "--threshold must be in [0, 1] (got %g)", a->threshold);
    if (a->tile < 16 || a->tile % 16)
        return cli_usage_error(cmd, "--tile must be a positive multiple of 16 (got %d)", a->tile);
    if (a->overlap < 0 || a->overlap >= a->tile)
        return cli_usage_error(cmd, "--overlap must be in [0, tile) (got %d for tile %d)", a->overlap, a->tile);
    if (a->batch < 1 || a->batch > 4096) return cli_usage_error(cmd, "--batch must be in 1..4096 (got %d)", a->batch);
    if (a->min_size < 0) return cli_usage_error(cmd, "--min-size must be >= 0 (got %d)", a->min_size);
    if (a->threads < 0) return cli_usage_error(cmd, "--threads must be >= 0 (got %d)", a->threads);
    return CLI_RUN;
}

static int segment(const SegmentArgs *a, const Stack *in)
{
    size_t n = (size_t)in->pages * in->h * in->w;
    float *probs = malloc(n * sizeof *probs);
    uint8_t *mask = malloc(n);
    long fg = 0;
    double t0 = cli_now();
    int rc = probs && mask ? SD_OK : sd_fail("out of memory for %zu output voxels", n);
    if (rc == SD_OK) rc = predict_stack(a, in, probs);
    if (rc == SD_OK) rc = make_mask(a, in, probs, mask, &fg);
    if (rc == SD_OK) rc = write_outputs(a, in, probs, mask);
    if (rc == SD_OK)
        printf("segment: %d x %d x %d in %.1f s (%s), foreground %.2f%% at threshold %g -> %s%s%s\n", in->pages,
               in->h, in->w, cli_now() - t0, a->device, 100.0 * (double)fg / (double)n, a->threshold,
               a->out_prob ? a->out_prob : "", a->out_prob && a->out_mask ? ", " : "", a->out_mask ? a->out_mask : "");
    free(probs);
    free(mask);
    return rc;
}

int cmd_segment(int argc, char **argv)
{
    SegmentArgs a = {NULL, NULL, NULL, NULL, "cpu", 0.5, 256, 64, 8, 0, 0, 0, 0};
    const CliOpt opts[] = {
        {"weights", CLI_STR, &a.weights, "segmentation U-Net checkpoint (safetensors)", 1},
        {"input", CLI_STR, &a.input, "image stack (TIFF, any size)", 1},
        {"out-prob", CLI_STR, &a.out_prob, "probability stack to write (float32 TIFF)", 0},
        {"out-mask", CLI_STR, &a.out_mask, "mask stack to write (8-bit TIFF, 0/255)", 0},
        {"threshold", CLI_FLOAT, &a.threshold, "foreground where probability > threshold (the seed used 0.05)", 0},
        {"tile", CLI_INT, &a.tile, "tile side in pixels (multiple of 16)", 0},
        {"overlap", CLI_INT, &a.overlap, "minimum overlap of neighbouring tiles in pixels", 0},
        {"batch", CLI_INT, &a.batch, "tiles per forward pass", 0},
        {"min-size", CLI_INT, &a.min_size, "remove objects smaller than this many pixels (8-connected, per slice)", 0},
        {"fill-holes", CLI_FLAG, &a.fill_holes, "fill holes in objects (per slice)", 0},
        {"device", CLI_STR, &a.device, "cpu or cuda", 0},
        {"fast", CLI_FLAG, &a.fast, "CUDA: bf16 matrix products (float32 accumulation)", 0},
        {"threads", CLI_INT, &a.threads, "CPU threads (0: OpenMP's default)", 0},
        {NULL, 0, NULL, NULL, 0},
    };
    int st = cli_parse(argc, argv,
                       "Segment a whole stack: overlapping tiles blended with a raised-cosine window, then a\n"
                       "threshold and optional clean-up.",
                       opts);
    if (st != CLI_RUN || (st = check_args(argv[0], &a)) != CLI_RUN) return st;
    if (a.threads > 0) omp_set_num_threads(a.threads);
    Stack in;
    if (tiff_read_stack(a.input, &in) != SD_OK) return cli_fail(argv[0], 2);
    int rc = segment(&a, &in);
    stack_free(&in);
    return rc == SD_OK ? 0 : cli_fail(argv[0], 1);
}
