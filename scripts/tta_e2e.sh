#!/usr/bin/env bash
# The bundled models end to end with the detector's flip test-time augmentation
# (`--detector-tta`: each frame also seen mirrored, the two views' boxes fused;
# twice the detector time), against the same models without it. TTA changes the
# detector's scores, so the lesion rules (confidence model, threshold, video
# rule) are refitted for it on development split B (training groups), as
# scripts/e2e_release.sh does. Every run scores every track
# (configs/release/pipeline-development.yaml), so any rules apply offline
# (`python -m sonorisk.eval.lesion_rules --evaluate`, which gives what
# `sonorisk batch` with those rules gives): the released rules and the refitted
# ones, on split B with and without TTA and on the held-out sweeps with TTA
# (and, to check the files are the card's, 1.5.0 without it).
#
#   bash scripts/tta_e2e.sh        # resumable: steps whose output exists are skipped
#
# Figures and times: docs/end-to-end.md ("Flip TTA").
set -euo pipefail
cd "$(dirname "$0")/.."
BUSI=${BUSI:-../shared/data/busi}
REL=${REL:-runs/release}
DATA=${DATA:-runs/e2e}
OUT=${OUT:-runs/tta}
MODELS=${MODELS:-sonorisk/bundled/sonorisk-busi/1.5.0}
REAL=${REAL_VIDEO:-../shared/data/real_ultrasound_video}
DEV_CONFIG=configs/release/pipeline-development.yaml
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

DEV=("$DATA/devB/dev_sweeps" "$DATA/devB/dev_normal_sweeps" "$DATA/devB/dev_screen_sweeps")
say "every track scored on development split B, with TTA"
batch "$OUT/devB/batch.csv" "$MODELS" --config "$DEV_CONFIG" --detector-tta "${DEV[@]}"
say "every track scored on development split B, without TTA"
batch "$OUT/devB_plain/batch.csv" "$MODELS" --config "$DEV_CONFIG" "${DEV[@]}"

# runs_of JSON_DIR NAME...: --run pairs for lesion_rules (that run on those datasets).
runs_of() {
    local dir=$1; shift
    for name in "$@"; do printf -- '--run\n%s\n%s\n' "$dir" "$DATA/$name"; done
}
mapfile -t TTA_B < <(runs_of "$OUT/devB/batch.json" dev_sweeps dev_normal_sweeps dev_screen_sweeps)
mapfile -t PLAIN_B < <(runs_of "$OUT/devB_plain/batch.json" dev_sweeps dev_normal_sweeps \
    dev_screen_sweeps)
rules() {  # OUT_JSON RUN_ARGS...: fit (or, with --evaluate, apply) the rules
    local out=$1; shift
    [[ -f $out ]] || python3 -m sonorisk.eval.lesion_rules "$@" --out "$out" > /dev/null
}
rules "$OUT/lesion_rules.json" "${TTA_B[@]}"
rules "$OUT/devB_released.json" "${TTA_B[@]}" --evaluate defaults
rules "$OUT/devB_plain_refit.json" "${PLAIN_B[@]}"
rules "$OUT/devB_plain_released.json" "${PLAIN_B[@]}" --evaluate defaults

say "held-out sweeps, every track scored, with TTA"
batch "$OUT/heldout/batch.csv" "$MODELS" --config "$DEV_CONFIG" --detector-tta \
    "$REL/heldout_sweeps/videos" "$REL/heldout_normal_sweeps/videos"
batch "$OUT/heldout_screen/batch.csv" "$MODELS" --config "$DEV_CONFIG" --detector-tta \
    "$DATA/heldout_screen_sweeps/videos" "$DATA/heldout_normal_screen_sweeps/videos"
batch "$OUT/lung/batch.csv" "$MODELS" --config "$DEV_CONFIG" --detector-tta "$REAL"
say "held-out sweeps, every track scored, without TTA (the same files as the card's?)"
batch "$OUT/heldout_plain/batch.csv" "$MODELS" --config "$DEV_CONFIG" \
    "$REL/heldout_sweeps/videos" "$REL/heldout_normal_sweeps/videos"
rules "$OUT/heldout_plain_released.json" --run "$OUT/heldout_plain/batch.json" \
    "$REL/heldout_sweeps" --run "$OUT/heldout_plain/batch.json" "$REL/heldout_normal_sweeps" \
    --evaluate defaults
say "the detector per frame on the held-out sweeps (every 4th frame), without and with TTA"
for tta in "" --tta; do
    name=sweeps_${tta:-plain}; name=${name/--/}
    [[ -f $OUT/$name.json ]] || sonorisk eval detector --data "$REL/heldout_sweeps" \
        --data "$REL/heldout_normal_sweeps" --checkpoint "$MODELS" --stride 4 --threads 2 \
        --no-progress $tta --json "$OUT/$name.json" > "$OUT/$name.log"
done

say "held-out figures of each rule set"
for rules_file in defaults "$OUT/lesion_rules.json"; do
    name=$([[ $rules_file == defaults ]] && echo released || echo refit)
    rules "$OUT/heldout_$name.json" --run "$OUT/heldout/batch.json" "$REL/heldout_sweeps" \
        --run "$OUT/heldout/batch.json" "$REL/heldout_normal_sweeps" --evaluate "$rules_file"
    rules "$OUT/heldout_screen_$name.json" \
        --run "$OUT/heldout_screen/batch.json" "$DATA/heldout_screen_sweeps" \
        --run "$OUT/heldout_screen/batch.json" "$DATA/heldout_normal_screen_sweeps" \
        --evaluate "$rules_file"
    python3 - "$OUT/lung/batch.json" "$rules_file" <<'PY'
import json, sys
from pathlib import Path
from sonorisk.eval.lesion_rules import dev_lesion, load_rules
from sonorisk.pipeline.lesions import confidence_of
rules = load_rules(sys.argv[2])
for path in sorted(Path(sys.argv[1]).glob("*.json")):
    lesions = [dev_lesion(e, False, path) for e in json.loads(path.read_text())["lesions"]]
    conf = [confidence_of(les.evidence, rules.confidence) for les in lesions]
    scored = sum(c >= rules.min_confidence and bool(les.clips) for c, les in zip(conf, lesions))
    print(f"lung {sys.argv[2]}: {path.stem} scored {scored}, most confident "
          f"{max(conf, default=0):.3f} (threshold {rules.min_confidence})")
PY
done
say "done"
