"""ROC curves, AUC with DeLong and bootstrap CIs, DeLong tests, one-vs-rest AUC.

Convention: a higher score means more likely malignant; ties count one half
(the Mann-Whitney AUC, as pROC and scikit-learn compute it).
DeLong variances use the fast midrank algorithm of Sun & Xu (2014).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from sonorisk.eval.bootstrap import stratified_indices
from sonorisk.eval.errors import EvalInputError, ShapeError
from sonorisk.eval.intervals import Estimate, TestResult, normal_interval
from sonorisk.eval.validation import (
    as_binary_labels,
    as_scores,
    check_same_length,
    require_both_classes,
)

BOOTSTRAP_CELLS = 4_000_000  # resampled cases ranked at once (~100 MB of temporaries)


@dataclass(frozen=True)
class RocCurve:
    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray  # call malignant when score >= threshold; first is +inf


@dataclass(frozen=True)
class DeLongResult:
    aucs: np.ndarray  # one per score vector
    covariance: np.ndarray  # DeLong covariance matrix of the AUCs; NaN when undefined
    n_positive: int
    n_negative: int
    undefined: str | None = None  # why the covariance is undefined (one case of a class)


def _clean(
    y_true: Iterable[object], scores: Iterable[object], source: str
) -> tuple[np.ndarray, np.ndarray]:
    y = as_binary_labels(y_true, f"{source}: truth")
    s = as_scores(scores, f"{source}: score")
    check_same_length(source, truth=y, score=s)
    require_both_classes(y, f"{source}: truth")
    return y, s


def _midrank(x: np.ndarray) -> np.ndarray:
    """Midranks along the last axis (1-based, ties averaged)."""
    return stats.rankdata(x, method="average", axis=-1)


def delong(
    y_true: Iterable[object],
    score_matrix: np.ndarray | Sequence[np.ndarray],
    source: str = "scores",
) -> DeLongResult:
    """AUCs and their DeLong covariance for k score vectors on the same cases.

    ``score_matrix`` is (k, n) or a sequence of k length-n vectors.
    """
    y = as_binary_labels(y_true, f"{source}: truth")
    mat = np.atleast_2d(np.asarray(score_matrix, dtype=float))
    if mat.shape[1] != len(y):
        raise ShapeError(source, f"{mat.shape[1]} scores for {len(y)} truth labels")
    for row in mat:
        as_scores(row, f"{source}: score")
    m, n = require_both_classes(y, f"{source}: truth")
    pos, neg = mat[:, y == 1], mat[:, y == 0]
    tx, ty = _midrank(pos), _midrank(neg)
    tz = _midrank(np.concatenate([pos, neg], axis=1))
    # rank sums of halves are exact in floating point; this order keeps AUC in [0, 1]
    aucs = (tz[:, :m].sum(axis=1) - m * (m + 1) / 2.0) / (m * n)
    v01 = (tz[:, :m] - tx) / n  # placement of each malignant case among benign ones
    v10 = 1.0 - (tz[:, m:] - ty) / m  # placement of each benign case among malignant ones
    if min(m, n) < 2:
        # A single case of a class has no sample variance of its placements: pROC's
        # var() is NA there, and so are its CI and tests. Say so instead of inventing 0.
        k = mat.shape[0]
        return DeLongResult(aucs, np.full((k, k), np.nan), m, n, _single_case_reason(m, n))
    sx, sy = np.atleast_2d(np.cov(v01)), np.atleast_2d(np.cov(v10))
    return DeLongResult(aucs, sx / m + sy / n, m, n)


def _single_case_reason(m: int, n: int) -> str:
    cls = "malignant" if m < 2 else "benign"
    return f"DeLong variance undefined: only 1 {cls} case"


def auc(y_true: Iterable[object], scores: Iterable[object], source: str = "scores") -> float:
    y, s = _clean(y_true, scores, source)
    return float(delong(y, s[None, :], source).aucs[0])


def auc_delong_ci(
    y_true: Iterable[object], scores: Iterable[object], level: float = 0.95, source: str = "scores"
) -> Estimate:
    y, s = _clean(y_true, scores, source)
    res = delong(y, s[None, :], source)
    method = "DeLong (asymptotic normal, clipped to [0,1])"
    if res.undefined:
        return Estimate(float(res.aucs[0]), None, None, method, level, res.undefined)
    return normal_interval(
        float(res.aucs[0]), math.sqrt(max(res.covariance[0, 0], 0.0)), level, method
    )


def auc_bootstrap_ci(
    y_true: Iterable[object],
    scores: Iterable[object],
    level: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
    source: str = "scores",
) -> Estimate:
    """Percentile interval over stratified bootstrap resamples (pROC's default scheme)."""
    y, s = _clean(y_true, scores, source)
    m, n = int(y.sum()), int(len(y) - y.sum())
    # Rank resamples in chunks so a large table never needs n_resamples x n_cases at once.
    chunk = max(1, BOOTSTRAP_CELLS // len(y))
    parts = []
    for start in range(0, n_resamples, chunk):
        size = min(chunk, n_resamples - start)
        idx = stratified_indices(y, size, (seed, start))
        ys, ss = y[idx], s[idx]
        ranks = _midrank(ss)
        parts.append((np.where(ys == 1, ranks, 0.0).sum(axis=1) - m * (m + 1) / 2.0) / (m * n))
    boot = np.concatenate(parts)
    alpha = 1.0 - level
    low, high = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
    return Estimate(
        auc(y, s, source),
        float(low),
        float(high),
        f"stratified bootstrap percentile, {n_resamples} resamples, seed {seed}",
        level,
    )


def roc_curve(
    y_true: Iterable[object], scores: Iterable[object], source: str = "scores"
) -> RocCurve:
    y, s = _clean(y_true, scores, source)
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    distinct = np.flatnonzero(np.diff(s_sorted)) if len(s) > 1 else np.array([], dtype=int)
    ends = np.r_[distinct, len(s) - 1]
    tps = np.cumsum(y_sorted)[ends]
    fps = (ends + 1) - tps
    m, n = int(y.sum()), int(len(y) - y.sum())
    fpr = np.r_[0.0, fps / n]
    tpr = np.r_[0.0, tps / m]
    thresholds = np.r_[np.inf, s_sorted[ends]]
    return RocCurve(fpr, tpr, thresholds)


def _z_test(diff: float, var: float, level: float, method: str) -> TestResult:
    """Two-sided normal test of an AUC difference with its variance, and its CI."""
    z = diff / math.sqrt(var)
    ci = normal_interval(diff, math.sqrt(var), level, method, bounds=None)
    return TestResult(
        z,
        float(2 * stats.norm.sf(abs(z))),
        method,
        estimate=diff,
        ci_low=ci.ci_low,
        ci_high=ci.ci_high,
    )


def delong_test_paired(
    y_true: Iterable[object],
    scores_a: Iterable[object],
    scores_b: Iterable[object],
    level: float = 0.95,
    source: str = "scores",
) -> TestResult:
    """Two-sided DeLong test of AUC(a) = AUC(b) on the same cases."""
    y = as_binary_labels(y_true, f"{source}: truth")
    a = as_scores(scores_a, f"{source}: score A")
    b = as_scores(scores_b, f"{source}: score B")
    check_same_length(source, truth=y, score_a=a, score_b=b)
    res = delong(y, np.vstack([a, b]), source)
    diff = float(res.aucs[0] - res.aucs[1])
    var = float(res.covariance[0, 0] + res.covariance[1, 1] - 2 * res.covariance[0, 1])
    method = "DeLong test for two correlated ROC curves (paired)"
    if res.undefined:
        return TestResult(None, None, method, estimate=diff, undefined=res.undefined)
    if var <= 1e-15:
        # Identical rankings (or perfect separation by both): no variance to test against.
        return TestResult(
            0.0 if diff == 0 else None,
            1.0 if diff == 0 else None,
            method,
            estimate=diff,
            ci_low=diff,
            ci_high=diff,
            undefined=None if diff == 0 else "zero variance of the AUC difference",
        )
    return _z_test(diff, var, level, method)


def delong_test_unpaired(
    y_a: Iterable[object],
    scores_a: Iterable[object],
    y_b: Iterable[object],
    scores_b: Iterable[object],
    level: float = 0.95,
    source: str = "scores",
) -> TestResult:
    """Two-sided test of AUC(a) = AUC(b) on independent case sets (e.g. two hospitals)."""
    ya, sa = _clean(y_a, scores_a, f"{source} (group A)")
    yb, sb = _clean(y_b, scores_b, f"{source} (group B)")
    ra, rb = delong(ya, sa[None, :]), delong(yb, sb[None, :])
    diff = float(ra.aucs[0] - rb.aucs[0])
    var = float(ra.covariance[0, 0] + rb.covariance[0, 0])
    method = "DeLong test for two independent ROC curves (unpaired)"
    undefined = [f"group {g}: {r.undefined}" for g, r in (("A", ra), ("B", rb)) if r.undefined]
    if undefined:
        return TestResult(None, None, method, estimate=diff, undefined="; ".join(undefined))
    if var <= 1e-15:
        return TestResult(
            None,
            1.0 if diff == 0 else None,
            method,
            estimate=diff,
            undefined="zero variance: both groups perfectly separated",
        )
    return _z_test(diff, var, level, method)


def one_vs_rest_auc(
    labels: Sequence[object],
    scores: Mapping[str, Iterable[object]],
    level: float = 0.95,
    source: str = "subtype scores",
) -> dict[str, Estimate]:
    """Per-class AUC (class vs all others) with DeLong CIs for a subtype head.

    ``scores`` maps each class name to that class's score column.
    """
    names = [str(v) for v in labels]
    unknown = set(names) - set(scores)
    if unknown:
        raise EvalInputError(source, f"no score column for class(es) {sorted(unknown)}")
    out: dict[str, Estimate] = {}
    for cls, col in scores.items():
        y = np.array([1 if v == cls else 0 for v in names], dtype=np.int8)
        if y.sum() == 0 or y.sum() == len(y):
            out[cls] = Estimate.missing(
                f"class {cls!r} has no cases or is the only class", "DeLong"
            )
            continue
        out[cls] = auc_delong_ci(y, as_scores(col, f"{source}: {cls}"), level, f"{source}: {cls}")
    return out
