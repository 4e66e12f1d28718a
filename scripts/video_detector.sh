#!/usr/bin/env bash
# Next step of issue 14: a detector trained for video, with hard negatives.
# Continues the released detector (runs/release/detector/last.pt) for two epochs
# on the training groups' stills plus frames of synthetic sweeps of those groups
# (lesion sweeps: runs/release/train_sweeps; lesion-free sweeps: new, from the
# training normals). Then measures what matters before any release: held-out
# AP50 on stills, and the false tracks on the development sweeps of split B.
#
#   bash scripts/video_detector.sh
#
# START (a checkpoint to continue; default the release's) and CONFIG (default
# configs/release/detector-video.yaml) train another detector the same way, e.g.
# the Lite2 one (configs/release/detector-lite2-video.yaml). The training groups'
# lesion sweeps are made here when scripts/release.sh has not made them.
#
# To release it, rerun scripts/e2e_release.sh and scripts/e2e_heldout.sh with
# its checkpoint in place of runs/release/detector/last.pt (the lesion check
# and the lesion rules must be refitted for a new detector).
set -euo pipefail
cd "$(dirname "$0")/.."
BUSI=${BUSI:-../shared/data/busi}
REL=${REL:-runs/release}
OUT=${OUT:-runs/video_detector}
START=${START:-$REL/detector/last.pt}
CONFIG=${CONFIG:-configs/release/detector-video.yaml}
export OMP_WAIT_POLICY=PASSIVE
mkdir -p "$OUT"
source scripts/lib/runs.sh
train_sweeps "$BUSI" "$REL"  # made by scripts/release.sh, or here when it has not run
synth_once "$BUSI" "$OUT/train_normal_sweeps" "$REL/train_groups.txt" normal \
    "$(count_stills "$BUSI" "$REL/train_groups.txt" normal)" 24 22
# Start from START (the release's last.pt: resumed at epoch 11 of 12).
[[ -f $OUT/last.pt ]] || cp "$START" "$OUT/last.pt"
if [[ ! -f $OUT/done ]]; then
    sonorisk train detector --data "$BUSI" --data "$REL/train_sweeps" \
        --data "$OUT/train_normal_sweeps" --config "$CONFIG" \
        --out "$OUT" --resume --no-progress
    touch "$OUT/done"
fi
[[ -f $OUT/eval_stills.json ]] || sonorisk eval detector --data "$BUSI" \
    --checkpoint "$OUT/last.pt" --groups configs/release/heldout_groups.txt \
    --threads 2 --no-progress --json "$OUT/eval_stills.json"
python3 -c "import json; d=json.load(open('$OUT/eval_stills.json')); print('held-out AP50', d['ap50'])"
