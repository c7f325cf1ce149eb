/* TEMPORARY during the initial build-out: weak stand-ins for operators not written yet,
 * overridden by the real definitions in cpu/<op>.c. Removed once every op exists. */
#include <stdio.h>
#include <stdlib.h>

#include "cpu.h"

#pragma GCC diagnostic ignored "-Wunused-parameter"
#define WEAK_STUB(ret, name, args) \
    __attribute__((weak)) ret cpu_##name args { fprintf(stderr, "cpu_%s: not implemented yet\n", #name); abort(); }
SDSEG_OPS(WEAK_STUB)
