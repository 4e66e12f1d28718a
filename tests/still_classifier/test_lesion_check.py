"""The still lesion check (sonorisk.still_classifier.lesion_check): fitted on crops
of stills the test draws, stored beside the still classifier, loaded with it."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import pytest
import torch

from sonorisk.still_classifier.lesion_check import (
    CHECK_FILE,
    StillCheckError,
    choose_threshold,
    fit_still_check,
    load_check,
)
from sonorisk.still_classifier.model import build_still_classifier, load_still_classifier

from .conftest import tiny_config  # noqa: TID252


@dataclass
class _Still:
    still_id: str
    label: str
    group: str
    boxes: tuple
    width: int = 96
    height: int = 80


def _image(seed: int, blob: tuple | None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    gray = cv2.GaussianBlur(rng.integers(60, 120, (80, 96), dtype=np.uint8), (5, 5), 0)
    if blob is not None:
        cv2.circle(gray, blob[:2], blob[2], 10, -1)  # a dark mass
    return np.repeat(gray[:, :, None], 3, axis=2)


def _data(n: int = 30):
    stills, images, detections = [], {}, {}
    for i in range(n):
        sid = f"s{i}"
        if i % 3 == 2:  # normal
            stills.append(_Still(sid, "normal", f"g{i // 2}", ()))
            images[sid] = _image(i, None)
            detections[sid] = [((10.0, 10.0, 40.0, 40.0), 0.55 + 0.01 * (i % 5))]
        else:
            cx, cy = 30 + (i % 4) * 10, 30 + (i % 3) * 8
            box = (cx - 12.0, cy - 12.0, cx + 12.0, cy + 12.0)
            stills.append(_Still(sid, "benign" if i % 2 else "malignant", f"g{i // 2}", (box,)))
            images[sid] = _image(i, (cx, cy, 12))
            detections[sid] = [(box, 0.7 + 0.01 * (i % 7))]
    return stills, images, detections


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    torch.manual_seed(0)
    classifier = build_still_classifier(tiny_config())
    stills, images, detections = _data()
    check, report = fit_still_check(
        classifier, stills, detections, images.__getitem__, 0.5, folds=3
    )
    folder = tmp_path_factory.mktemp("still_check")
    path = classifier.save(folder / "still_classifier.safetensors")
    from sonorisk.models.bundle import sha256_file

    check.save(folder / CHECK_FILE, sha256_file(path))
    return classifier, check, report, path, images


def test_the_check_is_fitted_on_lesions_against_background(fitted):
    _, check, report, _, _ = fitted
    assert report["crops"]["lesion"] == 20
    assert report["crops"]["random"] == 30  # 3 random boxes per normal still
    assert report["crops"]["false_detection"] == 10  # the detector's boxes on normals
    lesions = report["detector_lesions"]
    assert (lesions["n"], lesions["true"], lesions["false"]) == (30, 20, 10)
    assert check.weight.shape == (build_dims(),)
    assert 0.0 <= check.min_confidence <= 1.0


def build_dims() -> int:
    return build_still_classifier(tiny_config()).net.trunk.out_channels


def test_the_check_is_loaded_with_its_classifier(fitted):
    classifier, check, _, path, images = fitted
    loaded = load_still_classifier(path)
    assert loaded.lesion_check is not None
    assert loaded.lesion_check.min_confidence == check.min_confidence
    crop = classifier.crop(images["s0"], (18.0, 18.0, 42.0, 42.0))
    feats = classifier.features([crop])
    score = loaded.predict([crop])[0]
    assert score.lesion_probability == pytest.approx(float(check.probability(feats)[0]), abs=1e-5)
    # the malignancy is the classifier's, unchanged by the check
    assert score.probability == pytest.approx(classifier.predict([crop])[0].probability, abs=1e-5)
    assert loaded.info["lesion_check"]["min_confidence"] == check.min_confidence


def test_a_check_of_another_classifier_is_refused(fitted, tmp_path):
    _, check, _, _, _ = fitted
    other = build_still_classifier(tiny_config(head_channels=4))
    path = other.save(tmp_path / "still_classifier.safetensors")
    check.save(tmp_path / CHECK_FILE, "0" * 64)
    with pytest.raises(StillCheckError, match="fitted on the still classifier"):
        load_still_classifier(path)
    with pytest.raises(StillCheckError):
        load_check(tmp_path / CHECK_FILE, path)


def test_without_a_check_nothing_changes(tmp_path):
    classifier = build_still_classifier(tiny_config())
    path = classifier.save(tmp_path / "still_classifier.safetensors")
    loaded = load_still_classifier(path)
    assert loaded.lesion_check is None
    assert "lesion_check" not in loaded.info
    crop = np.full((40, 40, 3), 90, np.uint8)
    assert loaded.predict([crop])[0].lesion_probability is None


def test_the_threshold_trades_lesion_stills_against_false_lesions():
    # Lesion stills: a true lesion at det 0.9; normals: a false one at det 0.6.
    det = np.asarray([0.9] * 10 + [0.6] * 10)
    check = np.asarray([0.8] * 10 + [0.2] * 10)
    labels = np.asarray([1] * 10 + [0] * 10)
    still_of = [f"s{i}" for i in range(20)]
    kind = {s: ("lesion" if i < 10 else "normal") for i, s in enumerate(still_of)}
    chosen = choose_threshold(det, check, labels, still_of, still_of, kind, folds=5)
    assert chosen["lesion_stills_kept"] == 1.0
    assert chosen["false_per_normal_still"] == 0.0
    assert chosen["without_threshold"]["false_per_normal_still"] == 1.0
