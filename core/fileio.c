#include "fileio.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "err.h"

int atomic_open(AtomicFile *af, const char *path)
{
    if (strlen(path) >= sizeof af->path) return sd_fail("path too long: %.80s...", path);
    strcpy(af->path, path);
    snprintf(af->tmp, sizeof af->tmp, "%s.tmp.%ld", path, (long)getpid());
    af->f = fopen(af->tmp, "wb");
    if (!af->f) return sd_fail("cannot write %s: %s", path, strerror(errno));
    return SD_OK;
}

int atomic_commit(AtomicFile *af)
{
    int bad = ferror(af->f) || fflush(af->f) != 0 || fsync(fileno(af->f)) != 0;
    int saved = errno;
    if (fclose(af->f) != 0) bad = 1;
    af->f = NULL;
    if (bad) {
        remove(af->tmp);
        return sd_fail("writing %s failed: %s", af->path, strerror(saved));
    }
    if (rename(af->tmp, af->path) != 0) {
        saved = errno;
        remove(af->tmp);
        return sd_fail("cannot rename into %s: %s", af->path, strerror(saved));
    }
    return SD_OK;
}

void atomic_abort(AtomicFile *af)
{
    if (af->f) fclose(af->f);
    af->f = NULL;
    remove(af->tmp);
}
