#!/bin/sh
# The EPFL hippocampus volumes with the Lucchi++ mitochondria labels, as repro/run.sh reads
# them (training.tif, training_groundtruth.tif, testing.tif, testing_groundtruth.tif).
#
#   repro/get-data.sh [--dest DIR]   download into DIR (default ../data/epfl-hippocampus, outside
#                                    the repository), build the label stacks, verify
#   repro/get-data.sh --verify DIR   verify an existing folder
#
# Sources: the images from EPFL CVLab's release (Lucchi et al. 2012,
# https://www.epfl.ch/labs/cvlab/data/data-em/), the corrected labels "Lucchi++" from
# Casser et al. 2020 (https://sites.google.com/view/connectomics/, lucchi_pp.zip: PNG slices).
# Checks: the EPFL files' sizes, the zip's SHA-256, and at the end every file against the
# reference copy this project was built with: its SHA-256 when the bytes are identical, else
# (the same pixels encoded differently, e.g. freshly assembled here) its page count, size,
# bit depth and pixel statistics as `sdseg info` prints them -- a fingerprint, weaker than
# a checksum but independent of the TIFF encoding. Needs curl, unzip, ImageMagick (PNG slices
# to a TIFF stack), sha256sum, and build/sdseg for the fingerprints (env SDSEG overrides).
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SDSEG=${SDSEG:-$ROOT/build/sdseg}
EPFL_URL=https://documents.epfl.ch/groups/c/cv/cvlab-unit/www/data/%20ElectronMicroscopy_Hippocampus
EPFL_SIZE=129919357 # bytes of each uncompressed EPFL stack (165 pages of 1024 x 768, 8-bit)
LUCCHI_URL=http://www.casser.io/files/lucchi_pp.zip
LUCCHI_SHA256=770ce9e98fc6f29c1b1a250c637e6c5125f2b5f1260e5a7687b55a79e2e8844d
FILES="training training_groundtruth testing testing_groundtruth"

# The reference copy (../shared/data/epfl-hippocampus/SHA256SUMS, and sdseg info on it).
ref_sha256() {
    case $1 in
    training) echo cf0ef48483dfa60719d3394d18eca4ac5a1ac7b7aa6af4c5ea273c34b2601b16 ;;
    training_groundtruth) echo e21fc2b3d702bce656d6836e2e09f52c520cb2ba3cac4709e3d8f7e9ea67e2fe ;;
    testing) echo 05160104ec26c4b142357e0da8e4d858103f002dc9a0c5258db7e8f6a124b688 ;;
    testing_groundtruth) echo 2767048cb2485ab2a084aa9a45b017a2c3cf8d387f360cbf8f38b989f5dc4e7b ;;
    esac
}
ref_fingerprint() {
    stats="TIFF stack, 165 pages of 768 x 1024, 8-bit; values (scaled)"
    case $1 in
    training) echo "$stats min 0.0078 max 1.0000 mean 0.5530" ;;
    training_groundtruth) echo "$stats min 0.0000 max 1.0000 mean 0.0669" ;;
    testing) echo "$stats min 0.0863 max 0.9569 mean 0.5509" ;;
    testing_groundtruth) echo "$stats min 0.0000 max 1.0000 mean 0.0700" ;;
    esac
}

die() {
    echo "get-data: $*" >&2
    exit 1
}

fingerprint() { "$SDSEG" info --in "$1" 2> /dev/null | head -n 1 | sed 's/^[^:]*: //'; }

# File $1 of folder $2 is the reference's: same bytes, or else the same fingerprint.
verify_file() {
    f=$2/$1.tif
    [ -r "$f" ] || { echo "  $1.tif: missing"; return 1; }
    if [ "$(sha256sum < "$f" | cut -d' ' -f1)" = "$(ref_sha256 "$1")" ]; then
        echo "  $1.tif: SHA-256 identical to the reference copy"
        return 0
    fi
    [ -x "$SDSEG" ] || die "$f differs from the reference bytes and $SDSEG (for the fingerprint) is missing: run make"
    got=$(fingerprint "$f")
    if [ "$got" = "$(ref_fingerprint "$1")" ]; then
        echo "  $1.tif: other bytes, same fingerprint ($got)"
        return 0
    fi
    echo "  $1.tif: DIFFERS: ${got:-unreadable}"
    echo "      expected $(ref_fingerprint "$1")"
    return 1
}

verify() {
    echo "get-data: verifying $1"
    bad=0
    for name in $FILES; do verify_file "$name" "$1" || bad=1; done
    [ "$bad" = 0 ] || die "$1 does not hold the expected EPFL / Lucchi++ files"
    echo "get-data: $1 ok"
}

need_tools() {
    for tool in "$@"; do command -v "$tool" > /dev/null || die "$tool is missing (Debian: apt-get install $tool)"; done
}

# ------------------------------------------------------------ download

fetch() { # url dest
    [ -s "$2" ] && return 0
    echo "get-data: $1"
    curl -fL --retry 3 -o "$2.part" "$1" || die "download failed: $1"
    mv "$2.part" "$2"
}

fetch_images() { # dir
    for name in training testing; do
        fetch "$EPFL_URL/$name.tif" "$1/$name.tif"
        size=$(wc -c < "$1/$name.tif")
        [ "$size" -eq "$EPFL_SIZE" ] || die "$1/$name.tif has $size bytes, the EPFL release $EPFL_SIZE: delete it and retry"
    done
}

# The 165 label PNGs of folder $1 (numbered 0.png .. 164.png) as one 8-bit TIFF stack $2
# with 0 / 255 (RGBA slices: opaque white is foreground, anything else background).
png_stack() {
    set -- "$1" "$2" "$(seq 0 164 | sed "s|.*|$1/&.png|")"
    for png in $3; do [ -r "$png" ] || die "$png is missing from the Lucchi++ archive"; done
    # shellcheck disable=SC2086 # the file list is words
    $IM $3 -alpha on -background black -alpha remove -colorspace Gray -threshold 50% -depth 8 -compress zip "$2"
}

fetch_labels() { # dir
    zip=$1/lucchi_pp.zip
    fetch "$LUCCHI_URL" "$zip"
    [ "$(sha256sum < "$zip" | cut -d' ' -f1)" = "$LUCCHI_SHA256" ] || die "$zip: SHA-256 mismatch: delete it and retry"
    tmp=$1/lucchi_pp
    rm -rf "$tmp"
    unzip -q "$zip" -d "$tmp"
    png_stack "$tmp/Lucchi++/Train_Out" "$1/training_groundtruth.tif"
    png_stack "$tmp/Lucchi++/Test_Out" "$1/testing_groundtruth.tif"
    # Which Lucchi++ half labels which EPFL volume is settled by the fingerprints, not the names.
    a=$(fingerprint "$1/training_groundtruth.tif") b=$(fingerprint "$1/testing_groundtruth.tif")
    if [ "$a" = "$(ref_fingerprint testing_groundtruth)" ] && [ "$b" = "$(ref_fingerprint training_groundtruth)" ]; then
        echo "get-data: Lucchi++ Train_Out labels the EPFL testing volume here (and Test_Out training): swapped"
        mv "$1/training_groundtruth.tif" "$tmp/swap.tif"
        mv "$1/testing_groundtruth.tif" "$1/training_groundtruth.tif"
        mv "$tmp/swap.tif" "$1/testing_groundtruth.tif"
    fi
    rm -rf "$tmp" "$zip"
}

download() {
    need_tools curl unzip sha256sum
    IM=$(command -v magick || command -v convert) || die "ImageMagick is missing (Debian: apt-get install imagemagick)"
    [ -x "$SDSEG" ] || die "$SDSEG is missing: run make first (it checks the files)"
    mkdir -p "$1"
    fetch_images "$1"
    fetch_labels "$1"
    verify "$1"
}

case ${1:-} in
--verify)
    [ $# -eq 2 ] || die "usage: repro/get-data.sh --verify DIR"
    need_tools sha256sum
    verify "$2"
    ;;
--dest)
    [ $# -eq 2 ] || die "usage: repro/get-data.sh [--dest DIR]"
    download "$2"
    ;;
"") download "$ROOT/../data/epfl-hippocampus" ;;
*) die "usage: repro/get-data.sh [--dest DIR] | --verify DIR" ;;
esac
