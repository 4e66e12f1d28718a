"""Patient-level (or group-level) stratified train/val/test splits.

A unit (patient, or BUSI near-duplicate group) is never on two sides. Units are
stratified by their pathology (a unit with any malignant video counts as
malignant, else benign, else normal) and assigned greedily per stratum so each
side gets close to its fraction of videos. Deterministic for a seed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from sonorisk.errors import DatasetError

SPLITS = ("train", "val", "test")
_SEVERITY = {"malignant": 2, "benign": 1, "normal": 0}


def _unit_stratum(labels: pd.Series) -> str:
    known = [str(v).lower() for v in labels if str(v).lower() in _SEVERITY]
    if not known:
        return str(labels.iloc[0])
    return max(known, key=_SEVERITY.__getitem__)


def grouped_split(
    table: pd.DataFrame,
    group_col: str = "patient_id",
    label_col: str = "pathology",
    id_col: str = "video_id",
    val: float = 0.2,
    test: float = 0.2,
    seed: int = 0,
) -> pd.DataFrame:
    """Assign every row of ``table`` to train/val/test, keeping ``group_col`` units whole.

    Returns a DataFrame with columns ``id_col``, ``group_col``, ``label_col``,
    ``split`` (one row per input row, input order).
    """
    for column in (group_col, label_col, id_col):
        if column not in table.columns:
            raise DatasetError("split", f"table has no column {column!r}")
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise DatasetError(
            "split",
            f"fractions must satisfy 0 <= val, test and val + test < 1; got val={val}, test={test}",
        )
    if table[group_col].isna().any():
        raise DatasetError("split", f"some rows have no {group_col}")
    rng = np.random.default_rng(seed)
    groups = table.groupby(group_col, sort=True)
    sizes = groups.size()
    strata = groups[label_col].agg(_unit_stratum)
    fractions = {"train": 1.0 - val - test, "val": val, "test": test}
    assignment: dict[object, str] = {}
    for stratum in sorted(strata.unique(), key=str):
        units = sorted(strata.index[strata == stratum].tolist(), key=str)
        order = rng.permutation(len(units))
        units = [units[i] for i in order]
        total = float(sizes[units].sum())
        filled = dict.fromkeys(SPLITS, 0.0)
        for unit in units:
            # Give the unit to the side furthest below its target share of this stratum.
            deficits = {s: fractions[s] * total - filled[s] for s in SPLITS if fractions[s] > 0}
            side = max(deficits, key=lambda s: (deficits[s], -SPLITS.index(s)))
            assignment[unit] = side
            filled[side] += float(sizes[unit])
    out = table[[id_col, group_col, label_col]].copy()
    out["split"] = [assignment[g] for g in table[group_col]]
    return out.reset_index(drop=True)


def patient_split(
    table: pd.DataFrame, val: float = 0.2, test: float = 0.2, seed: int = 0
) -> pd.DataFrame:
    """Split a per-video table by patient, stratified by pathology."""
    return grouped_split(table, "patient_id", "pathology", "video_id", val, test, seed)


def group_split(
    table: pd.DataFrame,
    group_col: str = "group",
    label_col: str = "label",
    id_col: str = "id",
    val: float = 0.2,
    test: float = 0.2,
    seed: int = 0,
) -> pd.DataFrame:
    """Split a still manifest (BUSI) keeping near-duplicate groups on one side."""
    return grouped_split(table, group_col, label_col, id_col, val, test, seed)


def read_split_ids(path: str | Path, split: str, id_col: str | None = None) -> list[str]:
    """Ids on one side of a splits CSV written by ``sonorisk dataset split``."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(path, "splits file not found")
    table = pd.read_csv(path, dtype=str)
    if "split" not in table.columns:
        raise DatasetError(path, "no 'split' column")
    column = id_col or next(
        (c for c in ("video_id", "id", "source_id") if c in table.columns), None
    )
    if column is None or column not in table.columns:
        raise DatasetError(path, "no id column (video_id or id)")
    chosen = table.loc[table["split"] == split, column].tolist()
    if not chosen:
        raise DatasetError(path, f"no rows with split == {split!r}")
    return chosen


def read_id_lines(path: str | Path) -> list[str]:
    """Ids one a line (still ids, group ids); blank lines and ``#`` comments skipped,
    so a committed list can say what it is (configs/release/heldout_groups.txt)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(path, "id list not found")
    return [
        line.strip()
        for line in path.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
