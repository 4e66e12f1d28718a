"""Score one still image: the video pipeline's events and fold, for one frame.

A still goes through what a video does wherever that means the same thing,
so its document is the video's schema (``video.kind: "still"``):

0. the scan region (``crop: auto``) is found in the one image, and the
   detector sees only that (a screenshot-like still at the trained scale);
1. the detector (the video detector) runs once; its boxes go back to source
   pixels. A detection is a lesion when its score reaches the score that
   starts a lesion track in a video (``tracking.track_activation_threshold``);
2. each lesion's crop (``StillClassifier.crop``: the context margin the still
   classifier was trained with) is scored by the still classifier: a
   ``ClipScored`` event with a one-frame "clip" (frame 0), so the lesion's
   risk is its one score and the risk rule picks among lesions as for video;
3. events: one ``FrameBoxes``, a ``ClipScored`` + ``LesionUpdated`` per
   lesion, a ``LesionEnded`` per lesion, ``VideoEnded``; the document is their
   fold (``StillFold``), the heatmaps and the overlay PNG are drawn from it.

Lesion confidence: the video's confidence model weighs detector score,
track length and the clip classifier's lesion check. A still has one frame.
When the still classifier carries a still lesion check
(``sonorisk.still_classifier.lesion_check``, sonorisk-busi 1.3.1+), the
confidence is the model fitted with it, ``sigmoid(a*logit(det) +
b*logit(check) + c)``, and below its threshold a lesion is a candidate
(reported, never scored), as for video. Without one its confidence IS the
detector score (a confidence model that passes the score through) and every
lesion is scored. The document's ``pipeline.lesions`` says which.
No lesion: status "no scorable lesion", reason "no lesion found", no number.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from sonorisk.config import to_dict
from sonorisk.errors import ConfigError, ScoringTimeout
from sonorisk.io.scan_region import ScanRegion, crop_region, estimate_scan_region
from sonorisk.io.still import Still, read_still
from sonorisk.pipeline.aggregate import lesion_risk
from sonorisk.pipeline.budget import check_memory
from sonorisk.pipeline.config import PipelineConfig
from sonorisk.pipeline.events import (
    ClipScored,
    Event,
    FrameBoxes,
    LesionBox,
    LesionEnded,
    LesionUpdated,
    VideoEnded,
)
from sonorisk.pipeline.fold import ScoreFold
from sonorisk.pipeline.lesions import (
    ConfidenceModel,
    confidence_of,
    evidence_of,
    is_candidate,
)
from sonorisk.pipeline.report import write_report
from sonorisk.pipeline.scorer import StageTiming, VideoResult
from sonorisk.pipeline.visualize import write_heatmaps, write_still_overlay
from sonorisk.records import (
    ClipScore,
    Detection,
    Frame,
    LesionRisk,
    LesionStatus,
    VideoMeta,
)

log = logging.getLogger(__name__)

NO_LESION = "no lesion found: the detector found nothing in the image scoring as a lesion"
NO_CONFIDENT_LESION = (
    "no confident lesion: every lesion the detector found was judged unlikely to be "
    "one (lesion confidence below the threshold); they are reported as candidates"
)

# sigmoid(1 * logit(detector score)) = the detector score: a still's confidence.
DETECTOR_SCORE_CONFIDENCE = ConfidenceModel(intercept=0.0, detector=1.0, check=0.0, frames=0.0)


class StillScorer(Protocol):
    """What scoring a still needs of its classifier (``StillClassifier``, issue 17)."""

    info: dict[str, Any]

    def crop(self, image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray: ...

    def predict(self, crops: Any, heatmaps: bool = ...) -> list[Any]: ...


def still_config(config: PipelineConfig, classifier: Any = None) -> PipelineConfig:
    """The pipeline config a still is scored with: the confidence model and threshold
    of the classifier's still lesion check when it has one, else confidence =
    detector score (every lesion scored: no check, no candidate)."""
    check = getattr(classifier, "lesion_check", None)
    if check is None:
        return replace(
            config, lesions=replace(config.lesions, confidence=DETECTOR_SCORE_CONFIDENCE)
        )
    return replace(
        config,
        lesions=replace(
            config.lesions,
            confidence=check.confidence_model(),
            min_confidence=float(check.min_confidence),
        ),
    )


class StillFold(ScoreFold):
    """The fold of a still's events; a still without lesions says so in its words
    (the video's reason speaks of tracks)."""

    def result(self) -> VideoResult:
        result = super().result()
        if result.risk is None and not result.lesions:
            return replace(result, reason=NO_LESION)
        if result.risk is None and all(r.candidate for r in result.lesions):
            return replace(result, reason=NO_CONFIDENT_LESION)
        return result


def find_lesions(
    image: np.ndarray, detector: Any, config: PipelineConfig, timing: StageTiming
) -> tuple[list[Detection], ScanRegion | None]:
    """The still's lesions (detections scoring as a lesion, best first) in source
    pixels, and the scan region the detector saw (None: the whole image)."""
    t0 = time.perf_counter()
    region = crop_region(estimate_scan_region([image])) if config.crop == "auto" else None
    view = image if region is None else region.crop(image)
    found = detector.predict([Frame(0, 0.0, view)])[0]
    timing.detector_s += time.perf_counter() - t0
    timing.keyframes += 1
    if region is not None:
        found = [replace(d, box=region.to_frame_coords(d.box)) for d in found]
    threshold = config.tracking.track_activation_threshold
    kept = [d for d in found if d.score >= threshold]
    return sorted(kept, key=lambda d: -d.score), region


def _heatmap(heatmap: np.ndarray | None, crop: np.ndarray) -> np.ndarray | None:
    """The heatmap over the crop, as a one-frame clip's (1 x H x W)."""
    if heatmap is None:
        return None
    heat = np.asarray(heatmap, np.float32)
    if heat.shape != crop.shape[:2]:  # the contract says crop-sized; draw it so regardless
        heat = np.asarray(cv2.resize(heat, (crop.shape[1], crop.shape[0])), np.float32)
    return heat[None]


def still_events(
    image: np.ndarray,
    lesions: list[Detection],
    classifier: StillScorer,
    config: PipelineConfig,
    region: ScanRegion | None,
    timing: StageTiming,
) -> list[Event]:
    """The events a one-frame video with these lesions gives (lesion ids from 1)."""
    started = time.perf_counter()
    boxes = {i: LesionBox(i, d.box, d.score, "detector") for i, d in enumerate(lesions, 1)}
    events: list[Event] = [FrameBoxes(0, 0.0, tuple(boxes.values()), True, 0.0)]
    t0 = time.perf_counter()
    crops = [classifier.crop(image, b.box) for b in boxes.values()]
    timing.clips_s += time.perf_counter() - t0
    t0 = time.perf_counter()
    scores = classifier.predict(crops, heatmaps=config.heatmaps) if crops else []
    timing.classifier_s += time.perf_counter() - t0
    timing.clips += len(crops)
    ended: list[Event] = []
    for (lesion_id, box), crop, score in zip(boxes.items(), crops, scores, strict=True):
        p = float(score.probability)
        clip = ClipScore(
            lesion_id,
            0,
            (0,),
            p,
            {"benign": 1.0 - p, "malignant": p},
            _heatmap(score.heatmap, crop) if config.heatmaps else None,
            getattr(score, "lesion_probability", None),
        )
        evidence = evidence_of({0: (box.score, box.source)}, [clip])
        confidence = confidence_of(evidence, config.lesions.confidence)
        if is_candidate(evidence, confidence, config.lesions):
            risk = LesionRisk(lesion_id, None, 0, LesionStatus.CANDIDATE, confidence)
        else:
            risk = replace(lesion_risk(lesion_id, [clip]), confidence=confidence)
        events.append(
            ClipScored(
                clip,
                time.perf_counter() - started,
                False,
                crop[None] if config.heatmaps else None,
                subtypes=score.subtypes,
            )
        )
        events.append(LesionUpdated(risk))
        ended.append(LesionEnded(lesion_id, 0, 0, False, risk, (0,), {0: box}))
    timing.frames = 1
    return [*events, *ended, VideoEnded(1, replace(timing), region)]


def still_meta(still: Still) -> VideoMeta:
    """A still as a one-frame video's metadata (no rate, no duration)."""
    return VideoMeta(
        source=still.source,
        width=still.width,
        height=still.height,
        fps=None,
        frame_count=1,
        codec=still.format,
        duration_s=None,
        container="still",
        pixel_format=still.mode,
    )


def still_classifier_of(models: Any, path: Path) -> StillScorer:
    """The bundle's still classifier, or a ConfigError naming the still and the bundle."""
    classifier = getattr(models, "still", None)
    if classifier is None:
        from sonorisk.models.load import still_missing_reason

        raise ConfigError(
            path, f"cannot be scored as a still image: {still_missing_reason(models)}"
        )
    return classifier


def model_cards(models: Any, classifier: StillScorer) -> dict[str, dict[str, Any]]:
    """The bundle's cards, with the still classifier's even where the bundle has none
    (a classifier given in code): every document says what made its numbers."""
    cards = dict(models.cards)
    if "still_classifier" not in cards:
        card = dict(classifier.info)
        card["demonstration"] = bool((card.get("training_data") or {}).get("demonstration"))
        cards["still_classifier"] = card
    return cards


def score_still(
    path: str | Path,
    models: Any,
    config: PipelineConfig,
    out_dir: str | Path,
    *,
    overlay: bool = False,
    heatmaps: bool = False,
    progress: bool = True,
    stem: str | None = None,
    deadline: float | None = None,
) -> dict[str, Any]:
    """Score the still at ``path``; write ``OUT/<stem>.json`` (+ overlay PNG, heatmaps).

    The signature and the return of ``score_file`` (``progress`` has nothing to
    show for one image). ``deadline`` (``time.monotonic()``) is checked before the
    models run.
    """
    del progress  # one image: no progress bar
    path, out_dir = Path(path), Path(out_dir)
    stem = stem or path.stem
    classifier = still_classifier_of(models, path)
    config = still_config(replace(config, heatmaps=True) if heatmaps else config, classifier)
    started = time.perf_counter()
    still = read_still(path)
    # The video rule (pipeline.memory_budget_mb), so one size limit holds for both.
    check_memory(still.width, still.height, config.memory_budget_mb, str(path))
    if deadline is not None and time.monotonic() > deadline:
        raise ScoringTimeout(path, "its time ran out (jobs.timeout_s) before the models ran")
    timing = StageTiming()
    lesions, region = find_lesions(still.image, models.detector, config, timing)
    fold = StillFold(config.lesions)
    fold.frame(Frame(0, 0.0, still.image))
    fold.events(still_events(still.image, lesions, classifier, config, region, timing))
    result = fold.result()
    outputs: dict[str, str] = {}
    heatmap_files = write_heatmaps(result, out_dir, stem) if heatmaps else {}  # as score_file
    if overlay:
        outputs["overlay"] = write_still_overlay(out_dir, stem, still.image, result)
    document = fold.document(
        still_meta(still),
        models=model_cards(models, classifier),
        pipeline_config=to_dict(config),
        wall_s=time.perf_counter() - started,
        heatmaps=heatmap_files,
        outputs=outputs,
        still=still.describe(),
    )
    write_report(document, out_dir / f"{stem}.json")
    log.info(
        "%s: %s, risk %s (%d lesions)",
        path.name,
        document["status"],
        "n/a" if result.risk is None else f"{result.risk:.3f}",
        len(result.lesions),
    )
    return document
