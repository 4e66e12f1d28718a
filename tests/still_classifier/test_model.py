"""The still classifier: crops, predictions, CAM heatmaps, its file (what it stores,
what it builds on) and what it refuses."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from sonorisk.errors import ConfigError
from sonorisk.still_classifier import (
    StillFileError,
    StillScore,
    build_still_classifier,
    load_still_classifier,
)
from sonorisk.still_classifier.model import crop_square, stored_prefixes

from .conftest import tiny_config  # noqa: TID252


def _image(seed: int = 0, h: int = 120, w: int = 160) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_crop_is_square_with_the_margin_and_black_outside() -> None:
    image = np.full((100, 200, 3), 200, np.uint8)
    crop = crop_square(image, (90, 40, 110, 60), margin=0.5)  # 20 px box -> 40 px crop
    assert crop.shape == (40, 40, 3)
    assert (crop == 200).all()
    corner = crop_square(image, (0, 0, 20, 10), margin=0.25)  # 30 px crop around (10, 5)
    assert corner.shape == (30, 30, 3)
    assert (corner[:10] == 0).all() and (corner[:, :5] == 0).all()  # outside the image
    assert (corner[10:, 5:] == 200).all()
    gray = crop_square(image[:, :, 0], (90, 40, 110, 60), margin=0.0)
    assert gray.shape == (20, 20, 3)


def test_predict_probabilities_heatmaps_and_subtypes() -> None:
    classifier = build_still_classifier(tiny_config(subtypes=["cyst", "IDC", "DCIS"]))
    image = _image()
    crops = [classifier.crop(image, (40, 30, 100, 70)), image[:50, :90]]
    scores = classifier.predict(crops, heatmaps=True)
    assert len(scores) == 2 and all(isinstance(s, StillScore) for s in scores)
    for crop, score in zip(crops, scores, strict=True):
        assert 0.0 < score.probability < 1.0
        assert score.heatmap is not None and score.heatmap.dtype == np.float32
        assert score.heatmap.shape == crop.shape[:2]
        assert score.heatmap.min() >= 0.0 and score.heatmap.max() <= 1.0
        assert set(score.subtypes) == {"cyst", "IDC", "DCIS"}
        assert sum(score.subtypes.values()) == pytest.approx(1.0, abs=1e-5)
    plain = classifier.predict(crops)
    assert plain[0].heatmap is None
    assert plain[0].probability == pytest.approx(scores[0].probability, abs=1e-6)
    assert build_still_classifier(tiny_config()).predict(crops)[0].subtypes is None
    info = classifier.info
    assert info["classes"] == ["benign", "malignant"]
    assert info["subtypes"] == ["cyst", "IDC", "DCIS"]


def test_cam_follows_the_malignancy_weights() -> None:
    """The heatmap is the CAM of the malignant logit: with the head's weights on one
    channel, it peaks where that channel fires."""
    classifier = build_still_classifier(tiny_config(head_channels=1))
    net = classifier.net
    with torch.no_grad():
        net.head_fc.weight.fill_(1.0)
    fmap = torch.zeros(1, net.trunk.out_channels, 4, 4)
    fmap[0, :, 1, 2] = 1.0
    with torch.no_grad():
        net.head_conv.weight.fill_(1.0)
        net.head_conv.bias.zero_()
    _, _, cam = net.head(fmap)
    assert int(cam[0].argmax()) == 1 * 4 + 2


def test_bad_crops_are_refused() -> None:
    classifier = build_still_classifier(tiny_config())
    with pytest.raises(Exception, match="expected HxWx3"):
        classifier.predict([np.zeros((10, 10, 2), np.uint8)])


def test_random_model_round_trips_through_its_file(tmp_path: Path) -> None:
    classifier = build_still_classifier(tiny_config(subtypes=["a", "b"]))
    crops = [_image(1)[:60, :60], _image(2)[:40, :70]]
    path = classifier.save(tmp_path / "still.safetensors", training_data={"description": "x"})
    loaded = load_still_classifier(path)
    for a, b in zip(classifier.predict(crops), loaded.predict(crops), strict=True):
        assert a.probability == pytest.approx(b.probability, abs=1e-6)
        assert a.subtypes == pytest.approx(b.subtypes, abs=1e-6)
    half = load_still_classifier(classifier.save(tmp_path / "half.safetensors", dtype="float16"))
    assert half.predict(crops)[0].probability == pytest.approx(
        classifier.predict(crops)[0].probability, abs=0.02
    )
    assert loaded.info["training_data"] == {"description": "x"}
    assert loaded.info["base"] is None and loaded.info["stored"] == "all"


def test_builds_on_a_detector_and_stores_only_its_head(
    tmp_path: Path, lite0_detector: Path
) -> None:
    import shutil

    from sonorisk.models.bundle import sha256_file

    config = tiny_config(backbone="detector")
    classifier = build_still_classifier(config, detector=lite0_detector)
    # The trunk is the detector's, weight for weight.
    det = torch.load(lite0_detector, weights_only=True)["state_dict"]
    own = classifier.net.trunk.state_dict()
    assert torch.equal(
        own["_blocks.1._expand_conv.weight"], det["backbone.body._blocks.1._expand_conv.weight"]
    )
    assert torch.equal(
        own["_blocks.2._bn1.running_mean"], det["backbone.body._blocks.2._bn1.running_mean"]
    )
    folder = tmp_path / "bundle"
    folder.mkdir()
    shutil.copyfile(lite0_detector, folder / "detector.pt")
    path = classifier.save(folder / "still.safetensors")
    with safe_open(str(path), "pt") as fh:
        keys = set(fh.keys())
        header = json.loads(fh.metadata()["sonorisk"])
    assert keys and all(k.startswith(("head_conv.", "head_fc.")) for k in keys)
    assert header["base"]["sha256"] == sha256_file(lite0_detector)
    assert header["stored"] == "head"
    crops = [_image(3)[:64, :64]]
    loaded = load_still_classifier(path, detector=folder / "detector.pt")
    assert loaded.predict(crops)[0].probability == pytest.approx(
        classifier.predict(crops)[0].probability, abs=1e-6
    )
    # Found beside the file by its recorded name: here "detector.pt".
    assert load_still_classifier(path).predict(crops)[0].probability == pytest.approx(
        classifier.predict(crops)[0].probability, abs=1e-6
    )


def test_a_changed_or_missing_detector_is_refused(tmp_path: Path, lite0_detector: Path) -> None:
    classifier = build_still_classifier(tiny_config(backbone="detector"), detector=lite0_detector)
    path = classifier.save(tmp_path / "still.safetensors")
    with pytest.raises(StillFileError, match="not found"):
        load_still_classifier(path)  # no detector.pt beside it
    other = tmp_path / "other.pt"
    payload = torch.load(lite0_detector, weights_only=True)
    payload["state_dict"]["backbone.body._conv_stem.weight"] += 1.0
    torch.save(payload, other)
    with pytest.raises(StillFileError, match="not the detector it was trained on"):
        load_still_classifier(path, detector=other)
    with pytest.raises(ConfigError, match="give the detector file"):
        build_still_classifier(tiny_config(backbone="detector"))


def test_last_stage_is_stored_when_trained(lite0_detector: Path, tmp_path: Path) -> None:
    config = tiny_config(backbone="detector", finetune_last_stage=True)
    assert stored_prefixes(config)[-1] == "trunk._blocks.2."
    classifier = build_still_classifier(config, detector=lite0_detector)
    with torch.no_grad():
        classifier.net.trunk._blocks[2]._project_conv.weight.mul_(0.5)
    path = classifier.save(tmp_path / "s.safetensors")
    with safe_open(str(path), "pt") as fh:
        keys = set(fh.keys())
    assert "trunk._blocks.2._project_conv.weight" in keys
    assert not any(k.startswith("trunk._blocks.1.") for k in keys)
    loaded = load_still_classifier(path, detector=lite0_detector)
    assert torch.equal(
        loaded.net.trunk._blocks[2]._project_conv.weight,
        classifier.net.trunk._blocks[2]._project_conv.weight,
    )
    assert loaded.info["stored"] == "head+last_stage"


def test_other_files_are_refused(tmp_path: Path, lite0_detector: Path) -> None:
    with pytest.raises(StillFileError, match="not a sonorisk still classifier"):
        load_still_classifier(lite0_detector)
    pickled = tmp_path / "evil.pt"
    torch.save({"format": "sonorisk-still-classifier", "x": Path("a")}, pickled)
    with pytest.raises(StillFileError, match="needs pickle"):
        load_still_classifier(pickled)


def test_config_is_checked() -> None:
    with pytest.raises(ConfigError, match="crop.size"):
        tiny_config().__class__(crop=tiny_config().crop.__class__(size=8)).validate()
    bad = tiny_config()
    bad.train.candidates = ["everything"]
    with pytest.raises(ConfigError, match="train.candidates"):
        bad.validate()
