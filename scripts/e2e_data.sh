#!/usr/bin/env bash
# Development and evidence sweeps for the end-to-end rules (issue 14).
# Development: sweeps from the TRAINING groups (new seeds, 48 frames), used to
# choose the lesion-confidence threshold, the duplicate rule and the video risk
# rule. Evidence: the release's held-out sweeps plus 1920x1080 screen captures
# of the same held-out stills. Steps whose output exists are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
BUSI=${BUSI:-../shared/data/busi}
REL=${REL:-runs/release}
OUT=${OUT:-runs/e2e}
HELD=configs/release/heldout_groups.txt
export OMP_WAIT_POLICY=PASSIVE
mkdir -p "$OUT"
source scripts/lib/runs.sh
synth() {  # OUT_DIR GROUPS LABELS N SEED [EXTRA...]: 48-frame sweeps
    synth_once "$BUSI" "$1" "$2" "$3" "$4" 48 "${@:5}"
}
synth "$OUT/dev_sweeps" "$REL/train_groups.txt" benign,malignant 120 41
synth "$OUT/dev_normal_sweeps" "$REL/train_groups.txt" normal 60 42
synth "$OUT/dev_screen_sweeps" "$REL/train_groups.txt" benign,malignant 30 43 --screen-capture linear
synth "$OUT/heldout_screen_sweeps" "$HELD" benign,malignant 89 31 --screen-capture linear
synth "$OUT/heldout_normal_screen_sweeps" "$HELD" normal 19 32 --screen-capture convex
