#!/bin/sh
# Hostile input: broken TIFFs and tile datasets must give ONE stderr line naming the
# problem, a non-zero exit below 128 (no crash), no hang (timeout), no output file.
# The files are made here from a small phantom with printf, dd, head and libtiff-tools.
set -u
B=${BUILD:-build}
S="$B/sdseg"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0

# expect NAME NEEDLE ARGS...: runs sdseg ARGS with a fresh, empty $T/out.
expect() {
    name=$1 needle=$2
    shift 2
    rm -rf "$T/out" && mkdir "$T/out"
    timeout 20 "$S" "$@" > "$T/stdout" 2> "$T/stderr"
    rc=$?
    lines=$(wc -l < "$T/stderr")
    left=$(ls -A "$T/out")
    if [ "$rc" -eq 0 ] || [ "$rc" -ge 124 ] || [ "$lines" -ne 1 ] || [ -n "$left" ] ||
        ! grep -q -- "$needle" "$T/stderr"; then
        echo "FAIL: $name: exit $rc, $lines stderr lines, output left: '$left'; wanted '$needle'"
        sed 's/^/    /' "$T/stderr" | head -5
        fail=$((fail + 1))
    else
        echo "ok: $name: $(cat "$T/stderr")"
    fi
}

# Overwrite bytes at OFFSET of FILE with STRING (printf escapes: octal only in POSIX sh).
patch() { printf "$3" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none; }
# Byte offset of the first match of a printf-style byte pattern in FILE.
find_bytes() { LC_ALL=C grep -obUaP "$2" "$1" | head -1 | cut -d: -f1; }
size() { wc -c < "$1"; }

"$S" phantom --out "$T/img.tif" --mask-out "$T/mask.tif" --pages 3 --height 64 --width 64 > /dev/null &&
    "$S" phantom --out "$T/img2.tif" --mask-out "$T/mask2.tif" --pages 2 --height 64 --width 64 > /dev/null &&
    "$S" phantom --out "$T/small.tif" --pages 3 --height 64 --width 48 > /dev/null &&
    "$S" prep --image "$T/img.tif" --mask "$T/mask.tif" --out "$T/ds" --tile 32 --val-last 1 > /dev/null ||
    { echo "FAIL: could not build the test inputs"; exit 1; }
# expect_prep NAME NEEDLE IMAGE MASK / expect_info NAME NEEDLE FILE
expect_prep() { expect "$1" "$2" prep --image "$3" --mask "$4" --out "$T/out" --tile 32; }
expect_info() { expect "$1" "$2" info --in "$3"; }

# ---- TIFF ----
head -c $(($(size "$T/img.tif") / 2)) "$T/img.tif" > "$T/trunc.tif"
expect_prep "truncated TIFF" "truncated or corrupt" "$T/trunc.tif" "$T/mask.tif"
cp "$T/img.tif" "$T/strip.tif"
at=$(find_bytes "$T/strip.tif" '\x11\x01\x04\x00\x01\x00\x00\x00') # StripOffsets of page 0
patch "$T/strip.tif" $((at + 8)) '\000\377\377\177'
expect_prep "image data past the end of the file" "truncated or corrupt image data" "$T/strip.tif" "$T/mask.tif"
printf 'this is not a TIFF file\n' > "$T/text.tif"
expect_prep "not a TIFF" "not a TIFF" "$T/text.tif" "$T/mask.tif"
: > "$T/empty.tif"
expect_prep "empty file" "empty file" "$T/img.tif" "$T/empty.tif"
printf 'II*\000\000\000\000\000' > "$T/zero.tif"
expect_prep "zero pages" "no pages" "$T/zero.tif" "$T/mask.tif"
cp "$T/img.tif" "$T/bit1.tif" && tiffset -s 258 1 "$T/bit1.tif"
expect_prep "1-bit samples" "1-bit samples are not supported" "$T/bit1.tif" "$T/mask.tif"
cp "$T/img.tif" "$T/bit12.tif" && tiffset -s 258 12 "$T/bit12.tif"
expect_prep "12-bit samples" "12-bit samples are not supported" "$T/img.tif" "$T/bit12.tif"
cp "$T/img.tif" "$T/complex.tif"
at=$(find_bytes "$T/complex.tif" '\x53\x01\x03\x00\x01\x00\x00\x00') # SampleFormat of page 0
patch "$T/complex.tif" $((at + 8)) '\006\000'
expect_prep "complex samples" "complex samples are not supported" "$T/complex.tif" "$T/mask.tif"
cp "$T/img.tif" "$T/wide.tif" && tiffset -s 256 100000 "$T/wide.tif"
expect_prep "absurd width" "absurd image size 100000 x 64" "$T/wide.tif" "$T/mask.tif"
cp "$T/img.tif" "$T/huge.tif" && tiffset -s 256 60000 "$T/huge.tif" && tiffset -s 257 60000 "$T/huge.tif"
expect_prep "absurd page area" "absurd image size 60000 x 60000" "$T/huge.tif" "$T/mask.tif"
expect_prep "image and mask sizes differ" "is 3 pages of 64 x 64 but mask" "$T/img.tif" "$T/small.tif"
expect_prep "image and mask page counts differ" "but mask .* is 2 pages" "$T/img.tif" "$T/mask2.tif"
expect_prep "missing file" "cannot open" "$T/nonexistent.tif" "$T/mask.tif"

# ---- tile datasets ----
good="$T/ds/train.tiles"
"$S" info --in "$good" > /dev/null || { echo "FAIL: the good tile dataset does not validate"; fail=$((fail + 1)); }
cp "$good" "$T/magic.tiles" && patch "$T/magic.tiles" 0 'X'
expect_info "tiles: bad magic" "not a tile dataset" "$T/magic.tiles"
cp "$good" "$T/version.tiles" && patch "$T/version.tiles" 8 '\011'
expect_info "tiles: unknown version" "version 9 is not supported" "$T/version.tiles"
cp "$good" "$T/count.tiles" && patch "$T/count.tiles" 16 '\377\377\377\177'
expect_info "tiles: absurd count" "bad tile count" "$T/count.tiles"
cp "$good" "$T/sum.tiles" && patch "$T/sum.tiles" 5000 '\252'
expect_info "tiles: bad checksum" "checksum mismatch" "$T/sum.tiles"
head -c $(($(size "$good") - 100)) "$good" > "$T/short.tiles"
expect_info "tiles: truncated" "truncated" "$T/short.tiles"
head -c 500 "$good" > "$T/stub.tiles"
expect_info "tiles: truncated header" "smaller than the header" "$T/stub.tiles"
cp "$T/text.tif" "$T/text.tiles"
expect_info "tiles: not a dataset" "smaller than the header" "$T/text.tiles"

[ "$fail" -eq 0 ] && echo "t_hostile: all cases passed"
[ "$fail" -eq 0 ]
