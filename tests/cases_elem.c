/* Cases for elementwise, pooling, resampling, channel plumbing, FiLM, GeGLU and the
 * timestep embedding. */
#include "op_case.h"

/* act: params act=<Act enum value> slope=<float>; x -> y */
static void act_fwd(const Backend *be, const OpCase *c, real *const *in, real *const *out, real *const *aux)
{
    (void)aux;
    be->act_forward(be->ctx, (Act)case_int(c, "act", 0), (float)case_float(c, "slope", 0), spec_numel(c->in[0]),
                    out[0], in[0]);
}

static void act_bwd(const Backend *be, const OpCase *c, real *const *in, real *const *out, real *const *aux,
                    real *const *dout, real *const *din)
{
    (void)out;
    (void)aux;
    be->act_backward(be->ctx, (Act)case_int(c, "act", 0), (float)case_float(c, "slope", 0), spec_numel(c->in[0]),
                     din[0], dout[0], in[0]);
}

#define ACT_CASE(nm, a, shape, extra) \
    {.name = "act/" nm, .op = "act", .params = "act=" #a extra, .in = {shape}, .out = {shape}, .grad = 1, \
     .forward = act_fwd, .backward = act_bwd}

const OpCase cases_elem[] = {
    ACT_CASE("relu", 0, "2x3x5x7:-2:2", ""),
    ACT_CASE("leaky_relu", 1, "2x3x5x7:-2:2", " slope=0.3"),
    ACT_CASE("silu", 2, "3x37:-4:4", ""),
    ACT_CASE("gelu_erf", 3, "3x37:-4:4", ""),
    ACT_CASE("gelu_tanh", 4, "3x37:-4:4", ""),
    ACT_CASE("sigmoid", 5, "3x37:-6:6", ""),
    ACT_CASE("tanh", 6, "3x37:-3:3", ""),
    {0},
};
