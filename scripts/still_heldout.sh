#!/usr/bin/env bash
# Held-out figures of still-image scoring (issue #17): `sonorisk batch` with
# default settings on the held-out BUSI groups' stills (configs/release/
# heldout_groups.txt: never trained on), then still AUC, the share of lesion
# stills given a risk, normal stills given one, and AP50 / detection rate of the
# boxes the score documents report.
#
#   bash scripts/still_heldout.sh            # the default bundle
#   BUNDLE=DIR OUT=runs/still_heldout bash scripts/still_heldout.sh
#
# The stills are linked (not copied) into $OUT/stills. Steps whose output exists
# are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
BUSI=${BUSI:-../shared/data/busi}
OUT=${OUT:-runs/still_heldout}
BUNDLE=${BUNDLE:-}
HELD=configs/release/heldout_groups.txt
export OMP_WAIT_POLICY=PASSIVE
mkdir -p "$OUT/stills"
python3 - "$BUSI" "$HELD" "$OUT/stills" <<'PY'
import csv, os, sys
from pathlib import Path
busi, held, out = Path(sys.argv[1]).resolve(), Path(sys.argv[2]), Path(sys.argv[3])
groups = {ln.strip() for ln in held.read_text().splitlines() if ln.strip() and not ln.startswith("#")}
n = 0
for row in csv.DictReader(open(busi / "manifest.csv")):
    if row["group"] in groups:
        link = out / f"{row['id']}.png"
        if not link.exists():
            os.symlink(busi / row["label"] / f"{row['id']}.png", link)
        n += 1
print(f"{n} held-out stills linked in {out}")
PY
if [[ ! -f $OUT/batch.done ]]; then
    sonorisk batch ${BUNDLE:+--models "$BUNDLE"} --out "$OUT/batch.csv" --workers 2 --threads 1 \
        --no-progress "$OUT/stills"
    touch "$OUT/batch.done"
fi
python3 -m sonorisk.eval.heldout --still-batch "$OUT/batch.csv" --manifest "$BUSI/manifest.csv" \
    --out "$OUT/figures.json"
