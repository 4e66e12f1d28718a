"""`sonorisk eval classifier`: video-level scores of checkpoints, side by side, into a report."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from sonorisk.cli import main
from sonorisk.errors import ConfigError
from sonorisk.video_classifier.data import clips_from_dataset
from sonorisk.video_classifier.evaluate import evaluate_checkpoint, video_scores
from sonorisk.video_classifier.registry import build_classifier, save_checkpoint

from .vc_helpers import tiny_config  # noqa: TID252


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    import torch

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("ckpt")
    out = {}
    for kind in ("i3d", "static2d"):
        model = build_classifier(tiny_config(kind, size=32))
        (root / kind).mkdir()
        out[kind] = save_checkpoint(
            root / kind / "last.pt",
            model,
            training_data={"synthetic": True},
            metrics={},
            history=[],
            epoch=0,
        )
    return out


def test_video_score_is_mean_of_its_clips(phantom_dir, checkpoints) -> None:
    from sonorisk.data.dataset import load_dataset
    from sonorisk.video_classifier.registry import load_classifier

    table, summary = evaluate_checkpoint(checkpoints["i3d"], phantom_dir)
    model = load_classifier(checkpoints["i3d"])
    ds = load_dataset(phantom_dir)
    clips = clips_from_dataset(ds, model.config.clips, model.class_names)
    # Every scorable video once; normal videos (no lesion) are not given a score.
    assert sorted(table["id"]) == sorted(set(clips.video_ids))
    assert all("normal" in reason for reason in summary["skipped"].values())
    assert summary["clips"] == len(clips) == int(table["n_clips"].sum())
    probs = np.array([s.probability for s in model.predict(clips.clips, heatmaps=False)])
    for row in table.itertuples():
        mine = [i for i, v in enumerate(clips.video_ids) if v == row.id]
        assert row.score == pytest.approx(probs[mine].mean(), abs=1e-6)
        assert row.truth == int(ds.label(row.id) == "malignant")
        assert row.n_clips == len(mine)
    assert set(table["model"]) == {"i3d"}  # named by the checkpoint's folder
    ds.close()


def test_static_patterns_use_key_frames(phantom_dir, checkpoints) -> None:
    from sonorisk.data.dataset import load_dataset
    from sonorisk.video_classifier.registry import load_classifier
    from sonorisk.video_classifier.static2d import default_key_frames

    model = load_classifier(checkpoints["static2d"])
    ds = load_dataset(phantom_dir)
    clips = clips_from_dataset(ds, model.config.clips, model.class_names)
    ds.close()
    assert clips.boxes is not None and clips.boxes.shape == (len(clips), 8, 4)
    key = video_scores(model, clips, pattern="key_frame").set_index("id")["score"]
    every = video_scores(model, clips, pattern="all_frames").set_index("id")["score"]
    vid = clips.video_ids[0]
    mine = [i for i, v in enumerate(clips.video_ids) if v == vid]
    crops = clips.clips[mine].reshape(-1, 32, 32, 3)
    boxes = [tuple(b) for b in clips.boxes[mine].reshape(-1, 4)]
    per_frame = model.predict_frames(crops)
    assert key[vid] == pytest.approx(per_frame[default_key_frames(boxes)[0]], abs=1e-6)
    assert every[vid] == pytest.approx(per_frame.mean(), abs=1e-6)
    # Patterns are a 2D notion: an I3D refuses them with a reason.
    i3d = load_classifier(checkpoints["i3d"])
    with pytest.raises(ConfigError, match="static2d"):
        video_scores(i3d, clips, pattern="key_frame")


def test_cli_tables_models_side_by_side_into_report(
    phantom_dir, checkpoints, tmp_path, capsys
) -> None:
    from sonorisk.data.dataset import load_dataset

    ds = load_dataset(phantom_dir)
    ids = list(ds.video_ids)
    ds.close()
    splits = tmp_path / "splits.csv"
    pd.DataFrame({"video_id": ids, "split": ["test"] * len(ids)}).to_csv(splits, index=False)
    preds = tmp_path / "preds.csv"
    runs = [
        (checkpoints["i3d"], []),
        (checkpoints["static2d"], ["--pattern", "key_frame"]),
        (checkpoints["i3d"], []),
    ]  # the rerun replaces i3d's rows, not duplicates them
    for ckpt, extra in runs:
        assert (
            main(
                [
                    "eval",
                    "classifier",
                    "--data",
                    str(phantom_dir),
                    "--checkpoint",
                    str(ckpt),
                    "--split-file",
                    str(splits),
                    "--out",
                    str(preds),
                    "--threads",
                    "1",
                    *extra,
                ]
            )
            == 0
        )
        summary = json.loads(capsys.readouterr().out)
        assert summary["videos"] >= 4 and summary["training_data"] == {"synthetic": True}
    table = pd.read_csv(preds)
    assert sorted(table["model"].unique()) == ["i3d", "static2d-key_frame"]
    assert table.groupby("model").size().nunique() == 1  # same videos for both
    truth = tmp_path / "truth.csv"
    table.drop_duplicates("id")[["id", "truth"]].to_csv(truth, index=False)
    report = tmp_path / "report"
    assert (
        main(
            [
                "eval",
                "report",
                str(preds),
                "--truth",
                str(truth),
                "--out",
                str(report),
                "--bootstrap",
                "200",
                "--note",
                "untrained test models",
            ]
        )
        == 0
    )
    text = "\n".join(p.read_text() for p in report.glob("*.md"))
    assert "static2d-key_frame" in text and "i3d" in text


def test_cli_unknown_split_is_a_clear_error(phantom_dir, checkpoints, tmp_path, capsys) -> None:
    splits = tmp_path / "splits.csv"
    pd.DataFrame({"video_id": ["x"], "split": ["train"]}).to_csv(splits, index=False)
    assert (
        main(
            [
                "eval",
                "classifier",
                "--data",
                str(phantom_dir),
                "--checkpoint",
                str(checkpoints["i3d"]),
                "--split-file",
                str(splits),
                "--out",
                str(tmp_path / "p.csv"),
            ]
        )
        == 2
    )
    assert "split == 'test'" in capsys.readouterr().err
    assert not (tmp_path / "p.csv").exists()
