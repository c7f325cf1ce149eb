/* Segmentation quality over a whole volume: pixel confusion counts and the scores derived
 * from them, a threshold sweep, and object-level detection scores. Implemented in
 * core/metrics.c.
 *
 * Conventions: a probability p is foreground when p > threshold (strictly); a truth
 * value when it is nonzero. A score whose denominator is zero (no foreground in the
 * prediction, the truth or both) is 1 when prediction and truth are both empty and 0
 * otherwise, so an empty prediction of an empty truth is perfect and nothing else is. */
#ifndef SDSEG_METRICS_H
#define SDSEG_METRICS_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    long long tp, fp, fn, tn;
} Confusion;

typedef struct {
    double iou;       /* tp / (tp + fp + fn), the foreground Jaccard index */
    double dice;      /* 2 tp / (2 tp + fp + fn) */
    double precision; /* tp / (tp + fp) */
    double recall;    /* tp / (tp + fn) */
    double accuracy;  /* (tp + tn) / all */
} PixelScores;

Confusion confusion_masks(const uint8_t *pred, const uint8_t *truth, size_t n);
Confusion confusion_probs(const float *prob, float threshold, const uint8_t *truth, size_t n);
PixelScores pixel_scores(Confusion c);

/* The sweep's thresholds: 0.05, 0.10, ..., 0.95 (the seed's 0.05 first). */
#define SWEEP_COUNT 19
float sweep_threshold(int i);

/* out[i] = confusion_probs(prob, thresholds[i], ...) for ascending thresholds, in one
 * pass over the volume. */
int confusion_sweep(const float *prob, const uint8_t *truth, size_t n, const float *thresholds, int count,
                    Confusion *out);

/* Index of the highest IoU among count confusions (the first on ties). */
int best_by_iou(const Confusion *c, int count);

typedef struct {
    long pred, truth, matched; /* objects on each side; one-to-one matches */
    double precision;          /* matched / pred */
    double recall;             /* matched / truth */
    double f1;                 /* 2 matched / (pred + truth) */
} ObjectScores;

/* Objects of two label volumes (0 background, 1..npred / 1..ntruth, n voxels) match when
 * their IoU is at least min_iou. Candidate pairs are taken by decreasing IoU (ties by
 * label), each object at most once; above 0.5 a match is unique anyway. */
int object_scores(const int32_t *pred, int npred, const int32_t *truth, int ntruth, size_t n, double min_iou,
                  ObjectScores *out);

#endif
