/* Cases for the 'norm' operator group (see tests/op_case.h). */
#include "op_case.h"

const OpCase cases_norm[] = {
    {0},
};
