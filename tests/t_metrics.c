/* core/metrics on small cases counted by hand: pixel scores, the empty-mask conventions,
 * the threshold sweep (strict p > t at the grid values themselves) and object matching
 * (IoU exactly 0.5, one prediction covering two true objects, unmatched objects). */
#include <string.h>

#include "../core/err.h"
#include "../core/metrics.h"
#include "check.h"

static void check_scores(PixelScores s, double iou, double dice, double precision, double recall, double accuracy)
{
    CHECK_NEAR(s.iou, iou, 1e-12);
    CHECK_NEAR(s.dice, dice, 1e-12);
    CHECK_NEAR(s.precision, precision, 1e-12);
    CHECK_NEAR(s.recall, recall, 1e-12);
    CHECK_NEAR(s.accuracy, accuracy, 1e-12);
}

static int same_confusion(Confusion c, long long tp, long long fp, long long fn, long long tn)
{
    if (c.tp == tp && c.fp == fp && c.fn == fn && c.tn == tn) return 1;
    fprintf(stderr, "confusion %lld %lld %lld %lld, want %lld %lld %lld %lld\n", c.tp, c.fp, c.fn, c.tn, tp, fp, fn,
            tn);
    return 0;
}

/* tp (0,0) (0,1) (1,0); fp (0,2); fn (1,1) (3,3); tn the other 10. */
static void check_pixel_scores(void)
{
    const uint8_t truth[16] = {1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    const uint8_t pred[16] = {1, 1, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    Confusion c = confusion_masks(pred, truth, 16);
    CHECK(same_confusion(c, 3, 1, 2, 10));
    check_scores(pixel_scores(c), 3.0 / 6, 6.0 / 9, 3.0 / 4, 3.0 / 5, 13.0 / 16);
}

static void check_empty_masks(void)
{
    const uint8_t none[4] = {0, 0, 0, 0}, one[4] = {0, 1, 0, 0};
    check_scores(pixel_scores(confusion_masks(none, none, 4)), 1, 1, 1, 1, 1);
    check_scores(pixel_scores(confusion_masks(none, one, 4)), 0, 0, 0, 0, 3.0 / 4);
    check_scores(pixel_scores(confusion_masks(one, none, 4)), 0, 0, 0, 0, 3.0 / 4);
    Confusion nothing = {0, 0, 0, 0};
    check_scores(pixel_scores(nothing), 1, 1, 1, 1, 1);
}

/* Foreground is p > t: 0.05 and 0.5 are background at thresholds 0.05 and 0.5.
 *   t = 0.05: fg 0.07 0.30 0.50 0.55 0.90 0.97 -> tp 3 fp 3 fn 1 tn 1, IoU 3/7
 *   t = 0.10 .. 0.25: fg 0.30 0.50 0.55 0.90 0.97 -> tp 3 fp 2 fn 1 tn 2, IoU 1/2 (best)
 *   t = 0.30: 0.30 drops out -> tp 2 fp 2 fn 2 tn 2
 *   t = 0.50: fg 0.55 0.90 0.97 -> tp 2 fp 1 fn 2 tn 3
 *   t = 0.95: fg 0.97 -> tp 0 fp 1 fn 4 tn 3 */
static void check_sweep(void)
{
    const float prob[8] = {0.02f, 0.05f, 0.07f, 0.30f, 0.50f, 0.55f, 0.90f, 0.97f};
    const uint8_t truth[8] = {0, 1, 0, 1, 0, 1, 1, 0};
    float t[SWEEP_COUNT];
    Confusion c[SWEEP_COUNT];
    for (int i = 0; i < SWEEP_COUNT; i++) t[i] = sweep_threshold(i);
    CHECK(t[0] == 0.05f && t[9] == 0.5f && t[18] == 0.95f);
    CHECK(confusion_sweep(prob, truth, 8, t, SWEEP_COUNT, c) == SD_OK);
    CHECK(same_confusion(c[0], 3, 3, 1, 1));
    for (int i = 1; i <= 4; i++) CHECK(same_confusion(c[i], 3, 2, 1, 2));
    CHECK(same_confusion(c[5], 2, 2, 2, 2));
    CHECK(same_confusion(c[9], 2, 1, 2, 3));
    CHECK(same_confusion(c[18], 0, 1, 4, 3));
    CHECK(same_confusion(confusion_probs(prob, 0.5f, truth, 8), 2, 1, 2, 3));
    CHECK(same_confusion(confusion_probs(prob, 0.05f, truth, 8), 3, 3, 1, 1));
    CHECK_NEAR(pixel_scores(c[0]).iou, 3.0 / 7, 1e-12);
    CHECK(best_by_iou(c, SWEEP_COUNT) == 1);
}

/* 6 x 8, one slice. Truth: 1 = rows 0-1 x cols 0-1, 2 = rows 0-1 x cols 4-7, 3 = rows
 * 4-5 x cols 0-1. Prediction: 1 = rows 0-1 x cols 0-2 (IoU 4/6 with truth 1), 2 = rows
 * 0-1 x cols 6-7 (IoU 4/8 = 0.5 with truth 2), 3 = rows 4-5 x cols 4-5 (no overlap).
 * At IoU >= 0.5: 2 matches of 3 and 3: precision = recall = F1 = 2/3. */
static void check_objects(void)
{
    const int32_t truth[48] = {1, 1, 0, 0, 2, 2, 2, 2,
                               1, 1, 0, 0, 2, 2, 2, 2,
                               0, 0, 0, 0, 0, 0, 0, 0,
                               0, 0, 0, 0, 0, 0, 0, 0,
                               3, 3, 0, 0, 0, 0, 0, 0,
                               3, 3, 0, 0, 0, 0, 0, 0};
    const int32_t pred[48] = {1, 1, 1, 0, 0, 0, 2, 2,
                              1, 1, 1, 0, 0, 0, 2, 2,
                              0, 0, 0, 0, 0, 0, 0, 0,
                              0, 0, 0, 0, 0, 0, 0, 0,
                              0, 0, 0, 0, 3, 3, 0, 0,
                              0, 0, 0, 0, 3, 3, 0, 0};
    ObjectScores s;
    CHECK(object_scores(pred, 3, truth, 3, 48, 0.5, &s) == SD_OK);
    CHECK(s.pred == 3 && s.truth == 3 && s.matched == 2);
    CHECK_NEAR(s.precision, 2.0 / 3, 1e-12);
    CHECK_NEAR(s.recall, 2.0 / 3, 1e-12);
    CHECK_NEAR(s.f1, 2.0 / 3, 1e-12);
    CHECK(object_scores(pred, 3, truth, 3, 48, 0.51, &s) == SD_OK);
    CHECK(s.matched == 1);
    CHECK(object_scores(pred, 2, truth, 3, 48, 0.5, &s) == SD_ERR); /* label 3 > count 2 */
}

/* One predicted 2x4 block over two true 2x2 blocks: IoU 0.5 with each, but it can match
 * only one: precision 1/1, recall 1/2, F1 2/3. */
static void check_unique_matching(void)
{
    const int32_t truth[8] = {1, 1, 2, 2, 1, 1, 2, 2};
    const int32_t pred[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    ObjectScores s;
    CHECK(object_scores(pred, 1, truth, 2, 8, 0.5, &s) == SD_OK);
    CHECK(s.matched == 1);
    CHECK_NEAR(s.precision, 1, 1e-12);
    CHECK_NEAR(s.recall, 0.5, 1e-12);
    CHECK_NEAR(s.f1, 2.0 / 3, 1e-12);
    const int32_t none[8] = {0};
    CHECK(object_scores(none, 0, none, 0, 8, 0.5, &s) == SD_OK);
    CHECK(s.precision == 1 && s.recall == 1 && s.f1 == 1);
    CHECK(object_scores(none, 0, truth, 2, 8, 0.5, &s) == SD_OK);
    CHECK(s.matched == 0 && s.precision == 0 && s.recall == 0 && s.f1 == 0);
}

int main(void)
{
    check_pixel_scores();
    check_empty_masks();
    check_sweep();
    check_objects();
    check_unique_matching();
    return check_exit("t_metrics");
}
