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
    pick = [s for s in stills if len(s.boxes) == 2][:1] + [
        s for s in stills if s.label == "normal"][:1] + [
        s for s in stills if s.label == "malignant"][:1]
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


def test_missing_still_file_is_named(busi_dir, tmp_path):
    copy = tmp_path / "busi_copy"
    shutil.copytree(busi_dir, copy)
    stills = read_manifest(copy)
    stills[0].image_path.unlink()
    with pytest.raises(DatasetError) as info:
        read_manifest(copy)
    assert stills[0].image_path.name in str(info.value) and "missing file" in str(info.value)


def test_unknown_ids_rejected(busi_dir, tmp_path):
    with pytest.raises(DatasetError, match="unknown still id"):
        import_stills(busi_dir, tmp_path / "x", ids=["benign_9999"])
