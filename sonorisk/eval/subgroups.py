"""Model performance within subgroups of any covariate (WAUVE Table 3).

Standard splits: site (as is), age < 50 vs >= 50, lesion size <= 10 mm vs > 10 mm,
BI-RADS <= 3 vs >= 4A. Any other column: categorical as is, or numeric cut at a
given value. Between two groups: unpaired DeLong for AUC; chi-square (Fisher's
exact when an expected count is below 5) for the proportions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from sonorisk.eval.binary import BinaryMetrics, metrics_from_counts
from sonorisk.eval.birads import BIRADS_CODE, MALIGNANT_FROM, normalize_birads
from sonorisk.eval.comparisons import compare_proportions
from sonorisk.eval.errors import EvalInputError, MissingColumnError
from sonorisk.eval.intervals import Estimate, TestResult
from sonorisk.eval.readers import counts_of
from sonorisk.eval.roc import auc_delong_ci, delong_test_unpaired

MAX_LEVELS = 12  # a categorical covariate with more levels is probably an id, not a subgroup


@dataclass(frozen=True)
class SubgroupRow:
    covariate: str
    group: str
    n: int
    n_malignant: int
    auc: Estimate
    metrics: BinaryMetrics


@dataclass(frozen=True)
class SubgroupResult:
    covariate: str
    rows: list[SubgroupRow]
    tests: dict[str, TestResult]  # metric -> test between the groups


def split_covariate(truth: pd.DataFrame, column: str, cut: float | None = None) -> pd.Series:
    """Group label per case for a covariate; missing values become "missing"."""
    if column not in truth.columns:
        raise MissingColumnError("truth table", f"no covariate column {column!r}")
    values = truth[column]
    if column == "birads":
        cut_code = BIRADS_CODE[MALIGNANT_FROM]
        codes = [
            None if pd.isna(v) else BIRADS_CODE[normalize_birads(v, "truth table: birads", i)]
            for i, v in enumerate(values)
        ]
        return pd.Series(
            [
                "missing" if c is None else ("BI-RADS <= 3" if c < cut_code else "BI-RADS >= 4A")
                for c in codes
            ],
            index=truth.index,
            name=column,
        )
    if column == "age" and cut is None:
        cut = 50.0
        labels = ("age < 50", "age >= 50")
        numeric = pd.to_numeric(values, errors="coerce")
        out = np.where(numeric.isna(), "missing", np.where(numeric < cut, *labels))
        return pd.Series(out, index=truth.index, name=column)
    if column == "lesion_size_mm" and cut is None:
        cut = 10.0
        labels = ("size <= 10 mm", "size > 10 mm")
        numeric = pd.to_numeric(values, errors="coerce")
        out = np.where(numeric.isna(), "missing", np.where(numeric <= cut, *labels))
        return pd.Series(out, index=truth.index, name=column)
    if cut is not None:
        numeric = pd.to_numeric(values, errors="coerce")
        if numeric.notna().sum() == 0:
            raise EvalInputError("truth table", f"covariate {column!r} is not numeric; cannot cut")
        out = np.where(
            numeric.isna(),
            "missing",
            np.where(numeric <= cut, f"{column} <= {cut:g}", f"{column} > {cut:g}"),
        )
        return pd.Series(out, index=truth.index, name=column)
    labels = values.astype(object).where(values.notna(), "missing").astype(str)
    if labels.nunique() > MAX_LEVELS:
        raise EvalInputError(
            "truth table",
            f"covariate {column!r} has {labels.nunique()} levels; give a numeric cut (COLUMN:CUT)",
        )
    return labels.rename(column)


def subgroup_analysis(
    y: np.ndarray, scores: np.ndarray, threshold: float, groups: pd.Series, level: float = 0.95
) -> SubgroupResult:
    y = np.asarray(y).astype(int)
    scores = np.asarray(scores, dtype=float)
    labels = groups.to_numpy().astype(str)
    names = [g for g in sorted(set(labels)) if g != "missing"]
    rows = []
    for g in names:
        mask = labels == g
        yg, sg = y[mask], scores[mask]
        if 0 < yg.sum() < len(yg):
            auc_est = auc_delong_ci(yg, sg, level, source=f"subgroup {g}")
        else:
            auc_est = Estimate.missing("one truth class only in this subgroup", "DeLong")
        pred = (sg >= threshold).astype(int)
        rows.append(
            SubgroupRow(
                str(groups.name),
                g,
                int(mask.sum()),
                int(yg.sum()),
                auc_est,
                metrics_from_counts(counts_of(yg, pred), level),
            )
        )
    tests: dict[str, TestResult] = {}
    if len(rows) == 2:
        a, b = rows
        ma, mb = labels == a.group, labels == b.group
        if a.auc.defined and b.auc.defined:
            tests["auc"] = delong_test_unpaired(y[ma], scores[ma], y[mb], scores[mb], level)
        else:
            tests["auc"] = TestResult(
                None, None, "DeLong (unpaired)", undefined="AUC undefined in a subgroup"
            )
        ca, cb = a.metrics.counts, b.metrics.counts
        tests["sensitivity"] = compare_proportions(ca.tp, ca.n_positive, cb.tp, cb.n_positive)
        tests["specificity"] = compare_proportions(ca.tn, ca.n_negative, cb.tn, cb.n_negative)
        tests["ppv"] = compare_proportions(ca.tp, ca.tp + ca.fp, cb.tp, cb.tp + cb.fp)
        tests["npv"] = compare_proportions(ca.tn, ca.tn + ca.fn, cb.tn, cb.tn + cb.fn)
        tests["accuracy"] = compare_proportions(ca.tp + ca.tn, ca.n, cb.tp + cb.tn, cb.n)
    return SubgroupResult(str(groups.name), rows, tests)
