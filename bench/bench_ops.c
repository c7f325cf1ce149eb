/* CPU operator benchmark: the convolutions of the seed segmentation U-Net.
 *
 *   bench_ops [CSV [FILTER]]
 *       times every distinct conv2d / conv_transpose2d shape of the U-Net (widths 64
 *       and 16, 256x256 and 32x32 input, batch 1): forward, and backward with dx, dw
 *       and db; prints a table and writes CSV (default build/bench_ops_cpu.csv).
 *       FILTER keeps the rows whose "w64 256 enc1.conv2" label contains it.
 *   bench_ops --list
 *       prints those labels, one a line (bench/torch_ops.py times shape by shape,
 *       alternating with PyTorch).
 *
 * Times are the best of a few repetitions (the machine is shared, the minimum is the
 * least disturbed run), wall-clock for the table and also process CPU time in the CSV. Peak: bench/cpu_peak.h. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../core/err.h"
#include "../core/fileio.h"
#include "../cpu/cpu.h"
#include "cpu_peak.h"

typedef struct {
    const char *layer;
    int transposed; /* conv_transpose2d 2x2 stride 2, else conv2d stride 1 'same' */
    int count;      /* how often the network uses this shape */
    int c_in, c_out, hw, k;
} Shape;

/* Best wall-clock and best process CPU time (all threads) of one operation, in ms. */
typedef struct {
    double wall, cpu;
} Best;

typedef struct {
    Best fwd, bwd;
} Timing;

static double seconds(clockid_t clock)
{
    struct timespec t;
    clock_gettime(clock, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static double now(void) { return seconds(CLOCK_MONOTONIC); }

/* ------------------------------------------------------------ the U-Net's shapes */

/* The distinct convolutions of the seed U-Net of base width w on an s x s input:
 * encoder blocks at s, s/2 .. s/16 (the second conv of each block is reused by the
 * decoder block of the same level), decoder first convs on the concatenation, the
 * 2x2 stride-2 transposed convs, the 1x1 head. */
static int unet_shapes(int w, int s, Shape *out)
{
    static const char *enc_a[] = {"enc1.conv1", "enc2.conv1", "enc3.conv1", "enc4.conv1", "bridge.conv1"};
    static const char *enc_b[] = {"enc1.conv2", "enc2.conv2", "enc3.conv2", "enc4.conv2", "bridge.conv2"};
    static const char *dec_a[] = {"dec1.conv1", "dec2.conv1", "dec3.conv1", "dec4.conv1"};
    static const char *up[] = {"up1.convT", "up2.convT", "up3.convT", "up4.convT"};
    int n = 0;
    for (int l = 0; l < 5; l++) {
        int c = w << l, hw = s >> l;
        out[n++] = (Shape){enc_a[l], 0, 1, l ? c / 2 : 1, c, hw, 3};
        out[n++] = (Shape){enc_b[l], 0, l < 4 ? 2 : 1, c, c, hw, 3};
    }
    for (int l = 3; l >= 0; l--) {
        int c = w << l, hw = s >> l;
        out[n++] = (Shape){up[l], 1, 1, 2 * c, c, hw / 2, 2};
        out[n++] = (Shape){dec_a[l], 0, 1, 2 * c, c, hw, 3};
    }
    out[n++] = (Shape){"head", 0, 1, w, 1, s, 1};
    return n;
}

/* Forward multiply-adds x 2 of one shape. */
static double shape_flop(const Shape *sh)
{
    return 2.0 * sh->c_in * sh->c_out * sh->k * sh->k * sh->hw * sh->hw;
}

/* ------------------------------------------------------------ timing */

typedef struct {
    Backend *be;
    const Shape *sh;
    Conv2dShape conv;
    ConvT2dShape convt;
    real *x, *w, *b, *y, *dy, *dx, *dw, *db;
    size_t nx, nw, ny;
} Run;

static real *alloc_filled(Backend *be, size_t n, uint64_t stream)
{
    real *p = be->alloc(be->ctx, n * sizeof(real));
    be->fill_uniform(be->ctx, n, p, -1, 1, 1234, stream, 0);
    return p;
}

static void run_init(Run *r, Backend *be, const Shape *sh)
{
    memset(r, 0, sizeof *r);
    r->be = be;
    r->sh = sh;
    int hw_out;
    if (sh->transposed) {
        r->convt = (ConvT2dShape){.n = 1, .c_in = sh->c_in, .h = sh->hw, .w = sh->hw, .c_out = sh->c_out, .k = sh->k,
                                  .stride = 2, .pad = 0};
        if (conv_transpose2d_shape_check(&r->convt)) sd_die(2, "%s", sd_last_error());
        hw_out = r->convt.h_out;
        r->nw = (size_t)sh->c_in * sh->c_out * sh->k * sh->k;
    } else {
        r->conv = conv2d_shape(1, sh->c_in, sh->hw, sh->hw, sh->c_out, sh->k, 1, sh->k / 2);
        if (conv2d_shape_check(&r->conv)) sd_die(2, "%s", sd_last_error());
        hw_out = r->conv.h_out;
        r->nw = (size_t)sh->c_out * sh->c_in * sh->k * sh->k;
    }
    r->nx = (size_t)sh->c_in * sh->hw * sh->hw;
    r->ny = (size_t)sh->c_out * hw_out * hw_out;
    r->x = alloc_filled(be, r->nx, 1);
    r->w = alloc_filled(be, r->nw, 2);
    r->b = alloc_filled(be, sh->c_out, 3);
    r->dy = alloc_filled(be, r->ny, 4);
    r->y = alloc_filled(be, r->ny, 5);
    r->dx = alloc_filled(be, r->nx, 6);
    r->dw = alloc_filled(be, r->nw, 7);
    r->db = alloc_filled(be, sh->c_out, 8);
}

static void run_free(Run *r)
{
    real *all[] = {r->x, r->w, r->b, r->y, r->dy, r->dx, r->dw, r->db};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) r->be->release(r->be->ctx, all[i]);
}

static void forward(Run *r)
{
    if (r->sh->transposed)
        r->be->conv_transpose2d_forward(r->be->ctx, &r->convt, r->y, r->x, r->w, r->b);
    else
        r->be->conv2d_forward(r->be->ctx, &r->conv, r->y, r->x, r->w, r->b);
}

/* Gradients accumulate, so zero them first (outside the timed region). */
static void zero_grads(Run *r)
{
    r->be->zero(r->be->ctx, r->dx, r->nx * sizeof(real));
    r->be->zero(r->be->ctx, r->dw, r->nw * sizeof(real));
    r->be->zero(r->be->ctx, r->db, r->sh->c_out * sizeof(real));
}

static void backward(Run *r)
{
    if (r->sh->transposed)
        r->be->conv_transpose2d_backward(r->be->ctx, &r->convt, r->dx, r->dw, r->db, r->dy, r->x, r->w);
    else
        r->be->conv2d_backward(r->be->ctx, &r->conv, r->dx, r->dw, r->db, r->dy, r->x, r->w);
}

/* Best times of 3 to `reps` runs (no more once `budget` seconds are spent). The CPU
 * time, unlike the wall time, does not grow while other processes hold the cores. */
static Best best_of(Run *r, void (*op)(Run *), void (*prepare)(Run *), int reps, double budget)
{
    Best best = {1e30, 1e30};
    double start = now();
    for (int i = 0; i < reps && (i < 3 || now() - start < budget); i++) {
        if (prepare) prepare(r);
        double t = now(), c = seconds(CLOCK_PROCESS_CPUTIME_ID);
        op(r);
        r->be->sync(r->be->ctx);
        t = now() - t;
        c = seconds(CLOCK_PROCESS_CPUTIME_ID) - c;
        if (t * 1e3 < best.wall) best.wall = t * 1e3;
        if (c * 1e3 < best.cpu) best.cpu = c * 1e3;
    }
    return best;
}

static Timing time_shape(Backend *be, const Shape *sh)
{
    Run r;
    run_init(&r, be, sh);
    forward(&r); /* warm-up: page faults, scratch growth, thread start */
    zero_grads(&r);
    backward(&r);
    /* ~3 s per shape at most on an idle machine; small shapes get more repetitions */
    Timing t = {best_of(&r, forward, NULL, 10, 1.0), best_of(&r, backward, zero_grads, 10, 2.0)};
    run_free(&r);
    return t;
}

/* ------------------------------------------------------------ report */

static void print_header(void)
{
    printf("%-4s %-5s %-13s %-6s %5s %5s %4s %2s | %9s %9s | %8s %8s | %6s %6s\n", "net", "input", "layer", "op",
           "c_in", "c_out", "hw", "k", "fwd ms", "bwd ms", "fwd GF/s", "bwd GF/s", "fwd %", "bwd %");
}

static const int widths[] = {64, 16}, inputs[] = {256, 32};

static void list_labels(void)
{
    for (int wi = 0; wi < 2; wi++)
        for (int ii = 0; ii < 2; ii++) {
            Shape shapes[32];
            int n = unet_shapes(widths[wi], inputs[ii], shapes);
            for (int i = 0; i < n; i++) printf("w%d %d %s\n", widths[wi], inputs[ii], shapes[i].layer);
        }
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "--list")) {
        list_labels();
        return 0;
    }
    const char *csv = argc > 1 ? argv[1] : "build/bench_ops_cpu.csv", *filter = argc > 2 ? argv[2] : NULL;
    int threads = omp_get_max_threads();
    CpuPeak cpu = cpu_peak_detect(threads);
    double peak = cpu.gflops;
    printf("CPU peak %.0f GFLOP/s = %d threads x %.2f GHz (measured) x %d float lanes (%s) x 2 FMA units x 2\n", peak,
           threads, cpu.ghz, cpu.lanes, cpu.isa);
    AtomicFile af;
    if (atomic_open(&af, csv)) sd_die(1, "%s", sd_last_error());
    fprintf(af.f, "net,input,layer,op,count,c_in,c_out,hw,k,stride,flop_fwd,fwd_ms,bwd_ms,fwd_cpu_ms,bwd_cpu_ms,"
                  "fwd_gflops,bwd_gflops,fwd_peak,bwd_peak,threads,peak_gflops\n");
    Backend be = cpu_backend();
    print_header();
    for (int wi = 0; wi < 2; wi++)
        for (int ii = 0; ii < 2; ii++) {
            Shape shapes[32];
            int n = unet_shapes(widths[wi], inputs[ii], shapes);
            for (int i = 0; i < n; i++) {
                const Shape *sh = &shapes[i];
                char label[64];
                snprintf(label, sizeof label, "w%d %d %s", widths[wi], inputs[ii], sh->layer);
                if (filter && !strstr(label, filter)) continue;
                Timing t = time_shape(&be, sh);
                double f = shape_flop(sh), gf = f / t.fwd.wall / 1e6, gb = 2 * f / t.bwd.wall / 1e6;
                const char *op = sh->transposed ? "convT" : "conv";
                printf("w%-3d %-5d %-13s %-6s %5d %5d %4d %2d | %9.3f %9.3f | %8.1f %8.1f | %5.1f%% %5.1f%%\n",
                       widths[wi], inputs[ii], sh->layer, op, sh->c_in, sh->c_out, sh->hw, sh->k, t.fwd.wall, t.bwd.wall,
                       gf, gb, 100 * gf / peak, 100 * gb / peak);
                fflush(stdout);
                fprintf(af.f, "w%d,%d,%s,%s,%d,%d,%d,%d,%d,%d,%.0f,%.4f,%.4f,%.4f,%.4f,%.2f,%.2f,%.4f,%.4f,%d,%.1f\n",
                        widths[wi], inputs[ii], sh->layer, op, sh->count, sh->c_in, sh->c_out, sh->hw, sh->k,
                        sh->transposed ? 2 : 1, f, t.fwd.wall, t.bwd.wall, t.fwd.cpu, t.bwd.cpu, gf, gb, gf / peak,
                        gb / peak, threads, peak);
            }
        }
    cpu_ctx_destroy(be.ctx);
    if (atomic_commit(&af)) sd_die(1, "%s", sd_last_error());
    printf("wrote %s\n", csv);
    return 0;
}
