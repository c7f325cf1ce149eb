/* Learning-rate schedules and gradient clipping: impossible parameters are rejected with
 * a message (printed), and a few hand-computed values hold. (The sequences themselves
 * are compared with torch.optim.lr_scheduler in tests/cases_optim.c.) */
#include <math.h>
#include <stdio.h>

#include "../core/err.h"
#include "../cpu/cpu.h"
#include "../ops/clip.h"
#include "../ops/schedule.h"
#include "check.h"

static void expect_rejected(const char *what, int rc)
{
    const char *msg = sd_last_error();
    if (rc == SD_ERR && msg[0]) {
        printf("rejected  %-40s %s\n", what, msg);
        return;
    }
    printf("ACCEPTED  %s (rc %d)\n", what, rc);
    check_failures++;
}

/* A macro so that the message is cleared before `call` runs. */
#define REJECT(what, call)           \
    do {                             \
        sd_fail("%s", "");           \
        expect_rejected(what, call); \
    } while (0)

static int plateau_with(PlateauConfig c, double lr)
{
    PlateauState st;
    return plateau_init(&st, &c, lr);
}

static int unpack(double lr, double best, double bad, double cooldown, double epoch)
{
    PlateauState st;
    double v[PLATEAU_STATE_LEN] = {lr, best, bad, cooldown, epoch};
    return plateau_state_unpack(&st, v);
}

static int cosine(double base, double min, long warmup, long total)
{
    CosineSchedule c = {.base_lr = base, .min_lr = min, .warmup = warmup, .total = total};
    return cosine_check(&c);
}

static int steplr(double base, double gamma, long step_size)
{
    StepSchedule s = {.base_lr = base, .gamma = gamma, .step_size = step_size};
    return steplr_check(&s);
}

static void rejects_schedules(void)
{
    PlateauConfig d = plateau_config_default(), c;
    c = d, c.factor = 1;
    REJECT("plateau: factor 1", plateau_with(c, 1e-3));
    c = d, c.factor = 0;
    REJECT("plateau: factor 0", plateau_with(c, 1e-3));
    c = d, c.patience = -1;
    REJECT("plateau: negative patience", plateau_with(c, 1e-3));
    c = d, c.cooldown = -2;
    REJECT("plateau: negative cooldown", plateau_with(c, 1e-3));
    c = d, c.threshold = -0.1;
    REJECT("plateau: negative threshold", plateau_with(c, 1e-3));
    c = d, c.min_lr = -1;
    REJECT("plateau: negative min_lr", plateau_with(c, 1e-3));
    c = d, c.eps = NAN;
    REJECT("plateau: eps NaN", plateau_with(c, 1e-3));
    c = d, c.mode = (PlateauMode)7;
    REJECT("plateau: unknown mode", plateau_with(c, 1e-3));
    REJECT("plateau: learning rate 0", plateau_with(d, 0));
    REJECT("plateau: learning rate NaN", plateau_with(d, NAN));
    REJECT("plateau state: negative bad epochs", unpack(1e-3, 0.5, -1, 0, 3));
    REJECT("plateau state: fractional cooldown", unpack(1e-3, 0.5, 0, 1.5, 3));
    REJECT("plateau state: learning rate 0", unpack(0, 0.5, 0, 0, 3));
    REJECT("plateau state: best NaN", unpack(1e-3, NAN, 0, 0, 3));
    REJECT("cosine: warmup == total", cosine(1, 0, 10, 10));
    REJECT("cosine: negative warmup", cosine(1, 0, -1, 10));
    REJECT("cosine: min_lr > base_lr", cosine(1, 2, 0, 10));
    REJECT("cosine: base_lr 0", cosine(0, 0, 0, 10));
    REJECT("step: step_size 0", steplr(1, 0.5, 0));
    REJECT("step: gamma 0", steplr(1, 0, 5));
    REJECT("step: gamma 1.5", steplr(1, 1.5, 5));
    REJECT("step: negative base_lr", steplr(-1, 0.5, 5));
}

/* Hand-computed values. */
static void schedule_values(void)
{
    CosineSchedule c = {.base_lr = 1, .min_lr = 0.2, .warmup = 4, .total = 24};
    CHECK(cosine_check(&c) == SD_OK);
    CHECK_NEAR(cosine_lr(&c, -3), 0.25, 1e-15);
    CHECK_NEAR(cosine_lr(&c, 0), 0.25, 1e-15);
    CHECK_NEAR(cosine_lr(&c, 3), 1.0, 1e-15);
    CHECK_NEAR(cosine_lr(&c, 4), 1.0, 1e-15);
    CHECK_NEAR(cosine_lr(&c, 14), 0.6, 1e-12); /* halfway: (base + min) / 2 */
    CHECK_NEAR(cosine_lr(&c, 24), 0.2, 1e-12);
    CHECK_NEAR(cosine_lr(&c, 1000), 0.2, 1e-12);
    StepSchedule s = {.base_lr = 0.1, .gamma = 0.5, .step_size = 3};
    CHECK_NEAR(steplr_lr(&s, 2), 0.1, 1e-15);
    CHECK_NEAR(steplr_lr(&s, 3), 0.05, 1e-15);
    CHECK_NEAR(steplr_lr(&s, 9), 0.0125, 1e-15);

    /* patience 1, cooldown 1, min_lr 0.3: the 3rd step reduces, the cooldown swallows the
     * 4th's bad epoch, 0.5 improves at the 6th, the 8th reduces to min_lr, and the 11th
     * would reduce by 0 <= eps, so it does not count as a reduction. */
    PlateauConfig p = plateau_config_default();
    p.factor = 0.5, p.patience = 1, p.cooldown = 1, p.min_lr = 0.3;
    PlateauState st;
    CHECK(plateau_init(&st, &p, 1) == SD_OK);
    const double metric[] = {1, 1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5};
    const double want[] = {1, 1, 0.5, 0.5, 0.5, 0.5, 0.5, 0.3, 0.3, 0.3, 0.3};
    const int reduced[] = {0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0};
    for (int k = 0; k < 11; k++) {
        CHECK(plateau_step(&st, &p, metric[k]) == reduced[k]);
        CHECK_NEAR(st.lr, want[k], 0);
    }
    CHECK(st.last_epoch == 11 && st.best == 0.5);
}

static void clipping(void)
{
    Backend be = cpu_backend();
    real g[2] = {3, 4}, tmp;
    float norm;
    CHECK(clip_grad_norm(&be, g, 2, &tmp, 1, &norm) == SD_OK);
    CHECK_NEAR(norm, 5, 1e-6);
    CHECK_NEAR(g[0], 3 / (5 + 1e-6), 1e-7);
    CHECK_NEAR(g[1], 4 / (5 + 1e-6), 1e-7);
    real h[2] = {3, 4};
    CHECK(clip_grad_norm(&be, h, 2, &tmp, 10, NULL) == SD_OK);
    CHECK(h[0] == 3 && h[1] == 4);
    REJECT("clip: max_norm 0", clip_grad_norm(&be, h, 2, &tmp, 0, NULL));
    REJECT("clip: max_norm NaN", clip_grad_norm(&be, h, 2, &tmp, NAN, NULL));
    real bad[3] = {1, INFINITY, 2};
    REJECT("clip: infinite gradient", clip_grad_norm(&be, bad, 3, &tmp, 1, &norm));
    CHECK(bad[0] == 1 && bad[2] == 2 && isinf(norm));
    cpu_ctx_destroy(be.ctx);
}

int main(void)
{
    rejects_schedules();
    schedule_values();
    clipping();
    return check_exit("t_schedule");
}
