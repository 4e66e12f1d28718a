"""Patient/group-level stratified splits: no unit on two sides, strata kept, deterministic."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sonorisk.data.busi import manifest_table, read_manifest
from sonorisk.data.splits import group_split, patient_split, read_split_ids
from sonorisk.errors import DatasetError


def _table(n_patients: int = 120, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_patients):
        label = rng.choice(["benign", "malignant", "normal"], p=[0.5, 0.35, 0.15])
        for v in range(int(rng.integers(1, 5))):  # several videos per patient
            rows.append({"video_id": f"p{p}_v{v}", "patient_id": f"p{p}", "pathology": label})
    return pd.DataFrame(rows)


def test_no_patient_on_two_sides_and_strata_kept():
    table = _table()
    result = patient_split(table, val=0.2, test=0.2, seed=3)
    assert list(result["video_id"]) == list(table["video_id"])
    assert (result.groupby("patient_id")["split"].nunique() == 1).all()
    # Each pathology's videos are shared out close to 60/20/20.
    shares = pd.crosstab(result["pathology"], result["split"], normalize="index")
    for label in ("benign", "malignant", "normal"):
        assert shares.loc[label, "train"] == pytest.approx(0.6, abs=0.1)
        assert shares.loc[label, "val"] == pytest.approx(0.2, abs=0.1)
        assert shares.loc[label, "test"] == pytest.approx(0.2, abs=0.1)


def test_deterministic_for_a_seed():
    table = _table()
    a = patient_split(table, seed=7)
    b = patient_split(table.sample(frac=1.0, random_state=1).reset_index(drop=True), seed=7)
    # Same seed -> same assignment, whatever the row order.
    assert dict(zip(a.video_id, a.split, strict=True)) == dict(
        zip(b.video_id, b.split, strict=True)
    )
    c = patient_split(table, seed=8)
    assert list(a["split"]) != list(c["split"])


def test_busi_groups_stay_on_one_side(busi_dir):
    table = manifest_table(read_manifest(busi_dir))
    result = group_split(table, val=0.15, test=0.15, seed=0)
    assert (result.groupby("group")["split"].nunique() == 1).all()
    assert set(result["split"]) == {"train", "val", "test"}
    shares = pd.crosstab(result["label"], result["split"], normalize="index")
    assert (shares["test"] - 0.15).abs().max() < 0.05


def test_bad_fractions_and_missing_column():
    with pytest.raises(DatasetError, match="val \\+ test < 1"):
        patient_split(_table(), val=0.6, test=0.5)
    with pytest.raises(DatasetError, match="no column 'patient_id'"):
        patient_split(pd.DataFrame({"video_id": ["a"], "pathology": ["benign"]}))


def test_read_split_ids(tmp_path):
    result = patient_split(_table(), seed=1)
    path = tmp_path / "splits.csv"
    result.to_csv(path, index=False)
    train = read_split_ids(path, "train")
    assert set(train) == set(result.loc[result.split == "train", "video_id"])
    with pytest.raises(DatasetError, match="no rows with split == 'dev'"):
        read_split_ids(path, "dev")
