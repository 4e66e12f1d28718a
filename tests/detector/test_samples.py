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

    ds = synthesize_phantom(
        2, tmp_path / "ph", seed=0, frames=12, size=(96, 80), proportions={"benign": 1.0}
    )
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


def test_held_out_groups_carry_over_to_a_run_with_more_data(
    trained_dir: Path, busi_dir: Path, tmp_path: Path
):
    from sonorisk.detector.checkpoint import load_checkpoint
    from sonorisk.detector.samples import read_val_groups, split_by_groups

    training = load_checkpoint(trained_dir / "last.pt")["training"]
    groups = read_val_groups(trained_dir / "last.pt")
    assert groups == set(training["val_groups"])
    samples = load_samples(busi_dir)
    train, val = split_by_groups(samples, groups)
    # The earlier run's held-out images are all held out again (it capped them at 6).
    assert set(training["val_keys"]) <= {s.key for s in val}
    assert not {s.group for s in train} & groups
    listed = tmp_path / "groups.txt"
    listed.write_text("\n".join(sorted(groups)) + "\n")
    assert read_val_groups(listed) == groups
    with pytest.raises(DatasetError, match="no sample belongs"):
        split_by_groups(samples, {"no-such-group"})
    with pytest.raises(DatasetError, match="not found"):
        read_val_groups(tmp_path / "missing.txt")


def test_training_keeps_the_held_out_groups_it_is_given(
    trained_dir: Path, busi_dir: Path, tmp_path: Path
):
    from sonorisk.detector.checkpoint import load_checkpoint
    from sonorisk.detector.train import train_detector

    from .conftest import tiny_config

    out = tmp_path / "again"
    cfg = tiny_config(out, val_groups_from=str(trained_dir / "last.pt"), max_val_images=None)
    train_detector([busi_dir], cfg, out, progress=False)
    before = load_checkpoint(trained_dir / "last.pt")["training"]
    after = load_checkpoint(out / "last.pt")["training"]
    assert after["val_groups"] == before["val_groups"]
    assert "held-out groups of" in after["split"]
