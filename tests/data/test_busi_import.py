"""BUSI-like still sets: manifest reading, stratified sampling, import as one-frame items."""

from __future__ import annotations

import shutil
from collections import Counter

import numpy as np
import pytest

from sonorisk.data import load_dataset
from sonorisk.data.busi import import_stills, read_manifest, sample_stratified
from sonorisk.errors import DatasetError


def test_manifest_boxes_match_masks(busi_dir):
    stills = read_manifest(busi_dir)
    assert len(stills) == 540
    multi = next(s for s in stills if len(s.boxes) == 2)
    for box, mask in zip(multi.boxes, multi.read_masks(), strict=True):
        ys, xs = np.nonzero(mask)
        assert box == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)


def test_stratified_sampling(busi_dir):
    stills = read_manifest(busi_dir)
    chosen = sample_stratified(stills, 20, np.random.default_rng(0))
    # 298/144/98 of 540 -> 11.04/5.33/3.63 -> 11/5/4 by largest remainder.
    assert Counter(s.label for s in chosen) == {"benign": 11, "malignant": 5, "normal": 4}
    assert len({s.still_id for s in chosen}) == 20
    balanced = sample_stratified(stills, 9, np.random.default_rng(0), balanced=True)
    assert Counter(s.label for s in balanced) == {"benign": 3, "malignant": 3, "normal": 3}
    only = sample_stratified(stills, 5, np.random.default_rng(0), labels=["malignant"])
    assert {s.label for s in only} == {"malignant"}
    again = sample_stratified(stills, 20, np.random.default_rng(0))
    assert [s.still_id for s in again] == [s.still_id for s in chosen]


def test_import_subset(busi_dir, tmp_path):
    stills = read_manifest(busi_dir)
    pick = (
        [s for s in stills if len(s.boxes) == 2][:1]
        + [s for s in stills if s.label == "normal"][:1]
        + [s for s in stills if s.label == "malignant"][:1]
    )
    out = import_stills(busi_dir, tmp_path / "stills", ids=[s.still_id for s in pick])
    dataset = load_dataset(out, probe=True)
    assert len(dataset) == 3
    for still in pick:
        record = dataset.video(still.still_id)
        assert record.patient_id == still.group and record.pathology == still.label
        (frame,) = dataset.frames(still.still_id)
        assert frame.boxes == list(still.boxes)
        assert len(set(frame.lesion_ids)) == len(still.boxes)
        image = dataset.read_image(frame)
        assert image.shape == (still.height, still.width, 3)
    assert (out / "masks" / pick[0].mask_paths[1].name).is_file()


def _mini_busi(busi_dir, root, n_per_label=2):
    """A BUSI-like folder with a few stills of each label (manifest rows + files)."""
    import pandas as pd

    manifest = pd.read_csv(busi_dir / "manifest.csv", dtype=str)
    rows = manifest.groupby("label").head(n_per_label)
    for row in rows.itertuples():
        (root / row.label).mkdir(parents=True, exist_ok=True)
        for path in (busi_dir / row.label).glob(f"{row.id}*.png"):
            if path.stem == row.id or path.stem.startswith(f"{row.id}_mask"):
                shutil.copyfile(path, root / row.label / path.name)
    rows.to_csv(root / "manifest.csv", index=False)
    return root


def test_missing_still_file_is_named(busi_dir, tmp_path):
    copy = _mini_busi(busi_dir, tmp_path / "mini")
    stills = read_manifest(copy)
    assert len(stills) == 6
    stills[0].image_path.unlink()
    with pytest.raises(DatasetError) as info:
        read_manifest(copy)
    assert stills[0].image_path.name in str(info.value) and "missing file" in str(info.value)


def test_mask_count_mismatch_is_named(busi_dir, tmp_path):
    copy = _mini_busi(busi_dir, tmp_path / "mini")
    still = next(s for s in read_manifest(copy) if s.mask_paths)
    still.mask_paths[0].unlink()
    with pytest.raises(
        DatasetError,
        match=f"manifest.csv row .*n_lesions={len(still.boxes)} "
        f"but {len(still.boxes) - 1} mask file",
    ):
        read_manifest(copy)


def test_unknown_ids_rejected(busi_dir, tmp_path):
    with pytest.raises(DatasetError, match="unknown still id"):
        import_stills(busi_dir, tmp_path / "x", ids=["benign_9999"])
