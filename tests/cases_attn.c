/* Cases for the attention core and for full multi-head self-attention composed from
 * linear -> attention -> linear, as the models use it. */
#include "op_case.h"

/* ------------------------------------------------------------ attention core */

/* attention: params heads; qkv [n, len, 3C] -> out [n, len, C]; aux probs [n, heads, len, len] */
static AttnShape attn_of(const OpCase *c)
{
    int d[4];
    spec_dims(c->out[0], d);
    int heads = case_int(c, "heads", 1);
    AttnShape s = {.n = d[0], .len = d[1], .heads = heads, .head_dim = d[2] / heads};
    return s;
}

static void attn_fwd(const Backend *be, const OpCase *c, real *const *in, real *const *out, real *const *aux)
{
    AttnShape s = attn_of(c);
    be->attention_forward(be->ctx, &s, out[0], aux[0], in[0]);
}

static void attn_bwd(const Backend *be, const OpCase *c, real *const *in, real *const *out, real *const *aux,
                     real *const *dout, real *const *din)
{
    (void)out;
    AttnShape s = attn_of(c);
    be->attention_backward(be->ctx, &s, din[0], dout[0], in[0], aux[0]);
}

/* ------------------------------------------------------------ multi-head self-attention */

/* mhsa: params heads, bias (1: the in-projection has a bias, as the VAE's; 0: not, as the
 * diffusion transformer's). Inputs x [n, len, C], w_in [3C, C], w_out [C, C], b_out [C],
 * then b_in [3C] when bias=1; output y [n, len, C]; aux qkv [n, len, 3C], o [n, len, C],
 * probs [n, heads, len, len]. */
typedef struct {
    AttnShape attn;
    LinearShape in_proj, out_proj;
    int bias;
} Mhsa;

static Mhsa mhsa_of(const OpCase *c)
{
    AttnShape a = attn_of(c);
    int rows = a.n * a.len, C = a.heads * a.head_dim;
    Mhsa m = {.attn = a, .in_proj = {rows, C, 3 * C}, .out_proj = {rows, C, C}, .bias = case_int(c, "bias", 0)};
    return m;
}

static void mhsa_fwd(const Backend *be, const OpCase *c, real *const *in, real *const *out, real *const *aux)
{
    Mhsa m = mhsa_of(c);
    be->linear_forward(be->ctx, &m.in_proj, aux[0], in[0], in[1], m.bias ? in[4] : NULL);
    be->attention_forward(be->ctx, &m.attn, aux[1], aux[2], aux[0]);
    be->linear_forward(be->ctx, &m.out_proj, out[0], aux[1], in[2], in[3]);
}

/* Backward in reverse order, the gradients of the two temporaries living only here. */
static void mhsa_bwd(const Backend *be, const OpCase *c, real *const *in, real *const *out, real *const *aux,
                     real *const *dout, real *const *din)
{
    (void)out;
    Mhsa m = mhsa_of(c);
    size_t qkv_bytes = spec_numel(c->aux[0]) * sizeof(real), o_bytes = spec_numel(c->aux[1]) * sizeof(real);
    real *dqkv = be->alloc(be->ctx, qkv_bytes), *d_o = be->alloc(be->ctx, o_bytes);
    be->zero(be->ctx, dqkv, qkv_bytes);
    be->zero(be->ctx, d_o, o_bytes);
    be->linear_backward(be->ctx, &m.out_proj, d_o, din[2], din[3], dout[0], aux[1], in[2]);
    be->attention_backward(be->ctx, &m.attn, dqkv, d_o, aux[0], aux[2]);
    be->linear_backward(be->ctx, &m.in_proj, din[0], din[1], m.bias ? din[4] : NULL, dqkv, in[0], in[1]);
    be->release(be->ctx, dqkv);
    be->release(be->ctx, d_o);
}

/* ------------------------------------------------------------ the table */

const OpCase cases_attn[] = {
    /* one head of odd size (the VAE's single head, scaled down) */
    {.name = "attention/h1", .op = "attention", .params = "heads=1", .in = {"2x7x15:-2:2"}, .out = {"2x7x5"},
     .aux = {"2x1x7x7"}, .grad = 1, .forward = attn_fwd, .backward = attn_bwd},
    /* eight heads of size 3 (the diffusion transformer's head count) */
    {.name = "attention/h8", .op = "attention", .params = "heads=8", .in = {"2x9x72:-2:2"}, .out = {"2x9x24"},
     .aux = {"2x8x9x9"}, .grad = 1, .forward = attn_fwd, .backward = attn_bwd},
    /* a single position: probabilities are 1, so q and k receive exactly zero */
    {.name = "attention/h3_len1", .op = "attention", .params = "heads=3", .in = {"3x1x45:-2:2"}, .out = {"3x1x15"},
     .aux = {"3x3x1x1"}, .grad = 1, .forward = attn_fwd, .backward = attn_bwd},
    /* scores of a few hundred: exp overflows unless the row max is subtracted first */
    {.name = "attention/h2_large", .op = "attention", .params = "heads=2", .in = {"1x6x30:-16:16"}, .out = {"1x6x10"},
     .aux = {"1x2x6x6"}, .grad = 1, .forward = attn_fwd, .backward = attn_bwd},
    {.name = "mhsa/h1_bias", .op = "mhsa", .params = "heads=1 bias=1",
     .in = {"2x7x10", "30x10:-0.5:0.5", "10x10:-0.5:0.5", "10:-0.5:0.5", "30:-0.5:0.5"}, .out = {"2x7x10"},
     .aux = {"2x7x30", "2x7x10", "2x1x7x7"}, .grad = 0x1f, .forward = mhsa_fwd, .backward = mhsa_bwd},
    {.name = "mhsa/h8_nobias", .op = "mhsa", .params = "heads=8 bias=0",
     .in = {"2x9x24", "72x24:-0.5:0.5", "24x24:-0.5:0.5", "24:-0.5:0.5"}, .out = {"2x9x24"},
     .aux = {"2x9x72", "2x9x24", "2x8x9x9"}, .grad = 0xf, .forward = mhsa_fwd, .backward = mhsa_bwd},
    {0},
};
