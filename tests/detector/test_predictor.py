from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from sonorisk.detector.checkpoint import CheckpointError
from sonorisk.detector.common import clean_detections
from sonorisk.detector.config import InferenceConfig
from sonorisk.detector.predictor import TorchvisionDetector
from sonorisk.errors import InputError
from sonorisk.records import Frame


@pytest.fixture(scope="module")
def detector(trained_dir: Path) -> TorchvisionDetector:
    torch.set_num_threads(1)
    # Threshold 0: the junk weights' low-score boxes are what the checks need.
    return TorchvisionDetector.from_checkpoint(
        trained_dir / "last.pt",
        InferenceConfig(score_thresh=0.0, batch_size=3, max_side=2000, min_side=16),
    )


def textured(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (h, w), dtype=np.uint8)


def test_boxes_are_in_source_pixels_and_finite(detector: TorchvisionDetector):
    frames = [textured(300, 500), textured(120, 90, 1), textured(700, 400, 2)]
    results = detector.predict(frames, frame_indices=[10, 11, 12])
    assert len(results) == 3
    assert any(results)  # untrained weights still propose boxes at threshold 0
    for frame, dets in zip(frames, results, strict=True):
        h, w = frame.shape
        for d in dets:
            x1, y1, x2, y2 = d.box
            assert np.isfinite(d.box).all() and np.isfinite(d.score)
            assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
    assert {d.frame_index for d in results[1]} <= {11}


def test_gray_rgb_and_frames_agree(detector: TorchvisionDetector):
    gray = textured(160, 200, 3)
    rgb = np.repeat(gray[:, :, None], 3, axis=2)
    rgba = np.concatenate([rgb, np.full_like(gray[:, :, None], 255)], axis=2)
    a, b, c = detector.predict([gray, rgb, rgba])
    assert [d.box for d in a] == [d.box for d in b] == [d.box for d in c]
    (via_frame,) = detector.predict([Frame(42, 1.4, gray)])
    assert all(d.frame_index == 42 for d in via_frame)
    floats = detector.predict([gray.astype(np.float32) / 255.0])[0]
    assert len(floats) == len(a)


def test_blank_frames_give_empty_results(detector: TorchvisionDetector):
    black = np.zeros((200, 200), np.uint8)
    white = np.full((200, 200, 3), 255, np.uint8)
    assert detector.predict([black, white]) == [[], []]


def test_tiny_huge_and_malformed_frames_are_refused(detector: TorchvisionDetector):
    with pytest.raises(InputError, match="frame 0.*too small"):
        detector.predict([np.zeros((8, 8), np.uint8)])
    with pytest.raises(InputError, match="frame 0.*too large"):
        detector.predict([np.zeros((100, 2100), np.uint8)])
    with pytest.raises(InputError, match="expected HxW gray or HxWx3"):
        detector.predict([np.zeros((50, 50, 2), np.uint8)])
    with pytest.raises(InputError, match="NaN"):
        detector.predict([np.full((50, 50), np.nan, np.float32)])
    with pytest.raises(InputError, match="numpy image"):
        detector.predict(["not an image"])  # type: ignore[list-item]


def test_clean_detections_drops_nan_and_degenerate_boxes():
    boxes = np.array([[np.nan, 0, 10, 10], [5, 5, 5, 20], [-5, -5, 500, 40], [1, 1, 9, 9]])
    scores = np.array([0.9, 0.9, 0.8, 0.1])
    out = clean_detections(boxes, scores, 100, 50, 7, 0.2)
    assert [d.box for d in out] == [(0.0, 0.0, 100.0, 40.0)]


def test_wrong_checkpoints_are_refused(tmp_path: Path, trained_dir: Path):
    state_only = tmp_path / "state.pt"
    torch.save({"weight": torch.zeros(2)}, state_only)
    with pytest.raises(CheckpointError, match="state.pt.*not a sonorisk detector"):
        TorchvisionDetector.from_checkpoint(state_only)
    text = tmp_path / "model.pt"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match="model.pt.*not a readable"):
        TorchvisionDetector.from_checkpoint(text)
    with pytest.raises(CheckpointError, match="not found"):
        TorchvisionDetector.from_checkpoint(tmp_path / "absent.pt")


def test_inference_knobs_override_input_size(trained_dir: Path):
    det = TorchvisionDetector.from_checkpoint(
        trained_dir / "last.pt",
        InferenceConfig(score_thresh=0.0),
        model_overrides={"min_size": 64, "max_size": 96},
    )
    assert det.model.transform.min_size == (64,)
    assert det.info["weights_source"]["kind"] == "random"
    det.config = replace(det.config)  # config is a plain dataclass: copyable
    assert det.device.type == "cpu"  # no GPU here; the CUDA/autocast path is untested


def test_a_run_turns_flip_tta_on_and_the_card_says_so(trained_dir: Path):
    """`--detector-tta` reaches the detector as an override of its inference
    settings (the file's own say off), and its card records it for reports."""
    from sonorisk.models.load import load_detector_file
    from sonorisk.pipeline.config import ModelsConfig

    plain = load_detector_file(trained_dir / "last.pt")
    assert not plain.config.inference.tta_hflip
    assert "test_time_augmentation" not in plain.info
    overrides = ModelsConfig(detector_min_size=96, detector_tta=True).detector_overrides()
    assert overrides == {"min_size": 96, "tta_hflip": True}
    tta = load_detector_file(trained_dir / "last.pt", overrides=overrides)
    assert tta.config.inference.tta_hflip and tta.model.transform.min_size == (96,)
    assert "flip" in tta.info["test_time_augmentation"]
    # Switched off again where a file had it on: False is a setting, not "unset".
    off = ModelsConfig(detector_tta=False).detector_overrides()
    assert off == {"tta_hflip": False}
    assert ModelsConfig().detector_overrides() is None


def test_nested_box_of_the_same_lesion_is_dropped():
    # An inner box (inside the outer one) passes IoU-NMS but is the same lesion.
    boxes = np.array([[10, 10, 60, 50], [20, 20, 50, 30], [70, 10, 90, 40]], dtype=float)
    scores = np.array([0.9, 0.8, 0.7])
    kept = clean_detections(boxes, scores, 100, 60, 3, 0.2, containment_thresh=0.8)
    assert [d.box for d in kept] == [(10.0, 10.0, 60.0, 50.0), (70.0, 10.0, 90.0, 40.0)]
    # Off (1.0): all three remain, highest score first.
    assert len(clean_detections(boxes, scores, 100, 60, 3, 0.2, containment_thresh=1.0)) == 3
    # A lower-scoring outer box around a kept inner box is dropped too.
    kept = clean_detections(boxes[[1, 0]], np.array([0.9, 0.5]), 100, 60, 3, 0.2, 0.8)
    assert [d.box for d in kept] == [(20.0, 20.0, 50.0, 30.0)]


def test_a_nested_box_is_demoted_below_the_operating_threshold_not_lost():
    boxes = np.array([[10, 10, 60, 50], [20, 20, 50, 30], [70, 10, 90, 40]], dtype=float)
    scores = np.array([0.9, 0.8, 0.7])
    # Ranked list (threshold 0, as AP uses): the nested box stays, at 0.8 x 0.25.
    ranked = clean_detections(boxes, scores, 100, 60, 3, 0.0, 0.8, containment_factor=0.25)
    assert [(d.box, round(d.score, 3)) for d in ranked] == [
        ((10.0, 10.0, 60.0, 50.0), 0.9),
        ((70.0, 10.0, 90.0, 40.0), 0.7),
        ((20.0, 20.0, 50.0, 30.0), 0.2),
    ]
    # At an operating threshold above the demoted score it is gone.
    operating = clean_detections(boxes, scores, 100, 60, 3, 0.3, 0.8, containment_factor=0.25)
    assert len(operating) == 2


def test_flip_tta_fuses_the_plain_and_the_mirrored_view(trained_dir: Path):
    from sonorisk.detector.fusion import hflip_boxes, weighted_box_fusion

    frame = textured(200, 320, 5)
    raw = InferenceConfig(score_thresh=0.0, containment_thresh=1.0, batch_size=2)
    plain = TorchvisionDetector.from_checkpoint(trained_dir / "last.pt", raw)
    tta = TorchvisionDetector.from_checkpoint(trained_dir / "last.pt", replace(raw, tta_hflip=True))

    def arrays(dets):
        return (
            np.array([d.box for d in dets], np.float32).reshape(-1, 4),
            np.array([d.score for d in dets], np.float32),
        )

    def ordered(boxes, scores):
        # Mirror-symmetric boxes of the junk weights often tie on score, and the
        # order of a tie is unspecified: compare rows by score, then position.
        rows = sorted(
            range(len(scores)),
            key=lambda r: (-round(float(scores[r]), 4), tuple(boxes[r].round(1))),
        )
        return boxes[rows], scores[rows]

    a = arrays(plain.predict([frame])[0])
    mirrored_boxes, mirrored_scores = arrays(plain.predict([frame[:, ::-1].copy()])[0])
    b = (hflip_boxes(mirrored_boxes, frame.shape[1]), mirrored_scores)
    assert len(a[0]) and len(b[0])
    expected_boxes, expected_scores = ordered(*weighted_box_fusion([a, b]))
    got_boxes, got_scores = ordered(*arrays(tta.predict([frame, frame])[1]))
    assert len(got_boxes) == len(expected_boxes)
    np.testing.assert_allclose(got_boxes, expected_boxes, atol=0.05)
    np.testing.assert_allclose(got_scores, expected_scores, atol=1e-4)
