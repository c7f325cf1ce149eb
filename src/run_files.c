/* Run folders and their CSV logs (see run_files.h). */
#include "run_files.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../core/err.h"
#include "../core/fileio.h"

int run_dir_prepare(const char *dir, int resume)
{
    char last[4200];
    snprintf(last, sizeof last, "%s/last.safetensors", dir);
    if (mkdir(dir, 0755) && errno != EEXIST) return sd_fail("cannot create %s: %s", dir, strerror(errno));
    struct stat st;
    int exists = stat(last, &st) == 0;
    if (resume && !exists) return sd_fail("%s: nothing to resume (no last.safetensors)", dir);
    if (!resume && exists) return sd_fail("%s already holds a run: use --resume, or another --out", dir);
    return SD_OK;
}

/* Keep the header and the rows of steps <= step (the rest came after the checkpoint). */
static int csv_trim(const char *path, long step)
{
    FILE *in = fopen(path, "r");
    if (!in) return SD_OK;
    AtomicFile af;
    if (atomic_open(&af, path)) {
        fclose(in);
        return SD_ERR;
    }
    char line[1024];
    for (int first = 1; fgets(line, sizeof line, in); first = 0)
        if (first || atol(line) <= step) fputs(line, af.f);
    fclose(in);
    return atomic_commit(&af);
}

FILE *run_csv_open(const char *dir, const char *name, const char *header, int resume, long step)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (resume && csv_trim(path, step)) return NULL;
    FILE *f = fopen(path, resume ? "a" : "w");
    if (!f) sd_fail("cannot write %s: %s", path, strerror(errno));
    else if (!resume) fprintf(f, "%s\n", header);
    return f;
}
