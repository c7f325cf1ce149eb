/* Cases for the 'optim' operator group (see tests/op_case.h). */
#include "op_case.h"

const OpCase cases_optim[] = {
    {0},
};
