#!/usr/bin/env bash
# The bundled models end to end with the detector's flip test-time augmentation
# (`--detector-tta`: each frame also seen mirrored, the two views' boxes fused;
# twice the detector time). TTA changes the detector's scores, so the lesion
# rules (confidence model, threshold, video rule) are refitted for it on
# development split B (training groups), then the held-out figures are measured
# with them: the same steps as scripts/e2e_release.sh 5-6 and
# scripts/e2e_heldout.sh, for the released classifier with its lesion check.
#
#   bash scripts/tta_e2e.sh        # resumable: steps whose output exists are skipped
#
# Times on the 2-core machine: see docs/end-to-end.md ("Flip TTA").
set -euo pipefail
cd "$(dirname "$0")/.."
BUSI=${BUSI:-../shared/data/busi}
REL=${REL:-runs/release}
DATA=${DATA:-runs/e2e}
OUT=${OUT:-runs/tta}
MODELS=${MODELS:-sonorisk/bundled/sonorisk-busi/1.5.0}
export OMP_WAIT_POLICY=PASSIVE
started=$(date +%s)
say() { echo "[tta $(( $(date +%s) - started ))s] $*"; }
source scripts/lib/runs.sh
mkdir -p "$REL" "$OUT"

say "sweeps"
[[ -f $REL/train_groups.txt ]] || train_groups "$BUSI" "$REL/train_groups.txt"
OUT=$DATA bash scripts/e2e_data.sh
heldout_sweeps "$BUSI" "$REL"
split_dev_groups "$REL/train_groups.txt" "$DATA"
link_groups "$DATA" "$DATA/groups_B.txt" "$DATA/devB" dev_sweeps dev_normal_sweeps \
    dev_screen_sweeps

say "the detector's own held-out figures on stills, with TTA"
[[ -f $OUT/detector_stills.json ]] || sonorisk eval detector --data "$BUSI" \
    --checkpoint "$MODELS" --groups configs/release/heldout_groups.txt --threads 2 \
    --no-progress --tta --json "$OUT/detector_stills.json"

say "every track scored on development split B, with TTA"
batch "$OUT/devB/batch.csv" "$MODELS" --config configs/release/pipeline-development.yaml \
    --detector-tta "$DATA/devB/dev_sweeps" "$DATA/devB/dev_normal_sweeps" \
    "$DATA/devB/dev_screen_sweeps"
runs=()
for name in dev_sweeps dev_normal_sweeps dev_screen_sweeps; do
    runs+=(--run "$OUT/devB/batch.json" "$DATA/$name")
done
[[ -f $OUT/lesion_rules.json ]] || python3 -m sonorisk.eval.lesion_rules "${runs[@]}" \
    --out "$OUT/lesion_rules.json"
# The released rules on the same run: what refitting them for TTA gained.
[[ -f $OUT/released_rules.json ]] || python3 -m sonorisk.eval.lesion_rules "${runs[@]}" \
    --evaluate defaults --out "$OUT/released_rules.json"

say "held-out figures"
DETECTOR=$MODELS/detector.safetensors CLASSIFIER=$MODELS/classifier.safetensors \
    DETECTOR_EVAL=$OUT/detector_stills.json RULES=$OUT/lesion_rules.json \
    BATCH_ARGS=--detector-tta VERSION=1.5.0-tta REL=$REL OUT=$OUT DATA=$DATA \
    bash scripts/e2e_heldout.sh
say "done"
