#include "npy.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "fileio.h"

/* Parse "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }". */
static int parse_header(const char *path, const char *h, int *is_double, NpyArray *a)
{
    const char *d = strstr(h, "'descr'");
    const char *fo = strstr(h, "'fortran_order'");
    const char *sh = strstr(h, "'shape'");
    if (!d || !fo || !sh) return sd_fail("%s: malformed .npy header", path);
    const char *dv = strchr(d + strlen("'descr'"), '\'');
    if (dv && strncmp(dv, "'<f4'", 5) == 0) *is_double = 0;
    else if (dv && strncmp(dv, "'<f8'", 5) == 0) *is_double = 1;
    else return sd_fail("%s: only little-endian float32/float64 .npy files are supported", path);
    const char *fv = fo + strlen("'fortran_order'");
    while (*fv == ':' || *fv == ' ') fv++;
    if (strncmp(fv, "False", 5) != 0)
        return sd_fail("%s: Fortran-order .npy files are not supported", path);
    const char *p = strchr(sh, '(');
    if (!p) return sd_fail("%s: malformed shape in .npy header", path);
    p++;
    a->ndim = 0;
    a->numel = 1;
    while (*p && *p != ')') {
        while (*p == ' ' || *p == ',') p++;
        if (*p == ')') break;
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 0 || a->ndim == NPY_MAX_DIMS) return sd_fail("%s: bad shape in .npy header", path);
        if (v > 0 && a->numel > (SIZE_MAX / 16) / (size_t)v) return sd_fail("%s: .npy array too large", path);
        a->shape[a->ndim++] = v;
        a->numel *= (size_t)v;
        p = end;
    }
    return SD_OK;
}

int npy_load(const char *path, NpyArray *a)
{
    memset(a, 0, sizeof *a);
    FILE *f = fopen(path, "rb");
    if (!f) return sd_fail("cannot open %s: %s", path, strerror(errno));
    unsigned char pre[10];
    int rc = SD_ERR;
    char *hdr = NULL;
    void *raw = NULL;
    if (fread(pre, 1, 8, f) != 8 || memcmp(pre, "\x93NUMPY", 6) != 0) {
        sd_fail("%s: not a .npy file", path);
        goto out;
    }
    size_t hlen;
    if (pre[6] == 1) {
        if (fread(pre + 8, 1, 2, f) != 2) goto trunc;
        hlen = pre[8] | (pre[9] << 8);
    } else {
        unsigned char l4[4];
        if (fread(l4, 1, 4, f) != 4) goto trunc;
        hlen = l4[0] | (l4[1] << 8) | ((size_t)l4[2] << 16) | ((size_t)l4[3] << 24);
        if (hlen > (1 << 20)) { sd_fail("%s: .npy header too large", path); goto out; }
    }
    hdr = calloc(hlen + 1, 1);
    if (!hdr || fread(hdr, 1, hlen, f) != hlen) goto trunc;
    int is_double = 0;
    if (parse_header(path, hdr, &is_double, a)) goto out;
    size_t esz = is_double ? 8 : 4;
    raw = malloc(a->numel * esz + 1);
    a->data = malloc(a->numel * sizeof(double) + 1);
    if (!raw || !a->data) { sd_fail("%s: out of memory", path); goto out; }
    if (fread(raw, esz, a->numel, f) != a->numel) goto trunc;
    for (size_t i = 0; i < a->numel; i++)
        a->data[i] = is_double ? ((double *)raw)[i] : ((float *)raw)[i];
    rc = SD_OK;
    goto out;
trunc:
    sd_fail("%s: truncated .npy file", path);
out:
    if (rc) { free(a->data); a->data = NULL; }
    free(raw);
    free(hdr);
    fclose(f);
    return rc;
}

int npy_save(const char *path, const void *data, int is_double, int ndim, const long *shape)
{
    char dict[512];
    int len = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                       is_double ? "<f8" : "<f4");
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        len += snprintf(dict + len, sizeof dict - len, "%ld%s", shape[i], ndim == 1 ? "," : (i + 1 < ndim ? ", " : ""));
        numel *= (size_t)shape[i];
    }
    len += snprintf(dict + len, sizeof dict - len, "), }");
    int total = 10 + len + 1;
    int pad = (64 - total % 64) % 64;
    AtomicFile af;
    if (atomic_open(&af, path)) return SD_ERR;
    unsigned hl = (unsigned)(len + pad + 1);
    fwrite("\x93NUMPY\x01\x00", 1, 8, af.f);
    fputc(hl & 0xff, af.f);
    fputc(hl >> 8, af.f);
    fwrite(dict, 1, len, af.f);
    for (int i = 0; i < pad; i++) fputc(' ', af.f);
    fputc('\n', af.f);
    fwrite(data, is_double ? 8 : 4, numel, af.f);
    return atomic_commit(&af);
}
