#!/usr/bin/env bash
# Issue 14, third detector try: 1.2.0's video detector continued with hard
# examples, the frames where the pipeline went wrong on development split A.
#
#   bash scripts/video_detector_hard.sh
#
# 1. Mine split A (runs/e2e_v2/devA: 1.2.0's detector, every track scored):
#    frames of false tracks and missed lesion frames (sonorisk.detector.hard_examples).
# 2. Resume runs/video_detector2/last.pt for epochs 13-14
#    (configs/release/detector-video-hard.yaml), the hard frames a quarter of each epoch.
# 3. Held-out still AP50, then split B's sweeps (never trained on) through batch
#    with every track scored, to compare with 1.2.0 before any release.
# To release: scripts/e2e_release.sh then scripts/e2e_heldout.sh with
# DETECTOR=runs/video_detector3/last.pt (see docs/end-to-end.md).
set -euo pipefail
cd "$(dirname "$0")/.."
BUSI=${BUSI:-../shared/data/busi}
DEV=${DEV:-runs/e2e_v2}
PREV=${PREV:-runs/video_detector2}
OUT=${OUT:-runs/video_detector3}
export OMP_WAIT_POLICY=PASSIVE
mkdir -p "$OUT"
runs=()
for ds in dev_sweeps dev_normal_sweeps dev_screen_sweeps; do
    runs+=(--run "$DEV/devA/batch.json" "$DEV/$ds")
done
[[ -f $OUT/hard_A.csv ]] || python3 -m sonorisk.detector.hard_examples "${runs[@]}" \
    --groups "$DEV/groups_A.txt" --out "$OUT/hard_A.csv"
[[ -f $OUT/last.pt ]] || cp "$PREV/last.pt" "$OUT/last.pt"
if [[ ! -f $OUT/done ]]; then
    sonorisk train detector --data "$BUSI" --data runs/release/train_sweeps \
        --data runs/video_detector/train_normal_sweeps \
        --config configs/release/detector-video-hard.yaml --out "$OUT" --resume --no-progress
    touch "$OUT/done"
fi
[[ -f $OUT/eval_stills.json ]] || sonorisk eval detector --data "$BUSI" \
    --checkpoint "$OUT/last.pt" --groups configs/release/heldout_groups.txt \
    --threads 2 --no-progress --json "$OUT/eval_stills.json"
python3 -c "import json; d=json.load(open('$OUT/eval_stills.json')); print('held-out AP50', d['ap50'])"
# Split B with every track scored, as scripts/e2e_release.sh does for the rules.
B=$OUT/devB
if [[ ! -f $B/batch.done ]]; then
    python3 -m sonorisk.models.release --detector "$OUT/last.pt" \
        --classifier "$DEV/classifier_check.pt" --out "$OUT/bundle" --name sonorisk-busi \
        --version 1.3.0-dev --heldout-groups configs/release/heldout_groups.txt
    sonorisk batch --models "$OUT/bundle/sonorisk-busi/1.3.0-dev" \
        --config configs/release/pipeline-development.yaml --out "$B/batch.csv" \
        --workers 2 --threads 1 --no-progress \
        "$DEV/devB/dev_sweeps" "$DEV/devB/dev_normal_sweeps" "$DEV/devB/dev_screen_sweeps"
    touch "$B/batch.done"
fi
echo "done: compare $B/batch.json with $DEV/devB/batch.json (python -m sonorisk.eval.lesion_rules)"
