#!/usr/bin/env bash
# Calipers, the clip classifier's side (issue 14: build for the shift). The
# released clip classifier moves when calipers are drawn on a held-out lesion
# (scripts/caliper_probe.py); cine filmed while scanning has none. The release
# recipe is trained twice on the release's training sweeps, side by side:
#
#   calipers: configs/release/classifier-calipers.yaml (calipers drawn on the
#             lesion of half the clips, whatever their class)
#   control:  configs/release/classifier.yaml (the release recipe as it is,
#             trained again: what another training run alone moves)
#
# and each is measured on the held-out sweeps' ground-truth boxes (`sonorisk
# eval classifier`, video AUC) and by the caliper probe.
#
#   bash scripts/classifier_calipers.sh   # ~13 min a run on 2 cores (2026-12-01); steps done are skipped
#   RUNS=calipers bash scripts/classifier_calipers.sh   # the candidate only
#
# What comes after (not here): the lesion check refitted for the classifier
# chosen (python -m sonorisk.video_classifier.lesion_check, as
# scripts/e2e_release.sh does), the rules refitted, and a bundle through
# scripts/rules_release.sh's steps.
set -euo pipefail
cd "$(dirname "$0")/.."
REL=${REL:-runs/release}
OUT=${OUT:-runs/classifier_calipers}
RUNS=${RUNS:-calipers control}
export OMP_WAIT_POLICY=PASSIVE
started=$(date +%s)
say() { echo "[classifier_calipers $(( $(date +%s) - started ))s] $*"; }
mkdir -p "$OUT"

for run in $RUNS; do
    config=configs/release/classifier.yaml
    [[ $run == calipers ]] && config=configs/release/classifier-calipers.yaml
    dir=$OUT/$run
    if [[ ! -f $dir/done ]]; then
        say "$run: training ($config)"
        resume=()
        [[ -f $dir/last.pt ]] && resume=(--resume "$dir/last.pt")
        sonorisk train classifier --data "$REL/train_sweeps" --config "$config" \
            --out "$dir" --threads 2 --no-progress "${resume[@]}"
        touch "$dir/done"
    fi
    [[ -f $dir/eval_gt.json ]] || sonorisk eval classifier --data "$REL/heldout_sweeps" \
        --checkpoint "$dir/best.pt" --name "$run" --threads 2 --out "$dir/eval_gt.csv" \
        > "$dir/eval_gt.json"
    [[ -f $dir/probe.json ]] || python3 scripts/caliper_probe.py --classifier "$dir/best.pt" \
        --out "$dir/probe.json" > "$dir/probe.log"
    python3 - "$dir/eval_gt.json" "$dir/probe.json" "$run" <<'PY'
import json, sys
gt, probe, name = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))["summary"], sys.argv[3]
aucs = " / ".join(f"{probe[s]['malignancy_auc']:.3f}" for s in ("none", "plus", "plus_line"))
shift = probe["plus"]["p_malignant_change"]
print(f"{name}: held-out sweeps, true boxes: video AUC {gt['auc_video']:.3f} on {gt['videos']}; "
      f"probe AUC none / + calipers / + lines {aucs}; P(malignant) change with calipers: "
      f"benign {shift['benign_mean']:+.3f}, malignant {shift['malignant_mean']:+.3f}")
PY
done
say "done"
