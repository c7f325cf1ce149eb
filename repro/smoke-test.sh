#!/bin/sh
# A smoke test of repro/run.sh: phantom stacks under the EPFL file names (8 training and 6
# testing slices of 256 x 256), the "tiny" profile, everything under a temporary folder
# (the report too). Runs the chain twice: the second run must skip every finished stage.
#   BUILD=build sh repro/smoke-test.sh      (needs build/sdseg and build/demo_overlay)
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
SDSEG=$BUILD/sdseg
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

mkdir -p "$WORK/data"
"$SDSEG" phantom --out "$WORK/data/training.tif" --mask-out "$WORK/data/training_groundtruth.tif" --pages 8 \
    --seed 1 > /dev/null
"$SDSEG" phantom --out "$WORK/data/testing.tif" --mask-out "$WORK/data/testing_groundtruth.tif" --pages 6 \
    --seed 2 > /dev/null
export VERIFY=0 REPORT_DIR="$WORK/reports" BUILD
rc=0
sh "$ROOT/repro/run.sh" --profile tiny --data "$WORK/data" --out "$WORK/run" || rc=$?
[ "$rc" = 0 ] || [ "$rc" = 3 ] || { echo "smoke-test: first run failed ($rc)"; exit 1; }
sh "$ROOT/repro/run.sh" --profile tiny --data "$WORK/data" --out "$WORK/run" > "$WORK/second.txt" 2>&1 || true
grep -q "skipped" "$WORK/second.txt" || { cat "$WORK/second.txt"; echo "smoke-test: nothing skipped the second time"; exit 1; }
grep -c "skipped" "$WORK/second.txt" | sed 's/^/smoke-test: stages skipped on the second run: /'
cat "$WORK/reports"/repro-tiny-*.md
echo "smoke-test: ok (run exit status $rc: 0 all done, 3 some stages blocked)"
