#!/usr/bin/env bash
# Clinical-style scans: the probe crosses the lesion and comes back (PASSES
# passes through the slab), as a radiologist films a lesion, instead of the
# one-way 48-frame sweeps the rules were chosen on. The lesion leaves the view
# at each turn and returns: does the pipeline still report one lesion?
# Held-out groups' stills (new seeds), scored by `sonorisk batch` with default
# settings; figures by `python -m sonorisk.eval.heldout`.
#
#   bash scripts/scan_passes.sh                   # 45 + 19 scans of 150 frames, 2 passes
#   PASSES=3 FRAMES=240 OUT=runs/scan3 bash scripts/scan_passes.sh
#
# Steps whose output exists are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
BUSI=${BUSI:-../shared/data/busi}
PASSES=${PASSES:-2}
FRAMES=${FRAMES:-150}
N=${N:-45}
N_NORMAL=${N_NORMAL:-19}
OUT=${OUT:-runs/scan_passes/p$PASSES-f$FRAMES}
MODELS=${MODELS:-sonorisk-busi}
HELD=configs/release/heldout_groups.txt
export OMP_WAIT_POLICY=PASSIVE
mkdir -p "$OUT"
source scripts/lib/runs.sh
synth_once "$BUSI" "$OUT/scans" "$HELD" benign,malignant "$N" "$FRAMES" 51 --passes "$PASSES"
synth_once "$BUSI" "$OUT/normal_scans" "$HELD" normal "$N_NORMAL" "$FRAMES" 52 --passes "$PASSES"
batch "$OUT/batch.csv" "$MODELS" ${CONFIG:+--config "$CONFIG"} "$OUT/scans/videos" \
    "$OUT/normal_scans/videos" > "$OUT/batch.log" 2>&1
python3 -m sonorisk.eval.heldout --sweeps "$OUT/scans/videos.csv" --batch "$OUT/batch.csv" \
    --lesion-free "$OUT/normal_scans/videos.csv" --out "$OUT/figures.json"
