"""Operating points: choose a threshold on the score and report its metrics.

Rule everywhere: score >= threshold is called malignant. The paper's rule was a
target sensitivity (0.2102 was chosen to match the readers' mean sensitivity).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from sonorisk.eval.binary import BinaryMetrics, binary_metrics, threshold_predictions
from sonorisk.eval.errors import EvalInputError
from sonorisk.eval.roc import roc_curve
from sonorisk.eval.validation import as_binary_labels, as_scores, check_same_length


@dataclass(frozen=True)
class OperatingPoint:
    threshold: float
    rule: str  # how it was chosen, printed in reports
    metrics: BinaryMetrics


def _finite_thresholds(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    curve = roc_curve(y, s)
    # Drop the +inf start: a threshold is always one of the observed scores.
    return curve.thresholds[1:], curve.tpr[1:], curve.fpr[1:]


def _prepare(
    y_true: Iterable[object], scores: Iterable[object], source: str
) -> tuple[np.ndarray, np.ndarray]:
    y = as_binary_labels(y_true, f"{source}: truth")
    s = as_scores(scores, f"{source}: score")
    check_same_length(source, truth=y, score=s)
    return y, s


def _target(value: float, name: str) -> None:
    if not 0.0 <= value <= 1.0:
        raise EvalInputError("operating point", f"target {name} {value} is outside [0, 1]")


def threshold_for_sensitivity(
    y_true: Iterable[object],
    scores: Iterable[object],
    target: float,
    level: float = 0.95,
    source: str = "scores",
) -> OperatingPoint:
    """Highest threshold whose sensitivity reaches ``target`` (best specificity at that sens)."""
    _target(target, "sensitivity")
    y, s = _prepare(y_true, scores, source)
    thr, tpr, _ = _finite_thresholds(y, s)
    ok = np.flatnonzero(tpr >= target - 1e-12)
    t = float(thr[ok[0]])  # thresholds descend, so the first hit is the highest
    return OperatingPoint(
        t,
        f"highest threshold with sensitivity >= {target:.4f}",
        binary_metrics(y, threshold_predictions(s, t), level, source),
    )


def threshold_for_specificity(
    y_true: Iterable[object],
    scores: Iterable[object],
    target: float,
    level: float = 0.95,
    source: str = "scores",
) -> OperatingPoint:
    """Lowest threshold whose specificity reaches ``target`` (best sensitivity at that spec)."""
    _target(target, "specificity")
    y, s = _prepare(y_true, scores, source)
    thr, _, fpr = _finite_thresholds(y, s)
    ok = np.flatnonzero(1.0 - fpr >= target - 1e-12)
    if ok.size == 0:
        # Even the highest observed score leaves too many false positives: call nothing malignant.
        t = float(np.nextafter(s.max(), np.inf))
    else:
        t = float(thr[ok[-1]])
    return OperatingPoint(
        t,
        f"lowest threshold with specificity >= {target:.4f}",
        binary_metrics(y, threshold_predictions(s, t), level, source),
    )


def youden_threshold(
    y_true: Iterable[object], scores: Iterable[object], level: float = 0.95, source: str = "scores"
) -> OperatingPoint:
    """Threshold maximising sensitivity + specificity - 1 (ties: the highest threshold)."""
    y, s = _prepare(y_true, scores, source)
    thr, tpr, fpr = _finite_thresholds(y, s)
    j = tpr - fpr
    t = float(thr[int(np.argmax(j))])
    return OperatingPoint(
        t,
        f"Youden index (J = {float(j.max()):.4f})",
        binary_metrics(y, threshold_predictions(s, t), level, source),
    )


def fixed_threshold(
    y_true: Iterable[object],
    scores: Iterable[object],
    threshold: float,
    level: float = 0.95,
    source: str = "scores",
) -> OperatingPoint:
    y, s = _prepare(y_true, scores, source)
    return OperatingPoint(
        float(threshold),
        f"fixed threshold {threshold:g}",
        binary_metrics(y, threshold_predictions(s, threshold), level, source),
    )
