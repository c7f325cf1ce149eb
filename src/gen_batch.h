/* The VAE over host arrays of any length, a batch at a time, for sample, encode, decode
 * and predict; and the conversions between 8-bit pixels and the models' [-1, 1] range.
 * Images are [n, in_ch, h, w], latents [n, latent, h/8, w/8], host `real`s. */
#ifndef SDSEG_GEN_BATCH_H
#define SDSEG_GEN_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "cli.h"
#include "gen_ckpt.h"

/* The frame of a command on one VAE: open `device`, load the checkpoint, run job(ctx, v,
 * be) -- which returns 0, or an exit status after sd_fail: 2 for bad input, 1 when the
 * run fails -- and release both. Returns the exit status, the error printed (cli_fail);
 * the device and the checkpoint count as input (2). */
typedef int (*VaeJob)(const void *ctx, const VaeModel *v, const Backend *be);
int gen_with_vae(const char *cmd, const char *device, const char *vae_path, VaeJob job, const void *ctx);

typedef struct {
    const VaeModel *v;
    const Backend *be;
    Workspace ws;
    int batch, h, w;          /* samples per pass; image size */
    size_t image, latent;     /* values per sample */
    real *x, *z, *eps, *out;  /* backend buffers of one batch */
} VaeRunner;

/* SD_ERR when h or w is not a positive multiple of 8 or batch < 1. */
int vae_runner_init(VaeRunner *r, const VaeModel *v, const Backend *be, int batch, int h, int w);
void vae_runner_free(VaeRunner *r);

/* Images x -> latents z: the posterior means, or with `sample` draws mean + std * eps,
 * eps of sample i the Philox values (seed, stream 0) from offset i * latent, so a draw
 * does not depend on the batching. */
int vae_runner_encode(VaeRunner *r, int n, const real *x, real *z, int sample, uint64_t seed, Progress *pr);
/* Latents z -> images by vae_generate (decoding without encoder features). */
int vae_runner_generate(VaeRunner *r, int n, const real *z, real *images, Progress *pr);
/* Images x -> their reconstructions: encode, decode the posterior mean (with the encoder's
 * features where the model's decoder reads them). */
int vae_runner_reconstruct(VaeRunner *r, int n, const real *x, real *out, Progress *pr);

/* [-1, 1] -> 0..255, rounded and clamped (NaN -> 0). */
uint8_t gen_to_u8(real v);
/* [0, 1] (core/tiff.h's scaling) -> [-1, 1]. */
real gen_from_unit(float v);
/* Channel ch of n images [n, in_ch, plane] as 8-bit pages [n, plane]: gen_to_u8, or for a
 * mask channel 255 where the value is > 0, else 0. */
void gen_pages_u8(const real *images, int n, int in_ch, size_t plane, int ch, int is_mask, uint8_t *pages);

#endif
