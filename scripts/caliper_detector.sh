#!/usr/bin/env bash
# Calipers (issue 14: build for the shift). The bundled detector reads BUSI's
# burned-in calipers as lesion evidence (scripts/caliper_probe.py); cine filmed
# while scanning has none. Two runs side by side, each the bundled detector
# continued as the release's video recipe continued it (two epochs, 1e-3 then
# 1e-4, on the training groups' stills, lesion sweeps and lesion-free sweeps):
#
#   calipers: configs/release/detector-calipers.yaml (calipers drawn on a random
#             place of half the images, train.augment.calipers_p 0.5)
#   control:  the same with calipers_p 0 (what two more epochs alone do)
#
# and for each: AP50 and detection rate on the held-out stills (`sonorisk eval
# detector`), and the caliper probe (how far drawn calipers move the detector's
# score on the held-out lesions).
#
#   bash scripts/caliper_detector.sh       # 46 min on 2 cores; steps done are skipped
#
# Lesions without calipers: the same recipe on BUSI with its calipers removed
# (`sonorisk dataset uncaliper`), measured on the held-out stills as they are:
#
#   sonorisk dataset uncaliper ../shared/data/busi --out runs/busi_uncalipered
#   mkdir -p runs/uncalipered_release && cp runs/release/train_groups.txt runs/uncalipered_release/
#   BUSI=runs/busi_uncalipered REL=runs/uncalipered_release OUT=runs/uncaliper_detector \
#       EVAL_BUSI=../shared/data/busi RUNS=calipers bash scripts/caliper_detector.sh   # 12 min
#
# A detector that never saw calipers on a lesion (scripts/caliper_free_detector.sh)
# continued by the same video recipe on the cleaned stills and their sweeps:
#
#   START=runs/caliper_free_detector/last.pt BUSI=runs/busi_uncalipered \
#       REL=runs/uncalipered_release OUT=runs/caliper_free_video \
#       EVAL_BUSI=../shared/data/busi RUNS=calipers bash scripts/caliper_detector.sh
#
# To release one, run scripts/e2e_release.sh and scripts/e2e_heldout.sh with its
# checkpoint (DETECTOR=runs/caliper_detector/calipers/last.pt): the lesion check
# and the rules must be refitted for a new detector.
set -euo pipefail
cd "$(dirname "$0")/.."
BUSI=${BUSI:-../shared/data/busi}
REL=${REL:-runs/release}
OUT=${OUT:-runs/caliper_detector}
CONFIG=${CONFIG:-configs/release/detector-calipers.yaml}
RUNS=${RUNS:-calipers control}
EVAL_BUSI=${EVAL_BUSI:-$BUSI}  # the held-out stills measured on (and probed)
START=${START:-}  # the detector continued (default: the bundled one)
HELD=configs/release/heldout_groups.txt
export OMP_WAIT_POLICY=PASSIVE
started=$(date +%s)
say() { echo "[caliper_detector $(( $(date +%s) - started ))s] $*"; }
mkdir -p "$OUT"
source scripts/lib/runs.sh
train_sweeps "$BUSI" "$REL"  # made by scripts/release.sh, or here when it has not run
# The release video recipe's lesion-free sweeps (same stills, frames and seed).
synth_once "$BUSI" "$OUT/train_normal_sweeps" "$REL/train_groups.txt" normal \
    "$(count_stills "$BUSI" "$REL/train_groups.txt" normal)" 24 22

for run in $RUNS; do
    dir=$OUT/$run
    p=0.5
    [[ $run == control ]] && p=0.0
    mkdir -p "$dir"
    sed "s/^    calipers_p: .*/    calipers_p: $p/" "$CONFIG" > "$dir/config.yaml"
    grep -q "calipers_p: $p\$" "$dir/config.yaml"
    # The bundled detector (or START) as epoch 10 of the config's 12 (EMA at full
    # decay), so --resume trains epochs 11 and 12 as the release's video recipe did.
    [[ -f $dir/last.pt ]] || python3 scripts/warm_start_detector.py "$dir/config.yaml" \
        "$dir/last.pt" --epochs-left 2 --ema-updates 3000 ${START:+--from "$START"}
    if [[ ! -f $dir/done ]]; then
        say "$run: training (calipers_p $p)"
        sonorisk train detector --data "$BUSI" --data "$REL/train_sweeps" \
            --data "$OUT/train_normal_sweeps" --config "$dir/config.yaml" \
            --out "$dir" --resume --no-progress
        touch "$dir/done"
    fi
    [[ -f $dir/eval_stills.json ]] || sonorisk eval detector --data "$EVAL_BUSI" \
        --checkpoint "$dir/last.pt" --groups "$HELD" --threads 2 --no-progress \
        --json "$dir/eval_stills.json" > /dev/null
    [[ -f $dir/probe.json ]] || python3 scripts/caliper_probe.py --detector "$dir/last.pt" \
        --busi "$EVAL_BUSI" --out "$dir/probe.json" > "$dir/probe.log"
    say "$run: done"
done
# The bundled detector itself, for the side-by-side table.
[[ -f $OUT/bundled_probe.json ]] || python3 scripts/caliper_probe.py --busi "$EVAL_BUSI" \
    --out "$OUT/bundled_probe.json" > "$OUT/bundled_probe.log"
[[ -f $OUT/bundled_stills.json ]] || sonorisk eval detector --data "$EVAL_BUSI" \
    --checkpoint "$(python3 -c 'from sonorisk.models.resolve import resolve_models; print(resolve_models(None).detector)')" \
    --groups "$HELD" --threads 2 --no-progress --json "$OUT/bundled_stills.json" > /dev/null
table=(--table bundled "$OUT/bundled_probe.json" "$OUT/bundled_stills.json")
for run in $RUNS; do
    table+=(--table "$run" "$OUT/$run/probe.json" "$OUT/$run/eval_stills.json")
done
python3 scripts/caliper_probe.py "${table[@]}"
say "done"
