/* core/safetensors and the checkpoint sections of core/params: round trips (F32, I64,
 * empty and 0-d tensors, escaped metadata, a parameter set with its buffers and optimizer
 * state), and damaged files (truncated, bad JSON, bad dtype, offsets outside the file,
 * holes, overlaps, duplicate names, wrong shapes, missing tensors), each of which must
 * fail with a one-line message. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/err.h"
#include "../core/params.h"
#include "../core/safetensors.h"
#include "../cpu/cpu.h"
#include "check.h"

static char dir[] = "/tmp/sdseg_t_safetensors_XXXXXX";
static char file[300];

static void round_trip(void)
{
    float a[6] = {1, -2, 3.5f, 1e-30f, -0.0f, 7};
    int64_t b[4] = {-1, 0, 1, INT64_MAX};
    float s = 42;
    StWriteTensor t[] = {{"a", ST_F32, 2, {2, 3}, a}, {"b.c", ST_I64, 1, {4}, b}, {"empty", ST_F32, 2, {0, 5}, a},
                         {"scalar", ST_F32, 0, {0}, &s}};
    StMeta meta[] = {{"model", "seg_unet"}, {"odd \"key\"", "back\\slash\nnew line\t\x01"}};
    CHECK(st_write(file, t, 4, meta, 2) == SD_OK);
    StFile f;
    CHECK(st_read(file, &f) == SD_OK);
    CHECK(f.count == 4 && f.nmeta == 2);
    const StTensor *ra = st_find(&f, "a"), *rb = st_find(&f, "b.c");
    const StTensor *re = st_find(&f, "empty"), *rs = st_find(&f, "scalar");
    CHECK(ra && ra->dtype == ST_F32 && ra->ndim == 2 && ra->shape[0] == 2 && ra->shape[1] == 3 && ra->numel == 6);
    CHECK(ra && !memcmp(ra->data, a, sizeof a));
    CHECK(rb && rb->dtype == ST_I64 && rb->numel == 4 && !memcmp(rb->data, b, sizeof b));
    CHECK(re && re->numel == 0 && rs && rs->ndim == 0 && rs->numel == 1 && !memcmp(rs->data, &s, 4));
    CHECK(st_meta(&f, "model") && !strcmp(st_meta(&f, "model"), "seg_unet"));
    CHECK(st_meta(&f, "odd \"key\"") && !strcmp(st_meta(&f, "odd \"key\""), "back\\slash\nnew line\t\x01"));
    CHECK(!st_find(&f, "missing") && !st_meta(&f, "missing"));
    st_free(&f);
}

static void write_bytes(const char *bytes, size_t n)
{
    FILE *f = fopen(file, "wb");
    fwrite(bytes, 1, n, f);
    fclose(f);
}

/* A file with this JSON header and `data` bytes of tensor data (1, 2, 3, ...). */
static void write_raw(const char *header, size_t data)
{
    size_t h = strlen(header), n = 8 + h + data;
    char *bytes = calloc(n, 1);
    for (int i = 0; i < 8; i++) bytes[i] = (char)((uint64_t)h >> (8 * i));
    memcpy(bytes + 8, header, h);
    for (size_t i = 0; i < data; i++) bytes[8 + h + i] = (char)(i + 1);
    write_bytes(bytes, n);
    free(bytes);
}

/* st_read must fail with a one-line message containing `what`. */
static void expect_damaged(const char *what, const char *label)
{
    StFile f;
    int rc = st_read(file, &f);
    const char *msg = sd_last_error();
    int ok = rc == SD_ERR && strstr(msg, what) && !strchr(msg, '\n');
    if (!ok) fprintf(stderr, "  %s: rc %d, message '%s' (want '%s')\n", label, rc, msg, what);
    CHECK(ok);
    if (rc == SD_OK) st_free(&f);
}

static void truncated(void)
{
    float a[64] = {0};
    StWriteTensor t[] = {{"a", ST_F32, 1, {64}, a}};
    st_write(file, t, 1, NULL, 0);
    FILE *f = fopen(file, "rb");
    char buf[512];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    size_t cuts[] = {0, 5, 8, 20, n - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        write_bytes(buf, cuts[i]);
        expect_damaged(cuts[i] > 40 ? "do not match" : "", "truncated");
    }
}

static void damaged(void)
{
    write_raw("[\"a\"]", 0);
    expect_damaged("expected '{'", "not an object");
    write_raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}", 4);
    expect_damaged("expected '}'", "unclosed");
    write_raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}} x", 4);
    expect_damaged("trailing", "trailing bytes");
    write_raw("{\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4);
    expect_damaged("unsupported tensor dtype", "dtype");
    write_raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4);
    expect_damaged("do not match", "offsets beyond the file");
    write_raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8);
    expect_damaged("do not match", "shape and size disagree");
    write_raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
              "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 12);
    expect_damaged("holes", "hole");
    write_raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
              "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8);
    expect_damaged("holes or overlaps", "overlap");
    write_raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
              "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8);
    expect_damaged("appears twice", "duplicate");
    write_raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"extra\":1}}", 4);
    expect_damaged("unknown or repeated", "unknown field");
    write_raw("{\"__metadata__\":{\"k\":5}}", 0);
    expect_damaged("expected '\"'", "non-string metadata");
    write_raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[99999999999,99999999999],\"data_offsets\":[0,4]}}", 4);
    expect_damaged("absurd", "overflowing shape");
    write_bytes("\xff\xff\xff\xff\xff\xff\xff\x7f{}", 10);
    expect_damaged("not a safetensors file", "huge header length");
}

/* Two trainable tensors in two groups and a buffer, through ckpt_save / ckpt_load. */
static void params_build(Params *p, const Backend *be, int second_len)
{
    params_init(p, be);
    params_add(p, "w", 2, (const int[]){3, 4}, PARAM_NO_DECAY);
    params_add(p, "v", 1, (const int[]){second_len}, PARAM_DECAY);
    params_add_buffer(p, "stat", 1, (const int[]){5});
    params_alloc(p, 1);
    params_alloc_optimizer(p, 2);
}

static void params_round_trip(const Backend *be)
{
    Params a, b;
    params_build(&a, be, 7);
    be->fill_uniform(be->ctx, a.list.numel, a.w, -1, 1, 3, 0, 0);
    be->fill_uniform(be->ctx, a.list.numel, a.m, -1, 1, 3, 1, 0);
    be->fill_uniform(be->ctx, a.buffers.numel, a.buf, -1, 1, 3, 2, 0);
    CHECK(a.group_begin[PARAM_DECAY] == 0 && a.group_begin[PARAM_NO_DECAY] == 7 && param_w(&a, 0) == a.w + 7);
    CkptSection sa[] = {{"", &a.list, a.w}, {"", &a.buffers, a.buf}, {"optim.m.", &a.list, a.m}};
    CHECK(ckpt_save(file, be, sa, 3, NULL, 0) == SD_OK);
    params_build(&b, be, 7);
    StFile f;
    CHECK(st_read(file, &f) == SD_OK);
    CkptSection sb[] = {{"", &b.list, b.w}, {"", &b.buffers, b.buf}, {"optim.m.", &b.list, b.m}};
    for (int i = 0; i < 3; i++) CHECK(ckpt_load(&f, be, &sb[i]) == SD_OK);
    CHECK(!memcmp(a.w, b.w, a.list.numel * sizeof(real)) && !memcmp(a.m, b.m, a.list.numel * sizeof(real)));
    CHECK(!memcmp(a.buf, b.buf, a.buffers.numel * sizeof(real)));
    CkptSection missing = {"optim.v.", &b.list, b.v};
    CHECK(ckpt_load(&f, be, &missing) == SD_ERR && strstr(sd_last_error(), "tensor optim.v.w is missing"));
    st_free(&f);
    params_free(&b);

    params_build(&b, be, 6); /* "v" has 6 values now: a wrong shape for the file */
    CHECK(st_read(file, &f) == SD_OK);
    CkptSection wrong = {"", &b.list, b.w};
    CHECK(ckpt_load(&f, be, &wrong) == SD_ERR && strstr(sd_last_error(), "is F32 [7], expected F32 [6]"));
    st_free(&f);
    params_free(&a);
    params_free(&b);
}

int main(void)
{
    if (!mkdtemp(dir)) sd_die(1, "t_safetensors: no temporary folder");
    snprintf(file, sizeof file, "%s/x.safetensors", dir);
    Backend be = cpu_backend();
    round_trip();
    truncated();
    damaged();
    params_round_trip(&be);
    unlink(file);
    rmdir(dir);
    cpu_ctx_destroy(be.ctx);
    return check_exit("t_safetensors");
}
