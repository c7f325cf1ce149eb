/* The files of a training run folder (train-vae; train-seg has its own copies of these,
 * written before this module): creating the folder, refusing to overwrite a run or to
 * resume a missing one, and CSV logs that a resumed run trims back to its checkpoint. */
#ifndef SDSEG_RUN_FILES_H
#define SDSEG_RUN_FILES_H

#include <stdio.h>

/* Create dir if needed. SD_ERR when resume and dir/last.safetensors is missing, or when
 * !resume and it exists. */
int run_dir_prepare(const char *dir, int resume);
/* dir/name for appending after `step` (resume: rows of later steps dropped, the first
 * column being the step) or a new file with `header`. NULL after sd_fail. */
FILE *run_csv_open(const char *dir, const char *name, const char *header, int resume, long step);

#endif
