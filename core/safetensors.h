/* safetensors files (https://github.com/huggingface/safetensors): an 8-byte little-endian
 * header length N, N bytes of JSON {"name": {"dtype", "shape", "data_offsets": [begin, end]},
 * ..., "__metadata__": {"key": "string value"}}, padded with spaces to a multiple of 8,
 * then the raw little-endian tensor data, offsets relative to its start. Files written here
 * load with torch/safetensors; reading validates every field and fails with a one-line
 * message on a damaged file. Only F32 and I64 tensors are supported. */
#ifndef SDSEG_SAFETENSORS_H
#define SDSEG_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#define ST_MAX_DIMS 8

typedef enum { ST_F32, ST_I64 } StDtype;

typedef struct {
    const char *key, *value;
} StMeta;

/* A tensor to write: `data` holds numel * element-size bytes, little-endian. */
typedef struct {
    const char *name;
    StDtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    const void *data;
} StWriteTensor;

/* Atomic write (temp file + rename). Tensors are stored in the order given. */
int st_write(const char *path, const StWriteTensor *t, int count, const StMeta *meta, int nmeta);

/* A tensor of a file that was read. */
typedef struct {
    char *name;
    StDtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    size_t numel;
    uint64_t begin, end;       /* data_offsets: byte range within the data section */
    const unsigned char *data; /* into StFile.bytes; not aligned: copy with st_copy_f32 */
} StTensor;

typedef struct {
    char path[256]; /* for messages (truncated) */
    int count, nmeta;
    StTensor *tensor;
    StMeta *meta;          /* owned strings */
    unsigned char *bytes;  /* the whole file */
} StFile;

/* Read and validate a whole file. SD_ERR with a message naming the file and the problem. */
int st_read(const char *path, StFile *f);
void st_free(StFile *f);
/* NULL when absent. */
const StTensor *st_find(const StFile *f, const char *name);
const char *st_meta(const StFile *f, const char *key);
/* The values of an F32 tensor into dst (numel floats). */
void st_copy_f32(const StTensor *t, float *dst);

#endif
