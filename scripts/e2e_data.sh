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
synth() {  # OUT_DIR GROUPS LABELS N SEED [EXTRA...]
    local dir=$1 groups=$2 labels=$3 n=$4 seed=$5; shift 5
    [[ -f $dir/videos.csv ]] || sonorisk synth --source "$BUSI" --groups "$groups" \
        --labels "$labels" --n "$n" --frames 48 --seed "$seed" --out "$dir" "$@" > /dev/null
}
synth "$OUT/dev_sweeps" "$REL/train_groups.txt" benign,malignant 120 41
synth "$OUT/dev_normal_sweeps" "$REL/train_groups.txt" normal 60 42
synth "$OUT/dev_screen_sweeps" "$REL/train_groups.txt" benign,malignant 30 43 --screen-capture linear
synth "$OUT/heldout_screen_sweeps" "$HELD" benign,malignant 89 31 --screen-capture linear
synth "$OUT/heldout_normal_screen_sweeps" "$HELD" normal 19 32 --screen-capture convex
