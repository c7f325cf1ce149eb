/* Learning-rate schedules (host code, no backend): ReduceLROnPlateau, cosine annealing
 * with linear warmup, and step decay. Configurations are validated once by their
 * *_check / plateau_init function (SD_ERR with a message for impossible parameters). */
#ifndef SDSEG_SCHEDULE_H
#define SDSEG_SCHEDULE_H

/* ------------------------------------------------ ReduceLROnPlateau (PyTorch 1.13) */

typedef enum { PLATEAU_MIN, PLATEAU_MAX } PlateauMode;
typedef enum { THRESHOLD_REL, THRESHOLD_ABS } ThresholdMode;

typedef struct {
    PlateauMode mode;             /* min: lower metric is better; max: higher is better */
    double factor;                /* reduction: lr = max(lr * factor, min_lr), 0 < factor < 1 */
    int patience;                 /* bad epochs tolerated; the (patience+1)-th reduces */
    double threshold;             /* an improvement must beat best by this (rel: fraction) */
    ThresholdMode threshold_mode; /* rel: best*(1-threshold) (min) / best*(1+threshold) (max);
                                     abs: best-threshold (min) / best+threshold (max) */
    int cooldown;                 /* epochs after a reduction whose bad epochs are not counted */
    double min_lr;
    double eps;                   /* a reduction smaller than eps is skipped */
} PlateauConfig;

/* torch's defaults: min, factor 0.1, patience 10, threshold 1e-4 rel, cooldown 0,
 * min_lr 0, eps 1e-8. */
PlateauConfig plateau_config_default(void);

/* Everything that evolves; a checkpoint saves it as plain numbers (plateau_state_pack). */
typedef struct {
    double lr;
    double best;           /* +inf (min) or -inf (max) before the first step */
    long num_bad_epochs;
    long cooldown_counter;
    long last_epoch;       /* number of plateau_step calls */
} PlateauState;

#define PLATEAU_STATE_LEN 5

/* Validate cfg and start at learning rate lr. */
int plateau_init(PlateauState *st, const PlateauConfig *cfg, double lr);
/* One epoch's metric (a NaN counts as no improvement, as in torch). Returns 1 when it
 * reduced st->lr, else 0. */
int plateau_step(PlateauState *st, const PlateauConfig *cfg, double metric);
/* The state as PLATEAU_STATE_LEN doubles (lr, best, num_bad_epochs, cooldown_counter,
 * last_epoch) and back; unpack rejects impossible values. */
void plateau_state_pack(const PlateauState *st, double *v);
int plateau_state_unpack(PlateauState *st, const double *v);

/* ------------------------------------------- cosine annealing with linear warmup
 * For step s (0-based count of updates done), W = warmup, T = total - warmup:
 *   s <  W:  lr = base_lr * (s + 1) / W
 *   s >= W:  lr = min_lr + (base_lr - min_lr) * (1 + cos(pi * min(s - W, T) / T)) / 2
 * so the warmup reaches base_lr at s = W-1 and the cosine starts from it at s = W, ending
 * at min_lr for s >= total (held there; torch's CosineAnnealingLR would rise again).
 * This is torch's SequentialLR([LinearLR(1/W, 1, W-1), CosineAnnealingLR(T, min_lr)], [W]) for
 * W >= 2, and CosineAnnealingLR(total, min_lr) for W = 0.
 * Negative steps count as 0. */
typedef struct {
    double base_lr, min_lr;
    long warmup, total;
} CosineSchedule;

int cosine_check(const CosineSchedule *c);
double cosine_lr(const CosineSchedule *c, long step);

/* ------------------------------------------------------ step decay (torch StepLR)
 * lr = base_lr * gamma^floor(step / step_size); negative steps count as 0. */
typedef struct {
    double base_lr, gamma;
    long step_size;
} StepSchedule;

int steplr_check(const StepSchedule *s);
double steplr_lr(const StepSchedule *s, long step);

#endif
