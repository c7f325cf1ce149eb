/* Cases for the 'loss' operator group (see tests/op_case.h). */
#include "op_case.h"

const OpCase cases_loss[] = {
    {0},
};
