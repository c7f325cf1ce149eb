/* The CUDA backend against the CPU reference (make test-gpu).
 *
 *   test_gpu_ops [--mode f32|fast|both] [--seeds N] [FILTER]
 *
 * Every case of the shared tables (tests/cases_*.c) that is not CASE_CPU_ONLY runs on
 * both backends from the same Philox inputs (fill_uniform is bit-identical across
 * backends, which is checked too), outputs and saved state poisoned first, for N seeds
 * (default 3). Forward: outputs, saved state (aux) and inputs (updated in place by the
 * optimizer cases) are compared; backward: every input gradient. The error is
 * max|gpu - cpu| / max|cpu| per tensor, worst over tensors and seeds. Limits: float32
 * mode 1e-5, 1e-4 for the convolution, linear and attention cases (cuDNN and cuBLAS sum
 * in other orders); fast mode (bf16 operands) 1e-2, 3e-2 for the chained mhsa cases
 * (see TOL_FAST_CHAIN). A case may set its own limits with
 * the params gputol= (float32) and fasttol= (fast). Exit status 1 on any failure or when
 * device memory is still allocated once the backends are closed (a leak); 0 with
 * "skipped" where no CUDA device is usable. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/err.h"
#include "../cpu/cpu.h"
#include "../gpu/gpu.h"
#include "op_harness.h"

#define SEED_BASE 4242u
#define TOL_F32 1e-5
#define TOL_F32_PRODUCTS 1e-4
#define TOL_FAST 1e-2
/* mhsa chains three bf16 products (out-projection, attention, in-projection) and a
 * softmax backward that cancels nearly equal terms: bf16 rounding compounds to ~1.2e-2
 * at worst over 30 seeds (single products stay below 7.5e-3), so the chain gets its own
 * limit. */
#define TOL_FAST_CHAIN 3e-2
#define NORMAL_FILL_TOL 1e-6 /* fill_normal: double log/cos may differ by an ulp */

typedef struct {
    double fwd, bwd;
    char why[160]; /* a fill mismatch */
} CaseErrors;

static int has_prefix(const char *s, const char *p) { return !strncmp(s, p, strlen(p)); }

static double tolerance(const OpCase *c, int fast)
{
    if (fast) return case_float(c, "fasttol", has_prefix(c->name, "mhsa") ? TOL_FAST_CHAIN : TOL_FAST);
    int products = has_prefix(c->name, "conv") || has_prefix(c->name, "linear") ||
                   has_prefix(c->name, "attention") || has_prefix(c->name, "mhsa");
    return case_float(c, "gputol", products ? TOL_F32_PRODUCTS : TOL_F32);
}

/* Normalized error of tensor i, GPU copy against CPU copy. */
static double tensor_error(const CaseRun *gpu, const TensorSet *gs, const CaseRun *cpu, const TensorSet *cs, int i)
{
    if (!gs->ptr[i] || !cs->ptr[i]) return 0;
    size_t n = cs->len[i];
    real *got = set_download(gpu, gs, i), *want = set_download(cpu, cs, i);
    double *ref = malloc(n * sizeof *ref + 1);
    if (!ref) sd_die(3, "out of memory");
    for (size_t j = 0; j < n; j++) ref[j] = want[j];
    double e = rel_error(got, ref, n);
    free(got);
    free(want);
    free(ref);
    return e;
}

static double worst_of(double a, double b) { return (isnan(a) || a > b) ? a : b; }

/* The worst error over the tensors of one set (gs and cs are the same set of gpu, cpu). */
static double set_error(const CaseRun *gpu, const TensorSet *gs, const CaseRun *cpu, const TensorSet *cs)
{
    double worst = 0;
    for (int i = 0; i < cs->count; i++) worst = worst_of(worst, tensor_error(gpu, gs, cpu, cs, i));
    return worst;
}

#define SET_ERROR(gpu, cpu, set) set_error(&(gpu), &(gpu).set, &(cpu), &(cpu).set)

/* Upload the CPU's copy of every tensor of a set into the GPU's. */
static void copy_set(const CaseRun *gpu, const TensorSet *gs, const CaseRun *cpu, const TensorSet *cs)
{
    for (int i = 0; i < cs->count; i++) {
        real *h = set_download(cpu, cs, i);
        gpu->be->upload(gpu->be->ctx, gs->ptr[i], h, cs->len[i] * sizeof(real));
        free(h);
    }
}

/* Both backends drew the inputs from the same Philox streams: uniform fills must be
 * bit-identical, normal fills within NORMAL_FILL_TOL. A mismatch is recorded in `why`
 * (the case then fails) and the CPU's inputs are copied over, so the operator
 * comparison still means something. */
static void check_fills(CaseRun *gpu, const CaseRun *cpu, char *why, size_t n)
{
    double in = SET_ERROR(*gpu, *cpu, in), dout = SET_ERROR(*gpu, *cpu, dout);
    if (in == 0 && dout <= NORMAL_FILL_TOL) return;
    snprintf(why, n, "fill_uniform/fill_normal differ from the CPU's: inputs %.2e, output gradients %.2e", in, dout);
    copy_set(gpu, &gpu->in, cpu, &cpu->in);
    copy_set(gpu, &gpu->dout, cpu, &cpu->dout);
}

static void compare_seed(const Backend *cpu_be, const Backend *gpu_be, const OpCase *c, uint64_t seed, CaseErrors *e)
{
    CaseRun cpu, gpu;
    case_run_init(&cpu, cpu_be, c);
    case_run_init(&gpu, gpu_be, c);
    case_fill(&cpu, seed);
    case_fill(&gpu, seed);
    check_fills(&gpu, &cpu, e->why, sizeof e->why);
    case_forward(&cpu);
    case_forward(&gpu);
    /* aux: saved state; in: updated in place by the optimizer cases */
    double f = worst_of(SET_ERROR(gpu, cpu, out), worst_of(SET_ERROR(gpu, cpu, aux), SET_ERROR(gpu, cpu, in)));
    e->fwd = worst_of(e->fwd, f);
    if (c->backward && c->grad) {
        case_backward(&cpu);
        case_backward(&gpu);
        e->bwd = worst_of(e->bwd, SET_ERROR(gpu, cpu, din));
    }
    case_run_free(&cpu);
    case_run_free(&gpu);
}

typedef struct {
    int passed, failed;
} Tally;

static void run_mode(const Backend *cpu_be, const Backend *gpu_be, int fast, int seeds, const char *filter, Tally *t)
{
    const char *mode = fast ? "fast" : "f32";
    for (const OpCase *const *p = all_cases(); *p; p++) {
        const OpCase *c = *p;
        if ((c->flags & CASE_CPU_ONLY) || (filter && !strstr(c->name, filter))) continue;
        CaseErrors e = {0, 0, ""};
        for (int s = 0; s < seeds; s++) compare_seed(cpu_be, gpu_be, c, SEED_BASE + (uint64_t)s, &e);
        double tol = tolerance(c, fast);
        int ok = e.fwd <= tol && e.bwd <= tol && !e.why[0];
        ok ? t->passed++ : t->failed++;
        printf("%-44s %-5s %-10.2e %-10.2e %-5s (limit %.0e)%s%s\n", c->name, mode, e.fwd, e.bwd, ok ? "ok" : "FAIL",
               tol, e.why[0] ? "  " : "", e.why);
        fflush(stdout);
    }
}

static void usage(void)
{
    fprintf(stderr, "usage: test_gpu_ops [--mode f32|fast|both] [--seeds N] [FILTER]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *mode = "both", *filter = NULL;
    int seeds = 3;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--mode") && i + 1 < argc) mode = argv[++i];
        else if (!strcmp(argv[i], "--seeds") && i + 1 < argc) seeds = atoi(argv[++i]);
        else if (argv[i][0] == '-') usage();
        else filter = argv[i];
    }
    if (seeds < 1 || (strcmp(mode, "f32") && strcmp(mode, "fast") && strcmp(mode, "both"))) usage();
    Backend cpu = cpu_backend();
    Tally t = {0, 0};
    for (int fast = 0; fast < 2; fast++) {
        if (strcmp(mode, "both") && strcmp(mode, fast ? "fast" : "f32")) continue;
        Backend gpu;
        if (gpu_backend_open(&gpu, fast)) {
            printf("gpu ops: skipped (%s)\n", sd_last_error());
            cpu_ctx_destroy(cpu.ctx);
            return 0;
        }
        if (!t.passed && !t.failed) printf("%-44s %-5s %-10s %-10s %s\n", "case", "mode", "fwd err", "bwd err", "verdict");
        run_mode(&cpu, &gpu, fast, seeds, filter, &t);
        gpu_backend_close(&gpu);
    }
    cpu_ctx_destroy(cpu.ctx);
    GpuMemoryStats m = gpu_memory_stats();
    printf("device memory: peak %.1f MiB, %ld allocations still live\n", m.peak / 1048576.0, m.allocations);
    printf("gpu ops: %d passed, %d failed\n", t.passed, t.failed);
    return t.failed || m.allocations ? 1 : 0;
}
