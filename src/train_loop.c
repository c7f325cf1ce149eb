/* The shared training step loop (see train_loop.h). */
#include "train_loop.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>

#include "../core/err.h"
#include "cli.h"
#include "device.h"

typedef struct {
    double start, loss_sum;
    long start_step, epoch_steps, saved_step;
    Progress progress;
    char what[160];
} Clock;

static int one_step(const TrainLoop *l, TrainRun *r, Clock *k)
{
    TrainTick tick;
    if ((r->train && train_run_fetch(r, *l->step, l->steps_per_epoch, l->batch, l->accum)) ||
        l->step_fn(l->ctx, r, &tick.lr, &tick.loss))
        return SD_ERR;
    tick.step = *l->step;
    tick.epoch = (tick.step - 1) / l->steps_per_epoch + 1;
    tick.elapsed_s = cli_now() - k->start;
    tick.ips = (double)(tick.step - k->start_step) * l->batch * l->accum / fmax(tick.elapsed_s, 1e-9);
    l->log_step(l->ctx, r, &tick, k->what, sizeof k->what);
    k->loss_sum += tick.loss, k->epoch_steps++;
    progress_step(&k->progress, tick.step - k->start_step);
    return SD_OK;
}

static int end_epoch(const TrainLoop *l, TrainRun *r, Clock *k)
{
    TrainEpoch e = {.step = *l->step, .epoch = *l->step / l->steps_per_epoch, .elapsed_s = cli_now() - k->start,
                    .train_loss = k->epoch_steps ? k->loss_sum / k->epoch_steps : NAN, .tty = k->progress.tty};
    if (l->end_epoch(l->ctx, r, &e)) return SD_ERR;
    k->saved_step = e.step;
    k->loss_sum = 0, k->epoch_steps = 0;
    return SD_OK;
}

int train_loop_run(const TrainLoop *l, TrainRun *r, long max_steps, int save_every)
{
    long total = (long)l->epochs * l->steps_per_epoch;
    if (max_steps > 0 && max_steps < total) total = max_steps;
    Clock k = {.start = cli_now(), .start_step = *l->step, .saved_step = *l->step};
    snprintf(k.what, sizeof k.what, "training, step");
    progress_start(&k.progress, k.what, total - *l->step);
    while (*l->step < total && !(l->finished && l->finished(l->ctx)) && !train_stop_requested()) {
        if (one_step(l, r, &k)) return SD_ERR;
        if (*l->step % l->steps_per_epoch == 0) {
            if (end_epoch(l, r, &k)) return SD_ERR;
        } else if (save_every > 0 && *l->step % save_every == 0) {
            if (l->save_last(l->ctx, r->last)) return SD_ERR;
            k.saved_step = *l->step;
        }
    }
    if (k.saved_step != *l->step && l->save_last(l->ctx, r->last)) return SD_ERR;
    progress_end(&k.progress);
    return SD_OK;
}

int train_command(const char *cmd, const TrainOptions *o, int (*run)(const void *cmd_options, const Backend *be),
                  const void *cmd_options)
{
    if (o->threads < 0 || o->max_steps < 0 || o->save_every < 0)
        return cli_usage_error(cmd, "--threads, --max-steps and --save-every must not be negative");
    if (o->threads > 0) omp_set_num_threads(o->threads);
    Backend be;
    if (device_open(o->device, o->fast, &be)) return cli_fail(cmd, 2);
    train_stop_on_signals();
    int rc = run(cmd_options, &be);
    device_close(&be);
    if (rc) return cli_fail(cmd, rc == TRAIN_BAD_INPUT ? 2 : 1);
    return train_report_stop(cmd, o->out);
}

int train_recipe_parse(const char *recipe, int *improved)
{
    if (strcmp(recipe, "seed") && strcmp(recipe, "improved"))
        return sd_fail("unknown recipe '%s' (seed or improved)", recipe);
    *improved = !strcmp(recipe, "improved");
    return SD_OK;
}

long train_warmup_steps(long warmup, int epochs, long steps_per_epoch)
{
    if (warmup >= 0) return warmup;
    return epochs > 1 ? steps_per_epoch : 0;
}
