#!/usr/bin/env bash
# Restore a released bundle that has left the package from git history.
#
#   bash scripts/restore_bundle.sh NAME VERSION DEST FILE...
#
# Writes DEST/FILE for each FILE as sonorisk/bundled/NAME/VERSION/FILE was in the
# last commit that had it (the commit before the one that removed it), then
# checks every file against the bundle's sha256 (`sonorisk models verify`).
set -euo pipefail
cd "$(dirname "$0")/.."
name=$1 version=$2 dest=$3; shift 3
folder=sonorisk/bundled/$name/$version
rev=$(git log -n 1 --format=%H -- "$folder/metadata.json")
[[ -n $rev ]] || { echo "restore_bundle: $folder is not in git history" >&2; exit 1; }
mkdir -p "$dest"
for f in "$@"; do
    git show "$rev:$folder/$f" > "$dest/$f" 2>/dev/null || git show "$rev^:$folder/$f" > "$dest/$f"
done
sonorisk models verify "$dest" > /dev/null
