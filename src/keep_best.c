/* Keep-best, revert-to-best and early stop (see keep_best.h). */
#include "keep_best.h"

#include <math.h>

#include "../core/err.h"

const char *const accum_mode_names[] = {"mean", "sum", NULL};
const char *const revert_mode_names[] = {"deep", "shallow", NULL};

double accum_scale(int accum_mode, int accum) { return accum_mode == ACCUM_MEAN ? 1.0 / accum : 1.0; }

void keep_best_init(KeepBest *k) { *k = (KeepBest){.best_val = INFINITY}; }

int keep_best_update(KeepBest *k, const KeepBestPolicy *p, long epoch, double val_loss)
{
    if (val_loss < k->best_val) {
        k->best_val = val_loss, k->best_epoch = epoch, k->bad_epochs = 0;
        return EPOCH_BEST;
    }
    int flags = 0;
    k->bad_epochs++;
    int revert_due = p->revert_patience > 0 && k->bad_epochs % p->revert_patience == 0;
    if (revert_due && p->revert == REVERT_DEEP) flags |= EPOCH_REVERTED;
    if (k->bad_epochs >= p->stop_patience) {
        k->stopped = 1;
        flags |= EPOCH_STOP;
    }
    return flags;
}

void keep_best_meta(TrainMeta *l, const KeepBest *k)
{
    train_meta_number(l, "state.best_val", k->best_val);
    train_meta_number(l, "state.best_epoch", (double)k->best_epoch);
    train_meta_number(l, "state.bad_epochs", (double)k->bad_epochs);
    train_meta_number(l, "state.stopped", k->stopped);
}

int keep_best_read(const StFile *f, KeepBest *k)
{
    long stopped = 0;
    if (train_meta_read_number(f, "state.best_val", &k->best_val) ||
        train_meta_read_count(f, "state.best_epoch", &k->best_epoch) ||
        train_meta_read_count(f, "state.bad_epochs", &k->bad_epochs) ||
        train_meta_read_count(f, "state.stopped", &stopped))
        return SD_ERR;
    k->stopped = stopped != 0;
    return SD_OK;
}
