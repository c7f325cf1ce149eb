#!/bin/sh
# Stage seg-mixed: the same U-Net and recipe on the real training tiles plus the synthetic
# labelled ones of the synth stage (train-seg --extra-data), validated on the same real
# validation slices, so its score on the held-out volume measures what the synthetic tiles
# add. Needs the synth stage.
set -eu
. "$REPRO/lib.sh"
stage_begin "train the segmentation U-Net on real + synthetic tiles ($SEG_RECIPE recipe, width $SEG_WIDTH)"
need_command train-seg --extra-data
need_file "$OUT/prep/tiles/train.tiles" prep
need_file "$OUT/synth/tiles/train.tiles" synth
seg_train "$OUT/prep/tiles" "$OUT/synth/tiles"
