/* Cases for the 'conv' operator group (see tests/op_case.h). */
#include "op_case.h"

const OpCase cases_conv[] = {
    {0},
};
