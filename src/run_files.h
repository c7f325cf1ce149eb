/* What train-seg and train-vae share around their trainers: the run folder (refusing to
 * overwrite a run or to resume a missing one), the tile datasets and their loaders, CSV
 * logs that a resumed run trims back to its checkpoint, and the stop on SIGINT/SIGTERM. */
#ifndef SDSEG_RUN_FILES_H
#define SDSEG_RUN_FILES_H

#include <stdint.h>
#include <stdio.h>

#include "../core/dataset.h"

/* Create dir if needed. SD_ERR when resume and dir/last.safetensors is missing, or when
 * !resume and it exists. */
int run_dir_prepare(const char *dir, int resume);
/* dir/name for appending after `step` (resume: rows of later steps dropped, the first
 * column being the step) or a new file with `header`. NULL after sd_fail. */
FILE *run_csv_open(const char *dir, const char *name, const char *header, int resume, long step);

typedef struct {
    TileSet train_ts, val_ts;
    void *merged; /* train_ts's arrays in memory after train_run_add_train, else NULL (mapped) */
    Loader *train, *val;
    int with_masks;
    float *images, *masks; /* host, accum * batch tiles; masks only with_masks */
    FILE *steps_csv, *epochs_csv;
    char last[4200], best[4200]; /* out/last.safetensors and out/best.safetensors */
} TrainRun;

/* Zeroes r, opens data/train.tiles and data/val.tiles (with masks: both must hold them)
 * and prepares the run folder out (run_dir_prepare). */
int train_run_open(TrainRun *r, const char *data, const char *out, int resume, int with_masks);
/* Appends dir/train.tiles (a second prep dataset, e.g. synthetic tiles) to r's training
 * set, which becomes one set in memory: same tile size, masks when r needs them. Its
 * val.tiles is not read: validation stays on r's own. *count: its tiles; *checksum: the
 * file's checksum (core/tiles.h), its identity. Before train_run_loaders. */
int train_run_add_train(TrainRun *r, const char *dir, int *count, uint64_t *checksum);
/* The tile shape and the optimizer steps per epoch of batch x accum tiles, from the data. */
int train_run_fit(const TrainRun *r, int batch, int accum, int *tile_h, int *tile_w, long *steps_per_epoch);
/* The loaders (aug for training only) and the host buffers of one optimizer step. */
int train_run_loaders(TrainRun *r, int batch, int accum, Norm norm, const Augment *aug, uint64_t seed);
/* The step at which the trainer continues: tile indices of the training loader. */
int train_run_fetch(TrainRun *r, long step, long steps_per_epoch, int batch, int accum);
/* steps.csv and epochs.csv in out (run_csv_open). */
int train_run_logs(TrainRun *r, const char *out, const char *steps_header, const char *epochs_header, int resume,
                   long step);
void train_run_close(TrainRun *r);

/* SIGINT and SIGTERM set a flag instead of ending the process. */
void train_stop_on_signals(void);
/* The signal received, 0 while none. */
int train_stop_requested(void);
/* After a run that a signal stopped: says so and where the state is, returns 1; else 0. */
int train_report_stop(const char *cmd, const char *out);

#endif
