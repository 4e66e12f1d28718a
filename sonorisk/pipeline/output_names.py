"""One output name per input: results of two inputs never overwrite each other.

``a/v.avi`` and ``b/v.avi`` scored into one folder, or ``good.avi`` and
``good.mp4`` in one archive, used to share ``v.json`` / ``good.json``: the
second overwrote the first, and a rerun then took one input's result for the
other's. Names stay short and readable where nothing collides.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path


def _relative(path: Path, root: Path | None) -> Path:
    if root is not None:
        try:
            return path.relative_to(root)
        except ValueError:
            pass
    return Path(path.name)


def output_stems(paths: Sequence[Path], root: Path | None = None) -> dict[Path, str]:
    """A distinct output stem (a relative path without suffix) for every input.

    1. The input's path relative to ``root`` (or its file name) without its
       suffix: ``day2/a``.
    2. Inputs that would share a stem keep their suffix: ``good.avi``, ``good.mp4``.
    3. Any still shared (the same file name from different folders with no
       common root) get 8 hex digits of a hash of their absolute path:
       ``v.avi-1a2b3c4d``, the same on every rerun.
    """
    rel = {p: _relative(p, root) for p in paths}
    by_stem: dict[str, list[Path]] = defaultdict(list)
    for p, r in rel.items():
        by_stem[r.with_suffix("").as_posix()].append(p)
    out: dict[Path, str] = {}
    for stem, group in by_stem.items():
        if len(group) == 1:
            out[group[0]] = stem
            continue
        by_name: dict[str, list[Path]] = defaultdict(list)
        for p in group:
            by_name[rel[p].as_posix()].append(p)
        for name, same in by_name.items():
            for p in same:
                digest = hashlib.sha256(str(p.resolve()).encode()).hexdigest()[:8]
                out[p] = name if len(same) == 1 else f"{name}-{digest}"
    return out
