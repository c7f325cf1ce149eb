#include "metrics.h"

#include <stdlib.h>
#include <string.h>

#include "err.h"

/* The confusion of n pixels from the foreground counts of both sides and their overlap. */
static Confusion from_counts(long long both, long long pred, long long truth, size_t n)
{
    Confusion c = {both, pred - both, truth - both, (long long)n - pred - truth + both};
    return c;
}

Confusion confusion_masks(const uint8_t *pred, const uint8_t *truth, size_t n)
{
    long long both = 0, npred = 0, ntruth = 0;
    for (size_t i = 0; i < n; i++) {
        int p = pred[i] != 0, t = truth[i] != 0;
        both += p & t;
        npred += p;
        ntruth += t;
    }
    return from_counts(both, npred, ntruth, n);
}

Confusion confusion_probs(const float *prob, float threshold, const uint8_t *truth, size_t n)
{
    long long both = 0, npred = 0, ntruth = 0;
    for (size_t i = 0; i < n; i++) {
        int p = prob[i] > threshold, t = truth[i] != 0;
        both += p & t;
        npred += p;
        ntruth += t;
    }
    return from_counts(both, npred, ntruth, n);
}

/* num / den, or the empty-mask convention when den is 0 (see metrics.h). */
static double ratio(long long num, long long den, int both_empty)
{
    if (den == 0) return both_empty ? 1.0 : 0.0;
    return (double)num / (double)den;
}

PixelScores pixel_scores(Confusion c)
{
    int both_empty = c.tp + c.fp + c.fn == 0;
    PixelScores s;
    s.iou = ratio(c.tp, c.tp + c.fp + c.fn, both_empty);
    s.dice = ratio(2 * c.tp, 2 * c.tp + c.fp + c.fn, both_empty);
    s.precision = ratio(c.tp, c.tp + c.fp, both_empty);
    s.recall = ratio(c.tp, c.tp + c.fn, both_empty);
    s.accuracy = ratio(c.tp + c.tn, c.tp + c.fp + c.fn + c.tn, both_empty);
    return s;
}

float sweep_threshold(int i) { return (float)((i + 1) / 20.0); }

/* How many of the ascending thresholds lie strictly below p. */
static int thresholds_below(float p, const float *thresholds, int count)
{
    int lo = 0, hi = count;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (p > thresholds[mid]) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* A pixel is foreground at threshold j exactly when more than j thresholds lie below it,
 * so one histogram of that count per truth class gives every threshold's confusion. */
int confusion_sweep(const float *prob, const uint8_t *truth, size_t n, const float *thresholds, int count,
                    Confusion *out)
{
    long long *hist = calloc(2 * ((size_t)count + 1), sizeof *hist);
    if (!hist) return sd_fail("out of memory for a threshold sweep");
    long long *pos = hist + count + 1; /* truth foreground; hist itself: background */
    for (size_t i = 0; i < n; i++) (truth[i] ? pos : hist)[thresholds_below(prob[i], thresholds, count)]++;
    for (int j = 0; j < count; j++) {
        Confusion c = {0, 0, 0, 0};
        for (int k = 0; k <= count; k++) {
            if (k > j) {
                c.tp += pos[k];
                c.fp += hist[k];
            } else {
                c.fn += pos[k];
                c.tn += hist[k];
            }
        }
        out[j] = c;
    }
    free(hist);
    return SD_OK;
}

int best_by_iou(const Confusion *c, int count)
{
    int best = 0;
    for (int i = 1; i < count; i++)
        if (pixel_scores(c[i]).iou > pixel_scores(c[best]).iou) best = i;
    return best;
}

/* ---- object matching ---- */

typedef struct {
    int32_t pred, truth;
    long long overlap;
    double iou;
} Pair;

typedef struct {
    Pair *v;
    size_t n, cap;
} PairList;

static int add_overlap(PairList *l, int32_t p, int32_t t)
{
    if (l->n && l->v[l->n - 1].pred == p && l->v[l->n - 1].truth == t) {
        l->v[l->n - 1].overlap++; /* runs of the same pair are the common case */
        return SD_OK;
    }
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 1024;
        Pair *v = realloc(l->v, cap * sizeof *v);
        if (!v) return sd_fail("out of memory for object overlaps");
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = (Pair){p, t, 1, 0};
    return SD_OK;
}

static int by_labels(const void *a, const void *b)
{
    const Pair *x = a, *y = b;
    if (x->pred != y->pred) return x->pred < y->pred ? -1 : 1;
    return (x->truth > y->truth) - (x->truth < y->truth);
}

static int by_iou(const void *a, const void *b)
{
    const Pair *x = a, *y = b;
    if (x->iou != y->iou) return x->iou > y->iou ? -1 : 1;
    return by_labels(a, b);
}

/* Sorts the runs by pair and merges equal pairs. */
static void merge_pairs(PairList *l)
{
    if (l->n) qsort(l->v, l->n, sizeof *l->v, by_labels);
    size_t k = 0;
    for (size_t i = 0; i < l->n; i++) {
        if (k && by_labels(&l->v[k - 1], &l->v[i]) == 0) l->v[k - 1].overlap += l->v[i].overlap;
        else l->v[k++] = l->v[i];
    }
    l->n = k;
}

/* Areas of both label sets and the run-length overlaps, labels checked against counts. */
static int count_overlaps(const int32_t *pred, int npred, const int32_t *truth, int ntruth, size_t n,
                          long long *parea, long long *tarea, PairList *l)
{
    for (size_t i = 0; i < n; i++) {
        if (pred[i] < 0 || pred[i] > npred || truth[i] < 0 || truth[i] > ntruth)
            return sd_fail("object label outside 0..%d / 0..%d", npred, ntruth);
        parea[pred[i]]++;
        tarea[truth[i]]++;
        if (pred[i] && truth[i] && add_overlap(l, pred[i], truth[i]) != SD_OK) return SD_ERR;
    }
    merge_pairs(l);
    return SD_OK;
}

/* Greedy one-to-one matching of the pairs with IoU >= min_iou, best first. */
static long match_pairs(PairList *l, const long long *parea, const long long *tarea, int npred, double min_iou,
                        uint8_t *used)
{
    size_t k = 0;
    for (size_t i = 0; i < l->n; i++) {
        Pair q = l->v[i];
        q.iou = (double)q.overlap / (double)(parea[q.pred] + tarea[q.truth] - q.overlap);
        if (q.iou >= min_iou) l->v[k++] = q;
    }
    if (k) qsort(l->v, k, sizeof *l->v, by_iou);
    uint8_t *pred_used = used, *truth_used = used + npred + 1;
    long matched = 0;
    for (size_t i = 0; i < k; i++) {
        if (pred_used[l->v[i].pred] || truth_used[l->v[i].truth]) continue;
        pred_used[l->v[i].pred] = truth_used[l->v[i].truth] = 1;
        matched++;
    }
    return matched;
}

int object_scores(const int32_t *pred, int npred, const int32_t *truth, int ntruth, size_t n, double min_iou,
                  ObjectScores *out)
{
    memset(out, 0, sizeof *out);
    if (npred < 0 || ntruth < 0) return sd_fail("negative object count");
    long long *parea = calloc((size_t)npred + 1, sizeof *parea), *tarea = calloc((size_t)ntruth + 1, sizeof *tarea);
    uint8_t *used = calloc((size_t)npred + ntruth + 2, 1);
    PairList l = {0};
    int rc = parea && tarea && used ? SD_OK : sd_fail("out of memory for %d + %d objects", npred, ntruth);
    if (rc == SD_OK) rc = count_overlaps(pred, npred, truth, ntruth, n, parea, tarea, &l);
    if (rc == SD_OK) {
        long matched = match_pairs(&l, parea, tarea, npred, min_iou, used);
        int both_empty = npred == 0 && ntruth == 0;
        *out = (ObjectScores){npred, ntruth, matched, ratio(matched, npred, both_empty),
                              ratio(matched, ntruth, both_empty), ratio(2 * matched, npred + ntruth, both_empty)};
    }
    free(parea);
    free(tarea);
    free(used);
    free(l.v);
    return rc;
}
