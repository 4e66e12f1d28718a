# Steps the release scripts share. Source it from the repository root:
#   source scripts/lib/runs.sh
# Every step is skipped when its output exists, so a stopped script resumes.

# batch OUT_CSV MODELS [BATCH_ARGS...] INPUTS...: `sonorisk batch` with 2 workers
# of 1 thread (the 2-core machine's best), done once (OUT_CSV minus .csv, plus .done).
batch() {
    local csv=$1 models=$2; shift 2
    [[ -f ${csv%.csv}.done ]] && return 0
    sonorisk batch --models "$models" --out "$csv" --workers "${BATCH_WORKERS:-2}" --threads 1 \
        --no-progress "$@"
    touch "${csv%.csv}.done"
}

# fit_lesion_check CLASSIFIER DEV REL OUT_PT [EXTRA...]: the "not a lesion" check
# on development split A: the lesions of the training sweeps and of A's sweeps,
# background boxes beside them and in lesion-free sweeps, and the false tracks
# of the batch run on A (scripts/e2e_release.sh steps 1-3 make DEV).
fit_lesion_check() {
    local classifier=$1 dev=$2 rel=$3 out=$4; shift 4
    [[ -f $out ]] && return 0
    python3 -m sonorisk.video_classifier.lesion_check --classifier "$classifier" \
        --groups "$dev/groups_A.txt" --lesions "$rel/train_sweeps" "$dev/dev_sweeps" \
        --lesion-free "$dev/dev_normal_sweeps" \
        --false-tracks "$dev/devA/batch.json" "$dev/dev_sweeps" \
        --false-tracks "$dev/devA/batch.json" "$dev/dev_normal_sweeps" \
        --false-tracks "$dev/devA/batch.json" "$dev/dev_screen_sweeps" \
        "$@" --out "$out"
}

# link_groups ROOT GROUPS_FILE DEST NAME...: DEST/NAME/ gets a link to every video
# of the dataset ROOT/NAME whose group is listed in GROUPS_FILE (a folder that
# `sonorisk batch` takes: one split of a dataset, nothing copied).
link_groups() {
    python3 - "$@" <<'PY'
import os, sys
import pandas as pd
root, groups_file, dest, *names = sys.argv[1:]
groups = set(open(groups_file).read().split())
for name in names:
    table = pd.read_csv(f"{root}/{name}/videos.csv")
    folder = f"{dest}/{name}"
    os.makedirs(folder, exist_ok=True)
    for file in table[table.group.isin(groups)].file:
        link = f"{folder}/{os.path.basename(file)}"
        if not os.path.exists(link):
            os.symlink(os.path.abspath(f"{root}/{name}/{file}"), link)
PY
}

# count_stills BUSI GROUPS_FILE LABELS: how many stills of the still folder BUSI
# have their group listed in GROUPS_FILE and one of LABELS (comma-separated).
count_stills() {
    python3 - "$@" <<'PY'
import csv, sys
from sonorisk.data.splits import read_id_lines
busi, groups_file, labels = sys.argv[1:]
groups = set(read_id_lines(groups_file))
labels = labels.split(",")
print(sum(1 for r in csv.DictReader(open(f"{busi}/manifest.csv"))
          if r["group"] in groups and r["label"] in labels))
PY
}

# synth_once BUSI OUT_DIR GROUPS_FILE LABELS N FRAMES SEED [EXTRA...]: `sonorisk
# synth` of those stills into OUT_DIR (EXTRA: more of its options), done once
# (skipped when OUT_DIR/videos.csv exists).
synth_once() {
    [[ -f $2/videos.csv ]] || sonorisk synth --source "$1" --groups "$3" --labels "$4" \
        --n "$5" --frames "$6" --seed "$7" --out "$2" "${@:8}" > /dev/null
}

# train_groups BUSI OUT_FILE: every group of the still folder that is not held out
# (configs/release/heldout_groups.txt), one per line: the release's training groups.
train_groups() {
    python3 - "$1" configs/release/heldout_groups.txt "$2" <<'PY'
import csv, sys
from sonorisk.data.splits import read_id_lines
busi, held, out = sys.argv[1:]
held = set(read_id_lines(held))
groups = {row["group"] for row in csv.DictReader(open(f"{busi}/manifest.csv"))}
open(out, "w").write("\n".join(sorted(groups - held)) + "\n")
PY
}

# heldout_sweeps BUSI DEST: the release's held-out sweeps, DEST/heldout_sweeps (one
# 48-frame sweep, seed 31, per held-out lesion still) and DEST/heldout_normal_sweeps
# (seed 32, per held-out lesion-free still).
heldout_sweeps() {
    local held=configs/release/heldout_groups.txt
    synth_once "$1" "$2/heldout_sweeps" "$held" benign,malignant \
        "$(count_stills "$1" "$held" benign,malignant)" 48 31
    synth_once "$1" "$2/heldout_normal_sweeps" "$held" normal \
        "$(count_stills "$1" "$held" normal)" 48 32
}

# train_sweeps BUSI REL: REL/train_sweeps, one 24-frame sweep (seed 21) per lesion
# still of the training groups (REL/train_groups.txt): what the release's clip
# classifier and the video-trained detectors learn from.
train_sweeps() {
    synth_once "$1" "$2/train_sweeps" "$2/train_groups.txt" benign,malignant \
        "$(count_stills "$1" "$2/train_groups.txt" benign,malignant)" 24 21
}

# split_dev_groups TRAIN_GROUPS OUT: the development groups split in two by a hash
# of the group name: OUT/groups_A.txt (fits the lesion check) and OUT/groups_B.txt
# (chooses the lesion rules).
split_dev_groups() {
    python3 - "$1" "$2" <<'PY'
import hashlib, sys
from sonorisk.data.splits import read_id_lines
groups, out = read_id_lines(sys.argv[1]), sys.argv[2]
a = [g for g in groups if int(hashlib.sha256(g.encode()).hexdigest(), 16) % 2 == 0]
b = [g for g in groups if g not in set(a)]
open(f"{out}/groups_A.txt", "w").write("\n".join(a) + "\n")
open(f"{out}/groups_B.txt", "w").write("\n".join(b) + "\n")
PY
}
