#!/bin/sh
# sdseg eval on tiny two-page stacks written by libtiff's own tools (raw2tiff, tiffcp),
# not by core/tiff.c; every expected number is counted by hand in the comments below.
set -u
. "$(dirname "$0")/lib.sh"
test_init t_eval_cli

# stack OUT H W PAGE...: an 8-bit stack, one argument of decimal pixel values per page.
stack() {
    out=$1 h=$2 w=$3
    shift 3
    pages="" i=0
    for page in "$@"; do
        i=$((i + 1))
        # shellcheck disable=SC2059,SC2086  # the format is the octal escapes just built
        printf "$(printf '\\%03o' $page)" > "$T/page$i.raw"
        raw2tiff -w "$w" -l "$h" -b 1 -d byte -p minisblack "$T/page$i.raw" "$T/page$i.tif" || return 1
        pages="$pages $T/page$i.tif"
    done
    # shellcheck disable=SC2086
    tiffcp $pages "$out"
}

# csv_field FILE ROW COLUMN-NAME: a field of a CSV with a header line (ROW 1 = first data row).
csv_field() {
    awk -F, -v row="$2" -v col="$3" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == col) c = i; next }
        NR == row + 1 { print $c }' "$1"
}

# Truth, 4 x 6 per page: page 0 has block A (rows 0-1, cols 0-1) and block B (rows 2-3,
# cols 4-5); page 1 the single pixel (0,0).
stack "$T/truth.tif" 4 6 \
    "255 255 0 0 0 0  255 255 0 0 0 0  0 0 0 0 255 255  0 0 0 0 255 255" \
    "255 0 0 0 0 0  0 0 0 0 0 0  0 0 0 0 0 0  0 0 0 0 0 0" || exit 1
# Prediction (x/255): A is 230 230 / 230 128, B is 26 26 / 26 0, page 1 has 230 at (0,0)
# and 128 at (3,5). 128/255 = 0.502, 26/255 = 0.102, 230/255 = 0.902.
stack "$T/prob.tif" 4 6 \
    "230 230 0 0 0 0  230 128 0 0 0 0  0 0 0 0 26 26  0 0 0 0 26 0" \
    "230 0 0 0 0 0  0 0 0 0 0 0  0 0 0 0 0 0  0 0 0 0 0 128" || exit 1

echo "== threshold 0.5, 2-D objects"
# Foreground > 0.5: A (4), page-1 (0,0) and (3,5). tp 5 (A, (0,0)), fp 1 ((3,5)), fn 4 (B),
# tn 48 - 10 = 38: IoU 5/10, Dice 10/15, precision 5/6, recall 5/9, accuracy 43/48.
# Objects: predicted A, (0,0), (3,5); true A, B, (0,0); A and (0,0) match: 2/3 each way.
"$S" eval --pred "$T/prob.tif" --truth "$T/truth.tif" --sweep --csv "$T/m.csv" \
    --objects "$T/obj.csv" --pixel-size-nm 2 > "$T/out.txt" || { echo "FAIL: eval exited $?"; exit 1; }
check_eq "tp fp fn tn" "$(csv_field "$T/m.csv" 1 tp) $(csv_field "$T/m.csv" 1 fp) $(csv_field "$T/m.csv" 1 fn) $(csv_field "$T/m.csv" 1 tn)" "5 1 4 38"
check_eq "IoU" "$(csv_field "$T/m.csv" 1 iou)" "0.500000"
check_eq "Dice" "$(csv_field "$T/m.csv" 1 dice)" "0.666667"
check_eq "precision" "$(csv_field "$T/m.csv" 1 precision)" "0.833333"
check_eq "recall" "$(csv_field "$T/m.csv" 1 recall)" "0.555556"
check_eq "accuracy" "$(csv_field "$T/m.csv" 1 accuracy)" "0.895833"
check_eq "objects pred true matched" "$(csv_field "$T/m.csv" 1 objects_pred) $(csv_field "$T/m.csv" 1 objects_true) $(csv_field "$T/m.csv" 1 objects_matched)" "3 3 2"
check_eq "object F1" "$(csv_field "$T/m.csv" 1 object_f1)" "0.666667"
check_eq "printed IoU" "$(awk '/foreground IoU/ { print $3 }' "$T/out.txt")" "0.5000"

echo "== threshold sweep"
# 0.05 and 0.10 also take B's three 26s: tp 8 fp 1 fn 1, IoU 0.8. 0.15..0.50: as above.
# 0.55..0.90 drop the 128s: tp 4 fp 0 fn 5, IoU 4/9. 0.95: nothing, IoU 0.
check_eq "sweep 0.05 IoU" "$(csv_field "$T/m.csv" 2 iou)" "0.800000"
check_eq "sweep 0.10 IoU" "$(csv_field "$T/m.csv" 3 iou)" "0.800000"
check_eq "sweep 0.15 IoU" "$(csv_field "$T/m.csv" 4 iou)" "0.500000"
check_eq "sweep 0.55 IoU" "$(csv_field "$T/m.csv" 12 iou)" "0.444444"
check_eq "sweep 0.90 IoU" "$(csv_field "$T/m.csv" 19 iou)" "0.444444"
check_eq "sweep 0.95 tp fp fn" "$(csv_field "$T/m.csv" 20 tp) $(csv_field "$T/m.csv" 20 fp) $(csv_field "$T/m.csv" 20 fn)" "0 0 9"
check_eq "best" "$(grep -o 'best IoU [0-9.]* at threshold [0-9.]*' "$T/out.txt")" "best IoU 0.8000 at threshold 0.05"

echo "== object CSV"
# Object 1 = A: 2 x 2 at the origin; with 2 nm pixels 16 nm^2; centroid (0.5, 0.5); each
# pixel is a border pixel with 2 border 4-neighbours and 1 diagonal: weight 1, perimeter 4.
check_eq "rows" "$(($(wc -l < "$T/obj.csv") - 1))" "3"
check_eq "A id slice area nm2" "$(csv_field "$T/obj.csv" 1 id) $(csv_field "$T/obj.csv" 1 slice) $(csv_field "$T/obj.csv" 1 area_px) $(csv_field "$T/obj.csv" 1 area_nm2)" "1 0 4 16"
check_eq "A centroid" "$(csv_field "$T/obj.csv" 1 centroid_y) $(csv_field "$T/obj.csv" 1 centroid_x)" "0.5000 0.5000"
check_eq "A bbox" "$(csv_field "$T/obj.csv" 1 bbox_min_y) $(csv_field "$T/obj.csv" 1 bbox_min_x) $(csv_field "$T/obj.csv" 1 bbox_max_y) $(csv_field "$T/obj.csv" 1 bbox_max_x)" "0 0 2 2"
check_eq "A perimeter px nm" "$(csv_field "$T/obj.csv" 1 perimeter_px) $(csv_field "$T/obj.csv" 1 perimeter_nm)" "4.0000 8.0000"
check_eq "A solidity" "$(csv_field "$T/obj.csv" 1 solidity)" "1.000000"
check_eq "third object" "$(csv_field "$T/obj.csv" 3 slice) $(csv_field "$T/obj.csv" 3 centroid_y) $(csv_field "$T/obj.csv" 3 centroid_x)" "1 3.0000 5.0000"

echo "== 3-D objects"
# A links to page-1 (0,0) on both sides: true objects {A+(0,0)}, B; predicted {A+(0,0)},
# (3,5); one match of two each way: precision = recall = F1 = 0.5. The CSV has a row per
# (object, slice): object 1 in slices 0 and 1, object 2 in slice 1.
"$S" eval --pred "$T/prob.tif" --truth "$T/truth.tif" --3d --csv "$T/m3.csv" --objects "$T/obj3.csv" \
    > /dev/null || { echo "FAIL: eval --3d exited $?"; exit 1; }
check_eq "3-D objects pred true matched" "$(csv_field "$T/m3.csv" 1 objects_pred) $(csv_field "$T/m3.csv" 1 objects_true) $(csv_field "$T/m3.csv" 1 objects_matched)" "2 2 1"
check_eq "3-D object F1" "$(csv_field "$T/m3.csv" 1 object_f1)" "0.500000"
check_eq "3-D rows (id, slice)" "$(awk -F, 'NR > 1 { printf "%s%s,%s", s, $1, $2; s = " " }' "$T/obj3.csv")" "1,0 1,1 2,1"

echo "== masks as predictions"
# A 0/255 mask of the > 0.5 foreground scores as above; a 0/1 mask (1/255 after scaling)
# counts nonzero as foreground whatever the threshold.
stack "$T/mask255.tif" 4 6 \
    "255 255 0 0 0 0  255 255 0 0 0 0  0 0 0 0 0 0  0 0 0 0 0 0" \
    "255 0 0 0 0 0  0 0 0 0 0 0  0 0 0 0 0 0  0 0 0 0 0 255" || exit 1
stack "$T/mask01.tif" 4 6 \
    "1 1 0 0 0 0  1 1 0 0 0 0  0 0 0 0 0 0  0 0 0 0 0 0" \
    "1 0 0 0 0 0  0 0 0 0 0 0  0 0 0 0 0 0  0 0 0 0 0 1" || exit 1
"$S" eval --pred "$T/mask255.tif" --truth "$T/truth.tif" --csv "$T/m255.csv" > /dev/null
check_eq "0/255 mask IoU" "$(csv_field "$T/m255.csv" 1 iou)" "0.500000"
"$S" eval --pred "$T/mask01.tif" --truth "$T/truth.tif" --csv "$T/m01.csv" > /dev/null 2>&1
check_eq "0/1 mask IoU" "$(csv_field "$T/m01.csv" 1 iou)" "0.500000"

echo "== bad input"
stack "$T/small.tif" 4 5 "0 0 0 0 0  0 0 0 0 0  0 0 0 0 0  0 0 0 0 0" || exit 1
"$S" eval --pred "$T/small.tif" --truth "$T/truth.tif" > "$T/out.txt" 2> "$T/err.txt"
check_eq "size mismatch status" "$?" "2"
check_eq "size mismatch message lines" "$(grep -c 'size mismatch' "$T/err.txt")" "1"
"$S" eval --pred "$T/missing.tif" --truth "$T/truth.tif" > /dev/null 2>&1
check_eq "missing file status" "$?" "2"
"$S" eval --pred "$T/prob.tif" --truth "$T/truth.tif" --threshold 2 > /dev/null 2>&1
check_eq "bad threshold status" "$?" "2"

[ "$fail" -eq 0 ] && echo "t_eval_cli: ok"
exit "$fail"
