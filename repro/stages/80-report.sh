#!/bin/sh
# Stage report: reports/repro-<profile>-<date>.md (REPORT_DIR overrides reports/) with the
# stages' status and timings, the measured numbers beside the seed's documented ones and the
# published anchor, segmentation on real vs real + synthetic tiles, the generative chain
# (diffusion loss curve, sample grid, fidelity beside the real-vs-real floor, sampling
# speed), loss curves and held-out overlays (gnuplot), and every logged command.
# Always rebuilt; it reports what the other stages left, blocked ones included.
set -eu
. "$REPRO/lib.sh"
stage_begin "write the report"
command -v gnuplot > /dev/null || fail "gnuplot is missing: run make deps"
REPORT_DIR=${REPORT_DIR:-$ROOT/reports}
NAME=repro-$PROFILE-$(date -u +%Y-%m-%d)
MD=$REPORT_DIR/$NAME.md
mkdir -p "$REPORT_DIR"
STAGES="prep seg-real vae ddpm synth seg-mixed eval"

# ------------------------------------------------------------ stages

stage_status() {
    if [ -f "$OUT/$1/BLOCKED" ]; then echo "blocked: $(cat "$OUT/$1/BLOCKED")"
    elif [ -f "$OUT/$1/DONE" ]; then echo "done"
    else echo "not run"
    fi
}

# Seconds of the commands a stage ran (all runs of it, from timings.csv).
stage_seconds() {
    [ -f "$OUT/timings.csv" ] || { echo 0; return; }
    awk -F, -v s="$1" '$1 == s { t += $2 } END { print t + 0 }' "$OUT/timings.csv"
}

stages_table() {
    echo "| stage | status | command time |"
    echo "| --- | --- | ---: |"
    for s in $STAGES; do echo "| $s | $(stage_status "$s") | $(stage_seconds "$s") s |"; done
}

# ------------------------------------------------------------ numbers

# Column $2 of the last row of epochs.csv $1 that has best == 1 (train-seg's log).
best_value() {
    [ -s "$1" ] || { echo "-"; return; }
    awk -F, -v col="$2" 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
        $c["best"] == 1 { v = $c[col] } END { print v == "" ? "-" : v }' "$1"
}

# Column $2 of sdseg eval's "main" row in $1.
score() {
    [ -s "$1" ] || { echo "-"; return; }
    awk -F, -v col="$2" 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
        $1 == "main" { printf "%.4f", $c[col] }' "$1"
}

tiles_per_slice() {
    info=$("$SDSEG" info --in "$OUT/prep/tiles/train.tiles" 2> /dev/null) || { echo "-"; return; }
    tiles=$(echo "$info" | sed -n 's/.*, \([0-9]*\) tiles of .*/\1/p')
    pages=$(echo "$info" | sed -n 's/.*(\([0-9]*\) pages of .*/\1/p')
    echo "$tiles $pages $VAL_LAST" | awk '{ printf "%g", $1 / ($2 - $3) }'
}

# The VAE's validation MSE on the image channel alone (it also reconstructs the mask), at
# its best epoch: the part comparable with the seed's image-only VAE.
vae_loss() {
    if [ -s "$OUT/vae/run/epochs.csv" ]; then best_value "$OUT/vae/run/epochs.csv" val_mse_image
    else echo "not run ($(stage_status vae))"
    fi
}

# Tiles in a tile dataset (sdseg info), or "-".
tile_count() {
    "$SDSEG" info --in "$1" 2> /dev/null | sed -n 's/.*, \([0-9]*\) tiles of .*/\1/p' | grep . || echo "-"
}

# Real vs real + synthetic: training tiles, the best epoch's validation numbers (same real
# validation slices) and the held-out scores at 0.5.
mixed_rows() {
    real=$(tile_count "$OUT/prep/tiles/train.tiles")
    for m in seg-real seg-mixed; do
        synth=0
        [ "$m" = seg-real ] || synth=$(tile_count "$OUT/synth/tiles/train.tiles")
        e=$OUT/$m/run/epochs.csv
        printf '| %s | %s + %s | %s | %s | %s | %s |\n' "$m" "$real" "$synth" "$(best_value "$e" val_loss)" \
            "$(best_value "$e" val_iou)" "$(score "$OUT/eval/$m/scores.csv" iou)" "$(score "$OUT/eval/$m/scores.csv" dice)"
    done
}

# One row per scored model: IoU, Dice, precision, recall at 0.5 and at the seed's 0.05.
score_rows() {
    for m in seg-real seg-mixed; do
        d=$OUT/eval/$m
        if [ -s "$d/scores.csv" ]; then
            printf '| %s | %s / %s | %s / %s | %s / %s | %s / %s | %s |\n' "$m" \
                "$(score "$d/scores.csv" iou)" "$(score "$d/scores-seed.csv" iou)" \
                "$(score "$d/scores.csv" dice)" "$(score "$d/scores-seed.csv" dice)" \
                "$(score "$d/scores.csv" precision)" "$(score "$d/scores-seed.csv" precision)" \
                "$(score "$d/scores.csv" recall)" "$(score "$d/scores-seed.csv" recall)" \
                "$(score "$d/scores.csv" object_f1)"
        else
            echo "| $m | not scored ($(stage_status "$m")) | | | | |"
        fi
    done
}

comparison_table() {
    e=$OUT/seg-real/run/epochs.csv
    echo "| measure | this run | seed (documented) | published anchor |"
    echo "| --- | --- | --- | --- |"
    echo "| VAE validation MSE, image channel (improved VAE, image + mask) | $(vae_loss) | 0.003076 (MSE + KL, image only; epoch 5) | |"
    echo "| segmentation validation loss, best epoch ($SEG_RECIPE recipe) | $(best_value "$e" val_loss) | ~0.20 (best 0.199; BCE + L2) | |"
    echo "| segmentation validation BCE, same epoch | $(best_value "$e" val_bce) | | |"
    echo "| segmentation validation foreground IoU, same epoch | $(best_value "$e" val_iou) | | |"
    echo "| tiles per slice | $(tiles_per_slice) | 12 | |"
    echo "| threshold | 0.5 and the seed's 0.05 | 0.05 | |"
    echo "| held-out foreground IoU (testing.tif, Lucchi++ labels), seg-real at 0.5 / 0.05 | $(score "$OUT/eval/seg-real/scores.csv" iou) / $(score "$OUT/eval/seg-real/scores-seed.csv" iou) | | 0.90 (Casser et al. 2020) |"
}

# ------------------------------------------------------------ the generative chain

# Value of column $2 of the one-row CSV $1 (sdseg fidelity --csv), as %.4g; "-" if absent.
csv_value() {
    awk -F, -v col="$2" 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
        NR == 2 { if (col in c) printf "%.4g", $c[col]; else printf "-" }' "$1"
}

# The measures of the synthetic-vs-real comparison beside the real-vs-real floor.
fidelity_table() {
    synth=$OUT/synth/fidelity-synth.csv floor=$OUT/synth/fidelity-floor.csv
    if [ ! -s "$synth" ] || [ ! -s "$floor" ]; then
        echo "(No fidelity measurements: synth $(stage_status synth).)"
        return
    fi
    echo "| measure | synthetic vs real validation tiles | real training vs real validation tiles (floor) |"
    echo "| --- | ---: | ---: |"
    for f in "n_real tiles compared (real / other):n_fake" "fd Frechet distance, U-Net features" "kid KID, U-Net features:kid_std" \
        "hist_w1 grey-level histogram W1 (grey levels)" "hist_l1 grey-level histogram L1" \
        "hist_chi2 grey-level histogram chi-square" "spectrum power spectrum, RMS log10 difference"; do
        col=${f%% *} label=${f#* } extra=""
        case $label in *:*) extra=${label#*:} label=${label%:*} ;; esac
        sep=" +- "
        [ "$extra" != n_fake ] || sep=" / "
        row=""
        for csv in "$synth" "$floor"; do
            v=$(csv_value "$csv" "$col")
            [ -z "$extra" ] || v="$v$sep$(csv_value "$csv" "$extra")"
            row="$row | $v"
        done
        echo "| $label$row |"
    done
}

# Seconds per generated tile (sample.csv of sdseg sample).
sampling_speed() {
    csv=$OUT/synth/samples/sample.csv
    [ -s "$csv" ] || return 0
    awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
        { printf "Sampling: %s tiles of %sx%s, %s with %s steps on %s: %.3g s per tile (%.3g diffusion, %.3g VAE decoding), %.3g s per tile in all.\n",
          $c["count"], $c["height"], $c["width"], $c["sampler"], $c["steps"], $c["device"], $c["model_s_per_image"],
          $c["sample_s_per_image"], $c["decode_s_per_image"], $c["total_s_per_image"] }' "$csv"
}

generative_section() {
    if [ -s "$OUT/ddpm/run/epochs.csv" ]; then
        loss_png "$OUT/ddpm/run" "$REPORT_DIR/$NAME-ddpm-loss.png" \
            "ddpm: base width $DDPM_BASE, attention $DDPM_ATTN, $DDPM_RECIPE recipe (noise-prediction MSE)"
        echo "![ddpm loss curves]($NAME-ddpm-loss.png)"
        echo
    else
        echo "- ddpm: no loss curves ($(stage_status ddpm))."
        echo
    fi
    if [ -s "$OUT/synth/samples/grid.png" ]; then
        sh "$REPRO/squeeze-png.sh" "$OUT/synth/samples/grid.png" "$REPORT_DIR/$NAME-samples.png" 0.6 >> "$LOG" 2>&1 ||
            cp "$OUT/synth/samples/grid.png" "$REPORT_DIR/$NAME-samples.png"
        echo "Synthetic tiles (the first of the $SYNTH_COUNT; the mask channel's outlines in red):"
        echo
        echo "![synthetic tiles]($NAME-samples.png)"
        echo
        sampling_speed
        echo
    fi
    echo "Fidelity (\`sdseg fidelity\`: FD and KID on the seg-real U-Net's features, pixel histogram and"
    echo "power-spectrum distances; at most $FID_MAX tiles per set; lower is closer):"
    echo
    fidelity_table
}

# ------------------------------------------------------------ figures

# Training curves of a run folder $1 (steps.csv: step,epoch,lr,loss,...; epochs.csv:
# step,epoch,lr,train_loss,val_loss,...) into $2, titled $3; $4: extra plot clauses.
loss_png() {
    y2=""
    [ -z "${4:-}" ] || y2="set y2range [0:1]; set y2tics 0.2; set y2label 'validation foreground IoU'"
    gnuplot << EOF
set terminal pngcairo size 900,500 font ',11'
set output '$2'
set datafile separator ','
set title '$3'
set xlabel 'optimizer step'
set ylabel 'loss'
set ytics nomirror
set grid
set key top right
$y2
plot '$1/steps.csv' skip 1 using 1:4 with lines lc rgb '#bbbbbb' title 'training loss per step', \\
     '$1/epochs.csv' skip 1 using 1:4 with linespoints lw 2 pt 7 lc rgb '#1f77b4' title 'training loss (epoch mean)', \\
     '' skip 1 using 1:5 with linespoints lw 2 pt 7 lc rgb '#d62728' title 'validation loss'${4:-}
EOF
}

# The segmentation runs add their validation IoU (epochs.csv column 7) on a right axis.
SEG_IOU=", '' skip 1 using 1:7 axes x1y2 with linespoints dt 2 pt 5 lc rgb '#2ca02c' title 'validation IoU (right axis)'"

# Three held-out slices (at 1/6, 1/2 and 5/6 of the volume): image | outlines of truth (green)
# and prediction (red), via demo_overlay on the three pages cut out with tiffcp.
overlay_png() { # model png
    tmp=$SDIR/overlay
    mkdir -p "$tmp"
    # "PAGES H W" of the testing volume
    # shellcheck disable=SC2046 # three words
    set -- "$1" "$2" $("$SDSEG" info --in "$DATA/testing.tif" | sed -n 's/.*, \([0-9]*\) pages of \([0-9]*\) x \([0-9]*\),.*/\1 \2 \3/p')
    h=$4 w=$5
    pages="$(($3 / 6)),$(($3 / 2)),$(($3 * 5 / 6))"
    for f in "$DATA/testing.tif" "$DATA/testing_groundtruth.tif" "$OUT/eval/$1/mask.tif"; do
        tiffcp "$f,$pages" "$tmp/$(basename "$f")" || return 1
    done
    "$BUILD/demo_overlay" "$tmp/testing.tif" "$tmp/testing_groundtruth.tif" "$tmp/mask.tif" 0,1,2 "$tmp/o.rgb" > /dev/null ||
        return 1
    {
        echo "set terminal pngcairo size 840,$((3 * 420 * h / w + 70)) font ',10'"
        echo "set output '$2'"
        echo "set multiplot layout 3,1 title 'testing.tif ($1): image | truth (green), prediction at 0.5 (red), both (yellow)'"
        echo "unset key; unset tics; unset border; unset colorbox; set size ratio -1"
        band=0
        for s in $(echo "$pages" | tr , ' '); do
            echo "set title 'slice $s'"
            echo "plot '$tmp/o.rgb' binary array=($((2 * w)),$h) skip=$((band * 6 * w * h)) format='%uchar%uchar%uchar' flipy with rgbimage"
            band=$((band + 1))
        done
        echo "unset multiplot"
    } | gnuplot
    rm -rf "$tmp"
}

figures() {
    for m in seg-real seg-mixed; do
        if [ -s "$OUT/$m/run/epochs.csv" ]; then
            loss_png "$OUT/$m/run" "$REPORT_DIR/$NAME-$m-loss.png" "$m: width-$SEG_WIDTH U-Net, $SEG_RECIPE recipe" "$SEG_IOU"
            echo "![$m loss curves]($NAME-$m-loss.png)"
            echo
        fi
        [ -s "$OUT/eval/$m/mask.tif" ] || continue
        if [ ! -x "$BUILD/demo_overlay" ]; then
            echo "(No overlay for $m: $BUILD/demo_overlay is missing; make $BUILD/demo_overlay builds it.)"
        elif overlay_png "$m" "$REPORT_DIR/$NAME-$m-overlay.png" >> "$LOG" 2>&1; then
            echo "![$m overlays]($NAME-$m-overlay.png)"
        else
            echo "(The overlay for $m failed: see $LOG.)"
        fi
        echo
    done
    if [ -s "$OUT/vae/run/epochs.csv" ]; then
        loss_png "$OUT/vae/run" "$REPORT_DIR/$NAME-vae-loss.png" "vae: base width $VAE_BASE, $VAE_RECIPE recipe, image + mask"
        echo "![vae loss curves]($NAME-vae-loss.png)"
        echo
    fi
    [ -s "$OUT/vae/run/best.safetensors" ] || return 0
    if vae_recon_png "$REPORT_DIR/$NAME-vae-recon.png" >> "$LOG" 2>&1; then
        echo "![vae reconstructions]($NAME-vae-recon.png)"
    else
        echo "(The VAE reconstruction figure failed: see $LOG.)"
    fi
    echo
}

# A whole validation slice of training.tif (image and mask) through the VAE (encode: the
# posterior mean; decode): top the slice with its true mask, bottom the reconstruction with
# the same true mask (green) and the reconstructed mask channel (red).
vae_recon_png() { # png
    tmp=$SDIR/recon
    mkdir -p "$tmp"
    # shellcheck disable=SC2046 # three words: PAGES H W
    set -- "$1" $("$SDSEG" info --in "$DATA/training.tif" | sed -n 's/.*, \([0-9]*\) pages of \([0-9]*\) x \([0-9]*\),.*/\1 \2 \3/p')
    page=$(($2 - VAL_LAST / 2)) h=$3 w=$4
    tiffcp "$DATA/training.tif,$page" "$tmp/image.tif" && tiffcp "$DATA/training_groundtruth.tif,$page" "$tmp/truth.tif" ||
        return 1
    vae=$OUT/vae/run/best.safetensors
    # shellcheck disable=SC2046 # device_opts are words
    "$SDSEG" encode --vae "$vae" --in "$tmp/image.tif" --mask "$tmp/truth.tif" --out "$tmp/z.npy" $(device_opts) &&
        "$SDSEG" decode --vae "$vae" --in "$tmp/z.npy" --out "$tmp/recon.tif" --out-mask "$tmp/recon-mask.tif" \
            $(device_opts) || return 1
    "$BUILD/demo_overlay" "$tmp/image.tif" "$tmp/truth.tif" "$tmp/recon-mask.tif" 0 "$tmp/a.rgb" > /dev/null &&
        "$BUILD/demo_overlay" "$tmp/recon.tif" "$tmp/truth.tif" "$tmp/recon-mask.tif" 0 "$tmp/b.rgb" > /dev/null ||
        return 1
    {
        echo "set terminal pngcairo size 840,$((2 * 420 * h / w + 70)) font ',10'"
        echo "set output '$1'"
        echo "set multiplot layout 2,1 title 'VAE: training.tif slice $page (validation), true mask (green), decoded mask channel (red)'"
        echo "unset key; unset tics; unset border; unset colorbox; set size ratio -1"
        for f in a b; do
            [ $f = a ] && echo "set title 'input'" || echo "set title 'reconstruction (posterior mean decoded)'"
            echo "plot '$tmp/$f.rgb' binary array=($((2 * w)),$h) format='%uchar%uchar%uchar' flipy with rgbimage"
        done
        echo "unset multiplot"
    } | gnuplot
    rm -rf "$tmp"
}

# ------------------------------------------------------------ the report

{
    echo "# Reproduction, profile \`$PROFILE\` ($(date -u +%Y-%m-%d))"
    echo
    echo "- Command: \`$RUN_CMD\`"
    echo "- Commit: $(commit_id)"
    echo "- Device: $DEVICE ($(device_name))$([ "${FAST:-0}" = 1 ] && echo ", bf16 matrix products (--fast)")"
    echo "- Data: \`$DATA\` (training.tif for training and validation: the last $VAL_LAST slices; testing.tif only scored)"
    echo "- Profile: repro/profiles/$PROFILE.env"
    echo
    echo "## Stages"
    echo
    stages_table
    echo
    echo "## Results beside the seed"
    echo
    comparison_table
    echo
    echo "Segmentation on real tiles alone and on real + synthetic tiles (same recipe, same real"
    echo "validation slices; held-out scores on the whole testing volume at 0.5):"
    echo
    echo "| model | training tiles (real + synthetic) | validation loss, best epoch | validation IoU, same epoch | held-out IoU | held-out Dice |"
    echo "| --- | --- | --- | --- | --- | --- |"
    mixed_rows
    echo
    echo "Held-out scores of each trained U-Net on the whole testing volume (at 0.5 / at 0.05):"
    echo
    echo "| model | foreground IoU | Dice | precision | recall | object F1 (0.5) |"
    echo "| --- | --- | --- | --- | --- | --- |"
    score_rows
    echo
    echo "The seed's loss is BCE plus the Keras L2 penalty; the improved recipe's is BCE + soft Dice, so"
    echo "its BCE column is the one to set beside the seed's number. Per-object measurements:"
    echo "\`$OUT/eval/<model>/objects.csv\`."
    echo
    echo "## The generative chain"
    echo
    generative_section
    echo
    echo "## Figures"
    echo
    figures
    echo
    echo "## Commands"
    echo
    echo "Every command the stages ran, with its seconds and exit status (from \`$OUT/timings.csv\`):"
    echo
    echo '```'
    [ -f "$OUT/timings.csv" ] && tail -n +2 "$OUT/timings.csv"
    echo '```'
} > "$MD.tmp"
mv "$MD.tmp" "$MD"
say "wrote $MD"
stage_done "report"
