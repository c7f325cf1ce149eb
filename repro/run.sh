#!/bin/sh
# Rebuild the documented results end to end: repro/run.sh --profile NAME [--data DIR] [--out DIR]
#                                                          [--only STAGE,STAGE...]
#
# Runs the stage scripts repro/stages/NN-name.sh in order:
#   prep -> seg-real -> vae -> ddpm -> synth -> seg-mixed -> eval -> report
# with the sizes of repro/profiles/NAME.env (cpu, t4, l4, a100, h100; tiny: the smoke test). Each stage logs its
# command lines, commit, device and timings to OUT/<stage>/stage.log (and OUT/timings.csv),
# skips itself when its outputs exist, are valid and were made with the same settings, and
# resumes interrupted training (train-seg --resume): run the same command again after an
# interruption. A stage whose sdseg command (or input from an earlier stage) does not exist
# yet stops with a message naming the missing piece; the stages that do not depend on it
# still run, and the report says what was blocked.
#
#   --data DIR   the EPFL files training.tif, training_groundtruth.tif, testing.tif,
#                testing_groundtruth.tif (default ../shared/data/epfl-hippocampus when it
#                exists; repro/get-data.sh downloads them)
#   --out DIR    work folder (default runs/repro-NAME); the report goes to reports/
#   --only LIST  run only these stages (names, comma-separated), e.g. --only eval,report
# Environment: BUILD (default build) holds sdseg and demo_overlay (make all build/demo_overlay).
# Exit status: 0 all stages done, 3 some stage blocked (the others done), 1 a stage failed.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
REPRO=$ROOT/repro
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
SDSEG=$BUILD/sdseg
RUN_CMD="repro/run.sh $*"
PROFILE="" DATA="" OUT="" ONLY=""

usage() {
    echo "usage: repro/run.sh --profile NAME [--data DIR] [--out DIR] [--only STAGE,...]" >&2
    printf 'profiles:' >&2
    for p in "$REPRO"/profiles/*.env; do printf ' %s' "$(basename "$p" .env)" >&2; done
    echo >&2
    exit 2
}
die() {
    echo "repro: $*" >&2
    exit 1
}

while [ $# -gt 0 ]; do
    [ $# -ge 2 ] || usage
    case $1 in
    --profile) PROFILE=$2 ;;
    --data) DATA=$2 ;;
    --out) OUT=$2 ;;
    --only) ONLY=$2 ;;
    *) usage ;;
    esac
    shift 2
done
[ -n "$PROFILE" ] || usage
[ -f "$REPRO/profiles/$PROFILE.env" ] || usage
if [ -z "$DATA" ]; then
    DATA=$ROOT/../shared/data/epfl-hippocampus
    [ -d "$DATA" ] || die "no data: give --data DIR (repro/get-data.sh downloads the EPFL files)"
fi
[ -d "$DATA" ] || die "--data $DATA is not a folder"
DATA=$(cd "$DATA" && pwd)
OUT=${OUT:-$ROOT/runs/repro-$PROFILE}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
[ -x "$SDSEG" ] || die "$SDSEG is missing: run make"

# The profile's settings, exported for the stage scripts.
set -a
# shellcheck disable=SC1090
. "$REPRO/profiles/$PROFILE.env"
set +a
export ROOT REPRO BUILD SDSEG DATA OUT PROFILE RUN_CMD
export OMP_WAIT_POLICY=passive

selected() { [ -z "$ONLY" ] || echo ",$ONLY," | grep -q ",$1,"; }

echo "repro: profile $PROFILE, data $DATA, out $OUT"
echo "stage,status,seconds" > "$OUT/summary.csv"
status=0
for script in "$REPRO"/stages/[0-9][0-9]-*.sh; do
    name=$(basename "$script" .sh)
    name=${name#[0-9][0-9]-}
    selected "$name" || continue
    t0=$(date +%s)
    rc=0
    sh "$script" || rc=$?
    case $rc in
    0) result="done" ;;
    3) result=blocked status=3 ;;
    *) result=failed ;;
    esac
    echo "$name,$result,$(($(date +%s) - t0))" >> "$OUT/summary.csv"
    [ "$result" != failed ] || die "stage $name failed (exit status $rc): see $OUT/$name/stage.log"
done
echo
column -s, -t "$OUT/summary.csv" 2> /dev/null || cat "$OUT/summary.csv"
[ "$status" = 0 ] || echo "repro: some stages are blocked on missing pieces (their logs name them)"
exit "$status"
