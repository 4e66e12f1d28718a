#!/usr/bin/env bash
# A caliper-free candidate of sonorisk-busi, end to end (issue 14: build for the
# shift). Cine filmed while scanning carries no calipers; both bundled models
# learned BUSI's as a shortcut (docs/end-to-end.md, "Calipers"). Each step below
# is an existing recipe run on BUSI with its calipers removed, and the candidate
# is measured where 1.5.0 was:
#
#   1. detector, stills: scripts/caliper_free_detector.sh (from ImageNet, 47 min)
#   2. detector, video:  scripts/caliper_detector.sh with START= (two epochs on
#                        the cleaned training stills and their sweeps, 16 min)
#   3. clip classifier:  scripts/classifier_calipers.sh on sweeps of the cleaned
#                        training stills, calipers drawn on half its lesions (12 min)
#   4. lesion check and rules: scripts/e2e_release.sh, on the release's
#                        development sweeps (BUSI as it is, as for 1.5.0; 23 min)
#   5. held-out figures: scripts/e2e_heldout.sh with the chosen rules (~40 min)
#   6. held-out sweeps without calipers: scripts/uncaliper_heldout.sh (11 min)
#
#   bash scripts/caliper_free_release.sh          # all six, ~2.5 h on 2 cores (2026-12-02)
#   STEPS="1 2" bash scripts/caliper_free_release.sh
#
# Steps whose output exists are skipped, so a stopped run resumes. The bundle is
# written to runs/e2e_caliper_free/bundle, not installed (INSTALL=1 in step 5
# would replace the bundled one).
set -euo pipefail
cd "$(dirname "$0")/.."
BUSI=../shared/data/busi
CLEAN=runs/busi_uncalipered
CREL=runs/uncalipered_release  # the cleaned training sweeps; held-out sweeps linked
REL=runs/release               # the release's held-out sweeps (BUSI as it is)
STILLS=runs/caliper_free_detector
VIDEO=runs/caliper_free_video
CLS=runs/classifier_calipers_free
OUT=runs/e2e_caliper_free
VERSION=${VERSION:-1.6.0}
STEPS=${STEPS:-1 2 3 4 5 6}
HELD=configs/release/heldout_groups.txt
export OMP_WAIT_POLICY=PASSIVE
started=$(date +%s)
source scripts/lib/runs.sh
say() { echo "[caliper_free_release $(( $(date +%s) - started ))s] $*"; }
step() { [[ " $STEPS " == *" $1 "* ]]; }
DETECTOR=$VIDEO/calipers/last.pt
CLASSIFIER=$CLS/calipers/best.pt

# The training groups (scripts/release.sh's rule: every group not held out) and
# the release's held-out sweeps, which the recipes below measure on.
mkdir -p "$CREL"
[[ -f $CREL/train_groups.txt ]] || train_groups "$BUSI" "$CREL/train_groups.txt"
heldout_sweeps "$BUSI" "$REL"
for name in heldout_sweeps heldout_normal_sweeps; do
    [[ -e $CREL/$name ]] || ln -s "$(realpath "$REL/$name")" "$CREL/$name"
done

if step 1; then
    say "1. detector from ImageNet on the cleaned stills"
    OUT=$STILLS CLEAN=$CLEAN bash scripts/caliper_free_detector.sh
fi
if step 2; then
    say "2. the video recipe on it"
    EVAL_BUSI=$BUSI START=$STILLS/last.pt BUSI=$CLEAN REL=$CREL OUT=$VIDEO RUNS=calipers \
        bash scripts/caliper_detector.sh
fi
if step 3; then
    say "3. clip classifier on the cleaned training sweeps, calipers on half its lesions"
    REL=$CREL OUT=$CLS RUNS=calipers bash scripts/classifier_calipers.sh
fi
if step 4; then
    say "4. lesion check and rules on the development sweeps"
    BUSI=$BUSI REL=$CREL OUT=$OUT DATA=runs/e2e VERSION=$VERSION DETECTOR=$DETECTOR \
        CLASSIFIER=$CLASSIFIER bash scripts/e2e_release.sh
fi
if step 5; then
    say "5. held-out figures with the chosen rules"
    REL=$CREL OUT=$OUT DATA=runs/e2e VERSION=$VERSION DETECTOR=$DETECTOR \
        CLASSIFIER=$OUT/classifier_check.pt RULES=$OUT/lesion_rules.json \
        DETECTOR_EVAL=$VIDEO/calipers/eval_stills.json CLASSIFIER_GT=$CLS/calipers/eval_gt.csv \
        bash scripts/e2e_heldout.sh
fi
if step 6; then
    say "6. held-out sweeps without calipers"
    # The candidate's rules as a config beside its bundle (step 5 wrote it).
    CONFIG=$OUT/rules.yaml MODELS=$OUT/bundle/sonorisk-busi/$VERSION NAME=caliper_free \
        bash scripts/uncaliper_heldout.sh
fi
say "done"
