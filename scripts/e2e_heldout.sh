#!/usr/bin/env bash
# Held-out figures of the end-to-end release (after scripts/e2e_release.sh, with
# the chosen lesion rules as sonorisk's defaults): `sonorisk batch` with default
# settings on sweeps of held-out BUSI stills (480x360 and 1920x1080 screen
# captures, with and without a lesion) and on real lung ultrasound clips; then
# the bundle is exported with its figures (INSTALL=1 copies it into the package).
#
#   bash scripts/e2e_heldout.sh
#
# The detector and the classifier's malignancy head are those of 1.0.0, so their
# own held-out figures (runs/release/eval) carry over. Steps whose output exists
# are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
REL=${REL:-runs/release}
OUT=${OUT:-runs/e2e}
NAME=sonorisk-busi
VERSION=${VERSION:-1.1.0}
DETECTOR=${DETECTOR:-$REL/detector/last.pt}
# The detector's own held-out figures on stills (sonorisk eval detector --json).
DETECTOR_EVAL=${DETECTOR_EVAL:-$REL/eval/detector_stills.json}
CLASSIFIER_GT=${CLASSIFIER_GT:-$REL/eval/classifier_gt.csv}
# The classifier with its lesion check (scripts/e2e_release.sh fits it), and
# where the screen-capture sweeps are (scripts/e2e_data.sh; they do not depend
# on the models). Another detector with the released classifier, for example:
#   DETECTOR=runs/lite2_video/last.pt OUT=runs/e2e_lite2 DATA=runs/e2e VERSION=1.5.0 \
#       CLASSIFIER=sonorisk/bundled/sonorisk-busi/1.4.0/classifier.safetensors \
#       RULES=runs/e2e_lite2/lesion_rules.json bash scripts/e2e_heldout.sh
CLASSIFIER=${CLASSIFIER:-$OUT/classifier_check.pt}
DATA=${DATA:-$OUT}
HELD=configs/release/heldout_groups.txt
REAL=${REAL_VIDEO:-../shared/data/real_ultrasound_video}
export OMP_WAIT_POLICY=PASSIVE
started=$(date +%s)
source scripts/lib/runs.sh
say() { echo "[heldout $(( $(date +%s) - started ))s] $*"; }
EV=$OUT/eval
mkdir -p "$EV"
# A candidate whose rules are not yet sonorisk's defaults: RULES=lesion_rules.json
# measures it with the chosen rules written as a config (the same numbers the
# defaults give once they are set to them).
RULES=${RULES:-}
CONFIG_ARGS=()
# Settings of the run itself, for example the detector's flip TTA:
#   BATCH_ARGS=--detector-tta (scripts/tta_e2e.sh)
read -r -a EXTRA <<< "${BATCH_ARGS:-}"
if [[ -n $RULES ]]; then
    python3 - "$RULES" "$OUT/rules.yaml" <<'PY'
import json, sys
import yaml
chosen = json.load(open(sys.argv[1]))["chosen"]
lesions = {k: chosen[k] for k in ("min_confidence", "risk_rule", "confidence")}
yaml.safe_dump({"lesions": lesions}, open(sys.argv[2], "w"), sort_keys=False)
PY
    CONFIG_ARGS=(--config "$OUT/rules.yaml")
fi
CONFIG_ARGS+=("${EXTRA[@]}")
export_bundle() {  # [METRICS_JSON]
    python3 -m sonorisk.models.release --detector "$DETECTOR" \
        --classifier "$CLASSIFIER" --out "$OUT/bundle" --name "$NAME" \
        --version "$VERSION" --heldout-groups "$HELD" ${1:+--metrics "$1"}
}
BUNDLE=$OUT/bundle/$NAME/$VERSION
[[ -f $BUNDLE/metadata.json ]] || export_bundle
say "held-out sweeps (480x360)"
batch "$EV/end_to_end.csv" "$BUNDLE" "${CONFIG_ARGS[@]}" \
    "$REL/heldout_sweeps/videos" "$REL/heldout_normal_sweeps/videos"
say "held-out screen captures (1920x1080)"
batch "$EV/screen.csv" "$BUNDLE" "${CONFIG_ARGS[@]}" "$DATA/heldout_screen_sweeps/videos" \
    "$DATA/heldout_normal_screen_sweeps/videos"
say "out of scope: real lung clips"
batch "$EV/out_of_scope.csv" "$BUNDLE" "${CONFIG_ARGS[@]}" "$REAL"
# The detector's and the classifier's own figures, where their runs are here
# (a candidate detector measured end to end only has no runs/release/eval).
OWN=()
[[ -f $DETECTOR_EVAL ]] && OWN+=(--detector-eval "$DETECTOR_EVAL")
[[ -f $CLASSIFIER_GT ]] && OWN+=(--classifier-scores "$CLASSIFIER_GT")
python3 -m sonorisk.eval.heldout "${OWN[@]}" --sweeps "$REL/heldout_sweeps/videos.csv" \
    --batch "$EV/end_to_end.csv" --lesion-free "$REL/heldout_normal_sweeps/videos.csv" \
    --screen-batch "$EV/screen.csv" --screen-sweeps "$DATA/heldout_screen_sweeps/videos.csv" \
    --screen-lesion-free "$DATA/heldout_normal_screen_sweeps/videos.csv" \
    --out-of-scope "$EV/out_of_scope.csv" --out "$EV/metrics.json"
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
