"""The detectron2 backend: its error paths, and ``predict`` run against a stand-in
detectron2 package (detectron2 itself cannot be installed on this machine)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sonorisk.detector.config import DetectorConfig
from sonorisk.detector.detectron2_backend import detectron2_available
from sonorisk.detector.predictor import load_detector
from sonorisk.errors import ConfigError, InputError
from sonorisk.records import Frame


@pytest.mark.skipif(detectron2_available(), reason="detectron2 is installed")
def test_detectron2_backend_says_it_is_missing(tmp_path: Path):
    cfg = DetectorConfig(
        backend="detectron2",
        detectron2_config=str(tmp_path / "c.yaml"),
        detectron2_weights=str(tmp_path / "m.pth"),
    )
    with pytest.raises(ConfigError, match="detectron2 is not installed"):
        load_detector(cfg)


def test_detectron2_backend_needs_config_and_weights():
    with pytest.raises(InputError, match="needs detectron2_config"):
        load_detector(DetectorConfig(backend="detectron2"))
    with pytest.raises(InputError, match="needs a checkpoint"):
        load_detector(DetectorConfig())


STAND_IN = Path(__file__).parent / "d2_stand_in"


@pytest.fixture
def stand_in_detectron2(monkeypatch: pytest.MonkeyPatch):
    """detectron2 cannot be installed here (not on PyPI; it does not build on this
    machine), so ``Detectron2Detector`` runs against a small stand-in package
    (tests/detector/d2_stand_in, see its docstring) put on ``sys.path`` for one
    test: the backend's own code runs unchanged, only detectron2 is stood in for."""
    import sys

    if detectron2_available():
        pytest.skip("a real detectron2 is installed")
    monkeypatch.syspath_prepend(str(STAND_IN))
    yield
    for name in [m for m in sys.modules if m == "detectron2" or m.startswith("detectron2.")]:
        del sys.modules[name]


def _spot_frame(index: int) -> tuple[Frame, tuple[float, float, float, float]]:
    """A gray frame with one bright disc, and the box of its bright pixels."""
    rng = np.random.default_rng(index)
    image = rng.integers(20, 80, (80, 120), dtype=np.uint8)
    yy, xx = np.mgrid[:80, :120]
    disc = (xx - 60) ** 2 + (yy - 40) ** 2 <= 100
    image[disc] = 230
    ys, xs = np.nonzero(disc)
    return Frame(index, index / 25, image), (
        float(xs.min()),
        float(ys.min()),
        float(xs.max() + 1),
        float(ys.max() + 1),
    )


def _d2_files(tmp_path: Path) -> tuple[Path, Path]:
    yaml_file = tmp_path / "faster_rcnn_R_34_FPN.yaml"
    yaml_file.write_text(
        "MODEL:\n  META_ARCHITECTURE: GeneralizedRCNN\n"
        "  BACKBONE:\n    NAME: build_resnet_fpn_backbone\n"
        "  ROI_HEADS:\n    NUM_CLASSES: 1\n"
    )
    weights = tmp_path / "model_final.pth"
    torch.save({"model": {"score": torch.tensor(0.9)}, "iteration": 10}, weights)
    return yaml_file, weights


def test_detectron2_predict_answers_like_the_torchvision_backend(
    stand_in_detectron2, tmp_path: Path
):
    from sonorisk.detector.config import InferenceConfig
    from sonorisk.detector.detectron2_backend import Detectron2Detector

    yaml_file, weights = _d2_files(tmp_path)
    detector = load_detector(
        DetectorConfig(
            backend="detectron2",
            detectron2_config=str(yaml_file),
            detectron2_weights=str(weights),
            inference=InferenceConfig(score_thresh=0.3, device="cpu"),
        )
    )
    assert isinstance(detector, Detectron2Detector)
    assert detector.info["backend"] == "detectron2"
    assert detector.info["architecture"] == "GeneralizedRCNN"
    predictor = detector._predictor
    # The backend lets every box through detectron2 and applies its own threshold;
    # it asks for RGB, and weights come from sonorisk's reader, not detectron2's.
    cfg = predictor.cfg
    assert cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST == 0.0 and cfg.MODEL.WEIGHTS == ""
    assert cfg.INPUT.FORMAT == "RGB" and cfg.MODEL.ROI_HEADS.NUM_CLASSES == 1

    frame, spot = _spot_frame(7)
    blank = Frame(8, 8 / 25, np.zeros((80, 120), np.uint8))
    found = detector.predict([frame, blank])
    # The lesion box (class 0, the loaded weight as its score) and the box that
    # leaves the frame, clipped; not the other class's box, not the 0.1 box.
    assert [(d.frame_index, d.box, d.score) for d in found[0]] == [
        (7, spot, pytest.approx(0.9)),
        (7, (110.0, 2.0, 120.0, 12.0), pytest.approx(0.6)),
    ]
    assert found[1] == []  # a blank frame never reaches the model
    assert len(predictor.seen) == 1
    assert predictor.seen[0].shape == (80, 120, 3) and predictor.seen[0].dtype == np.uint8

    # Bare images take their indices from frame_indices, as on the other backend.
    again = detector.predict([frame.image], frame_indices=[42])
    assert [(d.frame_index, d.box) for d in again[0]] == [
        (42, spot),
        (42, (110.0, 2.0, 120.0, 12.0)),
    ]
    with pytest.raises(InputError, match="frame 3"):
        detector.predict([Frame(3, 0.0, np.zeros((4, 4), np.uint8))])


def test_detectron2_envelope_loads_on_its_backend(stand_in_detectron2, tmp_path: Path):
    from sonorisk.detector.detectron2_backend import save_detectron2_checkpoint
    from sonorisk.detector.predictor import load_detector_checkpoint

    yaml_file, weights = _d2_files(tmp_path)
    envelope = save_detectron2_checkpoint(tmp_path / "d2.safetensors", yaml_file, weights)
    detector = load_detector_checkpoint(envelope, device="cpu")
    assert detector.info["checkpoint"] == str(envelope)
    frame, spot = _spot_frame(5)
    (found,) = detector.predict([frame])
    assert found[0].box == spot and found[0].score == pytest.approx(0.9, abs=1e-3)
