from __future__ import annotations

import json
from pathlib import Path

import pytest

from sonorisk.cli import main
from sonorisk.detector.checkpoint import load_checkpoint

from .conftest import tiny_config


def test_training_writes_checkpoints_and_log(trained_dir: Path):
    assert (trained_dir / "last.pt").is_file() and (trained_dir / "best.pt").is_file()
    records = [json.loads(line) for line in (trained_dir / "log.jsonl").read_text().splitlines()]
    epochs = [r for r in records if r["event"] == "epoch"]
    assert len(epochs) == 1
    assert "val_AP50" in epochs[0] and epochs[0]["train_losses"]["loss"] > 0
    payload = load_checkpoint(trained_dir / "last.pt")
    assert payload["weights_source"]["kind"] == "random"
    assert "not a medical device" in payload["disclaimer"]
    training = payload["training"]
    assert training["n_val_images"] == 6 and training["val_keys"]
    assert payload["config"]["model"]["backbone"] == "mobilenet_v3_small"


def test_resume_continues_from_last_epoch(trained_dir: Path, tmp_path: Path, busi_dir: Path):
    import shutil

    from sonorisk.detector.train import train_detector

    out = tmp_path / "resumed"
    shutil.copytree(trained_dir, out)
    train_detector([busi_dir], tiny_config(out, epochs=2), out, resume=True, progress=False)
    payload = load_checkpoint(out / "last.pt")
    assert payload["epoch"] == 1  # epoch 0 was not trained again
    assert payload["extra"]["iteration"] == 4  # 2 iterations before + 2 after resuming
    starts = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines() if '"start"' in x]
    assert [s["epoch"] for s in starts] == [0, 1]


def test_eval_cli_prints_ap(
    trained_dir: Path, busi_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
):
    report = tmp_path / "eval.json"
    code = main(
        [
            "eval",
            "detector",
            "--data",
            str(busi_dir),
            "--checkpoint",
            str(trained_dir / "best.pt"),
            "--split",
            "val",
            "--json",
            str(report),
            "--no-progress",
            "--threads",
            "1",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "COCO AP50" in out and "backbone init: random" in out
    data = json.loads(report.read_text())
    assert data["n_images"] == 6
    assert data["ap50"] is None or 0.0 <= data["ap50"] <= 1.0


def test_eval_cli_rejects_a_wrong_checkpoint(
    tmp_path: Path, busi_dir: Path, capsys: pytest.CaptureFixture
):
    import torch

    wrong = tmp_path / "classifier.pt"
    torch.save({"kind": "sonorisk.video_classifier", "state_dict": {}}, wrong)
    code = main(["eval", "detector", "--data", str(busi_dir), "--checkpoint", str(wrong)])
    assert code == 2
    err = capsys.readouterr().err
    assert "classifier.pt" in err and "not a sonorisk detector checkpoint" in err


def test_train_cli_is_registered(capsys: pytest.CaptureFixture):
    with pytest.raises(SystemExit) as exc:
        main(["train", "detector", "--help"])
    assert exc.value.code == 0
    assert "--data" in capsys.readouterr().out


def test_training_on_video_frames(tmp_path: Path):
    from sonorisk.data.synth import synthesize_phantom
    from sonorisk.detector.train import train_detector

    ds = synthesize_phantom(
        4, tmp_path / "ph", seed=1, frames=10, size=(96, 80), proportions={"benign": 1, "normal": 1}
    )
    out = tmp_path / "run"
    cfg = tiny_config(
        out, max_iters_per_epoch=1, max_val_images=4, video_frame_stride=3, val_fraction=0.5
    )
    metrics = train_detector([ds], cfg, out, progress=False)
    payload = load_checkpoint(out / "last.pt")
    assert payload["training"]["data"] == [str(ds)]
    assert all(":" in k for k in payload["training"]["val_keys"])  # video:frame keys
    assert metrics["train_losses"]["loss"] > 0


def test_ema_weights_are_saved_and_resumed(tmp_path: Path, busi_dir: Path):
    import torch

    from sonorisk.detector.train import train_detector

    out = tmp_path / "ema"
    train_detector([busi_dir], tiny_config(out, ema_decay=0.9), out, progress=False)
    first = load_checkpoint(out / "last.pt")
    averaged, trained = first["state_dict"], first["extra"]["train_state_dict"]
    assert first["extra"]["ema_updates"] == 2
    name = "roi_heads.box_predictor.cls_score.weight"  # trained in every configuration
    # The average keeps a share of the earlier weights, so it is not the trained copy.
    assert not torch.equal(averaged[name], trained[name])
    best = load_checkpoint(out / "best.pt")
    assert torch.equal(best["state_dict"][name], averaged[name])  # best.pt holds the average
    train_detector(
        [busi_dir], tiny_config(out, epochs=2, ema_decay=0.9), out, resume=True, progress=False
    )
    second = load_checkpoint(out / "last.pt")
    assert second["extra"]["ema_updates"] == 4 and second["epoch"] == 1


def test_ema_decay_out_of_range_is_refused(tmp_path: Path, busi_dir: Path):
    from sonorisk.detector.train import train_detector
    from sonorisk.errors import ConfigError

    with pytest.raises(ConfigError, match="ema_decay"):
        train_detector([busi_dir], tiny_config(tmp_path, ema_decay=1.5), tmp_path, progress=False)
