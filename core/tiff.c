/* Multipage TIFF stacks through libtiff.
 *
 * Reading is two passes: the first walks every directory (page) and validates its
 * format and size without decoding, so absurd or inconsistent files are rejected
 * before the stack is allocated; the second decodes strips or tiles page by page.
 * libtiff's own warning and error handlers are silenced: its last error message is
 * captured per handle and folded into the one-line sd_fail message. */
#include "tiff.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tiffio.h>
#include <unistd.h>

#include "err.h"
#include "fileio.h"

/* Limits against absurd declared dimensions (checked before any allocation). The
 * fuzzing build lowers the stack limit to stay inside the fuzzer's memory budget. */
#define TIFF_MAX_SIDE 65536
#define TIFF_MAX_PAGE_PIXELS (1L << 28)
#define TIFF_MAX_SAMPLES 16          /* samples per pixel */
#define TIFF_MAX_BLOCK_BYTES (1L << 28) /* one decoded strip or tile */
#ifndef TIFF_MAX_STACK_VALUES
#define TIFF_MAX_STACK_VALUES (1L << 32)
#endif

typedef struct {
    char msg[256]; /* libtiff's last error for this handle */
} TiffLog;

typedef struct {
    uint32_t w, h;
    uint16_t bps, spp, format, photometric, planar;
    int gray; /* 1: one gray sample (the first) per pixel; 0: RGB -> luma */
} PageFormat;

static int capture_error(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap)
{
    (void)tif;
    TiffLog *log = user;
    int n = module ? snprintf(log->msg, sizeof log->msg, "%s: ", module) : 0;
    if (n < 0 || n >= (int)sizeof log->msg) n = 0;
    vsnprintf(log->msg + n, sizeof log->msg - (size_t)n, fmt, ap);
    return 1; /* handled: the global handler is not called */
}

static int ignore_warning(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap)
{
    (void)tif, (void)user, (void)module, (void)fmt, (void)ap;
    return 1;
}

/* Errors raised before a handle exists go to the global handlers: keep them quiet too. */
static void silence_globals(void)
{
    TIFFSetWarningHandler(NULL);
    TIFFSetErrorHandler(NULL);
}

static TIFF *open_tiff(const char *path, const char *mode, int fd, TiffLog *log)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, silence_globals);
    log->msg[0] = 0;
    TIFFOpenOptions *opt = TIFFOpenOptionsAlloc();
    if (!opt) return NULL;
    TIFFOpenOptionsSetErrorHandlerExtR(opt, capture_error, log);
    TIFFOpenOptionsSetWarningHandlerExtR(opt, ignore_warning, NULL);
    TIFF *tif = fd >= 0 ? TIFFFdOpenExt(fd, path, mode, opt) : TIFFOpenExt(path, mode, opt);
    TIFFOpenOptionsFree(opt);
    return tif;
}

/* ---- reading: header checks ---- */

/* Check the 8-byte header ourselves so "empty", "not a TIFF" and "no pages" get
 * their own messages rather than libtiff's generic ones. */
static int check_header(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return sd_fail("cannot open %s: %s", path, strerror(errno));
    unsigned char b[16];
    size_t n = fread(b, 1, sizeof b, f);
    fclose(f);
    if (n == 0) return sd_fail("%s: empty file, not a TIFF", path);
    int little = n >= 2 && b[0] == 'I' && b[1] == 'I', big = n >= 2 && b[0] == 'M' && b[1] == 'M';
    if (!little && !big) return sd_fail("%s: not a TIFF file (bad magic bytes)", path);
    if (n < 8) return sd_fail("%s: truncated TIFF header (%zu bytes)", path, n);
    unsigned version = little ? (unsigned)(b[2] | b[3] << 8) : (unsigned)(b[2] << 8 | b[3]);
    if (version != 42 && version != 43) return sd_fail("%s: not a TIFF file (version %u)", path, version);
    size_t off_at = version == 42 ? 4 : 8, off_len = version == 42 ? 4 : 8;
    if (n < off_at + off_len) return sd_fail("%s: truncated BigTIFF header (%zu bytes)", path, n);
    uint64_t first_ifd = 0;
    for (size_t k = 0; k < off_len; k++) {
        size_t at = little ? off_at + off_len - 1 - k : off_at + k;
        first_ifd = first_ifd << 8 | b[at];
    }
    if (first_ifd == 0) return sd_fail("%s: no pages (the file holds zero image directories)", path);
    return SD_OK;
}

static const char *libtiff_msg(const TiffLog *log) { return log->msg[0] ? log->msg : "no detail"; }

static int page_fail(const char *path, int page, const char *what, const TiffLog *log)
{
    return sd_fail("%s: page %d: %s (libtiff: %s)", path, page, what, libtiff_msg(log));
}

/* Sample formats this reader decodes exactly: 8/16-bit unsigned, 32-bit float. */
static int check_samples(const char *path, int page, const PageFormat *f)
{
    if (f->format == SAMPLEFORMAT_COMPLEXINT || f->format == SAMPLEFORMAT_COMPLEXIEEEFP)
        return sd_fail("%s: page %d: complex samples are not supported", path, page);
    if (f->format == SAMPLEFORMAT_INT)
        return sd_fail("%s: page %d: signed integer samples are not supported", path, page);
    if (f->format == SAMPLEFORMAT_IEEEFP) {
        if (f->bps != 32)
            return sd_fail("%s: page %d: %u-bit floats are not supported (float32 only)", path, page, f->bps);
        return SD_OK;
    }
    if (f->format != SAMPLEFORMAT_UINT && f->format != SAMPLEFORMAT_VOID)
        return sd_fail("%s: page %d: unknown sample format %u", path, page, f->format);
    if (f->bps != 8 && f->bps != 16)
        return sd_fail("%s: page %d: %u-bit samples are not supported (8, 16-bit or float32)", path, page, f->bps);
    return SD_OK;
}

static int check_color(const char *path, int page, PageFormat *f)
{
    if (f->photometric == PHOTOMETRIC_MINISBLACK || f->photometric == PHOTOMETRIC_MINISWHITE) {
        f->gray = 1;
        return SD_OK;
    }
    if (f->photometric == PHOTOMETRIC_RGB && f->spp >= 3 && f->format != SAMPLEFORMAT_IEEEFP) {
        f->gray = 0;
        return SD_OK;
    }
    return sd_fail("%s: page %d: unsupported color model (photometric %u, %u samples per pixel%s)", path, page,
                   f->photometric, f->spp, f->format == SAMPLEFORMAT_IEEEFP ? ", float" : "");
}

static int read_format(TIFF *tif, const char *path, int page, PageFormat *f)
{
    memset(f, 0, sizeof *f);
    TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &f->w);
    TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &f->h);
    TIFFGetFieldDefaulted(tif, TIFFTAG_BITSPERSAMPLE, &f->bps);
    TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLESPERPIXEL, &f->spp);
    TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLEFORMAT, &f->format);
    TIFFGetFieldDefaulted(tif, TIFFTAG_PLANARCONFIG, &f->planar);
    if (!TIFFGetField(tif, TIFFTAG_PHOTOMETRIC, &f->photometric))
        f->photometric = f->spp >= 3 ? PHOTOMETRIC_RGB : PHOTOMETRIC_MINISBLACK;
    if (f->w == 0 || f->h == 0) return sd_fail("%s: page %d: empty image (%u x %u)", path, page, f->w, f->h);
    if (f->w > TIFF_MAX_SIDE || f->h > TIFF_MAX_SIDE || (long)f->w * f->h > TIFF_MAX_PAGE_PIXELS)
        return sd_fail("%s: page %d: absurd image size %u x %u (limit %d per side, %ld pixels)", path, page, f->w,
                       f->h, TIFF_MAX_SIDE, TIFF_MAX_PAGE_PIXELS);
    if (f->spp == 0 || f->spp > TIFF_MAX_SAMPLES)
        return sd_fail("%s: page %d: %u samples per pixel (1..%d supported)", path, page, f->spp, TIFF_MAX_SAMPLES);
    if (check_samples(path, page, f)) return SD_ERR;
    if (f->planar != PLANARCONFIG_CONTIG && f->planar != PLANARCONFIG_SEPARATE)
        return sd_fail("%s: page %d: unknown planar configuration %u", path, page, f->planar);
    return check_color(path, page, f);
}

/* Reduced-resolution copies (thumbnails, pyramid levels) are not pages of the stack. */
static int is_reduced(TIFF *tif)
{
    uint32_t type = 0;
    return TIFFGetField(tif, TIFFTAG_SUBFILETYPE, &type) && (type & FILETYPE_REDUCEDIMAGE);
}

/* Pass 1: count pages, check that they share one supported format and size. */
static int scan_pages(TIFF *tif, const char *path, TiffLog *log, PageFormat *first, int *pages)
{
    int n = 0, dir = 0;
    do {
        if (!is_reduced(tif)) {
            PageFormat f;
            if (read_format(tif, path, dir, &f)) return SD_ERR;
            if (n > 0 && (f.w != first->w || f.h != first->h))
                return sd_fail("%s: page %d is %u x %u but page 0 is %u x %u (pages must share one size)", path, dir,
                               f.w, f.h, first->w, first->h);
            if (n == 0) *first = f;
            n++;
        }
        dir++;
        if (dir == 1 << 20) return sd_fail("%s: more than %d directories", path, 1 << 20);
        log->msg[0] = 0; /* libtiff also logs errors it recovers from: only a failed read counts */
    } while (TIFFReadDirectory(tif));
    if (log->msg[0]) return page_fail(path, dir, "truncated or corrupt directory", log);
    if (n == 0) return sd_fail("%s: no pages (only reduced-resolution images)", path);
    if ((double)n * first->w * first->h > (double)TIFF_MAX_STACK_VALUES)
        return sd_fail("%s: absurd stack size %d x %u x %u (limit %ld values)", path, n, first->h, first->w,
                       (long)TIFF_MAX_STACK_VALUES);
    *pages = n;
    return SD_OK;
}

/* ---- reading: decoding ---- */

static float sample_value(const uint8_t *buf, size_t i, const PageFormat *f)
{
    if (f->bps == 8) return (float)buf[i] / 255.0f;
    if (f->bps == 16) {
        uint16_t v;
        memcpy(&v, buf + 2 * i, 2);
        return (float)v / 65535.0f;
    }
    float v;
    memcpy(&v, buf + 4 * i, 4);
    return v;
}

/* A strip is treated as a tile as wide as the page. */
typedef struct {
    uint32_t bw, bh;     /* block size */
    int tiled;
    tmsize_t buf_size;   /* bytes of one decoded block */
} Blocks;

static int block_layout(TIFF *tif, const PageFormat *f, Blocks *b)
{
    b->tiled = TIFFIsTiled(tif);
    if (b->tiled) {
        TIFFGetField(tif, TIFFTAG_TILEWIDTH, &b->bw);
        TIFFGetField(tif, TIFFTAG_TILELENGTH, &b->bh);
        b->buf_size = TIFFTileSize(tif);
    } else {
        uint32_t rps = f->h;
        TIFFGetFieldDefaulted(tif, TIFFTAG_ROWSPERSTRIP, &rps);
        b->bw = f->w;
        b->bh = rps < f->h ? rps : f->h;
        b->buf_size = TIFFStripSize(tif);
    }
    return b->bw == 0 || b->bh == 0 || b->bw > TIFF_MAX_SIDE || b->bh > TIFF_MAX_SIDE || b->buf_size <= 0 ||
                   b->buf_size > TIFF_MAX_BLOCK_BYTES
               ? SD_ERR
               : SD_OK;
}

/* Decode block (bx, by) of `plane` and add weight * channel to the page. */
static int add_block(TIFF *tif, const PageFormat *f, const Blocks *b, uint8_t *buf, uint32_t bx, uint32_t by,
                     int plane, float *page)
{
    static const float luma[3] = {0.299f, 0.587f, 0.114f};
    tmsize_t got = b->tiled ? TIFFReadEncodedTile(tif, TIFFComputeTile(tif, bx, by, 0, (uint16_t)plane), buf, -1)
                            : TIFFReadEncodedStrip(tif, TIFFComputeStrip(tif, by, (uint16_t)plane), buf, -1);
    uint32_t rows = by + b->bh <= f->h ? b->bh : f->h - by;
    uint32_t cols = bx + b->bw <= f->w ? b->bw : f->w - bx;
    int stride = f->planar == PLANARCONFIG_CONTIG ? f->spp : 1;
    size_t row_bytes = (size_t)b->bw * stride * (f->bps / 8);
    if (got < 0 || (size_t)got < (rows - 1) * row_bytes + (size_t)cols * stride * (f->bps / 8)) return SD_ERR;
    int c0 = f->planar == PLANARCONFIG_CONTIG ? 0 : plane, c1 = f->planar == PLANARCONFIG_CONTIG ? 2 : plane;
    if (f->gray) c1 = c0;
    for (uint32_t r = 0; r < rows; r++) {
        float *dst = page + (size_t)(by + r) * f->w + bx;
        for (uint32_t c = 0; c < cols; c++) {
            size_t at = ((size_t)r * b->bw + c) * stride;
            for (int ch = c0; ch <= c1; ch++) {
                float weight = f->gray ? 1.0f : luma[ch];
                dst[c] += weight * sample_value(buf, at + (f->planar == PLANARCONFIG_CONTIG ? (size_t)ch : 0), f);
            }
        }
    }
    return SD_OK;
}

static int decode_page(TIFF *tif, const PageFormat *f, uint8_t *buf, const Blocks *b, float *page)
{
    int planes = f->planar == PLANARCONFIG_SEPARATE ? (f->gray ? 1 : 3) : 1;
    memset(page, 0, sizeof(float) * f->w * f->h);
    for (int p = 0; p < planes; p++)
        for (uint32_t by = 0; by < f->h; by += b->bh)
            for (uint32_t bx = 0; bx < f->w; bx += b->bw)
                if (add_block(tif, f, b, buf, bx, by, p, page)) return SD_ERR;
    return SD_OK;
}

/* Min-is-white integers are inverted; float pages must be finite. */
static int finish_page(const char *path, int page_no, const PageFormat *f, float *page)
{
    size_t n = (size_t)f->w * f->h;
    if (f->format == SAMPLEFORMAT_IEEEFP) {
        for (size_t i = 0; i < n; i++)
            if (!isfinite(page[i])) return sd_fail("%s: page %d: non-finite float pixel", path, page_no);
    } else if (f->photometric == PHOTOMETRIC_MINISWHITE) {
        for (size_t i = 0; i < n; i++) page[i] = 1.0f - page[i];
    }
    return SD_OK;
}

/* Pass 2: decode every page (directory by directory) into out->data. */
static int decode_pages(TIFF *tif, const char *path, TiffLog *log, Stack *out)
{
    if (!TIFFSetDirectory(tif, 0)) return page_fail(path, 0, "cannot reread directory", log);
    int n = 0, dir = 0;
    uint8_t *buf = NULL;
    tmsize_t buf_size = 0;
    int rc = SD_OK;
    do {
        PageFormat f;
        Blocks b;
        if (is_reduced(tif)) continue;
        if (read_format(tif, path, dir, &f)) { rc = SD_ERR; break; }
        if ((int)f.w != out->w || (int)f.h != out->h) rc = page_fail(path, dir, "page changed while reading", log);
        else if (block_layout(tif, &f, &b)) rc = page_fail(path, dir, "bad or absurd strip or tile layout", log);
        if (rc) break;
        if (b.buf_size > buf_size) {
            free(buf);
            buf_size = b.buf_size;
            buf = malloc((size_t)buf_size);
            if (!buf) { rc = sd_fail("%s: out of memory for a %lld-byte block", path, (long long)buf_size); break; }
        }
        float *page = out->data + (size_t)n * f.w * f.h;
        log->msg[0] = 0;
        if (decode_page(tif, &f, buf, &b, page)) {
            rc = page_fail(path, dir, "truncated or corrupt image data", log);
            break;
        }
        if (finish_page(path, dir, &f, page)) { rc = SD_ERR; break; }
        n++;
    } while (++dir, n < out->pages && TIFFReadDirectory(tif));
    free(buf);
    if (rc == SD_OK && n != out->pages) rc = page_fail(path, dir, "pages changed while reading", log);
    return rc;
}

int tiff_read_stack(const char *path, Stack *out)
{
    memset(out, 0, sizeof *out);
    if (check_header(path)) return SD_ERR;
    TiffLog log;
    TIFF *tif = open_tiff(path, "rm", -1, &log); /* "m": read(), no mmap: a truncated file fails cleanly */
    if (!tif) return sd_fail("%s: truncated or corrupt TIFF (libtiff: %s)", path, libtiff_msg(&log));
    PageFormat first = {0};
    int pages = 0, rc = scan_pages(tif, path, &log, &first, &pages);
    if (rc == SD_OK) {
        out->pages = pages;
        out->h = (int)first.h;
        out->w = (int)first.w;
        out->bits = first.bps;
        out->data = malloc(sizeof(float) * (size_t)pages * first.h * first.w);
        if (!out->data) rc = sd_fail("%s: out of memory for %d x %u x %u pixels", path, pages, first.h, first.w);
    }
    if (rc == SD_OK) rc = decode_pages(tif, path, &log, out);
    TIFFClose(tif);
    if (rc != SD_OK) stack_free(out);
    return rc;
}

void stack_free(Stack *s)
{
    free(s->data);
    memset(s, 0, sizeof *s);
}

/* ---- writing ---- */

static int set_page_tags(TIFF *tif, int page, int pages, int h, int w, int bits, int is_float)
{
    uint32_t rows_per_strip = (uint32_t)(65536 / ((size_t)w * (bits / 8)));
    if (rows_per_strip < 1) rows_per_strip = 1;
    if (rows_per_strip > (uint32_t)h) rows_per_strip = (uint32_t)h;
    int ok = TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, (uint32_t)w) &&
             TIFFSetField(tif, TIFFTAG_IMAGELENGTH, (uint32_t)h) &&
             TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, (uint16_t)bits) &&
             TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, (uint16_t)1) &&
             TIFFSetField(tif, TIFFTAG_SAMPLEFORMAT, (uint16_t)(is_float ? SAMPLEFORMAT_IEEEFP : SAMPLEFORMAT_UINT)) &&
             TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, (uint16_t)PHOTOMETRIC_MINISBLACK) &&
             TIFFSetField(tif, TIFFTAG_PLANARCONFIG, (uint16_t)PLANARCONFIG_CONTIG) &&
             TIFFSetField(tif, TIFFTAG_COMPRESSION, (uint16_t)COMPRESSION_ADOBE_DEFLATE) &&
             TIFFSetField(tif, TIFFTAG_PREDICTOR, (uint16_t)(is_float ? PREDICTOR_NONE : PREDICTOR_HORIZONTAL)) &&
             TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, rows_per_strip) &&
             TIFFSetField(tif, TIFFTAG_SUBFILETYPE, (uint32_t)FILETYPE_PAGE) &&
             TIFFSetField(tif, TIFFTAG_PAGENUMBER, (uint16_t)page, (uint16_t)pages);
    if (ok && page == 0) {
        /* tifffile's shaped-series description: Python's tifffile returns a 3-D array. */
        char desc[96];
        snprintf(desc, sizeof desc, "{\"shape\": [%d, %d, %d]}", pages, h, w);
        ok = TIFFSetField(tif, TIFFTAG_IMAGEDESCRIPTION, desc) && TIFFSetField(tif, TIFFTAG_SOFTWARE, "sdseg");
    }
    return ok ? SD_OK : SD_ERR;
}

static int write_pages(TIFF *tif, int pages, int h, int w, int bits, const uint8_t *data)
{
    size_t row_bytes = (size_t)w * (bits / 8);
    /* The horizontal predictor encodes a scanline in place: hand libtiff a copy. */
    uint8_t *row = malloc(row_bytes);
    int rc = row ? SD_OK : SD_ERR;
    for (int p = 0; p < pages && rc == SD_OK; p++) {
        rc = set_page_tags(tif, p, pages, h, w, bits, bits == 32);
        for (int y = 0; y < h && rc == SD_OK; y++) {
            memcpy(row, data + ((size_t)p * h + y) * row_bytes, row_bytes);
            if (TIFFWriteScanline(tif, row, (uint32_t)y, 0) < 0) rc = SD_ERR;
        }
        if (rc == SD_OK && !TIFFWriteDirectory(tif)) rc = SD_ERR;
    }
    free(row);
    return rc;
}

static int write_stack(const char *path, int pages, int h, int w, int bits, const uint8_t *data)
{
    if (pages < 1 || h < 1 || w < 1 || pages > 65535 || h > TIFF_MAX_SIDE || w > TIFF_MAX_SIDE)
        return sd_fail("%s: cannot write a stack of %d x %d x %d pixels", path, pages, h, w);
    AtomicFile af;
    if (atomic_open(&af, path)) return SD_ERR;
    /* libtiff reads back while linking pages, and TIFFClose closes its descriptor: give
     * it a read-write one of its own; the AtomicFile's stream still syncs and renames. */
    int fd = open(af.tmp, O_RDWR | O_CLOEXEC);
    double bytes = (double)pages * h * w * (bits / 8);
    TiffLog log;
    TIFF *tif = fd < 0 ? NULL : open_tiff(af.tmp, bytes > 3.5e9 ? "w8" : "w", fd, &log);
    if (!tif) {
        if (fd >= 0) close(fd);
        atomic_abort(&af);
        return sd_fail("%s: cannot start the TIFF", path);
    }
    int rc = write_pages(tif, pages, h, w, bits, data);
    TIFFClose(tif);
    if (rc) {
        atomic_abort(&af);
        return sd_fail("%s: writing the TIFF failed (libtiff: %s)", path, libtiff_msg(&log));
    }
    return atomic_commit(&af);
}

int tiff_write_u8(const char *path, int pages, int h, int w, const uint8_t *data)
{
    return write_stack(path, pages, h, w, 8, data);
}

int tiff_write_f32(const char *path, int pages, int h, int w, const float *data)
{
    return write_stack(path, pages, h, w, 32, (const uint8_t *)data);
}
