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
#
# Steps whose output exists are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
BUSI=${BUSI:-../shared/data/busi}
SIZE=${SIZE:-320x240}
AFTER=${AFTER:-0}
QSCALE=${QSCALE:-}
OUT=${OUT:-runs/resolution_shift/$SIZE$([[ $AFTER == 1 ]] && echo -after${QSCALE:+-q$QSCALE})}
MODELS=${MODELS:-sonorisk-busi}
REL=${REL:-runs/release}
HELD=configs/release/heldout_groups.txt
export OMP_WAIT_POLICY=PASSIVE
mkdir -p "$OUT"
if [[ $AFTER == 1 ]]; then
    for name in sweeps normal_sweeps; do
        [[ -f $OUT/$name/videos.csv ]] || sonorisk dataset rescale --size "$SIZE" \
            ${QSCALE:+--qscale "$QSCALE"} --data "$REL/heldout_$name" --out "$OUT/$name" \
            --no-progress > /dev/null
    done
else
read -r n_lesion n_normal <<< "$(python3 - "$BUSI" "$HELD" <<'PY'
import csv, sys
from sonorisk.data.splits import read_id_lines
groups = set(read_id_lines(sys.argv[2]))
rows = [r for r in csv.DictReader(open(f"{sys.argv[1]}/manifest.csv")) if r["group"] in groups]
print(sum(r["label"] in ("benign", "malignant") for r in rows),
      sum(r["label"] == "normal" for r in rows))
PY
)"
synth() {  # OUT_DIR LABELS N SEED (scripts/release.sh's held-out sweeps, at SIZE)
    [[ -f $1/videos.csv ]] || sonorisk synth --source "$BUSI" --groups "$HELD" --labels "$2" \
        --n "$3" --frames 48 --seed "$4" --size "$SIZE" --out "$1" > /dev/null
}
synth "$OUT/sweeps" benign,malignant "$n_lesion" 31
synth "$OUT/normal_sweeps" normal "$n_normal" 32
fi
[[ -f $OUT/batch.done ]] || { sonorisk batch --models "$MODELS" --out "$OUT/batch.csv" \
    --workers 2 --threads 1 --no-progress "$OUT/sweeps/videos" "$OUT/normal_sweeps/videos" \
    > "$OUT/batch.log" 2>&1; touch "$OUT/batch.done"; }
python3 -m sonorisk.eval.heldout --sweeps "$OUT/sweeps/videos.csv" --batch "$OUT/batch.csv" \
    --lesion-free "$OUT/normal_sweeps/videos.csv" --out "$OUT/figures.json"
