#!/usr/bin/env bash
# Held-out end-to-end figures on sweeps WITHOUT calipers (issue 14: build for
# the shift). About a fifth of BUSI's lesion stills carry the radiologist's
# calipers, and every sweep made from one carries them from the first frame to
# the last; cine filmed while scanning carries none. The held-out lesion sweeps
# are made again, same stills, seed and frames, from BUSI with its calipers
# removed (`sonorisk dataset uncaliper`), and a bundle's figures measured there
# through `sonorisk batch` with default settings, beside the same bundle on the
# sweeps as they are (calipers kept). Lesion-free sweeps carry no calipers, so
# they are the release's own.
#
#   bash scripts/uncaliper_heldout.sh                      # the bundled model, ~20 min
#   MODELS=DIR NAME=candidate bash scripts/uncaliper_heldout.sh   # another bundle
#   DETECTOR=CKPT NAME=candidate bash scripts/uncaliper_heldout.sh # the bundle with another detector
#   CONFIG=rules.yaml ...     # a candidate's rules not yet sonorisk's defaults (e2e_heldout.sh RULES=)
#
# Steps whose output exists are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
BUSI=${BUSI:-../shared/data/busi}
CLEAN=${CLEAN:-runs/busi_uncalipered}
REL=${REL:-runs/release}
OUT=${OUT:-runs/uncaliper_heldout}
MODELS=${MODELS:-$(python3 -c 'from sonorisk.models.resolve import resolve_models; print(resolve_models(None).bundle.path)')}
NAME=${NAME:-bundled}
DETECTOR=${DETECTOR:-}
CONFIG=${CONFIG:-}
HELD=configs/release/heldout_groups.txt
export OMP_WAIT_POLICY=PASSIVE
started=$(date +%s)
source scripts/lib/runs.sh
say() { echo "[uncaliper_heldout $(( $(date +%s) - started ))s] $*"; }
mkdir -p "$OUT/$NAME"

[[ -f $CLEAN/calipers.csv ]] || sonorisk dataset uncaliper "$BUSI" --out "$CLEAN" --no-progress
n_lesion=$(count_stills "$BUSI" "$HELD" benign,malignant)
# The release's held-out sweeps (scripts/release.sh: same stills, frames and seeds).
heldout_sweeps "$BUSI" "$REL"
synth_once "$CLEAN" "$OUT/heldout_sweeps" "$HELD" benign,malignant "$n_lesion" 48 31

extra=()
[[ -n $DETECTOR ]] && extra=(--detector "$DETECTOR")
[[ -n $CONFIG ]] && extra+=(--config "$CONFIG")
for kind in calipers clean; do
    sweeps=$REL/heldout_sweeps
    [[ $kind == clean ]] && sweeps=$OUT/heldout_sweeps
    say "$NAME: held-out sweeps ($kind) and lesion-free sweeps"
    batch "$OUT/$NAME/$kind.csv" "$MODELS" "${extra[@]}" "$sweeps/videos" \
        "$REL/heldout_normal_sweeps/videos"
    [[ -f $OUT/$NAME/$kind-figures.json ]] || python3 -m sonorisk.eval.heldout \
        --sweeps "$sweeps/videos.csv" --batch "$OUT/$NAME/$kind.csv" \
        --lesion-free "$REL/heldout_normal_sweeps/videos.csv" --out "$OUT/$NAME/$kind-figures.json" \
        > /dev/null
done
python3 - "$OUT/$NAME" "$NAME" <<'PY'
import json, sys
folder, name = sys.argv[1:]
runs = {kind: json.load(open(f"{folder}/{kind}-figures.json")) for kind in ("calipers", "clean")}
print(f"{name}: held-out sweeps, calipers kept | calipers removed")
for figure in runs["calipers"]:
    a, b = (runs[k][figure] for k in ("calipers", "clean"))
    show = lambda f: f"{f['value']:.3f} ({f['ci_low']:.3f}-{f['ci_high']:.3f}), n={f['n']}" \
        if f["ci_low"] is not None else f"{f['value']:.3f}, n={f['n']}"
    print(f"  {figure}: {show(a)} | {show(b)}")
PY
say "done"
