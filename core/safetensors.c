/* safetensors reader and writer; see safetensors.h. The header parser is a small
 * recursive-descent JSON reader for exactly this schema (objects, strings, unsigned
 * integer lists); anything else is a damaged file. Data is little-endian on disk and
 * copied as is, so this code assumes a little-endian host (x86-64, aarch64). */
#include "safetensors.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "fileio.h"

#define ST_MAX_HEADER 100000000u /* the format's own limit on the JSON header */

static size_t dtype_size(StDtype d) { return d == ST_I64 ? 8 : 4; }
static const char *dtype_name(StDtype d) { return d == ST_I64 ? "I64" : "F32"; }

/* ------------------------------------------------------------ writing */

/* A growable string for the JSON header. */
typedef struct {
    char *s;
    size_t len, cap;
    int oom;
} Str;

static void str_printf(Str *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void str_reserve(Str *b, size_t extra)
{
    if (b->oom || b->len + extra + 1 <= b->cap) return;
    size_t cap = (b->len + extra + 1) * 2;
    char *s = realloc(b->s, cap);
    if (!s) {
        b->oom = 1;
        return;
    }
    b->s = s;
    b->cap = cap;
}

static void str_printf(Str *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    str_reserve(b, (size_t)n);
    if (b->oom) return;
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

static void str_json_string(Str *b, const char *s)
{
    str_printf(b, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') str_printf(b, "\\%c", c);
        else if (c < 0x20) str_printf(b, "\\u%04x", c);
        else str_printf(b, "%c", c);
    }
    str_printf(b, "\"");
}

static size_t tensor_bytes(const StWriteTensor *t)
{
    size_t n = dtype_size(t->dtype);
    for (int d = 0; d < t->ndim; d++) n *= (size_t)t->shape[d];
    return n;
}

static void header_json(Str *b, const StWriteTensor *t, int count, const StMeta *meta, int nmeta)
{
    str_printf(b, "{");
    if (nmeta) {
        str_printf(b, "\"__metadata__\":{");
        for (int i = 0; i < nmeta; i++) {
            str_printf(b, i ? "," : "");
            str_json_string(b, meta[i].key);
            str_printf(b, ":");
            str_json_string(b, meta[i].value);
        }
        str_printf(b, "}%s", count ? "," : "");
    }
    size_t offset = 0;
    for (int i = 0; i < count; i++) {
        str_printf(b, i ? "," : "");
        str_json_string(b, t[i].name);
        str_printf(b, ":{\"dtype\":\"%s\",\"shape\":[", dtype_name(t[i].dtype));
        for (int d = 0; d < t[i].ndim; d++) str_printf(b, "%s%lld", d ? "," : "", (long long)t[i].shape[d]);
        size_t end = offset + tensor_bytes(&t[i]);
        str_printf(b, "],\"data_offsets\":[%zu,%zu]}", offset, end);
        offset = end;
    }
    str_printf(b, "}");
    while (b->len % 8) str_printf(b, " "); /* keeps the data 8-byte aligned in the file */
}

int st_write(const char *path, const StWriteTensor *t, int count, const StMeta *meta, int nmeta)
{
    Str h = {0};
    header_json(&h, t, count, meta, nmeta);
    if (h.oom) {
        free(h.s);
        return sd_fail("%s: out of memory building the safetensors header", path);
    }
    AtomicFile af;
    if (atomic_open(&af, path)) {
        free(h.s);
        return SD_ERR;
    }
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)h.len >> (8 * i));
    fwrite(len8, 1, 8, af.f);
    fwrite(h.s, 1, h.len, af.f);
    free(h.s);
    for (int i = 0; i < count; i++) fwrite(t[i].data, 1, tensor_bytes(&t[i]), af.f);
    return atomic_commit(&af);
}

/* ------------------------------------------------------------ reading */

typedef struct {
    const char *p, *begin, *end;
    const char *path;
} Json;

static int json_error(Json *j, const char *what)
{
    return sd_fail("%s: damaged safetensors header: %s at byte %ld", j->path, what, (long)(j->p - j->begin) + 8);
}

static void skip_ws(Json *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) j->p++;
}

/* Consume `c` if it comes next (after white space). */
static int accept(Json *j, char c)
{
    skip_ws(j);
    if (j->p < j->end && *j->p == c) {
        j->p++;
        return 1;
    }
    return 0;
}

static int expect(Json *j, char c)
{
    char what[32];
    snprintf(what, sizeof what, "expected '%c'", c);
    return accept(j, c) ? SD_OK : json_error(j, what);
}

static int hex4(Json *j, unsigned *v)
{
    *v = 0;
    for (int i = 0; i < 4; i++, j->p++) {
        char c = j->p < j->end ? *j->p : 0;
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0) return json_error(j, "bad \\u escape");
        *v = *v * 16 + (unsigned)d;
    }
    return SD_OK;
}

/* Append code point u (BMP only; surrogates are rejected) as UTF-8. */
static void put_utf8(char **o, unsigned u)
{
    if (u < 0x80) *(*o)++ = (char)u;
    else if (u < 0x800) {
        *(*o)++ = (char)(0xC0 | u >> 6);
        *(*o)++ = (char)(0x80 | (u & 0x3F));
    } else {
        *(*o)++ = (char)(0xE0 | u >> 12);
        *(*o)++ = (char)(0x80 | (u >> 6 & 0x3F));
        *(*o)++ = (char)(0x80 | (u & 0x3F));
    }
}

static int escape_char(Json *j, char **o)
{
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    char c = j->p < j->end ? *j->p++ : 0;
    const char *k = c ? strchr(from, c) : NULL;
    if (k) {
        *(*o)++ = to[k - from];
        return SD_OK;
    }
    unsigned u;
    if (c != 'u' || hex4(j, &u)) return json_error(j, "bad escape in string");
    if (u == 0 || (u >= 0xD800 && u <= 0xDFFF)) return json_error(j, "unsupported \\u escape");
    put_utf8(o, u);
    return SD_OK;
}

/* A string into a malloc'd buffer (escapes never lengthen the text, so its raw length suffices). */
static int parse_string(Json *j, char **out)
{
    *out = NULL;
    if (expect(j, '"')) return SD_ERR;
    const char *close = j->p;
    while (close < j->end && *close != '"') close += (*close == '\\') ? 2 : 1;
    if (close >= j->end) return json_error(j, "unterminated string");
    char *s = malloc((size_t)(close - j->p) + 1), *o = s;
    if (!s) return sd_fail("%s: out of memory", j->path);
    while (j->p < close) {
        char c = *j->p++;
        if ((unsigned char)c < 0x20) {
            free(s);
            return json_error(j, "control character in string");
        }
        if (c == '\\' && escape_char(j, &o)) {
            free(s);
            return SD_ERR;
        }
        if (c != '\\') *o++ = c;
    }
    j->p++;
    *o = 0;
    *out = s;
    return SD_OK;
}

static int parse_uint(Json *j, uint64_t *v)
{
    skip_ws(j);
    if (j->p >= j->end || *j->p < '0' || *j->p > '9') return json_error(j, "expected an unsigned integer");
    *v = 0;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
        if (*v > (UINT64_MAX - 9) / 10) return json_error(j, "integer too large");
        *v = *v * 10 + (uint64_t)(*j->p++ - '0');
    }
    return SD_OK;
}

/* [u, u, ...] with at most `max` entries. */
static int parse_uint_list(Json *j, uint64_t *v, int max, int *count)
{
    *count = 0;
    if (expect(j, '[')) return SD_ERR;
    if (accept(j, ']')) return SD_OK;
    do {
        if (*count == max) return json_error(j, "list too long");
        if (parse_uint(j, &v[(*count)++])) return SD_ERR;
    } while (accept(j, ','));
    return expect(j, ']');
}

static int parse_dtype(Json *j, StDtype *d)
{
    char *s;
    if (parse_string(j, &s)) return SD_ERR;
    int ok = 1;
    if (!strcmp(s, "F32")) *d = ST_F32;
    else if (!strcmp(s, "I64")) *d = ST_I64;
    else ok = 0;
    if (!ok) sd_fail("%s: unsupported tensor dtype \"%.20s\" (only F32 and I64)", j->path, s);
    free(s);
    return ok ? SD_OK : SD_ERR;
}

/* {"dtype": ..., "shape": [...], "data_offsets": [b, e]}, every key exactly once. */
static int parse_tensor(Json *j, StTensor *t)
{
    int seen = 0, n;
    uint64_t shape[ST_MAX_DIMS], off[2];
    if (expect(j, '{')) return SD_ERR;
    do {
        char *key;
        if (parse_string(j, &key) || expect(j, ':')) {
            free(key);
            return SD_ERR;
        }
        int bit = !strcmp(key, "dtype") ? 1 : !strcmp(key, "shape") ? 2 : !strcmp(key, "data_offsets") ? 4 : 0;
        free(key);
        if (!bit || (seen & bit)) return json_error(j, "unknown or repeated tensor field");
        seen |= bit;
        int rc = bit == 1 ? parse_dtype(j, &t->dtype)
                 : bit == 2 ? parse_uint_list(j, shape, ST_MAX_DIMS, &t->ndim)
                            : parse_uint_list(j, off, 2, &n);
        if (rc) return SD_ERR;
        if (bit == 4 && n != 2) return json_error(j, "data_offsets needs two values");
    } while (accept(j, ','));
    if (expect(j, '}')) return SD_ERR;
    if (seen != 7) return json_error(j, "tensor entry lacks dtype, shape or data_offsets");
    for (int d = 0; d < t->ndim; d++) t->shape[d] = (int64_t)shape[d];
    t->begin = off[0];
    t->end = off[1];
    return SD_OK;
}

static int parse_metadata(Json *j, StFile *f)
{
    if (expect(j, '{')) return SD_ERR;
    if (accept(j, '}')) return SD_OK;
    do {
        StMeta *m = realloc(f->meta, (f->nmeta + 1) * sizeof *m);
        if (!m) return sd_fail("%s: out of memory", j->path);
        f->meta = m;
        char *k = NULL, *v = NULL;
        int rc = parse_string(j, &k) || expect(j, ':') || parse_string(j, &v);
        f->meta[f->nmeta++] = (StMeta){k, v};
        if (rc) return SD_ERR;
    } while (accept(j, ','));
    return expect(j, '}');
}

/* A tensor entry; takes ownership of name. */
static int add_tensor(Json *j, StFile *f, char *name)
{
    StTensor *t = realloc(f->tensor, (f->count + 1) * sizeof *t);
    if (!t) {
        free(name);
        return sd_fail("%s: out of memory", j->path);
    }
    f->tensor = t;
    t = &f->tensor[f->count++];
    memset(t, 0, sizeof *t);
    t->name = name;
    return parse_tensor(j, t);
}

static int parse_header(Json *j, StFile *f)
{
    int seen_meta = 0;
    if (expect(j, '{')) return SD_ERR;
    if (!accept(j, '}')) {
        do {
            char *key;
            if (parse_string(j, &key) || expect(j, ':')) {
                free(key);
                return SD_ERR;
            }
            if (strcmp(key, "__metadata__")) {
                if (add_tensor(j, f, key)) return SD_ERR;
                continue;
            }
            free(key);
            if (seen_meta++) return json_error(j, "repeated __metadata__");
            if (parse_metadata(j, f)) return SD_ERR;
        } while (accept(j, ','));
        if (expect(j, '}')) return SD_ERR;
    }
    skip_ws(j);
    return j->p == j->end ? SD_OK : json_error(j, "trailing bytes after the header");
}

static int by_name(const void *a, const void *b)
{
    return strcmp((*(const StTensor *const *)a)->name, (*(const StTensor *const *)b)->name);
}

static int by_begin(const void *a, const void *b)
{
    uint64_t x = (*(const StTensor *const *)a)->begin, y = (*(const StTensor *const *)b)->begin;
    return x < y ? -1 : x > y;
}

/* Pointers to the tensors, sorted by `cmp` (caller frees). */
static const StTensor **sorted(const StFile *f, int (*cmp)(const void *, const void *))
{
    const StTensor **p = malloc((f->count + 1) * sizeof *p);
    if (!p) {
        sd_fail("%s: out of memory", f->path);
        return NULL;
    }
    for (int i = 0; i < f->count; i++) p[i] = &f->tensor[i];
    qsort(p, f->count, sizeof *p, cmp);
    return p;
}

static int check_sizes(StFile *f, size_t data_len)
{
    for (int i = 0; i < f->count; i++) {
        StTensor *t = &f->tensor[i];
        size_t n = 1;
        for (int d = 0; d < t->ndim; d++) {
            if (t->shape[d] && n > (SIZE_MAX / 8) / (uint64_t)t->shape[d])
                return sd_fail("%s: tensor %s has an absurd shape", f->path, t->name);
            n *= (size_t)t->shape[d];
        }
        t->numel = n;
        if (t->begin > t->end || t->end > data_len || t->end - t->begin != n * dtype_size(t->dtype))
            return sd_fail("%s: tensor %s: data_offsets [%llu, %llu] do not match its shape or the file "
                           "(%zu data bytes)",
                           f->path, t->name, (unsigned long long)t->begin, (unsigned long long)t->end, data_len);
    }
    return SD_OK;
}

/* The tensors cover the data exactly, without holes or overlaps, as the format requires. */
static int check_coverage(const StFile *f, size_t data_len)
{
    const StTensor **p = sorted(f, by_begin);
    if (!p) return SD_ERR;
    uint64_t pos = 0;
    int ok = 1;
    for (int i = 0; i < f->count && ok; i++) {
        ok = p[i]->begin == pos;
        pos = p[i]->end;
    }
    free(p);
    return ok && pos == data_len ? SD_OK : sd_fail("%s: tensor data has holes or overlaps (damaged file)", f->path);
}

static int check_names(const StFile *f)
{
    const StTensor **p = sorted(f, by_name);
    if (!p) return SD_ERR;
    int rc = SD_OK;
    for (int i = 1; i < f->count && !rc; i++)
        if (!strcmp(p[i]->name, p[i - 1]->name)) rc = sd_fail("%s: tensor %s appears twice", f->path, p[i]->name);
    free(p);
    return rc;
}

static int read_all(const char *path, unsigned char **bytes, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return sd_fail("cannot open %s: %s", path, strerror(errno));
    long size = -1;
    if (fseek(fp, 0, SEEK_END) == 0) size = ftell(fp);
    rewind(fp);
    *bytes = size >= 0 ? malloc((size_t)size + 1) : NULL;
    int ok = *bytes && fread(*bytes, 1, (size_t)size, fp) == (size_t)size;
    fclose(fp);
    if (!ok) {
        free(*bytes);
        *bytes = NULL;
        return sd_fail("cannot read %s", path);
    }
    *len = (size_t)size;
    return SD_OK;
}

int st_read(const char *path, StFile *f)
{
    memset(f, 0, sizeof *f);
    snprintf(f->path, sizeof f->path, "%s", path);
    size_t len = 0;
    if (read_all(path, &f->bytes, &len)) return SD_ERR;
    uint64_t hlen = 0;
    for (int i = 0; i < 8 && len >= 8; i++) hlen |= (uint64_t)f->bytes[i] << (8 * i);
    if (len < 8 || hlen > len - 8 || hlen > ST_MAX_HEADER) {
        st_free(f);
        return sd_fail("%s: not a safetensors file, or truncated (header length %llu, file %zu bytes)", path,
                       (unsigned long long)hlen, len);
    }
    Json j = {(const char *)f->bytes + 8, (const char *)f->bytes + 8, (const char *)f->bytes + 8 + hlen, f->path};
    size_t data_len = len - 8 - hlen;
    int rc = parse_header(&j, f) || check_sizes(f, data_len) || check_coverage(f, data_len) || check_names(f);
    for (int i = 0; i < f->count && !rc; i++) f->tensor[i].data = f->bytes + 8 + hlen + f->tensor[i].begin;
    if (rc) st_free(f);
    return rc ? SD_ERR : SD_OK;
}

void st_free(StFile *f)
{
    for (int i = 0; i < f->count; i++) free(f->tensor[i].name);
    for (int i = 0; i < f->nmeta; i++) {
        free((char *)f->meta[i].key);
        free((char *)f->meta[i].value);
    }
    free(f->tensor);
    free(f->meta);
    free(f->bytes);
    memset(f, 0, sizeof *f);
}

const StTensor *st_find(const StFile *f, const char *name)
{
    for (int i = 0; i < f->count; i++)
        if (!strcmp(f->tensor[i].name, name)) return &f->tensor[i];
    return NULL;
}

const char *st_meta(const StFile *f, const char *key)
{
    for (int i = 0; i < f->nmeta; i++)
        if (!strcmp(f->meta[i].key, key)) return f->meta[i].value;
    return NULL;
}

void st_copy_f32(const StTensor *t, float *dst) { memcpy(dst, t->data, t->numel * sizeof(float)); }
