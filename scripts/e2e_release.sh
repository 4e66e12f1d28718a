#!/usr/bin/env bash
# The end-to-end rules of the default bundle (issue 14), after scripts/release.sh:
# a "not a lesion" check fitted beside the clip classifier, the lesion
# confidence model, its threshold and the video risk rule, all chosen on
# development sweeps from TRAINING groups; then the held-out figures, measured
# with the chosen defaults through `sonorisk batch`.
#
#   bash scripts/release.sh && bash scripts/e2e_release.sh
#
# Development groups are split in two by a hash of the group name: A trains the
# lesion check (with the false tracks the pipeline makes on A), B chooses the
# confidence model, threshold and rule. Held-out groups are never used to choose.
# Steps whose output exists are skipped.
#
# Another detector (the one trained for video, scripts/video_detector.sh):
#   DETECTOR=runs/video_detector2/last.pt OUT=runs/e2e_v2 VERSION=1.2.0 \
#       DATA=runs/e2e bash scripts/e2e_release.sh
# (DATA: where the development sweeps already are; they do not depend on the models.)
# Without the release's training run (runs/release/classifier), the released
# classifier refits its check for another detector:
#   CLASSIFIER=sonorisk/bundled/sonorisk-busi/1.4.0/classifier.safetensors ...
set -euo pipefail
cd "$(dirname "$0")/.."
BUSI=${BUSI:-../shared/data/busi}
REL=${REL:-runs/release}
OUT=${OUT:-runs/e2e}
NAME=sonorisk-busi
VERSION=${VERSION:-1.1.0}
DETECTOR=${DETECTOR:-$REL/detector/last.pt}
CLASSIFIER=${CLASSIFIER:-$REL/classifier/best.pt}
DATA=${DATA:-$OUT}
HELD=configs/release/heldout_groups.txt
export OMP_WAIT_POLICY=PASSIVE
started=$(date +%s)
say() { echo "[e2e $(( $(date +%s) - started ))s] $*"; }
source scripts/lib/runs.sh

# 1. Sweeps: development (training groups, new seeds) and held-out screen captures.
OUT=$DATA bash scripts/e2e_data.sh
mkdir -p "$OUT"
if [[ $DATA != "$OUT" ]]; then
    for name in dev_sweeps dev_normal_sweeps dev_screen_sweeps heldout_screen_sweeps \
            heldout_normal_screen_sweeps; do
        [[ -e $OUT/$name ]] || ln -s "$(realpath "$DATA/$name")" "$OUT/$name"
    done
fi

# 2. Development groups split A/B by a hash of the group name.
split_dev_groups "$REL/train_groups.txt" "$OUT"
for split in A B; do
    link_groups "$OUT" "$OUT/groups_$split.txt" "$OUT/dev$split" dev_sweeps dev_normal_sweeps \
        dev_screen_sweeps
done

# 3. The pipeline's own false tracks on A: this detector with the release's
# classifier, every track scored (a classifier that already has a check would
# otherwise leave its unconfident tracks out of the JSON).
if [[ $DETECTOR == "$REL/detector/last.pt" ]]; then
    BASE=$REL/bundle/$NAME/1.0.0
    [[ -d $BASE ]] || BASE=sonorisk/bundled/$NAME/1.0.0
else
    BASE=$OUT/base_bundle/$NAME/$VERSION
    [[ -f $BASE/metadata.json ]] || python3 -m sonorisk.models.release --detector "$DETECTOR" \
        --classifier "$CLASSIFIER" --out "$OUT/base_bundle" --version "$VERSION"
fi
say "tracks on development split A"
batch "$OUT/devA/batch.csv" "$BASE" --config configs/release/pipeline-development.yaml \
    "$OUT/devA/dev_sweeps" "$OUT/devA/dev_normal_sweeps" "$OUT/devA/dev_screen_sweeps"

# 4. The lesion check: lesions vs background and false tracks, groups A only.
say "the lesion check"
fit_lesion_check "$CLASSIFIER" "$OUT" "$REL" "$OUT/classifier_check.pt"

# 5. A bundle with the check (no figures yet), run on B with every track scored.
DEV_BUNDLE=$OUT/dev_bundle/$NAME/$VERSION
[[ -f $DEV_BUNDLE/metadata.json ]] || python3 -m sonorisk.models.release \
    --detector "$DETECTOR" --classifier "$OUT/classifier_check.pt" \
    --out "$OUT/dev_bundle" --version "$VERSION"
say "every track scored on development split B"
batch "$OUT/devB/batch.csv" "$DEV_BUNDLE" --config configs/release/pipeline-development.yaml \
    "$OUT/devB/dev_sweeps" "$OUT/devB/dev_normal_sweeps" "$OUT/devB/dev_screen_sweeps"

# 6. Confidence model, threshold and video rule from B.
[[ -f $OUT/lesion_rules.json ]] || python3 -m sonorisk.eval.lesion_rules \
    --run "$OUT/devB/batch.json" "$OUT/dev_sweeps" \
    --run "$OUT/devB/batch.json" "$OUT/dev_normal_sweeps" \
    --run "$OUT/devB/batch.json" "$OUT/dev_screen_sweeps" --out "$OUT/lesion_rules.json"
echo "The chosen rules are in $OUT/lesion_rules.json: they must equal the defaults of"
echo "sonorisk.pipeline.lesions.LesionRules (tests/models/test_release.py checks the bundle's)."
