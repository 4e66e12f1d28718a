#!/usr/bin/env bash
# The still lesion check and still confidence model (issue 17; docs/stills.md
# "Lesion check"): fitted on the BUSI training groups with sonorisk-busi 1.3.0's
# detector and still classifier, exported as sonorisk-busi 1.3.1 (1.3.0's files
# as they are, plus still_lesion_check.safetensors), then measured ONCE on the
# held-out stills with scripts/still_heldout.sh. The bundle is not installed.
set -euo pipefail
cd "$(dirname "$0")/.."
BUSI=${BUSI:-../shared/data/busi}
OUT=${OUT:-runs/still_check}
BASE=${BASE:-sonorisk/bundled/sonorisk-busi/1.4.0}  # 1.3.0's three files, byte for byte
VERSION=${VERSION:-1.3.1}
HELD=configs/release/heldout_groups.txt
export OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=1
run() { nice -n 5 "$@"; }

[[ -f $OUT/fit/still_lesion_check.safetensors ]] || run python3 -m sonorisk.still_classifier.lesion_check \
    --data "$BUSI" --bundle "$BASE" --heldout-groups "$HELD" --out "$OUT/fit"

# The 1.3.0 files (detector, clip classifier, still classifier) unchanged, its
# figures carried over; the check beside the still classifier.
run python3 -m sonorisk.models.release --detector "$BASE/detector.safetensors" \
    --classifier "$BASE/classifier.safetensors" --metrics-from "$BASE" \
    --still-classifier "$BASE/still_classifier.safetensors" \
    --still-lesion-check "$OUT/fit/still_lesion_check.safetensors" \
    --out "$OUT/bundle" --version "$VERSION"
NEW=$OUT/bundle/sonorisk-busi/$VERSION
run sonorisk models verify "$NEW"
cmp "$BASE/still_classifier.safetensors" "$NEW/still_classifier.safetensors"

# Held-out, once.
BUNDLE=$NEW OUT=$OUT/heldout run bash scripts/still_heldout.sh
