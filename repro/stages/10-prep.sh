#!/bin/sh
# Stage prep: check the EPFL files (checksums, or the pixel fingerprints of get-data.sh for a
# differently encoded download), then cut training.tif and its masks into TILE-pixel tiles,
# validation = the last VAL_LAST slices (a split by slice). testing* is never cut here: only
# the eval stage reads it.
set -eu
. "$REPRO/lib.sh"
stage_begin "check the data, cut the segmentation tiles"
KEY="tile=$TILE val_last=$VAL_LAST data=$DATA"
outputs_valid() { valid_data "$SDIR/tiles/train.tiles" && valid_data "$SDIR/tiles/val.tiles"; }
done_with "$KEY" && outputs_valid && stage_skip

# VERIFY=0 skips the check, for other stacks under the EPFL names (repro/smoke-test.sh)
[ "${VERIFY:-1}" = 0 ] || run env SDSEG="$SDSEG" sh "$REPRO/get-data.sh" --verify "$DATA"
run "$SDSEG" prep --image "$DATA/training.tif" --mask "$DATA/training_groundtruth.tif" --out "$SDIR/tiles" \
    --tile "$TILE" --val-last "$VAL_LAST"
outputs_valid || fail "prep wrote tiles that sdseg info does not validate"
stage_done "$KEY"
