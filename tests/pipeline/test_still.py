"""Scoring still images (issue 17): the video pipeline's events and fold for one frame.

The detector is a test double only where the test is about what a detector
returns (``ScoredDetector``: chosen scores); elsewhere it is the real if
simple ``BrightBlobDetector``. The still classifier is a real
``StillClassifier`` (random weights, small): its numbers are checked against
the classifier run directly on the crop, not against made-up values.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import jsonschema
import numpy as np
import pytest
from PIL import Image

from sonorisk.errors import ConfigError, InputError
from sonorisk.models.load import ScoringModels
from sonorisk.pipeline.config import PipelineConfig
from sonorisk.pipeline.document import ScoreDocument
from sonorisk.pipeline.events import ClipScored, FrameBoxes, LesionEnded, VideoEnded
from sonorisk.pipeline.report import RESEARCH_NOTICE, load_schema
from sonorisk.pipeline.score_file import score_path, summary_line
from sonorisk.pipeline.scorer import StageTiming
from sonorisk.pipeline.still import find_lesions, score_still, still_config, still_events
from sonorisk.records import Detection

from ..io.test_io_still import _dicom, _region  # noqa: TID252 (DICOM as tests/io makes it)
from .conftest import BrightBlobDetector  # noqa: TID252

SUBTYPES = ["cyst", "fibroadenoma", "carcinoma"]


@pytest.fixture(scope="session")
def still_classifier():
    import torch

    from sonorisk.still_classifier import StillClassifierConfig, build_still_classifier

    torch.set_num_threads(1)
    cfg = StillClassifierConfig()
    cfg.crop.size = 32
    cfg.model.backbone = "random"
    cfg.model.trunk_blocks = 3
    cfg.model.head_channels = 8
    cfg.model.subtypes = list(SUBTYPES)
    return build_still_classifier(cfg)


def _models(detector: Any, still: Any) -> ScoringModels:
    cards = {"detector": dict(detector.info), "classifier": {"kind": "clip classifier (unused)"}}
    return ScoringModels(detector, None, cards, None, still)


def ultrasound(
    h: int = 160,
    w: int = 200,
    blobs: tuple[tuple[int, int, int], ...] = ((120, 70, 15),),
    seed: int = 0,
) -> np.ndarray:
    """Smooth gray speckle (RGB) with bright discs (cx, cy, r)."""
    rng = np.random.default_rng(seed)
    gray = cv2.GaussianBlur(rng.integers(30, 90, (h, w), dtype=np.uint8), (5, 5), 0)
    for cx, cy, r in blobs:
        cv2.circle(gray, (cx, cy), r, 235, -1)
    return np.repeat(gray[:, :, None], 3, axis=2)


def save(tmp_path: Path, name: str, image: np.ndarray) -> Path:
    path = tmp_path / name
    Image.fromarray(image).save(path)
    return path


def valid(document: dict) -> dict:
    jsonschema.validate(document, load_schema())
    return document


def near(box: list[float], expected: tuple[float, ...], tol: float = 1.5) -> bool:
    return all(abs(a - b) <= tol for a, b in zip(box, expected, strict=True))


def test_a_still_scores_through_the_video_schema(tmp_path, still_classifier):
    image = ultrasound()
    path = save(tmp_path, "benign_002.png", image)
    models = _models(BrightBlobDetector(), still_classifier)
    doc = valid(score_still(path, models, PipelineConfig(), tmp_path / "out", progress=False))
    assert json.loads((tmp_path / "out" / "benign_002.json").read_text()) == doc

    video = doc["video"]
    assert video["kind"] == "still" and video["frames_scored"] == 1 and video["fps"] is None
    assert (video["width"], video["height"], video["codec"]) == (200, 160, "png")
    assert video["still"]["format"] == "png" and video["still"]["notes"] == []
    assert doc["status"] == "scored" and doc["clips"] == 1 and doc["reason"] is None
    [lesion] = doc["lesions"]
    assert near(lesion["boxes"][0]["box"], (105, 55, 136, 86))
    assert lesion["boxes"][0]["source"] == "detector" and lesion["first_frame"] == 0

    # The lesion's risk is the still classifier on the lesion's crop, nothing else.
    box = tuple(lesion["boxes"][0]["box"])
    [direct] = still_classifier.predict([still_classifier.crop(image, box)])
    assert lesion["risk"] == pytest.approx(direct.probability, abs=1e-4)
    assert doc["risk"] == lesion["risk"]
    [clip] = lesion["clips"]
    assert clip["frame_indices"] == [0] and clip["probability"] == lesion["risk"]
    assert clip["class_probabilities"]["malignant"] == pytest.approx(direct.probability)
    assert set(lesion["subtypes"]) == set(SUBTYPES)
    assert lesion["subtypes"] == pytest.approx(direct.subtypes)
    # A still's confidence is its detector score (BrightBlobDetector says 0.9).
    assert lesion["confidence"] == pytest.approx(0.9) and lesion["evidence"]["detector_frames"] == 1
    assert RESEARCH_NOTICE in doc["notice"]
    assert doc["models"]["still_classifier"]["kind"] == still_classifier.info["kind"]
    assert doc["pipeline"]["lesions"]["confidence"]["detector"] == 1.0

    typed = ScoreDocument.from_json(doc)
    assert typed.kind == "still" and typed.lesions[0].subtypes == lesion["subtypes"]
    assert summary_line(doc) == (
        f"benign_002.png: risk {doc['risk']:.3f} [lesion 1: {doc['risk']:.3f} (confidence 0.90)]"
    )


def test_a_screenshot_still_is_cropped_to_its_scan_region(tmp_path, still_classifier):
    canvas = np.zeros((300, 420, 3), np.uint8)
    canvas[70:230, 150:350] = ultrasound()
    cv2.putText(
        canvas, "GAIN 52 DEPTH 4", (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2
    )  # the scanner's text: bright, and no lesion
    path = save(tmp_path, "screen.png", canvas)
    detector = BrightBlobDetector()
    doc = valid(
        score_still(
            path, _models(detector, still_classifier), PipelineConfig(), tmp_path, progress=False
        )
    )
    assert detector.seen_shapes[0][0] < 300 and detector.seen_shapes[0][1] < 420
    region = doc["video"]["scan_region"]
    assert region is not None and near(region["box"], (150, 70, 350, 230), tol=4)
    [lesion] = doc["lesions"]  # the text was not shown to the detector
    assert near(lesion["boxes"][0]["box"], (150 + 105, 70 + 55, 150 + 136, 70 + 86))


def test_no_lesion_no_number(tmp_path, still_classifier):
    path = save(tmp_path, "normal.jpg", ultrasound(blobs=()))
    doc = valid(
        score_still(
            path,
            _models(BrightBlobDetector(), still_classifier),
            PipelineConfig(),
            tmp_path,
            progress=False,
        )
    )
    assert doc["status"] == "no scorable lesion" and doc["risk"] is None
    assert doc["lesions"] == [] and doc["clips"] == 0
    assert doc["reason"].startswith("no lesion found")
    assert RESEARCH_NOTICE in doc["notice"]
    assert summary_line(doc).startswith("normal.jpg: no scorable lesion (no lesion found")


@dataclass
class ScoredDetector:
    """Returns the detections it was given, whatever the image (chosen scores)."""

    found: list[tuple[tuple[float, float, float, float], float]]
    info: dict[str, Any] = field(default_factory=lambda: {"kind": "chosen scores (test)"})

    def predict(self, frames):
        return [[Detection(f.index, box, score) for box, score in self.found] for f in frames]


def test_lesions_are_detections_that_would_start_a_track(tmp_path, still_classifier):
    image = ultrasound(blobs=((50, 50, 12), (150, 100, 14)))
    path = save(tmp_path, "two.png", image)
    found = [((38, 38, 63, 63), 0.6), ((136, 86, 165, 115), 0.95), ((5, 5, 40, 40), 0.3)]
    models = _models(ScoredDetector(found), still_classifier)
    config = replace(PipelineConfig(), crop="none")
    doc = valid(score_still(path, models, config, tmp_path, progress=False))
    # 0.3 is below tracking.track_activation_threshold (0.5): not a lesion; best first.
    assert [lz["confidence"] for lz in doc["lesions"]] == [0.95, 0.6]
    first, second = doc["lesions"]
    assert doc["risk"] == first["risk"]  # most_confident_lesion: the detector's surest
    assert doc["risk_rule"]["name"] == "most_confident_lesion"
    rules = replace(config.lesions, risk_rule="max_lesion_risk")
    doc = valid(score_still(path, models, replace(config, lesions=rules), tmp_path, progress=False))
    assert doc["risk"] == max(first["risk"], second["risk"])


def test_the_events_are_the_videos(still_classifier):
    image = ultrasound(blobs=((50, 50, 12), (150, 100, 14)))
    config = still_config(PipelineConfig())
    timing = StageTiming()
    lesions, region = find_lesions(image, BrightBlobDetector(), config, timing)
    events = still_events(image, lesions, still_classifier, config, region, timing)
    kinds = [type(e).__name__ for e in events]
    assert kinds == [
        "FrameBoxes",
        "ClipScored",
        "LesionUpdated",
        "ClipScored",
        "LesionUpdated",
        "LesionEnded",
        "LesionEnded",
        "VideoEnded",
    ]
    frame_boxes = events[0]
    assert isinstance(frame_boxes, FrameBoxes) and len(frame_boxes.boxes) == 2
    clips = [e for e in events if isinstance(e, ClipScored)]
    assert all(c.score.frame_indices == (0,) and c.crops is None for c in clips)
    ended = [e for e in events if isinstance(e, LesionEnded)]
    assert [e.lesion_id for e in ended] == [1, 2] and not any(e.dropped for e in ended)
    assert isinstance(events[-1], VideoEnded) and events[-1].frames == 1


def test_heatmaps_and_overlay_are_pngs(tmp_path, still_classifier):
    image = ultrasound()
    path = save(tmp_path, "lesion.bmp", image)
    out = tmp_path / "out"
    doc = valid(
        score_still(
            path,
            _models(BrightBlobDetector(), still_classifier),
            PipelineConfig(),
            out,
            overlay=True,
            heatmaps=True,
            progress=False,
        )
    )
    [clip] = doc["lesions"][0]["clips"]
    assert clip["heatmap"] == "lesion.heatmaps/lesion1_clip0.png"
    strip = cv2.imread(str(out / clip["heatmap"]))
    box = doc["lesions"][0]["boxes"][0]["box"]
    crop = still_classifier.crop(image, tuple(box))
    assert strip.shape[:2] == (2 * crop.shape[0], crop.shape[1])  # crop over its CAM
    assert doc["outputs"] == {"overlay": "lesion.overlay.png"}
    overlay = cv2.cvtColor(cv2.imread(str(out / "lesion.overlay.png")), cv2.COLOR_BGR2RGB)
    zoom = overlay.shape[1] / image.shape[1]  # small stills are enlarged for the labels
    x1, y2 = round(box[0] * zoom), round(box[3] * zoom)
    assert overlay[y2 - 4, x1].tolist() == [0, 220, 0]  # the box's left edge, in green
    assert not (out / "lesion.overlay.mp4").exists()


def test_what_reading_changed_reaches_the_document(tmp_path, still_classifier):
    rgba = np.dstack([ultrasound(), np.full((160, 200), 128, np.uint8)])
    path = tmp_path / "alpha.png"
    Image.fromarray(rgba, "RGBA").save(path)
    doc = valid(
        score_still(
            path,
            _models(BrightBlobDetector(), still_classifier),
            PipelineConfig(),
            tmp_path,
            progress=False,
        )
    )
    assert any("alpha channel dropped" in n for n in doc["video"]["still"]["notes"])
    assert doc["video"]["pixel_format"] == "RGBA"


def test_a_bad_still_names_the_file(tmp_path, still_classifier):
    path = tmp_path / "cut.png"
    path.write_bytes(save(tmp_path, "whole.png", ultrasound()).read_bytes()[:300])
    with pytest.raises(InputError) as info:
        score_path(
            path,
            _models(BrightBlobDetector(), still_classifier),
            PipelineConfig(),
            tmp_path,
            progress=False,
        )
    assert str(path) in str(info.value) and "PNG" in str(info.value)
    assert not (tmp_path / "cut.json").exists()


def test_models_without_a_still_classifier_say_so(tmp_path):
    path = save(tmp_path, "x.png", ultrasound())
    with pytest.raises(ConfigError) as info:
        score_still(path, _models(BrightBlobDetector(), None), PipelineConfig(), tmp_path)
    assert str(path) in str(info.value) and "no still-image classifier" in str(info.value)


# --- score_path: stills one way, videos (a multi-frame DICOM too) the other --------
def test_score_path_tells_stills_from_videos(tmp_path, still_classifier, tiny_i3d):
    image = ultrasound()[..., 0]
    one = _dicom(tmp_path / "still.dcm", image, SequenceOfUltrasoundRegions=[_region(0.008, 0.008)])
    cine = _dicom(tmp_path / "cine.dcm", np.stack([image] * 3), frames=3, FrameTime=40.0)
    models = ScoringModels(
        BrightBlobDetector(),
        tiny_i3d,
        {"detector": {"kind": "bright-blob (test)"}, "classifier": {}},
        None,
        still_classifier,
    )
    still_doc = valid(score_path(one, models, PipelineConfig(), tmp_path, progress=False))
    assert still_doc["video"]["kind"] == "still" and still_doc["status"] == "scored"
    assert still_doc["video"]["still"]["pixel_spacing_mm"] == pytest.approx([0.08, 0.08])
    video_doc = valid(score_path(cine, models, PipelineConfig(), tmp_path, progress=False))
    assert video_doc["video"]["kind"] == "video" and video_doc["video"]["frames_scored"] == 3
    assert "still" not in video_doc["video"]
    assert all("subtypes" not in lesion for lesion in video_doc["lesions"])


def test_the_memory_budget_holds_for_stills_too(tmp_path, still_classifier):
    path = save(tmp_path, "big.png", ultrasound(h=600, w=800))
    config = replace(PipelineConfig(), memory_budget_mb=1300.0)  # ~1.25 GB + 110 B a pixel
    with pytest.raises(InputError) as info:
        score_still(path, _models(BrightBlobDetector(), still_classifier), config, tmp_path)
    assert str(path) in str(info.value) and "memory budget" in str(info.value)


def _with_check(classifier, check_probability: float, threshold: float = 0.5):
    """The same classifier carrying a still lesion check that says ``check_probability``
    of every crop, confidence sigmoid(logit(det) + logit(check))."""
    import copy
    import math

    from sonorisk.still_classifier.lesion_check import StillLesionCheck

    out = copy.copy(classifier)
    width = classifier.net.trunk.out_channels
    bias = math.log(check_probability / (1 - check_probability))
    out.lesion_check = StillLesionCheck(np.zeros(width, np.float32), bias, 1.0, 1.0, 0.0, threshold)
    return out


def test_with_a_lesion_check_a_doubtful_lesion_is_a_candidate(tmp_path, still_classifier):
    image = ultrasound(blobs=((50, 50, 12), (150, 100, 14)))
    path = save(tmp_path, "two.png", image)
    found = [((38, 38, 63, 63), 0.55), ((136, 86, 165, 115), 0.95)]
    models = _models(ScoredDetector(found), _with_check(still_classifier, 0.2))
    doc = valid(
        score_still(path, models, replace(PipelineConfig(), crop="none"), tmp_path, progress=False)
    )
    by_conf = sorted(doc["lesions"], key=lambda lz: -lz["confidence"])
    sure, doubtful = by_conf
    # sigmoid(logit(0.95) + logit(0.2)) = 0.826; sigmoid(logit(0.55) + logit(0.2)) = 0.234
    assert sure["confidence"] == pytest.approx(0.826, abs=1e-3)
    assert doubtful["confidence"] == pytest.approx(0.234, abs=1e-3)
    assert sure["status"] == "scored" and sure["risk"] is not None
    assert doubtful["status"] == "candidate" and doubtful["risk"] is None
    assert doc["risk"] == sure["risk"]
    lesions = doc["pipeline"]["lesions"]
    assert lesions["min_confidence"] == 0.5
    assert lesions["confidence"]["detector"] == 1.0 and lesions["confidence"]["check"] == 1.0
    # every lesion a candidate: no number
    models = _models(ScoredDetector(found[:1]), _with_check(still_classifier, 0.2))
    doc = valid(
        score_still(path, models, replace(PipelineConfig(), crop="none"), tmp_path, progress=False)
    )
    assert doc["risk"] is None and doc["lesions"][0]["status"] == "candidate"
    assert doc["reason"].startswith("no confident lesion")


def test_without_a_lesion_check_confidence_is_the_detector_score(tmp_path, still_classifier):
    assert getattr(still_classifier, "lesion_check", None) is None
    image = ultrasound(blobs=((50, 50, 12),))
    path = save(tmp_path, "one.png", image)
    models = _models(ScoredDetector([((38, 38, 63, 63), 0.55)]), still_classifier)
    doc = valid(
        score_still(path, models, replace(PipelineConfig(), crop="none"), tmp_path, progress=False)
    )
    assert doc["lesions"][0]["confidence"] == 0.55
    assert doc["lesions"][0]["status"] == "scored" and doc["risk"] is not None
    confidence = doc["pipeline"]["lesions"]["confidence"]
    assert (confidence["detector"], confidence["check"], confidence["frames"]) == (1.0, 0.0, 0.0)
    assert "lesion_check" not in doc["models"]["still_classifier"]
