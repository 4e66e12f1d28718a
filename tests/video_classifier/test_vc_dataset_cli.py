"""Clips from a synthesized video dataset, and `sonorisk train classifier` end to end."""

from __future__ import annotations

import json

import numpy as np

from sonorisk.cli import main
from sonorisk.video_classifier.clips import ClipConfig, crop_box
from sonorisk.video_classifier.data import clips_from_dataset
from sonorisk.video_classifier.registry import load_classifier, read_checkpoint


def test_clips_follow_ground_truth_boxes(phantom_dir) -> None:
    from sonorisk.data.dataset import load_dataset

    ds = load_dataset(phantom_dir)
    cfg = ClipConfig(crop_size=32)
    cs = clips_from_dataset(ds, cfg, ["benign", "malignant"])
    # Normal videos have no lesion: skipped with the reason, never labelled.
    normals = [v for v in ds.video_ids if ds.label(v) == "normal"]
    assert normals and all("normal" in cs.skipped[v] for v in normals)
    assert cs.clips.shape[1:] == (8, 32, 32, 3) and len(cs) >= 4
    for vid, label in zip(cs.video_ids, cs.labels, strict=True):
        assert cs.class_names[label] == ds.label(vid)
    # The first clip is the first 8 annotated frames of its video, cropped
    # around the ground-truth box exactly as crop_box does.
    vid = cs.video_ids[0]
    annotated = [f for f in ds.frames(vid) if f.boxes][:8]
    want = np.stack([crop_box(ds.read_image(f), f.boxes[0], 32, cfg.margin) for f in annotated])
    np.testing.assert_array_equal(cs.clips[0], want)
    # The subtype head reads the subtype column (phantom subtypes: IDC, fibroadenoma, ...).
    sub = clips_from_dataset(ds, cfg, ["idc", "fibroadenoma"], label_field="auto")
    assert set(sub.class_names[i] for i in sub.labels) <= {"idc", "fibroadenoma"}
    assert any("subtype" in reason for reason in sub.skipped.values())
    ds.close()


def test_cli_train_resume_and_load(phantom_dir, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    common = [
        "train",
        "classifier",
        "--data",
        str(phantom_dir),
        "--out",
        str(out),
        "--crop-size",
        "16",
        "--i3d-width",
        "4",
        "--batch-size",
        "8",
        "--val-fraction",
        "0.3",
        "--threads",
        "1",
        "--no-progress",
    ]
    assert main([*common, "--model", "i3d", "--epochs", "1"]) == 0
    summary = json.loads(capsys.readouterr().out)  # --no-progress: stdout is the JSON only
    assert summary["kind"] == "i3d" and summary["epochs"] == 1
    payload = read_checkpoint(out / "last.pt")
    data = payload["training_data"]
    assert data["synthetic"] is True and data["all_synthetic"] is True and data["tiny"] is True
    assert data["generators"] and data["generators"][0].startswith("sonorisk.synth.phantom")
    assert data["train_clips"] > 0 and data["val_clips"] > 0
    assert payload["config"]["clips"]["crop_size"] == 16
    # Resume to a second epoch.
    assert main([*common, "--epochs", "2", "--resume", str(out / "last.pt")]) == 0
    assert read_checkpoint(out / "last.pt")["epoch"] == 2
    model = load_classifier(out / "best.pt", kind="i3d")
    assert model.config.clips.crop_size == 16


def test_cli_errors_are_one_line(phantom_dir, tmp_path, capsys) -> None:
    code = main(
        [
            "train",
            "classifier",
            "--data",
            str(tmp_path / "nowhere"),
            "--model",
            "i3d",
            "--out",
            str(tmp_path / "o"),
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "nowhere" in err and "Traceback" not in err
    # Classes that no video has: a clear dataset error.
    code = main(
        [
            "train",
            "classifier",
            "--data",
            str(phantom_dir),
            "--model",
            "i3d",
            "--classes",
            "lipoma,sarcoma",
            "--malignant-classes",
            "sarcoma",
            "--out",
            str(tmp_path / "o"),
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "no clips could be built" in err
