"""The verbs: sonorisk synth, sonorisk dataset validate | import-stills | split."""

from __future__ import annotations

import json

import pandas as pd

from sonorisk.cli import main
from sonorisk.data import load_dataset
from sonorisk.data.busi import read_manifest


def test_synth_n20_from_busi_then_validate(busi_dir, tmp_path, capsys):
    out = tmp_path / "busi20"
    assert (
        main(
            [
                "synth",
                "--source",
                str(busi_dir),
                "--n",
                "20",
                "--out",
                str(out),
                "--frames",
                "4",
                "--size",
                "128x96",
                "--seed",
                "5",
            ]
        )
        == 0
    )
    assert main(["dataset", "validate", str(out)]) == 0
    assert "valid: 20 video(s), 80 frame(s)" in capsys.readouterr().out
    table = load_dataset(out).table
    # Stratified like BUSI (298/144/98 of 540).
    assert table["pathology"].value_counts().to_dict() == {
        "benign": 11,
        "malignant": 5,
        "normal": 4,
    }


def test_synth_phantom_fps50(tmp_path, capsys):
    out = tmp_path / "phantom"
    assert (
        main(
            [
                "synth",
                "--phantom",
                "--n",
                "3",
                "--out",
                str(out),
                "--fps",
                "50",
                "--seconds",
                "0.1",
                "--size",
                "128x96",
                "--contact-sheet",
            ]
        )
        == 0
    )
    assert main(["dataset", "validate", str(out)]) == 0
    dataset = load_dataset(out)
    assert all(v.fps == 50.0 and v.n_frames == 5 for v in dataset.videos)
    assert len(list((out / "contact_sheets").glob("*.png"))) == 3


def test_validate_reports_problems(tmp_path, make_tiny, capsys):
    root = make_tiny(tmp_path / "bad")
    coco = json.loads((root / "annotations.json").read_text())
    coco["annotations"][0]["bbox"] = [60, 0, 30, 5]
    (root / "annotations.json").write_text(json.dumps(coco))
    assert main(["dataset", "validate", str(root)]) == 1
    err = capsys.readouterr().err
    assert "annotations.json" in err and "box outside frame" in err


def test_synth_bad_option_is_a_clear_error(tmp_path, capsys):
    assert (
        main(["synth", "--phantom", "--n", "1", "--out", str(tmp_path / "x"), "--size", "101x80"])
        == 2
    )
    assert "size" in capsys.readouterr().err
    out = tmp_path / "passes"
    assert main(["synth", "--phantom", "--n", "1", "--out", str(out), "--passes", "0"]) == 2
    assert "sweep.motion.passes" in capsys.readouterr().err
    assert not out.exists()


def test_import_split_then_synth_from_train_only(busi_dir, tmp_path, capsys):
    stills = tmp_path / "stills"
    assert (
        main(["dataset", "import-stills", str(busi_dir), "--out", str(stills), "--no-masks"]) == 0
    )
    assert main(["dataset", "validate", str(stills), "--no-probe"]) == 0
    splits = tmp_path / "splits.csv"
    assert (
        main(
            [
                "dataset",
                "split",
                str(stills),
                "--by",
                "patient",
                "--val",
                "0.2",
                "--test",
                "0.2",
                "--seed",
                "1",
                "--out",
                str(splits),
            ]
        )
        == 0
    )
    table = pd.read_csv(splits, dtype=str)
    groups = {s.still_id: s.group for s in read_manifest(busi_dir)}
    table["group"] = table["video_id"].map(groups)
    assert (table.groupby("group")["split"].nunique() == 1).all()
    out = tmp_path / "train_sweeps"
    assert (
        main(
            [
                "synth",
                "--source",
                str(busi_dir),
                "--n",
                "6",
                "--out",
                str(out),
                "--frames",
                "2",
                "--size",
                "96x72",
                "--ids",
                str(splits),
                "--split",
                "train",
            ]
        )
        == 0
    )
    used = set(load_dataset(out).table["source_id"])
    train = set(table.loc[table.split == "train", "video_id"])
    assert used <= train


def test_synth_config_file_and_flag_override(tmp_path, capsys):
    config = tmp_path / "synth.yaml"
    config.write_text("n: 2\nframes: 3\nsize: [96, 72]\nfps: 50\nsweep:\n  speckle_strength: 0.1\n")
    out = tmp_path / "configured"
    assert (
        main(["synth", "--phantom", "--config", str(config), "--out", str(out), "--frames", "4"])
        == 0
    )
    dataset = load_dataset(out)
    assert len(dataset) == 2
    assert all(
        v.n_frames == 4 and v.fps == 50.0 and (v.width, v.height) == (96, 72)
        for v in dataset.videos
    )
    config.write_text("n: 2\nbogus: 1\n")
    assert main(["synth", "--phantom", "--config", str(config), "--out", str(out)]) == 2
    assert "bogus" in capsys.readouterr().err
