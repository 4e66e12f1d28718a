#!/usr/bin/env bash
# Retrain the default model bundle (sonorisk-busi) from a fresh clone, on a CPU,
# with the project's own CLI, and measure its held-out figures:
#
#   bash scripts/setup.sh && bash scripts/release.sh [BUSI_DIR] [OUT_DIR]
#
# Defaults: ../shared/data/busi and runs/release. Steps whose output exists are
# skipped, so a stopped run continues where it left off (the detector and the
# classifier resume from their last epoch). CPU training is not bit-reproducible:
# expect the figures to move within their confidence intervals.
#
# 1. Held-out groups: fixed in configs/release/heldout_groups.txt (near-duplicate
#    groups of BUSI). Nothing made from their stills is trained on.
# 2. Detector: Faster R-CNN, EfficientNet-Lite0 FPN from ImageNet weights
#    (configs/release/detector.yaml), on the stills of the other groups.
# 3. Classifier: I3D-Lite0 from ImageNet weights (configs/release/classifier.yaml),
#    on 8-frame clips of sweeps synthesised from the training groups' stills.
# 4. Bundle: both models as float16 safetensors, metadata.json and a model card.
# 5. Held-out figures, measured on the bundle itself (after the float16
#    conversion): detector AP50/AP on held-out stills (no TTA), the classifier's
#    video AUC on ground-truth boxes of sweeps from held-out stills, and the
#    end-to-end video AUC through `sonorisk batch` on the same sweeps, and how
#    many real lung ultrasound clips (no breast at all) get a risk.
# 6. The figures go into the metadata and the card; the bundle is copied into
#    the package (sonorisk/bundled/) when INSTALL=1.
set -euo pipefail
cd "$(dirname "$0")/.."

BUSI=${1:-../shared/data/busi}
OUT=${2:-runs/release}
NAME=sonorisk-busi
VERSION=${VERSION:-1.0.0}
HELD=configs/release/heldout_groups.txt
# Training uses both cores; OpenMP must not spin-wait when another process
# shares them (see the performance notes in the README).
export OMP_WAIT_POLICY=PASSIVE
started=$(date +%s)
mkdir -p "$OUT"
source scripts/lib/runs.sh
say() { echo "[release $(( $(date +%s) - started ))s] $*"; }

# 1. The training groups: every group of the still folder that is not held out.
train_groups "$BUSI" "$OUT/train_groups.txt"

# 2. Detector (about 10 epochs x 6-8 min on 2 cores).
if [[ ! -f $OUT/detector/done ]]; then
    say "training the detector"
    sonorisk train detector --data "$BUSI" --config configs/release/detector.yaml \
        --out "$OUT/detector" --resume --no-progress
    touch "$OUT/detector/done"
fi

# 3. Classifier: one 24-frame sweep (three clips) per benign or malignant training still.
train_sweeps "$BUSI" "$OUT"
if [[ ! -f $OUT/classifier/done ]]; then
    say "training the classifier on the training sweeps ($OUT/train_sweeps)"
    resume=()
    [[ -f $OUT/classifier/last.pt ]] && resume=(--resume "$OUT/classifier/last.pt")
    sonorisk train classifier --data "$OUT/train_sweeps" --config configs/release/classifier.yaml \
        --out "$OUT/classifier" --threads 2 --no-progress "${resume[@]}"
    touch "$OUT/classifier/done"
fi

# Held-out sweeps: one per held-out lesion still, and lesion-free sweeps of the
# held-out normal stills.
n_lesion=$(count_stills "$BUSI" "$HELD" benign,malignant)
n_normal=$(count_stills "$BUSI" "$HELD" normal)
heldout_sweeps "$BUSI" "$OUT"

# 4. The bundle, without figures yet.
BUNDLE=$OUT/bundle/$NAME/$VERSION
export_bundle() {  # [METRICS_JSON]
    python3 -m sonorisk.models.release --detector "$OUT/detector/last.pt" \
        --classifier "$OUT/classifier/best.pt" --out "$OUT/bundle" --name "$NAME" \
        --version "$VERSION" --heldout-groups "$HELD" ${1:+--metrics "$1"}
}
[[ -f $BUNDLE/metadata.json ]] || export_bundle

# 5. Held-out figures of the bundle (float16 weights, as shipped).
EV=$OUT/eval
mkdir -p "$EV"
[[ -f $EV/detector_stills.json ]] || sonorisk eval detector --data "$BUSI" \
    --checkpoint "$BUNDLE" --groups "$HELD" --bootstrap 1000 --threads 2 --no-progress \
    --json "$EV/detector_stills.json"
[[ -f $EV/classifier_gt.csv ]] || sonorisk eval classifier --data "$OUT/heldout_sweeps" \
    --checkpoint "$BUNDLE" --name "$NAME" --threads 2 --out "$EV/classifier_gt.csv" \
    > "$EV/classifier_gt.json"
# (The batch CSV records the bundle's digest; the final export below rewrites the
# metadata, so a rerun after it would score everything again: skip once measured.)
if [[ ! -f $EV/metrics.json ]]; then
    say "end to end: sonorisk batch on $n_lesion + $n_normal held-out sweeps"
    sonorisk batch "$OUT/heldout_sweeps/videos" "$OUT/heldout_normal_sweeps/videos" \
        --models "$BUNDLE" --out "$EV/end_to_end.csv" --workers 2 --threads 1 --no-progress
fi
# Out of scope: real scanner video with no breast in it (lung clips, CC BY 4.0).
REAL=${REAL_VIDEO:-$(dirname "$BUSI")/real_ultrasound_video}
if [[ ! -f $EV/out_of_scope.csv && -d $REAL ]]; then
    say "out of scope: sonorisk batch on the real lung clips in $REAL"
    sonorisk batch "$REAL" --models "$BUNDLE" --out "$EV/out_of_scope.csv" --workers 2 \
        --threads 1 --no-progress
fi
oos=()
[[ -f $EV/out_of_scope.csv ]] && oos=(--out-of-scope "$EV/out_of_scope.csv")
python3 -m sonorisk.eval.heldout "${oos[@]}" --detector-eval "$EV/detector_stills.json" \
    --classifier-scores "$EV/classifier_gt.csv" --batch "$EV/end_to_end.csv" \
    --sweeps "$OUT/heldout_sweeps/videos.csv" \
    --lesion-free "$OUT/heldout_normal_sweeps/videos.csv" --out "$EV/metrics.json"

# 6. The figures into the metadata and the card.
rm -rf "$BUNDLE"
export_bundle "$EV/metrics.json"
sonorisk models verify "$BUNDLE"
if [[ ${INSTALL:-0} == 1 ]]; then
    rm -rf "sonorisk/bundled/$NAME"
    mkdir -p "sonorisk/bundled/$NAME"
    cp -r "$BUNDLE" "sonorisk/bundled/$NAME/$VERSION"
    sonorisk models verify "sonorisk/bundled/$NAME/$VERSION"
fi
say "done: $BUNDLE"
