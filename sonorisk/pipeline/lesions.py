"""From tracks to lesions: duplicates merged, a confidence per lesion, one video risk.

The tracker links boxes into tracks; not every track is a lesion, and one
lesion can give two tracks at once (two boxes on one mass). These pure rules
turn the scorer's tracks into what a report states (configured under
``pipeline.lesions``):

1. **Duplicates.** Two tracks seen together on at least ``merge_min_frames``
   frames whose boxes overlap (intersection over the smaller box at least
   ``merge_min_overlap``) on most of those frames are one lesion: the track
   with more detector frames absorbs the other's boxes and clips.
   **Returns.** A lesion that leaves the view and comes back (the probe
   crossed it and returned, as a radiologist does) gives tracks that share
   no frame; when their typical boxes (per-side medians) overlap by
   ``return_min_overlap`` they are one lesion too.
2. **Confidence.** How sure the system is that a lesion is a lesion, from the
   detector's mean score over the frames it found it on, how many frames that
   was, and the classifier's lesion check (mean P(lesion) over its clips): a
   logistic model whose coefficients were fitted on development sweeps (see
   docs/end-to-end.md). Below ``min_confidence`` a lesion is a *candidate*:
   reported with its boxes and confidence, never scored, never in a risk.
   The threshold applies to lesions judged with the classifier's lesion check
   (the model was fitted with it): with a classifier that has none, every
   track is scored and its confidence is for information only.
3. **Video risk.** ``risk_rule`` picks the number: ``most_confident_lesion``
   (default: the risk of the lesion the system is surest of, so an extra
   track cannot move it), ``mean_of_clips`` (WAUVE: the mean of every clip of
   every scored lesion) or ``max_lesion_risk``.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from sonorisk.errors import ConfigError
from sonorisk.pipeline.aggregate import video_risk as mean_of_clips
from sonorisk.records import Box, ClipScore

RiskRule = Literal["most_confident_lesion", "mean_of_clips", "max_lesion_risk"]
RISK_RULES: tuple[RiskRule, ...] = ("most_confident_lesion", "mean_of_clips", "max_lesion_risk")

RULE_TEXT = {
    "most_confident_lesion": "risk of the lesion with the highest lesion confidence (mean of "
    "its clips); candidates below the confidence threshold never count",
    "mean_of_clips": "mean of the malignancy probabilities of every clip of every scored "
    "lesion (WAUVE); candidates below the confidence threshold never count",
    "max_lesion_risk": "highest risk among the scored lesions; candidates below the "
    "confidence threshold never count",
}

# Box sources the detector itself produced (its score is a detector score).
DETECTED = ("detector", "backfilled")


@dataclass
class ConfidenceModel:
    """``sigmoid(intercept + a*logit(det) + b*logit(check) + c*ln(min(frames, max_frames)))``.

    ``det``: mean detector score over the frames the detector found the lesion
    on; ``frames``: the frames the lesion was followed on, by the detector or by
    optical flow between detector frames, counted up to ``max_frames`` (the
    longest development track: beyond it the model never saw what length means,
    so a long clip of something else cannot talk its way into confidence). The
    model was fitted with the detector on every frame, where the two counts are
    one; counting flow frames too keeps their meaning when the detector runs on
    fewer frames (keyframes, the live schedule), where a count of detector
    frames alone would make every track look short;
    ``check``: mean P(lesion) of its clips (0.5, no evidence either way, when
    the classifier has no check or the lesion no clip yet).

    Defaults: fitted for sonorisk-busi 1.4.0, shipped again in 1.5.0 (1.2.0's detector and
    classifier) on development sweeps (scripts/e2e_release.sh, refitted by
    scripts/rules_release.sh; docs/end-to-end.md). The fit is monotone: more
    evidence never lowers the confidence. Unconstrained, the frames weight came
    out negative (1.2.0 to 1.3.0 shipped it: -0.428), because the false tracks of
    synthetic lesion-free sweeps last the whole sweep; clinical video, where a
    radiologist dwells on a lesion, would not share that trait, so the weight is
    dropped and the rest refitted. ``max_frames`` still caps what length counts.
    """

    intercept: float = -1.548
    detector: float = 1.53
    check: float = 0.239
    frames: float = 0.0
    max_frames: int = 48


@dataclass
class LesionRules:
    merge_min_overlap: float = 0.5  # intersection over the smaller box
    merge_min_frames: int = 3  # frames the two tracks must share
    merge_min_share: float = 0.5  # of the shared frames, the share that must overlap
    # Returns: a lesion that leaves the view and comes back (the probe crossed
    # it and returned) gives tracks that share (almost) no frame. Their typical
    # boxes (per-side medians) overlapping by this much (intersection over the
    # smaller box) make them one lesion; None: never merged.
    return_min_overlap: float | None = 0.5  # as merge_min_overlap (not fitted)
    confidence: ConfidenceModel = field(default_factory=ConfidenceModel)
    min_confidence: float = 0.45  # chosen with the confidence model (see ConfidenceModel)
    risk_rule: RiskRule = "most_confident_lesion"

    def validate(self, source: str = "pipeline.lesions") -> None:
        if self.risk_rule not in RISK_RULES:
            raise ConfigError(
                f"{source}.risk_rule", f"must be one of {list(RISK_RULES)}, got {self.risk_rule!r}"
            )
        for name in (
            "merge_min_overlap",
            "merge_min_share",
            "min_confidence",
            "return_min_overlap",
        ):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ConfigError(f"{source}.{name}", f"must be in [0, 1], got {value}")
        if self.confidence.max_frames < 1:
            raise ConfigError(
                f"{source}.confidence.max_frames", f"must be >= 1, got {self.confidence.max_frames}"
            )
        if self.merge_min_frames < 1:
            raise ConfigError(
                f"{source}.merge_min_frames", f"must be >= 1, got {self.merge_min_frames}"
            )


@dataclass(frozen=True)
class LesionEvidence:
    """What the confidence is computed from, reported beside it."""

    detector_score: float  # mean over detector frames
    detector_frames: int
    lesion_check: float | None  # mean P(lesion) over clips; None: no check / no clip
    # Frames followed by the detector or by flow between its frames (what the
    # confidence counts); None: as many as detector frames.
    tracked_frames: int | None = None

    @property
    def frames(self) -> int:
        """The length the confidence model counts."""
        return self.detector_frames if self.tracked_frames is None else self.tracked_frames

    def as_dict(self) -> dict[str, float | int | None]:
        return {
            "detector_score": round(self.detector_score, 4),
            "detector_frames": self.detector_frames,
            "tracked_frames": self.frames,
            "lesion_check": (
                round(self.lesion_check, 4) if self.lesion_check is not None else None
            ),
        }


def _logit(p: float, eps: float = 1e-4) -> float:
    p = min(max(p, eps), 1.0 - eps)
    return math.log(p / (1.0 - p))


def evidence_of(
    scores_by_frame: Mapping[int, tuple[float, str]], clips: Sequence[ClipScore]
) -> LesionEvidence:
    """``scores_by_frame``: frame -> (box score, box source)."""
    detected = [s for s, source in scores_by_frame.values() if source in DETECTED]
    carried = sum(1 for _, source in scores_by_frame.values() if source == "propagated")
    checks = [c.lesion_probability for c in clips if c.lesion_probability is not None]
    return LesionEvidence(
        detector_score=math.fsum(detected) / len(detected) if detected else 0.0,
        detector_frames=len(detected),
        lesion_check=math.fsum(checks) / len(checks) if checks else None,
        tracked_frames=len(detected) + carried,
    )


def confidence_of(evidence: LesionEvidence, model: ConfidenceModel) -> float:
    check = 0.5 if evidence.lesion_check is None else evidence.lesion_check
    z = (
        model.intercept
        + model.detector * _logit(evidence.detector_score)
        + model.check * _logit(check)
        + model.frames * math.log(min(max(1, evidence.frames), model.max_frames))
    )
    return 1.0 / (1.0 + math.exp(-z))


def is_candidate(evidence: LesionEvidence, confidence: float, rules: LesionRules) -> bool:
    """Below the threshold, and judged with the lesion check the confidence model
    was fitted with. Models without a check (demonstration models, bundles
    before 1.1.0) score every track: a threshold fitted for other models would
    only guess; their confidence is reported, for information."""
    return evidence.lesion_check is not None and confidence < rules.min_confidence


def box_overlap(a: Box, b: Box) -> float:
    """Intersection over the smaller box: 1 when one box lies inside the other."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return w * h / smaller if smaller > 0 else 0.0


def are_duplicates(a: Mapping[int, Box], b: Mapping[int, Box], rules: LesionRules) -> bool:
    """Whether two tracks (frame -> box) are one lesion seen twice at once."""
    shared = set(a) & set(b)
    if len(shared) < rules.merge_min_frames:
        return False
    overlapping = sum(box_overlap(a[i], b[i]) >= rules.merge_min_overlap for i in shared)
    return overlapping >= rules.merge_min_share * len(shared)


def typical_box(track: Mapping[int, Box]) -> Box:
    """Per-side median of a track's boxes: where the lesion usually was."""
    x1, y1, x2, y2 = (statistics.median(side) for side in zip(*track.values(), strict=True))
    return (float(x1), float(y1), float(x2), float(y2))


def are_returns(a: Mapping[int, Box], b: Mapping[int, Box], rules: LesionRules) -> bool:
    """Whether two tracks (frame -> box) are one lesion seen at different times."""
    if rules.return_min_overlap is None or len(set(a) & set(b)) >= rules.merge_min_frames:
        return False  # off, or seen together: the duplicate rule's case
    return box_overlap(typical_box(a), typical_box(b)) >= rules.return_min_overlap


def duplicate_groups(
    tracks: Mapping[int, Mapping[int, Box]], rules: LesionRules
) -> list[list[int]]:
    """Track ids grouped into lesions (duplicates chained: a~b, b~c -> one)."""
    ids = sorted(tracks)
    parent = {i: i for i in ids}

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for k, i in enumerate(ids):
        for j in ids[k + 1 :]:
            if root(i) != root(j) and (
                are_duplicates(tracks[i], tracks[j], rules)
                or are_returns(tracks[i], tracks[j], rules)
            ):
                parent[root(j)] = root(i)
    groups: dict[int, list[int]] = {}
    for i in ids:
        groups.setdefault(root(i), []).append(i)
    return sorted(groups.values())


@dataclass(frozen=True)
class LesionVerdict:
    """A lesion as the video-level rule sees it."""

    lesion_id: int
    confidence: float
    scored: bool  # confident enough and at least one clip
    risk: float | None
    clips: Sequence[ClipScore]


def video_risk(lesions: Iterable[LesionVerdict], rule: RiskRule) -> tuple[float | None, int]:
    """The video's number by ``rule`` from its scored lesions, and the clips it rests on."""
    scored = [v for v in lesions if v.scored and v.risk is not None and v.clips]
    if not scored:
        return None, 0
    if rule == "mean_of_clips":
        return mean_of_clips(v.clips for v in scored)
    if rule == "max_lesion_risk":
        best = max(scored, key=lambda v: (v.risk, v.confidence))
    elif rule == "most_confident_lesion":
        best = max(scored, key=lambda v: (v.confidence, len(v.clips)))
    else:
        raise ConfigError("pipeline.lesions.risk_rule", f"unknown rule {rule!r}")
    return best.risk, len(best.clips)
