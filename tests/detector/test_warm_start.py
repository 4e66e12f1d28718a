"""scripts/warm_start_detector.py: the bundled detector as a checkpoint that
`sonorisk train detector --resume` continues (scripts/caliper_detector.sh and
scripts/gpu_detector.sh start from it)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
import yaml

from sonorisk.config import to_dict
from sonorisk.detector.checkpoint import load_checkpoint
from sonorisk.models.load import load_detector_file
from sonorisk.models.resolve import resolve_models

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "warm_start_detector.py"


def _script():
    spec = importlib.util.spec_from_file_location("warm_start_detector", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _config(tmp_path: Path, **model_changes) -> Path:
    """The bundled detector's model section with a three-epoch run of one tiny
    iteration each."""
    bundled = load_detector_file(resolve_models(None).detector)
    model = to_dict(bundled.config.model) | model_changes
    train = dict(
        epochs=3,
        batch_size=1,
        max_iters_per_epoch=1,
        max_val_images=2,
        num_threads=1,
        warmup_iters=1,
        lr=1e-4,
        ema_decay=0.998,
    )
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"model": model, "train": train}))
    return path


def test_warm_start_resumes_at_the_last_epochs_with_the_bundled_weights(
    tmp_path: Path, busi_dir: Path
):
    from sonorisk.config import load_config
    from sonorisk.detector.config import DetectorConfig
    from sonorisk.detector.train import train_detector

    config = _config(tmp_path)
    out = tmp_path / "run"
    out.mkdir()
    assert (
        _script().main(
            [str(config), str(out / "last.pt"), "--epochs-left", "1", "--ema-updates", "7"]
        )
        == 0
    )
    start = load_checkpoint(out / "last.pt")
    bundled = load_detector_file(resolve_models(None).detector).model.state_dict()
    assert start["epoch"] == 1  # epochs 0 and 1 stand as done
    assert start["extra"]["ema_updates"] == 7 and start["extra"]["iteration"] == 7
    assert all(torch.equal(start["state_dict"][k], v) for k, v in bundled.items())
    assert "sonorisk-busi" in start["weights_source"]["name"]

    train_detector(
        [busi_dir], load_config(DetectorConfig, config), out, resume=True, progress=False
    )
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    epochs = [r["epoch"] for r in records if r["event"] == "epoch"]
    assert epochs == [2]  # only the last epoch was trained
    after = load_checkpoint(out / "last.pt")
    assert after["extra"]["ema_updates"] == 8  # the average went on counting
    assert after["weights_source"] == start["weights_source"]


def test_warm_start_refuses_another_architecture_and_bad_epochs(tmp_path: Path):
    module = _script()
    other = _config(tmp_path, backbone="mobilenet_v3_small")
    with pytest.raises(
        SystemExit, match="differs from the sonorisk-busi .* detector's: \\['backbone'\\]"
    ):
        module.main([str(other), str(tmp_path / "a.pt")])
    same = _config(tmp_path)
    with pytest.raises(SystemExit, match="--epochs-left must be 1..3"):
        module.main([str(same), str(tmp_path / "b.pt"), "--epochs-left", "4"])
    with pytest.raises(SystemExit, match="--from: no detector file at"):
        module.main([str(same), str(tmp_path / "c.pt"), "--from", str(tmp_path / "none.pt")])
    assert not any((tmp_path / name).exists() for name in ("a.pt", "b.pt", "c.pt"))


def test_warm_start_from_another_detector_file(tmp_path: Path):
    """--from: a run's checkpoint (here one whose weights were moved off the
    bundled ones) is the start, and the new checkpoint says where it came from."""
    module = _script()
    config = _config(tmp_path)
    first = tmp_path / "stills" / "last.pt"
    first.parent.mkdir()
    assert module.main([str(config), str(first)]) == 0
    moved = load_checkpoint(first)
    moved["state_dict"] = {
        k: v + 1 if v.is_floating_point() else v for k, v in moved["state_dict"].items()
    }
    torch.save(moved, first)

    out = tmp_path / "video" / "last.pt"
    out.parent.mkdir()
    assert module.main([str(config), str(out), "--from", str(first), "--epochs-left", "2"]) == 0
    start = load_checkpoint(out)
    assert start["epoch"] == 0
    assert all(torch.equal(start["state_dict"][k], v) for k, v in moved["state_dict"].items())
    assert start["weights_source"]["name"] == f"{first.parent} detector (last.pt)"
