#!/bin/sh
# Stage seg-mixed: the same U-Net and recipe on the real training tiles plus the synthetic
# ones of the synth stage, validated on the same real validation slices, so its score on the
# held-out volume measures what the synthetic tiles add. Needs train-seg to take a second
# training set (--extra-train) and the synth stage.
set -eu
. "$REPRO/lib.sh"
stage_begin "train the segmentation U-Net on real + synthetic tiles ($SEG_RECIPE recipe, width $SEG_WIDTH)"
need_command train-seg --extra-train
need_file "$OUT/prep/tiles/train.tiles" prep
need_file "$OUT/synth/tiles/train.tiles" synth
seg_train "$OUT/prep/tiles" --extra-train "$OUT/synth/tiles/train.tiles"
