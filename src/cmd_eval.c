/* sdseg eval: a predicted stack (probabilities or a mask) against a ground-truth mask
 * stack: pixel scores, an optional threshold sweep, object-level detection scores and an
 * optional per-object measurement CSV. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/err.h"
#include "../core/fileio.h"
#include "../core/metrics.h"
#include "../core/morph.h"
#include "../core/tiff.h"
#include "cli.h"

typedef struct {
    const char *pred_path, *truth_path, *objects_csv, *metrics_csv;
    double threshold, pixel_nm, match_iou;
    int sweep, link3d, conn;
} EvalArgs;

/* The volume under evaluation: prediction values and both binary masks. */
typedef struct {
    int pages, h, w;
    size_t n;
    Stack pred;
    float threshold;  /* the one actually applied to pred (see effective_threshold) */
    uint8_t *pred_mask, *truth_mask;
} Volume;

typedef struct {
    Confusion c;
    ObjectScores obj;
    Confusion sweep[SWEEP_COUNT];
} Results;

static void volume_free(Volume *v)
{
    stack_free(&v->pred);
    free(v->pred_mask);
    free(v->truth_mask);
}

/* An 8-bit stack holding only 0 and 1 is a 0/1 mask (1/255 after scaling): its
 * foreground is every nonzero pixel, whatever the threshold. */
static float effective_threshold(const Stack *s, size_t n, float threshold)
{
    int ones = 0;
    for (size_t i = 0; s->bits == 8 && i < n; i++) {
        if (s->data[i] > 1.5f / 255) return threshold;
        ones |= s->data[i] > 0;
    }
    if (!ones) return threshold;
    fprintf(stderr, "sdseg eval: the prediction holds only 0 and 1: foreground = nonzero\n");
    return 0.0f;
}

static int load_truth(const EvalArgs *a, const Volume *v, uint8_t **mask)
{
    Stack t;
    if (tiff_read_stack(a->truth_path, &t) != SD_OK) return SD_ERR;
    int rc = SD_OK;
    if (t.pages != v->pages || t.h != v->h || t.w != v->w)
        rc = sd_fail("size mismatch: prediction %s is %d x %d x %d but truth %s is %d x %d x %d (pages x h x w)",
                     a->pred_path, v->pages, v->h, v->w, a->truth_path, t.pages, t.h, t.w);
    else if (!(*mask = malloc(v->n)))
        rc = sd_fail("out of memory for the truth mask");
    for (size_t i = 0; rc == SD_OK && i < v->n; i++) (*mask)[i] = t.data[i] != 0;
    stack_free(&t);
    return rc;
}

static int load_volume(const EvalArgs *a, Volume *v)
{
    memset(v, 0, sizeof *v);
    if (tiff_read_stack(a->pred_path, &v->pred) != SD_OK) return SD_ERR;
    v->pages = v->pred.pages;
    v->h = v->pred.h;
    v->w = v->pred.w;
    v->n = (size_t)v->pages * v->h * v->w;
    if (load_truth(a, v, &v->truth_mask) != SD_OK) return SD_ERR;
    v->threshold = effective_threshold(&v->pred, v->n, (float)a->threshold);
    if (!(v->pred_mask = malloc(v->n))) return sd_fail("out of memory for the predicted mask");
    for (size_t i = 0; i < v->n; i++) v->pred_mask[i] = v->pred.data[i] > v->threshold;
    return SD_OK;
}

/* One CSV row per (object, slice) of the predicted objects, lengths also in nm. */
static int write_objects_csv(const char *path, const Region *r, long n, double nm)
{
    AtomicFile af;
    if (atomic_open(&af, path) != SD_OK) return SD_ERR;
    fprintf(af.f, "id,slice,area_px,area_nm2,centroid_y,centroid_x,bbox_min_y,bbox_min_x,bbox_max_y,bbox_max_x,"
                  "equiv_diameter_px,equiv_diameter_nm,major_axis_px,minor_axis_px,eccentricity,orientation_rad,"
                  "perimeter_px,perimeter_nm,solidity\n");
    for (long i = 0; i < n; i++, r++)
        fprintf(af.f, "%d,%d,%ld,%.6g,%.4f,%.4f,%d,%d,%d,%d,%.4f,%.4f,%.4f,%.4f,%.6f,%.6f,%.4f,%.4f,%.6f\n", r->id,
                r->slice, r->area, r->area * nm * nm, r->cy, r->cx, r->min_y, r->min_x, r->max_y, r->max_x,
                r->equiv_diameter, r->equiv_diameter * nm, r->major_axis, r->minor_axis, r->eccentricity,
                r->orientation, r->perimeter, r->perimeter * nm, r->solidity);
    return atomic_commit(&af); /* checks every write */
}

/* Labels both masks, scores the objects, and measures the predicted ones if asked. */
static int evaluate_objects(const EvalArgs *a, const Volume *v, ObjectScores *out)
{
    int32_t *pred = malloc(v->n * sizeof *pred), *truth = malloc(v->n * sizeof *truth);
    int npred = 0, ntruth = 0, rc = pred && truth ? SD_OK : sd_fail("out of memory for object labels");
    if (rc == SD_OK) rc = morph_label(v->pred_mask, v->pages, v->h, v->w, a->conn, a->link3d, pred, &npred);
    if (rc == SD_OK) rc = morph_label(v->truth_mask, v->pages, v->h, v->w, a->conn, a->link3d, truth, &ntruth);
    if (rc == SD_OK) rc = object_scores(pred, npred, truth, ntruth, v->n, a->match_iou, out);
    free(truth);
    if (rc == SD_OK && a->objects_csv) {
        Region *r = NULL;
        long nr = 0;
        rc = morph_regions(pred, v->pages, v->h, v->w, npred, &r, &nr);
        if (rc == SD_OK) rc = write_objects_csv(a->objects_csv, r, nr, a->pixel_nm);
        free(r);
    }
    free(pred);
    return rc;
}

static void print_scores_row(float threshold, Confusion c)
{
    PixelScores s = pixel_scores(c);
    printf("  %9.2f  %8.4f  %8.4f  %9.4f  %8.4f  %8.4f\n", threshold, s.iou, s.dice, s.precision, s.recall,
           s.accuracy);
}

static void print_report(const EvalArgs *a, const Volume *v, const Results *r)
{
    PixelScores s = pixel_scores(r->c);
    printf("eval: %s vs %s, %d x %d x %d voxels, foreground: prediction > %g, truth nonzero\n", a->pred_path,
           a->truth_path, v->pages, v->h, v->w, v->threshold);
    printf("  foreground IoU    %.4f\n  Dice              %.4f\n  precision         %.4f\n"
           "  recall            %.4f\n  pixel accuracy    %.4f\n",
           s.iou, s.dice, s.precision, s.recall, s.accuracy);
    printf("  confusion         tp %lld  fp %lld  fn %lld  tn %lld\n", r->c.tp, r->c.fp, r->c.fn, r->c.tn);
    int conn = a->link3d ? (a->conn == 4 ? 6 : 26) : a->conn;
    printf("objects (%s, %d-connected, matched at IoU >= %g): %ld predicted, %ld true, %ld matched\n",
           a->link3d ? "3-D" : "2-D per slice", conn, a->match_iou, r->obj.pred, r->obj.truth, r->obj.matched);
    printf("  object precision  %.4f\n  object recall     %.4f\n  object F1         %.4f\n", r->obj.precision,
           r->obj.recall, r->obj.f1);
    if (!a->sweep) return;
    printf("threshold sweep:\n  threshold       IoU      Dice  precision    recall  accuracy\n");
    for (int i = 0; i < SWEEP_COUNT; i++) print_scores_row(sweep_threshold(i), r->sweep[i]);
    int best = best_by_iou(r->sweep, SWEEP_COUNT);
    printf("  best IoU %.4f at threshold %.2f (for information: choose thresholds on validation data, "
           "never on the test volume)\n",
           pixel_scores(r->sweep[best]).iou, sweep_threshold(best));
}

static void csv_row(FILE *f, const char *kind, float threshold, Confusion c)
{
    PixelScores s = pixel_scores(c);
    fprintf(f, "%s,%g,%.6f,%.6f,%.6f,%.6f,%.6f,%lld,%lld,%lld,%lld", kind, threshold, s.iou, s.dice, s.precision,
            s.recall, s.accuracy, c.tp, c.fp, c.fn, c.tn);
}

static int write_metrics_csv(const EvalArgs *a, const Volume *v, const Results *r)
{
    AtomicFile af;
    if (atomic_open(&af, a->metrics_csv) != SD_OK) return SD_ERR;
    fprintf(af.f, "kind,threshold,iou,dice,precision,recall,accuracy,tp,fp,fn,tn,"
                  "objects_pred,objects_true,objects_matched,object_precision,object_recall,object_f1\n");
    csv_row(af.f, "main", v->threshold, r->c);
    fprintf(af.f, ",%ld,%ld,%ld,%.6f,%.6f,%.6f\n", r->obj.pred, r->obj.truth, r->obj.matched, r->obj.precision,
            r->obj.recall, r->obj.f1);
    for (int i = 0; a->sweep && i < SWEEP_COUNT; i++) {
        csv_row(af.f, "sweep", sweep_threshold(i), r->sweep[i]);
        fputs(",,,,,,\n", af.f);
    }
    return atomic_commit(&af);
}

static int evaluate(const EvalArgs *a, const Volume *v, Results *r)
{
    r->c = confusion_masks(v->pred_mask, v->truth_mask, v->n);
    if (a->sweep) {
        float t[SWEEP_COUNT];
        for (int i = 0; i < SWEEP_COUNT; i++) t[i] = sweep_threshold(i);
        if (confusion_sweep(v->pred.data, v->truth_mask, v->n, t, SWEEP_COUNT, r->sweep) != SD_OK) return SD_ERR;
    }
    return evaluate_objects(a, v, &r->obj);
}

static int check_args(const char *cmd, const EvalArgs *a)
{
    if (!(a->threshold >= 0 && a->threshold <= 1))
        return cli_usage_error(cmd, "--threshold must be in [0, 1] (got %g)", a->threshold);
    if (!(a->pixel_nm > 0)) return cli_usage_error(cmd, "--pixel-size-nm must be positive (got %g)", a->pixel_nm);
    if (!(a->match_iou > 0 && a->match_iou <= 1))
        return cli_usage_error(cmd, "--match-iou must be in (0, 1] (got %g)", a->match_iou);
    if (a->conn != 4 && a->conn != 8) return cli_usage_error(cmd, "--connectivity must be 4 or 8 (got %d)", a->conn);
    return CLI_RUN;
}

int cmd_eval(int argc, char **argv)
{
    EvalArgs a = {NULL, NULL, NULL, NULL, 0.5, 5.0, 0.5, 0, 0, 8};
    const CliOpt opts[] = {
        {"pred", CLI_STR, &a.pred_path, "predicted stack: probabilities or a mask (TIFF)", 1},
        {"truth", CLI_STR, &a.truth_path, "ground-truth mask stack (TIFF, nonzero = foreground)", 1},
        {"threshold", CLI_FLOAT, &a.threshold, "foreground where prediction > threshold", 0},
        {"sweep", CLI_FLAG, &a.sweep, "also score thresholds 0.05, 0.10, ..., 0.95", 0},
        {"objects", CLI_STR, &a.objects_csv, "write per-object measurements of the prediction (CSV)", 0},
        {"pixel-size-nm", CLI_FLOAT, &a.pixel_nm, "pixel side in nm, for the CSV's nm columns", 0},
        {"3d", CLI_FLAG, &a.link3d, "objects connect across slices (6/26-connectivity)", 0},
        {"connectivity", CLI_INT, &a.conn, "in-slice connectivity of objects: 4 or 8", 0},
        {"match-iou", CLI_FLOAT, &a.match_iou, "IoU at which a predicted object matches a true one", 0},
        {"csv", CLI_STR, &a.metrics_csv, "write the scores (and the sweep) as CSV", 0},
        {NULL, 0, NULL, NULL, 0},
    };
    int st = cli_parse(argc, argv,
                       "Score a segmentation against ground truth over the whole volume: foreground IoU, Dice,\n"
                       "precision, recall, pixel accuracy, object precision/recall/F1, and per-object measures.",
                       opts);
    if (st != CLI_RUN || (st = check_args(argv[0], &a)) != CLI_RUN) return st;
    Volume v;
    Results r;
    memset(&r, 0, sizeof r);
    if (load_volume(&a, &v) != SD_OK) {
        volume_free(&v);
        return cli_fail(argv[0], 2);
    }
    int rc = evaluate(&a, &v, &r);
    if (rc == SD_OK) print_report(&a, &v, &r);
    if (rc == SD_OK && a.metrics_csv) rc = write_metrics_csv(&a, &v, &r);
    volume_free(&v);
    return rc == SD_OK ? 0 : cli_fail(argv[0], 1);
}
