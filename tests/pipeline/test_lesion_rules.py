"""From tracks to lesions: duplicates merged, low-confidence tracks never scored,
false tracks unable to move the video risk (sonorisk.pipeline.lesions)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pytest

from sonorisk.detector.interface import as_frames
from sonorisk.errors import ConfigError
from sonorisk.pipeline import IncrementalScorer, PipelineConfig
from sonorisk.pipeline.lesions import (
    ConfidenceModel,
    LesionEvidence,
    LesionRules,
    LesionVerdict,
    are_duplicates,
    are_returns,
    box_overlap,
    confidence_of,
    duplicate_groups,
    video_risk,
)
from sonorisk.records import ClipScore, Detection, Frame, LesionStatus

from .conftest import blob_video

# Confidence = the mean detector score alone, so the tests set what is confident.
DETECTOR_ONLY = ConfidenceModel(intercept=0.0, detector=1.0, check=0.0, frames=0.0)


@pytest.fixture(scope="module")
def checked_i3d(tiny_i3d):
    """The tiny I3D with a lesion check that always says 0.5 (weight 0, bias 0):
    the threshold applies only to lesions judged with a check."""
    import copy

    from sonorisk.video_classifier.lesion_check import attach_check

    model = copy.deepcopy(tiny_i3d)
    return attach_check(model, np.zeros(model.head.fc.in_features, dtype=np.float32), 0.0)


@dataclass
class ScoredBoxDetector:
    """Returns ``boxes[frame_index]``: (box, score) pairs, for each frame asked."""

    boxes: dict[int, list[tuple[tuple[float, float, float, float], float]]]
    info: dict[str, Any] = field(default_factory=lambda: {"kind": "scored boxes (test)"})

    def predict(
        self, frames: Sequence[Any], frame_indices: Sequence[int] | None = None
    ) -> list[list[Detection]]:
        indices = [f.index for f in as_frames(frames, frame_indices)]
        return [[Detection(i, b, s) for b, s in self.boxes.get(i, [])] for i in indices]


def _run(frames: list[Frame], detector: Any, classifier: Any, rules: LesionRules) -> Any:
    config = PipelineConfig(lesions=rules, crop="none")
    scorer = IncrementalScorer(detector, classifier, config, fps=30.0)
    for frame in frames:
        scorer.push(frame)
    scorer.finish()
    return scorer.result()


def _with_false_track(
    boxes: dict[int, list[Any]], score: float, frames: range, size: int = 96
) -> dict[int, list[Any]]:
    """The lesion's boxes (score 0.95) plus a box in a blank corner on ``frames``."""
    out: dict[int, list[Any]] = {i: [(b, 0.95) for b in bs] for i, bs in boxes.items()}
    for i in frames:
        out.setdefault(i, []).append(((4.0, 4.0, 24.0, 24.0), score))
    return out


# ---------------------------------------------------------------- pure rules
def test_box_overlap_is_one_for_a_box_inside_another() -> None:
    assert box_overlap((0, 0, 10, 10), (2, 2, 6, 6)) == pytest.approx(1.0)
    assert box_overlap((0, 0, 10, 10), (10, 10, 20, 20)) == 0.0
    assert box_overlap((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(0.5)


def test_concurrent_overlapping_tracks_are_duplicates_and_chain() -> None:
    rules = LesionRules()
    a = {i: (10.0, 10.0, 50.0, 50.0) for i in range(20)}
    b = {i: (20.0, 20.0, 45.0, 45.0) for i in range(5, 25)}  # inside a, concurrent
    c = {i: (25.0, 25.0, 55.0, 55.0) for i in range(22, 40)}  # overlaps b only
    far = {i: (100.0, 100.0, 130.0, 130.0) for i in range(20)}
    before = {i: (10.0, 10.0, 50.0, 50.0) for i in range(30, 40)}  # same place, later
    assert are_duplicates(a, b, rules)
    assert not are_duplicates(a, far, rules)
    assert not are_duplicates(a, before, rules)  # never seen together: not concurrent
    groups = duplicate_groups({1: a, 2: b, 3: c, 4: far}, rules)
    assert groups == [[1, 2, 3], [4]]


def test_tracks_sharing_too_few_frames_are_not_merged() -> None:
    rules = LesionRules(merge_min_frames=3)
    a = {i: (0.0, 0.0, 10.0, 10.0) for i in range(10)}
    b = {i: (0.0, 0.0, 10.0, 10.0) for i in range(8, 20)}  # 2 shared frames
    assert not are_duplicates(a, b, rules)


def test_a_lesion_seen_again_later_at_the_same_place_is_one_lesion() -> None:
    rules = LesionRules(return_min_overlap=0.5)
    first = {i: (10.0, 10.0, 50.0, 50.0) for i in range(20)}
    # Comes back after 60 frames away, a little shifted; one stray box does not
    # move the typical (median) box.
    back = {i: (14.0, 12.0, 52.0, 50.0) for i in range(80, 100)}
    back[80] = (0.0, 0.0, 200.0, 200.0)
    elsewhere = {i: (100.0, 100.0, 130.0, 130.0) for i in range(80, 100)}
    assert are_returns(first, back, rules) and are_returns(back, first, rules)
    assert not are_returns(first, elsewhere, rules)
    assert not are_returns(first, back, LesionRules(return_min_overlap=None))  # off
    # Seen together on enough frames: the duplicate rule's case, not a return.
    together = {i: (10.0, 10.0, 50.0, 50.0) for i in range(15, 40)}
    assert not are_returns(first, together, rules)
    assert duplicate_groups({1: first, 2: back, 3: elsewhere}, rules) == [[1, 2], [3]]
    assert duplicate_groups({1: first, 2: back}, LesionRules(return_min_overlap=None)) == [[1], [2]]
    with pytest.raises(ConfigError, match="return_min_overlap"):
        LesionRules(return_min_overlap=1.5).validate()


def test_confidence_grows_with_each_kind_of_evidence() -> None:
    model = ConfidenceModel(intercept=-1.0, detector=1.0, check=1.0, frames=0.5)
    base = confidence_of(LesionEvidence(0.6, 5, 0.5), model)
    assert confidence_of(LesionEvidence(0.9, 5, 0.5), model) > base
    assert confidence_of(LesionEvidence(0.6, 50, 0.5), model) > base
    assert confidence_of(LesionEvidence(0.6, 5, 0.9), model) > base
    # No lesion check (or no clip yet) counts as no evidence either way.
    assert confidence_of(LesionEvidence(0.6, 5, None), model) == pytest.approx(base)
    assert 0.0 < base < 1.0


def test_the_length_counted_is_the_same_whatever_frames_the_detector_ran_on() -> None:
    from sonorisk.pipeline.lesions import evidence_of

    model = ConfidenceModel()
    # The same 30-frame track: the detector on every frame, on every 3rd frame
    # with flow in between, and (a live stream) on a few frames only.
    every = {i: (0.8, "detector") for i in range(30)}
    third = {i: (0.8, "detector" if i % 3 == 0 else "propagated") for i in range(30)}
    live = {i: (0.8, "detector" if i in (0, 7, 19) else "propagated") for i in range(30)}
    evidence = [evidence_of(track, []) for track in (every, third, live)]
    assert [e.detector_frames for e in evidence] == [30, 10, 3]
    assert [e.frames for e in evidence] == [30, 30, 30]
    confidences = [confidence_of(e, model) for e in evidence]
    assert confidences == pytest.approx([confidences[0]] * 3)
    # Gap frames filled in afterwards are not frames the lesion was followed on.
    gappy = {**every, **{i: (0.8, "interpolated") for i in range(10, 20)}}
    assert evidence_of(gappy, []).frames == 20


def _verdict(
    lesion_id: int, confidence: float, risks: list[float], scored: bool = True
) -> LesionVerdict:
    clips = [ClipScore(lesion_id, k, tuple(range(8)), p) for k, p in enumerate(risks)]
    return LesionVerdict(lesion_id, confidence, scored, float(np.mean(risks)), clips)


def test_video_risk_rules() -> None:
    lesions = [
        _verdict(1, 0.9, [0.2, 0.2, 0.2]),
        _verdict(2, 0.6, [0.8]),
        _verdict(3, 0.2, [0.99], scored=False),
    ]
    assert video_risk(lesions, "most_confident_lesion") == (pytest.approx(0.2), 3)
    assert video_risk(lesions, "mean_of_clips") == (pytest.approx(0.35), 4)
    assert video_risk(lesions, "max_lesion_risk") == (pytest.approx(0.8), 1)
    # Only candidates: no number, whatever the rule.
    only = [_verdict(3, 0.2, [0.99], scored=False)]
    for rule in ("most_confident_lesion", "mean_of_clips", "max_lesion_risk"):
        assert video_risk(only, rule) == (None, 0)  # type: ignore[arg-type]


def test_rules_are_validated() -> None:
    with pytest.raises(ConfigError, match="risk_rule"):
        LesionRules(risk_rule="median").validate()  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="min_confidence"):
        LesionRules(min_confidence=1.5).validate()


# ---------------------------------------------------------------- the scorer
def test_two_boxes_on_one_lesion_become_one_lesion(checked_i3d) -> None:
    frames, boxes = blob_video(40, range(0, 32))
    inner = {i: [(b[0] + 3, b[1] + 3, b[2] - 3, b[3] - 3) for b in bs] for i, bs in boxes.items()}
    both = {i: [(b, 0.95) for b in boxes[i]] + [(b, 0.9) for b in inner[i]] for i in boxes}
    result = _run(
        frames,
        ScoredBoxDetector(both),
        checked_i3d,
        LesionRules(confidence=DETECTOR_ONLY, min_confidence=0.5),
    )
    assert len(result.lesions) == 1
    lesion = result.lesions[0]
    assert len(lesion.merged_ids) == 1
    assert len(lesion.scores) == 8  # both tracks' clips, one lesion
    assert sorted(s.clip_index for s in lesion.scores) == list(range(8))
    assert result.status is LesionStatus.SCORED


def test_a_lesion_that_leaves_and_comes_back_is_reported_once(checked_i3d) -> None:
    # In view on frames 0-23, out of view for 60 frames (longer than the
    # tracker waits), back on 84-107: two tracks, one lesion.
    frames, boxes = blob_video(110, [*range(0, 24), *range(84, 108)])
    here = {i: [(30.0, 38.0, 50.0, 58.0)] for i in boxes}  # the probe came back to it
    detector = ScoredBoxDetector({i: [(b, 0.95) for b in bs] for i, bs in here.items()})
    rules = LesionRules(confidence=DETECTOR_ONLY, min_confidence=0.5)
    apart = _run(frames, detector, checked_i3d, replace(rules, return_min_overlap=None))
    assert len(apart.lesions) == 2
    once = _run(frames, detector, checked_i3d, replace(rules, return_min_overlap=0.5))
    assert len(once.lesions) == 1
    lesion = once.lesions[0]
    assert lesion.merged_ids == (apart.lesions[1].lesion_id,)
    assert len(lesion.scores) == sum(len(r.scores) for r in apart.lesions) == 6
    assert (lesion.first_frame, lesion.last_frame) == (0, 107)
    assert once.risk == pytest.approx(float(np.mean([s.probability for s in lesion.scores])))


def test_low_confidence_track_is_a_candidate_never_scored(checked_i3d) -> None:
    frames, boxes = blob_video(40, range(0, 32))
    rules = LesionRules(confidence=DETECTOR_ONLY, min_confidence=0.8)
    detector = ScoredBoxDetector(_with_false_track(boxes, 0.6, range(0, 32)))
    result = _run(frames, detector, checked_i3d, rules)
    assert len(result.lesions) == 2
    lesion, candidate = sorted(result.lesions, key=lambda r: -(r.confidence or 0))
    assert candidate.candidate and candidate.confidence == pytest.approx(0.6, abs=0.01)
    assert candidate.risk().status is LesionStatus.CANDIDATE
    assert candidate.risk().risk is None and candidate.risk().clips_used == 0
    assert not lesion.candidate and lesion.risk().risk is not None
    assert result.risk == pytest.approx(lesion.risk().risk)


def test_a_false_track_does_not_change_the_video_risk(checked_i3d) -> None:
    frames, boxes = blob_video(40, range(0, 32))
    alone = _run(
        frames,
        ScoredBoxDetector(_with_false_track(boxes, 0.6, range(0))),
        checked_i3d,
        LesionRules(confidence=DETECTOR_ONLY, min_confidence=0.5),
    )
    # A confident false track (it passes the threshold), shorter and less sure than
    # the lesion: the default rule still reports the lesion's risk.
    spoiled = _run(
        frames,
        ScoredBoxDetector(_with_false_track(boxes, 0.7, range(4, 24))),
        checked_i3d,
        LesionRules(confidence=DETECTOR_ONLY, min_confidence=0.5),
    )
    assert len(alone.lesions) == 1 and len(spoiled.lesions) == 2
    assert all(not r.candidate for r in spoiled.lesions)
    assert spoiled.risk == pytest.approx(alone.risk)
    # The paper's mean of all clips is moved by it: why it is not the default.
    paper = _run(
        frames,
        ScoredBoxDetector(_with_false_track(boxes, 0.7, range(4, 24))),
        checked_i3d,
        LesionRules(confidence=DETECTOR_ONLY, min_confidence=0.5, risk_rule="mean_of_clips"),
    )
    assert paper.clips > alone.clips
    assert paper.risk != pytest.approx(alone.risk, abs=1e-9)


def test_only_candidates_give_no_number_and_say_why(checked_i3d) -> None:
    frames, boxes = blob_video(40, range(0, 32))
    weak = {i: [(b, 0.6) for b in bs] for i, bs in boxes.items()}
    result = _run(
        frames,
        ScoredBoxDetector(weak),
        checked_i3d,
        LesionRules(confidence=DETECTOR_ONLY, min_confidence=0.8),
    )
    assert result.risk is None and result.status is LesionStatus.NO_SCORABLE_LESION
    assert "no confident lesion" in (result.reason or "")
    assert [r.candidate for r in result.lesions] == [True]


def test_no_track_at_all_says_no_lesion_found(checked_i3d) -> None:
    frames, _ = blob_video(30, [])
    result = _run(frames, ScoredBoxDetector({}), checked_i3d, LesionRules())
    assert result.risk is None and "no lesion found" in (result.reason or "")


def test_without_a_lesion_check_every_track_is_scored(tiny_i3d) -> None:
    """A threshold fitted with the check is not applied to models without one."""
    frames, boxes = blob_video(40, range(0, 32))
    weak = {i: [(b, 0.6) for b in bs] for i, bs in boxes.items()}
    result = _run(
        frames,
        ScoredBoxDetector(weak),
        tiny_i3d,
        LesionRules(confidence=DETECTOR_ONLY, min_confidence=0.8),
    )
    assert [r.candidate for r in result.lesions] == [False]
    assert result.lesions[0].confidence == pytest.approx(0.6, abs=0.01)  # still reported
    assert result.risk is not None and result.status is LesionStatus.SCORED
