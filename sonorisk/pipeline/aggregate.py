"""Pure aggregation rules (WAUVE): clip scores -> lesion risk -> video risk.

A lesion's risk is the mean of its clips' malignancy probabilities; the
paper's video risk is the mean of all its clips (which weights a lesion by how
many clips it gave): the ``mean_of_clips`` rule of ``sonorisk.pipeline.lesions``,
which chooses among the video rules. Without a single clip there is no number: the status
says "no scorable lesion".
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from sonorisk.records import ClipScore, LesionRisk, LesionStatus


def mean_probability(scores: Sequence[ClipScore]) -> float | None:
    if not scores:
        return None
    values = [s.probability for s in scores]
    if not all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in values):
        raise ValueError(f"clip probabilities must be finite and in [0, 1], got {values}")
    return math.fsum(values) / len(values)


def lesion_risk(lesion_id: int, scores: Sequence[ClipScore]) -> LesionRisk:
    risk = mean_probability(scores)
    status = LesionStatus.SCORED if risk is not None else LesionStatus.NO_SCORABLE_LESION
    return LesionRisk(track_id=lesion_id, risk=risk, clips_used=len(scores), status=status)


def video_risk(scores_by_lesion: Iterable[Sequence[ClipScore]]) -> tuple[float | None, int]:
    """Mean over every clip of every lesion, and the number of clips."""
    every = [s for scores in scores_by_lesion for s in scores]
    return mean_probability(every), len(every)
