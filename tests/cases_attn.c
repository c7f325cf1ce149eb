/* Cases for the 'attn' operator group (see tests/op_case.h). */
#include "op_case.h"

const OpCase cases_attn[] = {
    {0},
};
