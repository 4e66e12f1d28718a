#!/usr/bin/env bash
# Held-out figures of a pipeline config and runtime (docs/performance.md, "The
# CPU profile"): `sonorisk batch` on the held-out sweeps of the release (480x360,
# with and without a lesion), their 1920x1080 screen captures and the real lung
# clips, then `python -m sonorisk.eval.heldout`.
#
#   bash scripts/cpu_profile_heldout.sh                       # the CPU profile, onnx-int8
#   CFG=configs/pipeline-live-replay.yaml RT=onnx WORKERS=1 OUT=runs/live_replay_onnx \
#       SCREEN=0 bash scripts/cpu_profile_heldout.sh           # what a live stream gets
#
# Needs runs/release/heldout_sweeps and heldout_normal_sweeps (scripts/release.sh)
# and, for the screen captures, $SCREEN_DIR/heldout_screen_sweeps and
# heldout_normal_screen_sweeps (scripts/e2e_heldout.sh makes them). About 5 min
# on 2 cores for the CPU profile (the live replay is paced: about 5 min too).
# Steps whose output exists are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
CFG=${CFG:-configs/pipeline-cpu.yaml}
RT=${RT:-onnx-int8}
OUT=${OUT:-runs/cpu_profile}
WORKERS=${WORKERS:-2}
MODELS=${MODELS:-sonorisk-busi}
SCREEN=${SCREEN:-1}
SCREEN_DIR=${SCREEN_DIR:-runs/e2e_v3}
REL=${REL:-runs/release}
REAL=${REAL_VIDEO:-../shared/data/real_ultrasound_video}
export OMP_WAIT_POLICY=PASSIVE
mkdir -p "$OUT"
source scripts/lib/runs.sh
run() {  # OUT_CSV INPUTS...: lib/runs.sh's batch with this config and runtime, logged
    local csv=$1; shift
    BATCH_WORKERS=$WORKERS batch "$csv" "$MODELS" --config "$CFG" --runtime "$RT" "$@" \
        > "${csv%.csv}.log" 2>&1
}
run "$OUT/end_to_end.csv" "$REL/heldout_sweeps/videos" "$REL/heldout_normal_sweeps/videos"
run "$OUT/out_of_scope.csv" "$REAL"
args=(--sweeps "$REL/heldout_sweeps/videos.csv" --batch "$OUT/end_to_end.csv"
      --lesion-free "$REL/heldout_normal_sweeps/videos.csv"
      --out-of-scope "$OUT/out_of_scope.csv" --out "$OUT/figures.json")
if [[ $SCREEN == 1 ]]; then
    run "$OUT/screen.csv" "$SCREEN_DIR/heldout_screen_sweeps/videos" \
        "$SCREEN_DIR/heldout_normal_screen_sweeps/videos"
    args+=(--screen-batch "$OUT/screen.csv"
           --screen-sweeps "$SCREEN_DIR/heldout_screen_sweeps/videos.csv"
           --screen-lesion-free "$SCREEN_DIR/heldout_normal_screen_sweeps/videos.csv")
fi
python3 -m sonorisk.eval.heldout "${args[@]}"
echo "figures: $OUT/figures.json"
