#!/usr/bin/env bash
# The lesion check refitted with copies of its tracks as another export would
# give them (issue 14; docs/end-to-end.md, "The lesion check is fragile to how
# the video was encoded"): the released check's recipe (scripts/e2e_release.sh
# step 4, development split A) plus one copy of every track cut from its frames
# scaled by 0.5-1 and JPEG-compressed again at quality 30-95 (`--export-copies
# 1`), the rules refitted on split B, and the released and the candidate check
# compared on split B as rendered and scaled down after rendering (`sonorisk dataset rescale`). Held-out groups are
# not touched here.
#
#   bash scripts/check_rescale.sh   # ~40 min on an idle 2-core machine
#   SCALED=runs/check_rescale/scaled-q10 QSCALE=10 bash scripts/check_rescale.sh
#       # the same on copies written at MJPEG q 10 (~20 min more)
#
# runs/check_rescale/scaled was written before the writer was fixed: its copies
# are rate-controlled MJPEG, each frame more compressed than the last.
#
# Steps whose output exists are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
DEV=${DEV:-runs/e2e_v2}
REL=${REL:-runs/release}
OUT=${OUT:-runs/check_export}
SCALED=${SCALED:-runs/check_rescale/scaled}  # split B scaled, and the released check's run on it
DETECTOR=${DETECTOR:-runs/video_detector2/last.pt}
SCALE=${SCALE:-0.667}
QSCALE=${QSCALE:-}  # the scaled copies' MJPEG quantiser (empty: the writer's, 3)
KIND=$(basename "$SCALED")  # names the runs and figures on those copies
NAME=sonorisk-busi
export OMP_WAIT_POLICY=PASSIVE
started=$(date +%s)
say() { echo "[check-rescale $(( $(date +%s) - started ))s] $*"; }
mkdir -p "$OUT"
source scripts/lib/runs.sh

# 1. The check on split A: the released recipe, with copies as another export.
say "the lesion check, with copies of every track as another export"
fit_lesion_check "$REL/classifier/best.pt" "$DEV" "$REL" "$OUT/classifier_check.pt" \
    --export-copies 1 --export-min-scale 0.5 --export-min-quality 30

# 2. A development bundle with the candidate check (the released detector).
CAND=$OUT/dev_bundle/$NAME/1.5.0
[[ -f $CAND/metadata.json ]] || python3 -m sonorisk.models.release --detector "$DETECTOR" \
    --classifier "$OUT/classifier_check.pt" --out "$OUT/dev_bundle" --version 1.5.0 > /dev/null
RELEASED=$DEV/dev_bundle/$NAME/1.2.0  # the released check (1.2.0 to 1.4.0 ship it)

# 3. Split B's sweeps scaled down after rendering (and its folders of links).
for name in dev_sweeps dev_normal_sweeps; do
    [[ -f $SCALED/$name/videos.csv ]] || sonorisk dataset rescale --data "$DEV/$name" \
        --scale "$SCALE" ${QSCALE:+--qscale "$QSCALE"} --out "$SCALED/$name" \
        --no-progress > /dev/null
done
link_groups "$SCALED" "$DEV/groups_B.txt" "$SCALED/devB" dev_sweeps dev_normal_sweeps

# 4. Every track scored on split B: the candidate as rendered, both checks scaled.
DEVCFG=configs/release/pipeline-development.yaml
say "split B as rendered, candidate check"
batch "$OUT/devB/candidate.csv" "$CAND" --config "$DEVCFG" \
    "$DEV/devB/dev_sweeps" "$DEV/devB/dev_normal_sweeps" "$DEV/devB/dev_screen_sweeps"
say "split B scaled by $SCALE, candidate check"
batch "$OUT/${KIND}_devB/candidate.csv" "$CAND" --config "$DEVCFG" \
    "$SCALED/devB/dev_sweeps" "$SCALED/devB/dev_normal_sweeps"
say "split B scaled by $SCALE, released check"
batch "$SCALED/devB/released.csv" "$RELEASED" --config "$DEVCFG" \
    "$SCALED/devB/dev_sweeps" "$SCALED/devB/dev_normal_sweeps"

# 5. The rules for the candidate, on split B as rendered.
[[ -f $OUT/lesion_rules.json ]] || python3 -m sonorisk.eval.lesion_rules \
    --run "$OUT/devB/candidate.json" "$DEV/dev_sweeps" \
    --run "$OUT/devB/candidate.json" "$DEV/dev_normal_sweeps" \
    --run "$OUT/devB/candidate.json" "$DEV/dev_screen_sweeps" \
    --out "$OUT/lesion_rules.json" > /dev/null

# 6. Both, as rendered and scaled: the released check with sonorisk's rules, the
# candidate with its own.
evaluate() {  # NAME RULES JSON_DIR SWEEPS NORMAL [SCREEN]
    local name=$1 rules=$2 dir=$3; shift 3
    local runs=()
    for root in "$@"; do runs+=(--run "$dir" "$root"); done
    [[ -f $OUT/eval/$name.json ]] || python3 -m sonorisk.eval.lesion_rules "${runs[@]}" \
        --evaluate "$rules" --out "$OUT/eval/$name.json" > /dev/null
}
mkdir -p "$OUT/eval"
evaluate released-rendered defaults "$DEV/devB/batch.json" "$DEV/dev_sweeps" "$DEV/dev_normal_sweeps"
evaluate candidate-rendered "$OUT/lesion_rules.json" "$OUT/devB/candidate.json" \
    "$DEV/dev_sweeps" "$DEV/dev_normal_sweeps"
evaluate "released-$KIND" defaults "$SCALED/devB/released.json" \
    "$SCALED/dev_sweeps" "$SCALED/dev_normal_sweeps"
evaluate "candidate-$KIND" "$OUT/lesion_rules.json" "$OUT/${KIND}_devB/candidate.json" \
    "$SCALED/dev_sweeps" "$SCALED/dev_normal_sweeps"
python3 - "$OUT/eval" "$KIND" <<'PY'
import json, sys
print(f"{'split B (no screen captures)':32} exactly-one  given-risk  false/free  AUC")
kind = sys.argv[2]
for name in ("released-rendered", "candidate-rendered", f"released-{kind}", f"candidate-{kind}"):
    d = json.load(open(f"{sys.argv[1]}/{name}.json"))
    print(f"{name:32} {d['exactly_one']:.3f}        {d['with_risk']:.3f}       "
          f"{d['scored_per_lesion_free_sweep']:.3f}       {d['auc'] or float('nan'):.3f}"
          f"   (threshold {d['threshold']}, {d['lesion_sweeps']} lesion sweeps)")
PY
say "done"
