from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from sonorisk.detector.samples import group_split, load_samples, read_image_file
from sonorisk.errors import DatasetError


def test_busi_folder_reads_boxes_groups_and_normals(busi_dir: Path):
    samples = load_samples(busi_dir)
    assert len(samples) == 540
    normals = [s for s in samples if s.label == "normal"]
    assert normals and all(s.lesion_free for s in normals)
    lesions = [s for s in samples if s.label in ("benign", "malignant")]
    assert all(len(s.boxes) >= 1 for s in lesions)
    image = lesions[0].load()
    assert image.dtype == np.uint8 and image.ndim in (2, 3)
    b = lesions[0].boxes
    assert (b[:, 2] > b[:, 0]).all() and (b[:, 2] <= image.shape[1]).all()


def test_group_split_keeps_groups_apart(busi_dir: Path):
    samples = load_samples(busi_dir)
    train, val = group_split(samples, 0.2, seed=0)
    assert len(train) + len(val) == len(samples)
    assert not ({s.group for s in train} & {s.group for s in val})
    assert 0.12 < len(val) / len(samples) < 0.28
    assert {s.label for s in val} == {"benign", "malignant", "normal"}  # stratified
    again, _ = group_split(samples, 0.2, seed=0)
    assert [s.key for s in again] == [s.key for s in train]  # deterministic


def test_video_dataset_frames_are_samples(tmp_path: Path):
    from sonorisk.data.synth import synthesize_phantom

    ds = synthesize_phantom(2, tmp_path / "ph", seed=0, frames=12, size=(96, 80),
                            proportions={"benign": 1.0})
    samples = load_samples(ds, video_frame_stride=4)
    assert {s.frame_index for s in samples} <= {0, 4, 8}
    assert len({s.video_id for s in samples}) == 2
    assert all(s.fps == 30.0 for s in samples)
    image = samples[0].load()
    assert image.shape[:2] == (80, 96)


def test_bad_folders(tmp_path: Path, busi_dir: Path):
    with pytest.raises(DatasetError, match="not found"):
        load_samples(tmp_path / "missing")
    with pytest.raises(DatasetError, match="neither a still folder"):
        load_samples(tmp_path)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "manifest.csv").write_text("id,label,boxes,source\nx,benign,1 2 3,benign/x.png\n")
    with pytest.raises(DatasetError, match="not 'x1 y1 x2 y2'"):
        load_samples(bad)


def test_unreadable_image_is_named(tmp_path: Path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG garbage")
    with pytest.raises(Exception, match="broken.png"):
        read_image_file(broken)
    shutil.rmtree(tmp_path)
