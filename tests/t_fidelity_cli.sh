#!/bin/sh
# sdseg fidelity end to end with a tiny U-Net trained a few steps on a phantom: a set
# against itself (FD, W1 and spectrum 0), a TIFF stack against the prep tiles cut from it
# (the same tiles), constant stacks written by libtiff's own tools (W1 = the grey-level
# difference), --max and the CSV, then bad input: one line on stderr, exit status 2. The
# distances themselves are checked in t_fidelity.
set -u
. "$(dirname "$0")/lib.sh"
test_init t_fidelity_cli

# The phantom: 4 pages of 64 x 64 = 16 tiles of 32; prep "all" keeps all 16, "split" 12 + 4.
{ "$S" phantom --out "$T/img.tif" --mask-out "$T/mask.tif" --pages 4 --height 64 --width 64 --seed 3 &&
    "$S" prep --image "$T/img.tif" --out "$T/all" --tile 32 --val-last 0 &&
    "$S" prep --image "$T/img.tif" --mask "$T/mask.tif" --out "$T/split" --tile 32 --val-last 1 &&
    tiny_seg "$T/split" "$T/run"; } >"$T/setup.log" 2>&1 || setup_failed "making a phantom and a tiny model"
W=$T/run/last.safetensors

# stack OUT H W PAGES BYTE FORMAT: PAGES constant pages of octal BYTE, libtiff sample
# format byte or short.
stack() {
    size=$(($2 * $3)) pages=""
    [ "$6" = short ] && size=$((size * 2))
    for i in $(seq "$4"); do
        head -c "$size" /dev/zero | tr '\000' "\\$5" > "$T/p$i.raw"
        raw2tiff -w "$3" -l "$2" -b 1 -d "$6" -p minisblack "$T/p$i.raw" "$T/p$i.tif" || return 1
        pages="$pages $T/p$i.tif"
    done
    # shellcheck disable=SC2086
    tiffcp $pages "$1"
}

# csv_field FILE COLUMN-NAME: a field of the first data row.
csv_field() {
    awk -F, -v col="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == col) c = i; next } NR == 2 { print $c }' "$1"
}

# holds EXPRESSION: "yes" when the awk expression is true.
holds() { awk "BEGIN { print (($1) ? \"yes\" : \"no\") }"; }

run() { "$S" fidelity --seg "$W" --tile 32 --threads 1 "$@"; }

echo "== a set against itself"
run --real "$T/img.tif" --fake "$T/img.tif" --csv "$T/self.csv" > "$T/out.txt" 2> "$T/err.txt"
check_eq "status" "$?" "0"
check_eq "n_real n_fake dim" "$(csv_field "$T/self.csv" n_real) $(csv_field "$T/self.csv" n_fake) $(csv_field "$T/self.csv" dim)" "16 16 96"
check_eq "FD ~ 0" "$(holds "$(csv_field "$T/self.csv" fd) <= 1e-9")" "yes"
check_eq "W1 L1 spectrum" "$(csv_field "$T/self.csv" hist_w1) $(csv_field "$T/self.csv" hist_l1) $(csv_field "$T/self.csv" spectrum)" "0 0 0"
check_eq "CSV rows" "$(wc -l < "$T/self.csv")" "2"
check_eq "table rows" "$(grep -c -e 'Frechet distance' -e 'KID' -e 'histogram W1' -e 'spectrum distance' "$T/out.txt")" "4"
check_eq "progress on stderr" "$(grep -c 'fidelity: real tiles' "$T/err.txt")" "1"

echo "== a TIFF stack against the prep tiles cut from it"
run --real "$T/img.tif" --fake "$T/all/train.tiles" --csv "$T/prep.csv" > /dev/null 2>&1
check_eq "status" "$?" "0"
check_eq "FD ~ 0" "$(holds "$(csv_field "$T/prep.csv" fd) <= 1e-9")" "yes"
check_eq "W1 spectrum" "$(csv_field "$T/prep.csv" hist_w1) $(csv_field "$T/prep.csv" spectrum)" "0 0"

echo "== different sets, --max"
run --real "$T/split/train.tiles" --fake "$T/img.tif" --max 5 --kid-subsets 3 --csv "$T/max.csv" > /dev/null 2>&1
check_eq "status" "$?" "0"
check_eq "n_real n_fake kid_size" "$(csv_field "$T/max.csv" n_real) $(csv_field "$T/max.csv" n_fake) $(csv_field "$T/max.csv" kid_size)" "5 5 5"
check_eq "FD > 0" "$(holds "$(csv_field "$T/max.csv" fd) > 0")" "yes"

echo "== constant stacks of grey 10 and 60 (written by raw2tiff)"
stack "$T/g10.tif" 32 64 1 012 byte && stack "$T/g60.tif" 32 32 2 074 byte || exit 1
run --real "$T/g10.tif" --fake "$T/g60.tif" --csv "$T/grey.csv" > /dev/null 2>&1
check_eq "status" "$?" "0"
check_eq "W1 L1 chi2" "$(csv_field "$T/grey.csv" hist_w1) $(csv_field "$T/grey.csv" hist_l1) $(csv_field "$T/grey.csv" hist_chi2)" "50 2 1"
check_eq "spectrum (no power on either side)" "$(csv_field "$T/grey.csv" spectrum)" "0"

echo "== bad input: one line, status 2"
stack "$T/short.tif" 32 32 2 001 short && stack "$T/one.tif" 32 32 1 012 byte || exit 1
# bad DESCRIPTION ARGS...: fidelity must exit 2 with exactly one line on stderr.
bad() {
    what=$1
    shift
    "$S" fidelity "$@" > /dev/null 2> "$T/err.txt"
    check_eq "$what: status, stderr lines" "$? $(wc -l < "$T/err.txt")" "2 1"
    sed 's/^/          /' "$T/err.txt"
}
bad "no --seg" --real "$T/img.tif" --fake "$T/img.tif"
bad "missing real file" --seg "$W" --real "$T/nope.tif" --fake "$T/img.tif" --tile 32
bad "16-bit stack" --seg "$W" --real "$T/img.tif" --fake "$T/short.tif" --tile 32
bad "tile not a power of two" --seg "$W" --real "$T/img.tif" --fake "$T/img.tif" --tile 48
bad "tiles of another size" --seg "$W" --real "$T/img.tif" --fake "$T/all/train.tiles" --tile 64
bad "pages smaller than a tile" --seg "$W" --real "$T/g60.tif" --fake "$T/g60.tif" --tile 64
bad "a single tile" --seg "$W" --real "$T/img.tif" --fake "$T/one.tif" --tile 32
bad "not a checkpoint" --seg "$T/img.tif" --real "$T/img.tif" --fake "$T/img.tif" --tile 32
bad "--max 1" --seg "$W" --real "$T/img.tif" --fake "$T/img.tif" --tile 32 --max 1
bad "--kid-subsets 0" --seg "$W" --real "$T/img.tif" --fake "$T/img.tif" --tile 32 --kid-subsets 0
bad "unknown device" --seg "$W" --real "$T/img.tif" --fake "$T/img.tif" --tile 32 --device tpu
bad "unknown option" --seg "$W" --real "$T/img.tif" --fake "$T/img.tif" --floor

exit "$fail"
