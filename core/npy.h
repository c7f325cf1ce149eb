/* NumPy .npy files (format 1.0/2.0, little-endian, C order) for tensor dumps. */
#ifndef SDSEG_NPY_H
#define SDSEG_NPY_H

#include <stddef.h>

#define NPY_MAX_DIMS 8

typedef struct {
    int ndim;
    long shape[NPY_MAX_DIMS];
    size_t numel;
    double *data; /* always converted to double on load; free() it */
} NpyArray;

/* Load a float32 or float64 array; SD_ERR with a message on any problem. */
int npy_load(const char *path, NpyArray *out);
/* Write float32 (`is_double` = 0, data points to float) or float64 arrays, atomically. */
int npy_save(const char *path, const void *data, int is_double, int ndim, const long *shape);

#endif
