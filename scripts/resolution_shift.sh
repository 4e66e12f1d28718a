#!/usr/bin/env bash
# How the end-to-end figures move when the video is smaller than the sweeps the
# models learned from (480x360): the held-out sweeps of scripts/release.sh made
# again at SIZE (same stills, same seeds, same motion), scored by `sonorisk
# batch` with default settings, figures by `python -m sonorisk.eval.heldout`.
# Clinical cine exported as small AVIs is the case it stands for.
#
#   bash scripts/resolution_shift.sh              # 320x240, ~12 min on 2 cores
#   SIZE=240x180 bash scripts/resolution_shift.sh
#   SIZE=480x360 bash scripts/resolution_shift.sh # the release's own size: its figures
#
# AFTER=1: the release's own 480x360 held-out sweeps scaled to SIZE after
# rendering (`sonorisk dataset rescale`: the speckle grain shrinks with the
# tissue, as in a smaller export of the same scan) instead of rendered at SIZE.
#
#   AFTER=1 bash scripts/resolution_shift.sh      # ~10 min on 2 cores
#   AFTER=1 MODELS=path/to/bundle OUT=runs/x bash scripts/resolution_shift.sh
#   AFTER=1 QSCALE=15 bash scripts/resolution_shift.sh  # and more compressed (MJPEG q 15)
#   AFTER=1 CODEC=h264 bash scripts/resolution_shift.sh  # an H.264 export (libx264 CRF 20)
#
# Steps whose output exists are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
BUSI=${BUSI:-../shared/data/busi}
SIZE=${SIZE:-320x240}
AFTER=${AFTER:-0}
QSCALE=${QSCALE:-}
CODEC=${CODEC:-}
OUT=${OUT:-runs/resolution_shift/$SIZE$([[ $AFTER == 1 ]] && echo -after${QSCALE:+-q$QSCALE}${CODEC:+-$CODEC})}
MODELS=${MODELS:-sonorisk-busi}
REL=${REL:-runs/release}
HELD=configs/release/heldout_groups.txt
export OMP_WAIT_POLICY=PASSIVE
mkdir -p "$OUT"
source scripts/lib/runs.sh
if [[ $AFTER == 1 ]]; then
    for name in sweeps normal_sweeps; do
        [[ -f $OUT/$name/videos.csv ]] || sonorisk dataset rescale --size "$SIZE" \
            ${QSCALE:+--qscale "$QSCALE"} ${CODEC:+--codec "$CODEC"} \
            --data "$REL/heldout_$name" --out "$OUT/$name" --no-progress > /dev/null
    done
else
# scripts/release.sh's held-out sweeps, at SIZE
synth_once "$BUSI" "$OUT/sweeps" "$HELD" benign,malignant \
    "$(count_stills "$BUSI" "$HELD" benign,malignant)" 48 31 --size "$SIZE"
synth_once "$BUSI" "$OUT/normal_sweeps" "$HELD" normal \
    "$(count_stills "$BUSI" "$HELD" normal)" 48 32 --size "$SIZE"
fi
batch "$OUT/batch.csv" "$MODELS" "$OUT/sweeps/videos" "$OUT/normal_sweeps/videos" \
    > "$OUT/batch.log" 2>&1
python3 -m sonorisk.eval.heldout --sweeps "$OUT/sweeps/videos.csv" --batch "$OUT/batch.csv" \
    --lesion-free "$OUT/normal_sweeps/videos.csv" --out "$OUT/figures.json"
