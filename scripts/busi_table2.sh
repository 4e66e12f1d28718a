#!/usr/bin/env bash
# The shape of WAUVE's Table 2 on sweeps made from BUSI stills: video-level AUC
# with 95% CIs (DeLong) for I3D, TimeSformer, the static ResNet-50 with each of
# the paper's three input patterns, and deep features + PCA + RBF-SVM, all on
# one group-aware held-out test split, then DeLong tests against I3D.
#
#   bash scripts/busi_table2.sh [BUSI_DIR] [OUT_DIR]
#
# Defaults: ../shared/data/busi and runs/table2. Every model is trained from
# random init on this machine's CPU (nothing can be downloaded here), with the
# configs/classifier_busi_*.yaml settings; steps whose output exists are skipped,
# so a stopped run continues where it left off. Synthetic sweeps of real stills:
# a development benchmark, not a clinical validation (the report says so).
set -euo pipefail
cd "$(dirname "$0")/.."

BUSI=${1:-../shared/data/busi}
OUT=${2:-runs/table2}
THREADS=${THREADS:-1}
export OMP_NUM_THREADS=$THREADS
mkdir -p "$OUT/models"

# 1. One 24-frame sweep (three 8-frame clips) per benign or malignant still.
if [[ ! -f "$OUT/sweeps/videos.csv" ]]; then
    n=$(awk -F, 'NR > 1 && ($2 == "benign" || $2 == "malignant")' "$BUSI/manifest.csv" | wc -l)
    sonorisk synth --source "$BUSI" --labels benign,malignant --n "$n" --frames 24 \
        --size 320x240 --seed 7 --out "$OUT/sweeps"
fi
# 2. Group-aware split: near-duplicate stills never straddle train/val/test.
[[ -f "$OUT/splits.csv" ]] || sonorisk dataset split "$OUT/sweeps" --by group \
    --val 0.15 --test 0.25 --seed 0 --out "$OUT/splits.csv"

train() {  # name, config, extra flags...
    local name=$1 config=$2
    shift 2
    [[ -f "$OUT/models/$name/last.pt" ]] && return 0
    sonorisk train classifier --data "$OUT/sweeps" --config "$config" \
        --split-file "$OUT/splits.csv" --out "$OUT/models/$name" --threads "$THREADS" \
        --no-progress "$@" | tee "$OUT/models/$name.json"
}
# 3. Models. Each keeps the epoch with the best validation video AUC (best.pt).
#    The static ResNet-50 comes first: with no ImageNet/Kinetics file here, its
#    backbone (trained on the same train split) seeds the main I3D by 2D->3D
#    inflation and gives PCA+SVM its deep features. I3D from random init is
#    kept as a row of its own.
train static2d configs/classifier_busi_static2d_cpu.yaml
train i3d configs/classifier_busi_i3d_inflated_cpu.yaml --weights "$OUT/models/static2d/best.pt"
train i3d-random configs/classifier_busi_cpu.yaml
train timesformer configs/classifier_busi_timesformer_cpu.yaml
train pca-svm configs/classifier_busi_pca_svm.yaml --weights "$OUT/models/static2d/best.pt"

# 4. Video-level scores on the test split, one table for all models.
score() {  # checkpoint, name, extra flags...
    local ckpt=$1 name=$2
    shift 2
    sonorisk eval classifier --data "$OUT/sweeps" --checkpoint "$ckpt" --name "$name" \
        --split-file "$OUT/splits.csv" --split test --threads "$THREADS" \
        --out "$OUT/test_scores.csv" "$@" > "$OUT/models/eval_$name.json"
}
score "$OUT/models/i3d/best.pt" I3D
score "$OUT/models/i3d-random/best.pt" "I3D (random init)"
score "$OUT/models/timesformer/best.pt" TimeSformer
score "$OUT/models/static2d/best.pt" "ResNet50 key frame" --pattern key_frame
score "$OUT/models/static2d/best.pt" "ResNet50 two key frames" --pattern two_key_frames
score "$OUT/models/static2d/best.pt" "ResNet50 all ROI frames" --pattern all_frames
score "$OUT/models/pca-svm/last.pt" "PCA+SVM"

# 5. The report: AUC with 95% CI per model, DeLong tests against I3D.
python3 - "$OUT/test_scores.csv" "$OUT/test_truth.csv" <<'EOF'
import sys, pandas as pd
scores = pd.read_csv(sys.argv[1])
scores.drop_duplicates("id")[["id", "truth"]].to_csv(sys.argv[2], index=False)
EOF
sonorisk eval report "$OUT/test_scores.csv" --truth "$OUT/test_truth.csv" \
    --reference-model I3D --out "$OUT/report" \
    --note "Synthetic sweeps made from BUSI stills, group-aware split. No ImageNet or \
Kinetics weights: every model learned from this train split alone (the main I3D is \
inflated from the static ResNet-50 trained on it). A development benchmark, not a \
clinical validation."
echo "Table 2 report: $OUT/report"
