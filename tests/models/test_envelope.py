"""The safetensors envelope: round trips (fp32 exact, fp16 close), and model files
that need pickle are refused everywhere a model file is read."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from sonorisk.detector.checkpoint import (
    CheckpointError,
    config_from_checkpoint,
    load_checkpoint,
)
from sonorisk.errors import ConfigError, InputError
from sonorisk.models.convert import to_envelope
from sonorisk.models.envelope import read_envelope, read_model_file, write_envelope


class NotPlainData:
    """Any class: unpickling it means running code from the file."""

    def __reduce__(self):
        return (print, ("this ran while loading a model file",))


def _busi_image(busi_dir: Path) -> np.ndarray:
    import cv2

    path = next(p for p in sorted((busi_dir / "malignant").glob("*.png")) if "_mask" not in p.name)
    image = cv2.imread(str(path))
    assert image is not None, path
    return image[:, :, ::-1].copy()


def test_fp32_envelope_round_trips_exactly(checkpoints, tmp_path: Path, busi_dir: Path):
    from sonorisk.detector.predictor import TorchvisionDetector

    target = tmp_path / "detector.safetensors"
    assert to_envelope(checkpoints.detector, target) == "detector"
    original = load_checkpoint(checkpoints.detector)
    wrapped = load_checkpoint(target)
    # Everything but training-only state survives; weights bit for bit.
    assert "optimizer" not in wrapped and "scheduler" not in wrapped
    for key in ("config", "weights_source", "training", "metrics", "epoch", "disclaimer"):
        assert wrapped[key] == json.loads(json.dumps(original[key])), key  # tuples: lists
    assert config_from_checkpoint(wrapped) == config_from_checkpoint(original)
    assert wrapped["state_dict"].keys() == original["state_dict"].keys()
    for name, tensor in original["state_dict"].items():
        assert torch.equal(wrapped["state_dict"][name], tensor), name
        assert wrapped["state_dict"][name].dtype == tensor.dtype
    image = _busi_image(busi_dir)
    a = TorchvisionDetector.from_checkpoint(checkpoints.detector).model
    b = TorchvisionDetector.from_checkpoint(target).model
    x = [torch.from_numpy(image).permute(2, 0, 1).float() / 255]
    with torch.no_grad():
        fa, fb = a.backbone(a.transform(x)[0].tensors), b.backbone(b.transform(x)[0].tensors)
    for level in fa:
        assert torch.equal(fa[level], fb[level])


def test_fp16_envelope_is_half_the_size_and_scores_close(
    checkpoints, tmp_path: Path, busi_dir: Path
):
    from sonorisk.detector.predictor import TorchvisionDetector
    from sonorisk.video_classifier.registry import load_classifier

    classifier16 = tmp_path / "classifier16.safetensors"
    classifier32 = tmp_path / "classifier32.safetensors"
    to_envelope(checkpoints.classifier, classifier16, dtype="float16")
    to_envelope(checkpoints.classifier, classifier32)
    assert classifier16.stat().st_size < 0.6 * classifier32.stat().st_size
    payload = read_envelope(classifier16)
    assert payload["stored_dtype"] == "float16"
    state = payload["model_state"]
    floats = [v for v in state.values() if v.is_floating_point()]
    assert floats and all(v.dtype == torch.float32 for v in floats)  # cast back at load
    counters = [k for k in state if k.endswith("num_batches_tracked")]
    assert counters and all(state[k].dtype == torch.int64 for k in counters)  # never cast

    pt, half = load_classifier(checkpoints.classifier), load_classifier(classifier16)
    rng = np.random.default_rng(0)
    size = pt.config.clips.crop_size
    from sonorisk.records import Clip

    clips = [
        Clip(
            track_id=1,
            clip_index=i,
            frame_indices=tuple(range(8)),
            boxes=((0.0, 0.0, 8.0, 8.0),) * 8,
            crops=rng.integers(0, 255, (8, size, size, 3), dtype=np.uint8),
        )
        for i in range(4)
    ]
    p32 = np.array([s.probability for s in pt.predict(clips)])
    p16 = np.array([s.probability for s in half.predict(clips)])
    assert np.abs(p32 - p16).max() < 5e-3, (p32, p16)

    detector16 = tmp_path / "detector16.safetensors"
    to_envelope(checkpoints.detector, detector16, dtype="float16")
    a = TorchvisionDetector.from_checkpoint(checkpoints.detector).model
    b = TorchvisionDetector.from_checkpoint(detector16).model
    x = [torch.from_numpy(_busi_image(busi_dir)).permute(2, 0, 1).float() / 255]
    with torch.no_grad():
        fa, fb = a.backbone(a.transform(x)[0].tensors), b.backbone(b.transform(x)[0].tensors)
    for level in fa:
        err = (fa[level] - fb[level]).abs().max() / fa[level].abs().max()
        assert 0 < err < 1e-2, (level, float(err))  # changed by the rounding, but little


def test_files_that_need_pickle_are_refused(tmp_path: Path, checkpoints):
    from sonorisk.models.envelope import read_state_dict
    from sonorisk.video_classifier.registry import load_classifier

    payload = load_checkpoint(checkpoints.detector)
    payload["extra"] = {"hook": NotPlainData()}
    evil = tmp_path / "evil_detector.pt"
    torch.save(payload, evil)
    with pytest.raises(
        CheckpointError,
        match=r"evil_detector\.pt.*needs pickle.*must not run "
        r"code",
    ):
        load_checkpoint(evil)
    with pytest.raises(InputError, match=r"evil_detector\.pt.*must not run code"):
        load_classifier(evil)
    with pytest.raises(InputError, match=r"evil_detector\.pt.*must not run code"):
        read_state_dict(evil)
    with pytest.raises(InputError, match=r"evil_detector\.pt.*must not run code"):
        to_envelope(evil, tmp_path / "out.safetensors")
    assert not (tmp_path / "out.safetensors").exists()
    # The same data without the object loads (weights_only).
    del payload["extra"]["hook"]
    plain = tmp_path / "plain.pt"
    torch.save(payload, plain)
    assert load_checkpoint(plain)["kind"] == "sonorisk.detector"


def test_envelopes_refuse_what_they_cannot_hold(tmp_path: Path):
    from safetensors.torch import save_file

    bare = tmp_path / "bare.safetensors"
    save_file({"w": torch.zeros(2)}, str(bare))
    with pytest.raises(CheckpointError, match=r"bare\.safetensors.*without sonorisk metadata"):
        load_checkpoint(bare)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    with pytest.raises(InputError, match=r"junk\.safetensors.*not a readable"):
        read_model_file(junk)
    with pytest.raises(InputError, match="not plain data"):
        write_envelope(
            tmp_path / "x.safetensors",
            {"obj": object()},
            {"w": torch.zeros(1)},
            state_key="state_dict",
        )
    with pytest.raises(InputError, match="must not hold the state"):
        write_envelope(
            tmp_path / "x.safetensors",
            {"state_dict": {}},
            {"w": torch.zeros(1)},
            state_key="state_dict",
        )
    with pytest.raises(InputError, match="unknown storage dtype"):
        write_envelope(
            tmp_path / "x.safetensors",
            {},
            {"w": torch.zeros(1)},
            state_key="state_dict",
            dtype="int8",
        )


def test_envelope_keeps_shared_and_integer_tensors(tmp_path: Path):
    shared = torch.arange(6, dtype=torch.float32)
    state = {
        "a": shared,
        "b": shared[:3],
        "count": torch.tensor(7),
        "mask": torch.tensor([True, False]),
    }
    path = write_envelope(
        tmp_path / "m.safetensors",
        {"kind": "test", "n": np.int64(3)},
        state,
        state_key="weights",
        dtype="float16",
    )
    payload = read_envelope(path)
    assert payload["kind"] == "test" and payload["n"] == 3
    assert torch.equal(payload["weights"]["b"], torch.tensor([0.0, 1.0, 2.0]))
    assert payload["weights"]["count"].dtype == torch.int64
    assert payload["weights"]["mask"].dtype == torch.bool


@pytest.mark.skipif(
    __import__("sonorisk.detector.detectron2_backend", fromlist=["x"]).detectron2_available(),
    reason="detectron2 is installed",
)
def test_a_detectron2_envelope_dispatches_to_its_backend(tmp_path: Path, checkpoints):
    """detectron2 is not installed here: reaching its loader gives its clear error."""
    from sonorisk.detector.detectron2_backend import save_detectron2_checkpoint
    from sonorisk.models.load import load_models
    from sonorisk.models.resolve import resolve_models

    yaml_file = tmp_path / "faster_rcnn_R_34_FPN.yaml"
    yaml_file.write_text("MODEL:\n  META_ARCHITECTURE: GeneralizedRCNN\n")
    weights = tmp_path / "model_final.pth"
    torch.save({"model": {"backbone.weight": torch.zeros(2)}, "iteration": 10}, weights)
    envelope = save_detectron2_checkpoint(tmp_path / "d2.safetensors", yaml_file, weights)
    payload = load_checkpoint(envelope)
    assert payload["backend"] == "detectron2"
    assert payload["detectron2_yaml"].startswith("MODEL:")
    assert torch.equal(payload["state_dict"]["backbone.weight"], torch.zeros(2))
    resolved = resolve_models(None, envelope, checkpoints.classifier)
    with pytest.raises(ConfigError, match="detectron2 is not installed"):
        load_models(resolved)


def test_resume_only_state_of_a_weight_averaged_detector_stays_out(checkpoints, tmp_path: Path):
    # A detector trained with train.ema_decay keeps its raw trained weights in
    # extra.train_state_dict for --resume; the envelope keeps the averaged ones only.
    payload = torch.load(checkpoints.detector, map_location="cpu", weights_only=True)
    raw = {
        k: v.clone() + 1.0 if v.is_floating_point() else v.clone()
        for k, v in payload["state_dict"].items()
    }
    payload["extra"] = {"iteration": 7, "train_state_dict": raw, "ema_updates": 7}
    source = tmp_path / "ema.pt"
    torch.save(payload, source)
    to_envelope(source, tmp_path / "det.safetensors", dtype="float16", expect="detector")
    back = read_envelope(tmp_path / "det.safetensors")
    assert back["extra"] == {"iteration": 7, "ema_updates": 7}
    for name, tensor in payload["state_dict"].items():
        if tensor.is_floating_point():
            torch.testing.assert_close(back["state_dict"][name], tensor, atol=2e-2, rtol=1e-2)
