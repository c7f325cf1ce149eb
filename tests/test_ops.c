/* Operator verification on the CPU.
 *
 *   test_ops_f64 grad FILE [FILTER]   finite differences in float64; writes FILE (tsv)
 *   test_ops dump DIR [FILTER]        inputs and output gradients for the oracle (.npy)
 *   test_ops check DIR FILE [FILTER]  float32 results vs the oracle's, merged with the
 *                                     gradient results in FILE; prints the table and the
 *                                     summary line; exit 1 on any failure
 * FILTER keeps the cases whose name contains it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../core/err.h"
#include "../core/npy.h"
#include "../cpu/cpu.h"
#include "op_harness.h"

#define SEED 20261124u
#define GRAD_TOL 1e-6
#define ORACLE_TOL 1e-4
#define GRAD_MAX_POINTS 300

static int selected(const OpCase *c, const char *filter) { return !filter || strstr(c->name, filter); }

/* The larger of two errors, a NaN winning: fmax would drop it and let a NaN result pass. */
static double max_keep_nan(double a, double b) { return isnan(a) || b <= a ? a : b; }

/* ------------------------------------------------------------ gradcheck */

static double weighted_loss(CaseRun *r)
{
    case_forward(r);
    double l = 0;
    for (int k = 0; k < r->out.count; k++)
        for (size_t j = 0; j < r->out.len[k]; j++) l += (double)r->out.ptr[k][j] * r->dout.ptr[k][j];
    return l;
}

/* Worst normalized error between the analytic gradient and central differences. */
static double gradcheck_case(const Backend *be, const OpCase *c)
{
    CaseRun r;
    case_run_init(&r, be, c);
    case_fill(&r, SEED);
    case_forward(&r);
    case_backward(&r);
    double worst = 0;
    for (int i = 0; i < r.in.count; i++) {
        if (!r.din.ptr[i]) continue;
        size_t n = r.in.len[i], step = n > GRAD_MAX_POINTS ? n / GRAD_MAX_POINTS : 1;
        double num_max = 0, diff_max = 0;
        for (size_t j = 0; j < n; j += step) {
            real keep = r.in.ptr[i][j];
            double h = 1e-6 * fmax(1.0, fabs(keep));
            r.in.ptr[i][j] = keep + h;
            double lp = weighted_loss(&r);
            r.in.ptr[i][j] = keep - h;
            double lm = weighted_loss(&r);
            r.in.ptr[i][j] = keep;
            double num = (lp - lm) / (2 * h);
            num_max = fmax(num_max, fabs(num));
            double d = fabs(num - r.din.ptr[i][j]);
            diff_max = max_keep_nan(diff_max, d);
        }
        double e = diff_max / fmax(num_max, 1e-8);
        worst = max_keep_nan(worst, e);
    }
    case_run_free(&r);
    return worst;
}

static int run_grad(const char *file, const char *filter)
{
    Backend be = cpu_backend();
    FILE *f = fopen(file, "w");
    if (!f) sd_die(2, "cannot write %s", file);
    for (const OpCase *const *p = all_cases(); *p; p++) {
        const OpCase *c = *p;
        if (!selected(c, filter)) continue;
        if (c->flags & CASE_NO_GRAD || !c->grad) {
            fprintf(f, "%s\tn/a\t0\n", c->name);
            continue;
        }
        double tol = case_float(c, "gradtol", GRAD_TOL);
        double e = gradcheck_case(&be, c);
        fprintf(f, "%s\t%s\t%.3e\n", c->name, e <= tol ? "ok" : "FAIL", e);
        printf("grad  %-40s %.3e %s\n", c->name, e, e <= tol ? "ok" : "FAIL");
    }
    fclose(f);
    cpu_ctx_destroy(be.ctx);
    return 0;
}

/* ------------------------------------------------------------ oracle */

static void case_dir(char *buf, size_t n, const char *dir, const OpCase *c)
{
    snprintf(buf, n, "%s/", dir);
    size_t l = strlen(buf);
    for (const char *s = c->name; *s && l + 1 < n; s++) buf[l++] = (*s == '/') ? '.' : *s;
    buf[l] = 0;
}

static void save_tensor(const char *dir, const char *name, const char *spec, const real *data)
{
    char path[1024];
    int d[4];
    long shape[4];
    int nd = spec_dims(spec, d);
    for (int i = 0; i < nd; i++) shape[i] = d[i];
    snprintf(path, sizeof path, "%s/%s.npy", dir, name);
    if (npy_save(path, data, sizeof(real) == 8, nd, shape)) sd_die(2, "%s", sd_last_error());
}

static int run_dump(const char *dir, const char *filter)
{
    Backend be = cpu_backend();
    mkdir(dir, 0755);
    for (const OpCase *const *p = all_cases(); *p; p++) {
        const OpCase *c = *p;
        if (!selected(c, filter) || (c->flags & CASE_NO_ORACLE)) continue;
        char d[1024], name[32];
        case_dir(d, sizeof d, dir, c);
        mkdir(d, 0755);
        CaseRun r;
        case_run_init(&r, &be, c);
        case_fill(&r, SEED);
        char meta[1100];
        snprintf(meta, sizeof meta, "%s/meta.txt", d);
        FILE *f = fopen(meta, "w");
        if (!f) sd_die(2, "cannot write %s", meta);
        fprintf(f, "name %s\nop %s\nparams %s\ngrad %u\n", c->name, c->op, c->params ? c->params : "", c->grad);
        for (int i = 0; i < r.in.count; i++) {
            fprintf(f, "in%d %s\n", i, c->in[i]);
            snprintf(name, sizeof name, "in%d", i);
            save_tensor(d, name, c->in[i], r.in.ptr[i]);
        }
        for (int k = 0; k < r.out.count; k++) {
            fprintf(f, "out%d %s\n", k, c->out[k]);
            snprintf(name, sizeof name, "dout%d", k);
            save_tensor(d, name, c->out[k], r.dout.ptr[k]);
        }
        fclose(f);
        case_run_free(&r);
    }
    cpu_ctx_destroy(be.ctx);
    return 0;
}

/* Compare backend tensor i of set s with DIR/<ref>.npy; returns the error (inf if missing). */
static double compare_ref(const char *d, const char *ref, const real *got, size_t n, char *why, size_t whyn)
{
    char path[1100];
    snprintf(path, sizeof path, "%s/%s.npy", d, ref);
    NpyArray a;
    if (npy_load(path, &a)) {
        snprintf(why, whyn, "%s", sd_last_error());
        return INFINITY;
    }
    double e = a.numel == n ? rel_error(got, a.data, n) : INFINITY;
    if (a.numel != n) snprintf(why, whyn, "%s has %zu values, expected %zu", ref, a.numel, n);
    free(a.data);
    return e;
}

static double oracle_case(const Backend *be, const OpCase *c, const char *dir, char *why, size_t whyn)
{
    char d[1024], name[32];
    case_dir(d, sizeof d, dir, c);
    CaseRun r;
    case_run_init(&r, be, c);
    case_fill(&r, SEED);
    case_forward(&r);
    double worst = 0;
    for (int k = 0; k < r.out.count; k++) {
        snprintf(name, sizeof name, "ref_out%d", k);
        worst = max_keep_nan(worst, compare_ref(d, name, r.out.ptr[k], r.out.len[k], why, whyn));
    }
    if (c->backward && c->grad) {
        case_backward(&r);
        for (int i = 0; i < r.in.count; i++) {
            if (!r.din.ptr[i]) continue;
            snprintf(name, sizeof name, "ref_din%d", i);
            worst = max_keep_nan(worst, compare_ref(d, name, r.din.ptr[i], r.din.len[i], why, whyn));
        }
    }
    case_run_free(&r);
    return worst;
}

/* Gradient verdict of case `name` from the grad file ("n/a" when absent). */
static void grad_result(FILE *f, const char *name, char *verdict, double *err)
{
    char line[512];
    strcpy(verdict, "missing");
    *err = NAN;
    rewind(f);
    while (fgets(line, sizeof line, f)) {
        char *tab = strchr(line, '\t');
        if (!tab) continue;
        *tab = 0;
        if (strcmp(line, name)) continue;
        sscanf(tab + 1, "%15s %lf", verdict, err);
        return;
    }
}

static int run_check(const char *dir, const char *gradfile, const char *filter)
{
    Backend be = cpu_backend();
    FILE *gf = fopen(gradfile, "r");
    if (!gf) sd_die(2, "cannot read the gradient-check results %s (run the float64 check first)", gradfile);
    int passed = 0, failed = 0;
    double worst_oracle = 0, worst_grad = 0;
    printf("%-42s %-10s %-7s %-10s %-7s\n", "case", "oracle", "", "fd-grad", "");
    for (const OpCase *const *p = all_cases(); *p; p++) {
        const OpCase *c = *p;
        if (!selected(c, filter)) continue;
        char why[600] = "", gv[16];
        double oe = 0, ge;
        int o_ok = 1;
        const char *o_verdict = "n/a";
        if (!(c->flags & CASE_NO_ORACLE)) {
            oe = oracle_case(&be, c, dir, why, sizeof why);
            o_ok = oe <= ORACLE_TOL;
            o_verdict = o_ok ? "ok" : "FAIL";
            worst_oracle = max_keep_nan(worst_oracle, oe);
        }
        grad_result(gf, c->name, gv, &ge);
        int g_ok = !strcmp(gv, "ok") || !strcmp(gv, "n/a");
        if (strcmp(gv, "n/a")) worst_grad = max_keep_nan(worst_grad, ge);
        int ok = o_ok && g_ok;
        ok ? passed++ : failed++;
        printf("%-42s %-10.2e %-7s %-10.2e %-7s%s%s\n", c->name, oe, o_verdict, ge, gv, why[0] ? "  " : "", why);
    }
    fclose(gf);
    cpu_ctx_destroy(be.ctx);
    printf("worst oracle error %.2e (limit %.0e), worst finite-difference error %.2e "
           "(limit %.0e unless a case sets gradtol)\n",
           worst_oracle, ORACLE_TOL, worst_grad, GRAD_TOL);
    printf("ops: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && !strcmp(argv[1], "grad")) return run_grad(argv[2], argc > 3 ? argv[3] : NULL);
    if (argc >= 3 && !strcmp(argv[1], "dump")) return run_dump(argv[2], argc > 3 ? argv[3] : NULL);
    if (argc >= 4 && !strcmp(argv[1], "check")) return run_check(argv[2], argv[3], argc > 4 ? argv[4] : NULL);
    fprintf(stderr, "usage: test_ops grad FILE [FILTER] | dump DIR [FILTER] | check DIR GRADFILE [FILTER]\n");
    return 2;
}
