/* The scalar type of the CPU reference.
 *
 * Everything in cpu/ is written against `real`. The normal build makes it float;
 * the gradient-check build compiles the same sources again with -DSDSEG_DOUBLE so
 * finite differences run in float64 (see tests/test_ops.c). GPU code is float only. */
#ifndef SDSEG_REAL_H
#define SDSEG_REAL_H

#ifdef SDSEG_DOUBLE
typedef double real;
#define REAL_NAME "float64"
#else
typedef float real;
#define REAL_NAME "float32"
#endif

#endif
