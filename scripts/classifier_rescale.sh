#!/usr/bin/env bash
# The clip classifier retrained with resampling augmentation (issue 14; docs/
# end-to-end.md, "The lesion check is fragile to how small video was made"):
# the release recipe (configs/release/classifier.yaml) plus
# train.augment.resample_prob 0.5 (configs/release/classifier-rescale.yaml), on
# the release's training sweeps; then its video AUC on ground-truth boxes of the
# held-out sweeps at 480x360 and at 320x240 (scripts/resolution_shift.sh's
# sweeps), beside the released classifier's.
#
#   bash scripts/classifier_rescale.sh   # ~30 min training + ~8 min evaluation, 2 cores
#
# Resumable: training resumes from last.pt; steps whose output exists are skipped.
# What comes after (not here yet): the lesion check refitted for this classifier
# on development split A (python -m sonorisk.video_classifier.lesion_check, as
# scripts/e2e_release.sh does), the rules refitted on split B, then a bundle
# through scripts/rules_release.sh's steps, and its held-out figures at
# several sizes and with sweeps scaled down after rendering.
set -euo pipefail
cd "$(dirname "$0")/.."
REL=${REL:-runs/release}
OUT=${OUT:-runs/classifier_rescale}
SMALL=${SMALL:-runs/resolution_shift/320x240}
export OMP_WAIT_POLICY=PASSIVE
started=$(date +%s)
say() { echo "[rescale $(( $(date +%s) - started ))s] $*"; }
mkdir -p "$OUT/eval"
[[ -f $SMALL/sweeps/videos.csv ]] || SIZE=320x240 OUT=$SMALL bash scripts/resolution_shift.sh

if [[ ! -f $OUT/classifier/done ]]; then
    say "training"
    resume=()
    [[ -f $OUT/classifier/last.pt ]] && resume=(--resume "$OUT/classifier/last.pt")
    sonorisk train classifier --data "$REL/train_sweeps" \
        --config configs/release/classifier-rescale.yaml --out "$OUT/classifier" --threads 2 \
        --no-progress "${resume[@]}"
    touch "$OUT/classifier/done"
fi
evaluate() {  # NAME CHECKPOINT DATASET
    [[ -f $OUT/eval/$1.json ]] || sonorisk eval classifier --data "$3" --checkpoint "$2" \
        --name "$1" --threads 2 --out "$OUT/eval/$1.csv" > "$OUT/eval/$1.json"
}
say "evaluating on ground-truth boxes"
evaluate rescale-480 "$OUT/classifier/best.pt" "$REL/heldout_sweeps"
evaluate rescale-320 "$OUT/classifier/best.pt" "$SMALL/sweeps"
evaluate released-480 sonorisk-busi "$REL/heldout_sweeps"
evaluate released-320 sonorisk-busi "$SMALL/sweeps"
for name in released-480 rescale-480 released-320 rescale-320; do
    python3 - "$OUT/eval/$name.json" "$name" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print(f"{sys.argv[2]}: video AUC {d['auc_video']:.3f} on {d['videos']} sweeps ({d['malignant']} malignant)")
PY
done
say "done"
