#!/usr/bin/env bash
# The still classifier of sonorisk-busi 1.3.0 (issue 17), its comparators, its
# held-out figures and the bundle: 1.2.0's files + still_classifier.safetensors.
#
#   bash scripts/still_classifier.sh            # writes runs/still_classifier/
#   INSTALL=1 bash scripts/still_classifier.sh  # and puts 1.3.0 in sonorisk/bundled
#
# BASE: the bundle whose detector the still classifier builds on and whose two
# models and figures the new version keeps (default: sonorisk-busi 1.2.0 from git
# history when it is no longer in sonorisk/bundled). Training reads only the
# training groups of ../shared/data/busi (configs/release/heldout_groups.txt are
# never trained on); every figure is measured on the held-out groups' lesion crops.
# Steps whose output exists are skipped. 1 torch thread; about 15 min of CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
BUSI=${BUSI:-../shared/data/busi}
OUT=${OUT:-runs/still_classifier}
VERSION=${VERSION:-1.3.0}
HELD=configs/release/heldout_groups.txt
BASE=${BASE:-sonorisk/bundled/sonorisk-busi/1.2.0}
export OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=1
started=$(date +%s)
say() { echo "[still $(( $(date +%s) - started ))s] $*"; }
run() { nice -n 5 "$@"; }

if [[ ! -f $BASE/metadata.json ]]; then  # 1.2.0 left the package: take it from git
    BASE=$OUT/base/sonorisk-busi/1.2.0
    if [[ ! -f $BASE/metadata.json ]]; then
        say "restoring sonorisk-busi 1.2.0 from git history into $BASE"
        bash scripts/restore_bundle.sh sonorisk-busi 1.2.0 "$BASE" metadata.json README.md \
            detector.safetensors classifier.safetensors
    fi
fi
run sonorisk models verify "$BASE"
DET=$BASE/detector.safetensors

# 1. The shipped candidate: a CAM head on the frozen detector trunk (and, as the
#    other candidate, the trunk's last stage fine-tuned); group CV chooses.
[[ -f $OUT/release/still_classifier.safetensors ]] || { say "training the still classifier";
    run sonorisk train still-classifier --data "$BUSI" --config configs/release/still-classifier.yaml \
        --detector "$DET" --out "$OUT/release"; }
# 2. The comparator: EfficientNet-Lite0 end to end from ImageNet (not shipped: too big).
[[ -f $OUT/lite0_full/still_classifier.safetensors ]] || { say "training the full Lite0";
    run sonorisk train still-classifier --data "$BUSI" \
        --config configs/release/still-classifier-lite0-full.yaml --out "$OUT/lite0_full"; }
# 3. PCA+SVM on the same crops and split.
[[ -f $OUT/pca_svm.json ]] || { say "PCA+SVM";
    run python3 -m sonorisk.still_classifier.baselines --data "$BUSI" --detector "$DET" \
        --heldout-groups "$HELD" --out "$OUT/pca_svm.json"; }

# 4. Held-out lesion crops, every model as stored.
mkdir -p "$OUT/eval"
ev() {  # NAME FILE [--detector D]
    local name=$1 file=$2; shift 2
    [[ -f $OUT/eval/$name.json ]] || run sonorisk eval still-classifier --checkpoint "$file" \
        --data "$BUSI" --groups "$HELD" --json "$OUT/eval/$name.json" "$@" > /dev/null
}
say "held-out evaluation"
ev head "$OUT/release/still_classifier-head.safetensors" --detector "$DET"
ev head-last_stage "$OUT/release/still_classifier-head-last_stage.safetensors" --detector "$DET"
ev lite0-full "$OUT/lite0_full/still_classifier.safetensors"
ev shipped "$OUT/release/still_classifier.safetensors" --detector "$DET"
run python3 -m sonorisk.still_classifier.figures --runs "$OUT" --out "$OUT/figures.json" > /dev/null

# 5. The bundle: BASE's two models (byte for byte) and figures + the still classifier.
say "exporting sonorisk-busi $VERSION"
run python3 -m sonorisk.models.release --detector "$DET" --classifier "$BASE/classifier.safetensors" \
    --metrics-from "$BASE" --still-classifier "$OUT/release/still_classifier.safetensors" \
    --still-figures "$OUT/figures.json" --out "$OUT/bundle" --version "$VERSION"
NEW=$OUT/bundle/sonorisk-busi/$VERSION
run sonorisk models verify "$NEW"
cmp "$DET" "$NEW/detector.safetensors" && cmp "$BASE/classifier.safetensors" "$NEW/classifier.safetensors"
# The figure again, from the bundle as shipped (the still classifier finds its detector there).
run sonorisk eval still-classifier --checkpoint "$NEW" --data "$BUSI" --groups "$HELD" \
    --json "$OUT/eval/bundle.json" > /dev/null
python3 - "$OUT/eval/bundle.json" "$OUT/eval/shipped.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
assert abs(a["auc"] - b["auc"]) < 1e-9, (a["auc"], b["auc"])
print(f"held-out still AUC {a['auc']:.3f} ({a['ci_low']:.3f}-{a['ci_high']:.3f}), "
      f"n={a['n']} ({a['n_malignant']} malignant)")
PY
du -b "$NEW" | tail -1
# 6. The subtype head, on the only data here with subtypes: phantom stills
#    (simulated; never in the BUSI release). Trained on 240, tested on 120 others.
[[ -f $OUT/phantom/eval.json ]] || { say "subtype head on phantom stills (demo)";
    run sonorisk train still-classifier --phantom 240 --config configs/release/still-classifier.yaml \
        --detector "$DET" --out "$OUT/phantom" > /dev/null
    run sonorisk eval still-classifier --phantom 120 --seed 1 --detector "$DET" \
        --checkpoint "$OUT/phantom/still_classifier.safetensors" --json "$OUT/phantom/eval.json"; }

if [[ ${INSTALL:-0} == 1 ]]; then
    rm -rf "sonorisk/bundled/sonorisk-busi/$VERSION"
    cp -r "$NEW" "sonorisk/bundled/sonorisk-busi/$VERSION"
    rm -rf sonorisk/bundled/sonorisk-busi/1.2.0  # stays in git history
    run sonorisk models verify sonorisk-busi
fi
say "done"
