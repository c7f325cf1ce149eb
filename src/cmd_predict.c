/* sdseg predict: a network's raw output for an NCHW float32 batch (.npy in, .npy out), so
 * any tool, the PyTorch oracle among them, can compare forward passes. The model type is
 * the checkpoint's __metadata__ "model"; each type is one entry of `predictors`. */
#include <stdlib.h>
#include <string.h>

#include "../core/err.h"
#include "../core/npy.h"
#include "../core/safetensors.h"
#include "../models/seg_unet.h"
#include "cli.h"
#include "device.h"

#define CMD "predict"

typedef struct {
    float *data;
    int ndim;
    long shape[NPY_MAX_DIMS];
} Output;

/* The segmentation U-Net: [n,1,h,w] images -> [n,1,h,w] logits, eval mode. */
static int predict_seg_unet(const StFile *f, const Backend *be, const NpyArray *x, int batch, Output *y)
{
    if (x->ndim != 4 || x->shape[1] != 1)
        return sd_fail("the segmentation U-Net takes [n, 1, h, w] images (got a %d-d array)", x->ndim);
    long n = x->shape[0];
    if (n < 1 || x->shape[2] > 65536 || x->shape[3] > 65536)
        return sd_fail("input batch of %ld images of %ldx%ld: nothing to do, or too large", n, x->shape[2],
                       x->shape[3]);
    size_t plane = (size_t)x->shape[2] * x->shape[3];
    int chunk = n < batch ? (int)n : batch;
    SegUnet *m = seg_unet_from_file(f, be, chunk, (int)x->shape[2], (int)x->shape[3]);
    if (!m) return SD_ERR;
    float *in = malloc((size_t)chunk * plane * sizeof(float));
    y->data = malloc(x->numel * sizeof(float));
    int rc = in && y->data ? SD_OK : sd_fail("out of memory for %ld images", n);
    for (long at = 0; at < n && !rc; at += chunk) {
        int k = n - at < chunk ? (int)(n - at) : chunk;
        for (size_t i = 0; i < (size_t)k * plane; i++) in[i] = (float)x->data[at * plane + i];
        rc = seg_unet_logits(m, k, in, y->data + at * plane);
    }
    y->ndim = 4;
    memcpy(y->shape, x->shape, sizeof y->shape);
    free(in);
    seg_unet_free(m);
    return rc;
}

static const struct {
    const char *model;
    int (*run)(const StFile *f, const Backend *be, const NpyArray *x, int batch, Output *y);
} predictors[] = {
    {SEG_UNET_MODEL, predict_seg_unet},
};

static int predict(const char *weights, const Backend *be, const NpyArray *x, int batch, Output *y)
{
    StFile f;
    if (st_read(weights, &f)) return SD_ERR;
    const char *model = st_meta(&f, "model");
    int rc = sd_fail("%s: unknown model '%s' in its metadata", weights, model ? model : "(none)");
    for (size_t i = 0; i < sizeof predictors / sizeof *predictors; i++)
        if (model && !strcmp(model, predictors[i].model)) rc = predictors[i].run(&f, be, x, batch, y);
    st_free(&f);
    return rc;
}

int cmd_predict(int argc, char **argv)
{
    const char *weights = NULL, *input = NULL, *output = NULL, *device = "cpu";
    int fast = 0, batch = 8;
    const CliOpt opts[] = {
        {"weights", CLI_STR, &weights, "checkpoint (.safetensors)", 1},
        {"input", CLI_STR, &input, "input batch, NCHW float32 .npy", 1},
        {"output", CLI_STR, &output, "output .npy (raw network output: logits)", 1},
        {"device", CLI_STR, &device, "cpu or cuda", 0},
        {"fast", CLI_FLAG, &fast, "cuda: bf16 convolutions and matrix products", 0},
        {"batch", CLI_INT, &batch, "samples per forward pass", 0},
        {NULL, 0, NULL, NULL, 0},
    };
    int st = cli_parse(argc, argv, "run a trained network on a batch (raw output, for comparisons)", opts);
    if (st != CLI_RUN) return st;
    if (batch < 1) return cli_usage_error(CMD, "--batch must be at least 1");
    NpyArray x;
    if (npy_load(input, &x)) return cli_fail(CMD, 2);
    Backend be;
    if (device_open(device, fast, &be)) {
        free(x.data);
        return cli_fail(CMD, 2);
    }
    Output y = {0};
    int rc = predict(weights, &be, &x, batch, &y) || npy_save(output, y.data, 0, y.ndim, y.shape);
    device_close(&be);
    free(x.data);
    free(y.data);
    return rc ? cli_fail(CMD, 1) : 0;
}
