"""Confusion matrices and the threshold metrics of Tables 2-4 with their CIs.

Sensitivity, specificity and accuracy use exact Clopper-Pearson intervals; PPV
and NPV use the logit interval of Mercaldo et al. (2007), as MedCalc prints
them (the WAUVE paper's software). F1 is reported without an interval.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from sonorisk.eval.errors import EvalInputError
from sonorisk.eval.intervals import Estimate, clopper_pearson, logit_predictive_value
from sonorisk.eval.validation import as_binary_labels, check_same_length


@dataclass(frozen=True)
class ConfusionCounts:
    """Binary confusion matrix, malignant = positive."""

    tp: int
    fn: int
    tn: int
    fp: int

    def __post_init__(self) -> None:
        for name in ("tp", "fn", "tn", "fp"):
            if getattr(self, name) < 0:
                raise EvalInputError("confusion counts", f"{name} is negative")

    @property
    def n_positive(self) -> int:
        return self.tp + self.fn

    @property
    def n_negative(self) -> int:
        return self.tn + self.fp

    @property
    def n(self) -> int:
        return self.tp + self.fn + self.tn + self.fp

    def __add__(self, other: ConfusionCounts) -> ConfusionCounts:
        return ConfusionCounts(
            self.tp + other.tp, self.fn + other.fn, self.tn + other.tn, self.fp + other.fp
        )


@dataclass(frozen=True)
class BinaryMetrics:
    counts: ConfusionCounts
    sensitivity: Estimate
    specificity: Estimate
    ppv: Estimate
    npv: Estimate
    accuracy: Estimate
    f1: Estimate

    def as_dict(self) -> dict[str, Estimate]:
        return {
            "sensitivity": self.sensitivity,
            "specificity": self.specificity,
            "ppv": self.ppv,
            "npv": self.npv,
            "accuracy": self.accuracy,
            "f1": self.f1,
        }


def confusion_counts(
    y_true: Iterable[object], y_pred: Iterable[object], source: str = "predictions"
) -> ConfusionCounts:
    truth = as_binary_labels(y_true, f"{source}: truth")
    pred = as_binary_labels(y_pred, f"{source}: predicted label")
    check_same_length(source, truth=truth, predicted=pred)
    return ConfusionCounts(
        tp=int(np.sum((truth == 1) & (pred == 1))),
        fn=int(np.sum((truth == 1) & (pred == 0))),
        tn=int(np.sum((truth == 0) & (pred == 0))),
        fp=int(np.sum((truth == 0) & (pred == 1))),
    )


def f1_score(counts: ConfusionCounts) -> Estimate:
    denom = 2 * counts.tp + counts.fp + counts.fn
    if denom == 0:
        return Estimate.missing("no positive cases and no positive calls", "point estimate")
    return Estimate(2 * counts.tp / denom, None, None, "point estimate (no interval)")


def metrics_from_counts(counts: ConfusionCounts, level: float = 0.95) -> BinaryMetrics:
    """All Table 4 metrics from the four counts."""

    def cp(x: int, n: int, what: str) -> Estimate:
        est = clopper_pearson(x, n, level)
        if not est.defined:
            return Estimate.missing(f"no {what} cases", est.method)
        return est

    return BinaryMetrics(
        counts=counts,
        sensitivity=cp(counts.tp, counts.n_positive, "malignant"),
        specificity=cp(counts.tn, counts.n_negative, "benign"),
        ppv=_pv(counts.tp, counts.fp, counts.n_positive, counts.n_negative, "positive", level),
        npv=_pv(counts.tn, counts.fn, counts.n_negative, counts.n_positive, "negative", level),
        accuracy=cp(counts.tp + counts.tn, counts.n, "any"),
        f1=f1_score(counts),
    )


def _pv(
    true_calls: int, false_calls: int, n_same: int, n_other: int, kind: str, level: float
) -> Estimate:
    if true_calls + false_calls == 0:
        return Estimate.missing(f"no {kind} calls", "logit (Mercaldo et al. 2007)")
    if n_same == 0 or n_other == 0:
        # One class only: the logit variance needs both; report the exact interval.
        cp = clopper_pearson(true_calls, true_calls + false_calls, level)
        return Estimate(
            cp.estimate,
            cp.ci_low,
            cp.ci_high,
            "Clopper-Pearson exact (one truth class only)",
            level,
        )
    return logit_predictive_value(true_calls, false_calls, n_same, n_other, level)


def binary_metrics(
    y_true: Iterable[object],
    y_pred: Iterable[object],
    level: float = 0.95,
    source: str = "predictions",
) -> BinaryMetrics:
    return metrics_from_counts(confusion_counts(y_true, y_pred, source), level)


def threshold_predictions(scores: np.ndarray, threshold: float) -> np.ndarray:
    """Score >= threshold is called malignant (the rule every operating point uses)."""
    return (np.asarray(scores, dtype=float) >= threshold).astype(np.int8)


@dataclass(frozen=True)
class MulticlassConfusion:
    labels: tuple[str, ...]
    matrix: np.ndarray  # rows: truth, columns: prediction

    def accuracy(self) -> float:
        return float(np.trace(self.matrix) / self.matrix.sum())


def multiclass_confusion(
    y_true: Sequence[object],
    y_pred: Sequence[object],
    labels: Sequence[object] | None = None,
    source: str = "predictions",
) -> MulticlassConfusion:
    truth = [str(v) for v in y_true]
    pred = [str(v) for v in y_pred]
    check_same_length(source, truth=np.asarray(truth), predicted=np.asarray(pred))
    if any(v in ("nan", "None", "") for v in truth + pred):
        from sonorisk.eval.errors import MissingValueError

        raise MissingValueError(source, "missing class label")
    names = [str(v) for v in labels] if labels is not None else sorted(set(truth) | set(pred))
    unknown = (set(truth) | set(pred)) - set(names)
    if unknown:
        raise EvalInputError(source, f"labels {sorted(unknown)} are not in the class list {names}")
    index = {name: i for i, name in enumerate(names)}
    matrix = np.zeros((len(names), len(names)), dtype=np.int64)
    for t, p in zip(truth, pred, strict=True):
        matrix[index[t], index[p]] += 1
    return MulticlassConfusion(tuple(names), matrix)
