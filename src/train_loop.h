/* The step loop that train-seg and train-vae share: optimizer steps until the last epoch,
 * --max-steps, the trainer's early stop or a signal (run_files.h), each step logged and
 * shown on the progress line, an end of epoch every steps_per_epoch steps, last.safetensors
 * every save_every steps and on the way out. The trainer-specific parts are callbacks.
 * And the part of the two commands around it. */
#ifndef SDSEG_TRAIN_LOOP_H
#define SDSEG_TRAIN_LOOP_H

#include <stddef.h>

#include "../ops/ops.h"
#include "run_files.h"

/* One step done, for the logs. */
typedef struct {
    long step, epoch;       /* steps done; the epoch they belong to (1-based) */
    double lr, loss;        /* learning rate used, loss reported */
    double ips, elapsed_s;  /* images per second and seconds since the loop started */
} TrainTick;

/* An epoch ended, for the logs. */
typedef struct {
    long step, epoch; /* steps done, epochs done */
    double train_loss; /* mean reported loss of the epoch's steps in this process, NaN if none */
    double elapsed_s;
    int tty; /* the progress line is on a terminal: start a new line first */
} TrainEpoch;

typedef struct {
    void *ctx;        /* the trainer, passed to every callback */
    const long *step; /* its count of optimizer steps, advanced by step_fn */
    long steps_per_epoch;
    int epochs, batch, accum;
    /* One optimizer step on r->images (and r->masks): the lr it used and its loss. With no
     * training loader (r->train NULL) nothing is fetched: the trainer draws its own batches. */
    int (*step_fn)(void *ctx, TrainRun *r, double *lr, double *loss);
    /* The row of steps.csv and the progress text (what, n bytes). */
    void (*log_step)(void *ctx, TrainRun *r, const TrainTick *tick, char *what, size_t n);
    /* Validation, best.safetensors, last.safetensors (always), the row of epochs.csv. */
    int (*end_epoch)(void *ctx, TrainRun *r, const TrainEpoch *e);
    int (*save_last)(void *ctx, const char *path);
    int (*finished)(void *ctx); /* early stop; NULL: never */
} TrainLoop;

int train_loop_run(const TrainLoop *l, TrainRun *r, long max_steps, int save_every);

/* The options every training command takes. */
typedef struct {
    const char *data, *out, *device;
    int fast, max_steps, resume, threads, save_every;
} TrainOptions;

/* --recipe: "seed" (0) or "improved" (1) into *improved; SD_ERR naming it otherwise. */
int train_recipe_parse(const char *recipe, int *improved);
/* The cosine warmup a config asked for: -1 (a recipe's "one epoch") resolved with the data
 * (no warmup for a single-epoch run), other values as given. */
long train_warmup_steps(long warmup, int epochs, long steps_per_epoch);

/* run's return (after sd_fail) for bad input -- options, data, checkpoints -- found before
 * training starts: the exit status is then 2. */
#define TRAIN_BAD_INPUT 2

/* The command after cli_parse: checks the common options o, opens the device and calls
 * run(cmd_options, be) with SIGINT/SIGTERM stopping the loop. The exit status: 0, 1 when
 * it failed or a signal stopped it, 2 when the device could not be opened or run returned
 * TRAIN_BAD_INPUT. */
int train_command(const char *cmd, const TrainOptions *o, int (*run)(const void *cmd_options, const Backend *be),
                  const void *cmd_options);

#endif
