#!/bin/sh
# Stage seg-real: the segmentation U-Net on the real training tiles of prep (profile's recipe,
# width, batch, epochs), resumed from last.safetensors when interrupted; validation on the
# prep's validation slices, keep-best on the validation loss. It runs before the generative
# stages: the synth stage measures the fidelity of its samples with this network's features.
set -eu
. "$REPRO/lib.sh"
stage_begin "train the segmentation U-Net on real tiles ($SEG_RECIPE recipe, width $SEG_WIDTH)"
need_file "$OUT/prep/tiles/train.tiles" prep
seg_train "$OUT/prep/tiles"
