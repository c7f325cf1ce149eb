/* Atomic file output: write to "<path>.tmp.<pid>", then rename over <path>, so a crash
 * or error never leaves a half-written file under the final name. */
#ifndef SDSEG_FILEIO_H
#define SDSEG_FILEIO_H

#include <stdio.h>

typedef struct {
    FILE *f;
    char path[4096];
    char tmp[4200];
} AtomicFile;

int atomic_open(AtomicFile *af, const char *path);
/* Flush, fsync and rename; on any write error removes the temp file and fails. */
int atomic_commit(AtomicFile *af);
/* Drop the temp file (on an error path). */
void atomic_abort(AtomicFile *af);

#endif
