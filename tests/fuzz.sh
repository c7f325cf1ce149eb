#!/bin/sh
# make fuzz: seed corpora from small phantoms, then each libFuzzer harness in turn for
# FUZZ_SECONDS (one process, -jobs=1). Logs, corpora and crash artifacts stay in FUZZ_DIR;
# the summary lines (executions, coverage, crashes) are printed at the end.
set -eu
B=${BUILD:-build}
DIR=${FUZZ_DIR:-$B/fuzz}
SECONDS_EACH=${FUZZ_SECONDS:-600}
S="$B/sdseg"
mkdir -p "$DIR/seed_tiff" "$DIR/seed_tiles" "$DIR/corpus_tiff" "$DIR/corpus_tiles" "$DIR/artifacts"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

"$S" phantom --out "$T/p.tif" --mask-out "$T/m.tif" --pages 2 --height 32 --width 40 > /dev/null
for c in none lzw zip packbits jpeg; do tiffcp -c "$c" "$T/p.tif" "$DIR/seed_tiff/strips_$c.tif"; done
tiffcp -t -w 16 -l 16 "$T/p.tif" "$DIR/seed_tiff/tiled.tif"
tiffcp -c none -r 5 "$T/m.tif" "$DIR/seed_tiff/mask_strips.tif"
cp "$T/p.tif" "$DIR/seed_tiff/sdseg.tif"
tiff2rgba "$T/p.tif" "$DIR/seed_tiff/rgba.tif"
tiffcp -p separate "$DIR/seed_tiff/rgba.tif" "$DIR/seed_tiff/rgba_planar.tif"
tiffcp -t -w 16 -l 16 -c zip "$DIR/seed_tiff/rgba.tif" "$DIR/seed_tiff/rgba_tiled.tif"
"$S" prep --image "$T/p.tif" --mask "$T/m.tif" --out "$T/ds" --tile 16 --stride 12 --val-last 1 > /dev/null
"$S" prep --image "$T/p.tif" --out "$T/img" --tile 16 --val-last 0 > /dev/null
cp "$T/ds/train.tiles" "$DIR/seed_tiles/masks.tiles"
cp "$T/ds/val.tiles" "$DIR/seed_tiles/val.tiles"
cp "$T/img/train.tiles" "$DIR/seed_tiles/images.tiles"

run() { # NAME MAX_LEN
    (cd "$DIR" && ./"fuzz_$1" -jobs=1 -max_total_time="$SECONDS_EACH" -max_len="$2" -rss_limit_mb=2048 \
        -timeout=10 -print_final_stats=1 -artifact_prefix=artifacts/ "corpus_$1" "seed_$1" > /dev/null 2>&1) || true
    echo "== fuzz_$1 ($SECONDS_EACH s), log $DIR/fuzz-0.log -> $DIR/fuzz_$1.log"
    mv "$DIR/fuzz-0.log" "$DIR/fuzz_$1.log"
    grep -E "^(#[0-9]+.*(DONE|pulse)|stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb)" \
        "$DIR/fuzz_$1.log" | tail -4
    grep -E "ERROR: |SUMMARY: |deadly signal|Test unit written" "$DIR/fuzz_$1.log" || echo "no crashes"
}
run tiff 65536
run tiles 70000
ls "$DIR/artifacts"
