/* Minimal assertions for the tests/t_*.c unit tests: each failed check prints where and
 * what, the test's main returns check_exit() (non-zero when anything failed). */
#ifndef SDSEG_CHECK_H
#define SDSEG_CHECK_H

#include <math.h>
#include <stdio.h>

static int check_failures;

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            check_failures++;                                                    \
        }                                                                        \
    } while (0)

/* CHECK with a printf-style explanation of what was checked. */
#define CHECK_MSG(cond, ...)                                    \
    do {                                                        \
        if (!(cond)) {                                          \
            fprintf(stderr, "%s:%d: FAIL: ", __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                       \
            fputc('\n', stderr);                                \
            check_failures++;                                   \
        }                                                       \
    } while (0)

/* |got - want| <= tol, printing both values when not. */
#define CHECK_NEAR(got, want, tol)                                                             \
    do {                                                                                       \
        double got_ = (got), want_ = (want);                                                   \
        if (!(fabs(got_ - want_) <= (tol))) {                                                  \
            fprintf(stderr, "%s:%d: %s = %.9g, want %.9g (tol %g)\n", __FILE__, __LINE__, #got, \
                    got_, want_, (double)(tol));                                               \
            check_failures++;                                                                  \
        }                                                                                      \
    } while (0)

static inline int check_exit(const char *name)
{
    printf("%s: %s\n", name, check_failures ? "FAILED" : "ok");
    if (check_failures) fprintf(stderr, "%s: %d checks failed\n", name, check_failures);
    return check_failures != 0;
}

#endif
