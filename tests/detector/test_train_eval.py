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


def test_epochs_within_budget_counts_the_pace_so_far():
    from sonorisk.detector.train import epochs_within_budget

    # 2 epochs (0, 1) took 100 s: 50 s each; 130 s left hold 2 more.
    assert epochs_within_budget(230, 100, epoch=1, start_epoch=0) == 4
    # Resumed at epoch 5: only this run's epochs set the pace (epoch 5 took 40 s).
    assert epochs_within_budget(100, 40, epoch=5, start_epoch=5) == 7
    # Over budget already: never fewer than the epochs done.
    assert epochs_within_budget(10, 40, epoch=5, start_epoch=5) == 6


def test_time_budget_cuts_the_epochs_and_the_schedule(tmp_path: Path, busi_dir: Path):
    from sonorisk.detector.train import train_detector

    out = tmp_path / "budget"
    cfg = tiny_config(out, epochs=50, time_budget_s=0.01)
    train_detector([busi_dir], cfg, out, progress=False)
    assert cfg.train.epochs == 50  # the caller's config is left alone
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records if r["event"] == "epoch"] == [0]
    (cut,) = [r for r in records if r["event"] == "budget"]
    assert cut["epochs"] == 1 and cut["planned_epochs"] == 50
    payload = load_checkpoint(out / "last.pt")
    assert payload["config"]["train"]["epochs"] == 1  # what was really run
    assert payload["config"]["train"]["time_budget_s"] == 0.01


def test_time_budget_must_be_positive(tmp_path: Path, busi_dir: Path):
    from sonorisk.detector.train import train_detector
    from sonorisk.errors import ConfigError

    with pytest.raises(ConfigError, match="time_budget_s"):
        train_detector([busi_dir], tiny_config(tmp_path, time_budget_s=0), tmp_path, progress=False)


def test_training_imports_need_no_pyav():
    """scripts/gpu_detector.sh trains where PyAV is not installed: the detector's
    training, still folders, splits and the bundled detector load without it."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['av'] = None\n"  # `import av` now raises ImportError
        "import sonorisk.data.splits, sonorisk.detector.train, sonorisk.models.load\n"
        "from sonorisk.models.resolve import resolve_models\n"
        "d = sonorisk.models.load.load_detector_file(resolve_models(None).detector)\n"
        "print(type(d).__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "TorchvisionDetector"


def test_pack_training_stills_shrinks_images_and_boxes(tmp_path: Path):
    import csv
    import importlib.util

    import cv2
    import numpy as np

    from sonorisk.detector.samples import load_still_folder

    spec = importlib.util.spec_from_file_location(
        "pack_training_stills",
        Path(__file__).resolve().parents[2] / "scripts" / "pack_training_stills.py",
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    source = tmp_path / "stills"
    (source / "benign").mkdir(parents=True)
    rng = np.random.default_rng(0)
    cv2.imwrite(str(source / "benign" / "a.png"), rng.integers(0, 255, (400, 600), np.uint8))
    cv2.imwrite(str(source / "benign" / "b.png"), rng.integers(0, 255, (100, 150), np.uint8))
    with (source / "manifest.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "label", "boxes", "group", "source"])
        writer.writerow(["a", "benign", "100 40 300 200", "g1", "benign/a.png"])
        writer.writerow(["b", "benign", "10 10 50 60", "g2", "benign/b.png"])
    out = tmp_path / "pack"
    assert module.main(["--stills", str(source), "--short-side", "200", "--out", str(out)]) == 0
    packed = {s.key: s for s in load_still_folder(out)}
    assert packed["a"].load().shape == (200, 300)  # halved to the short side
    np.testing.assert_allclose(packed["a"].boxes, [[50, 20, 150, 100]])  # boxes with it
    assert packed["b"].load().shape == (100, 150)  # never enlarged
    np.testing.assert_allclose(packed["b"].boxes, [[10, 10, 50, 60]])
    assert packed["a"].group == "g1"  # groups kept: the held-out split still holds
