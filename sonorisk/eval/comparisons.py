"""Tests between models and readers (WAUVE Methods, "Statistical analysis").

- McNemar (exact binomial or chi-square) for paired sensitivity, specificity, accuracy;
- Pearson chi-square for PPV/NPV (the calls of two raters compared as independent
  proportions; uncorrected, as SPSS prints "Pearson Chi-Square": this reproduces
  the PPV/NPV p-values of WAUVE Table 4 from its counts);
- chi-square/Fisher for proportions between independent subgroups (Table 3);
- Wilcoxon rank-sum (Mann-Whitney U) and unpaired t-tests for continuous covariates.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from scipy import stats

from sonorisk.eval.errors import EvalInputError
from sonorisk.eval.intervals import TestResult
from sonorisk.eval.validation import as_binary_labels, as_scores, check_same_length


@dataclass(frozen=True)
class DiscordantPairs:
    """Paired 2x2 off-diagonal counts: b = only A correct, c = only B correct."""

    b: int
    c: int
    n: int


def mcnemar(b: int, c: int, exact: bool = True, correction: bool = True) -> TestResult:
    """McNemar's test from the discordant counts b and c.

    exact: two-sided binomial test on min(b, c) of b + c at p = 1/2 (SPSS uses it);
    otherwise chi-square with 1 df, with Edwards' continuity correction by default.
    """
    if b < 0 or c < 0:
        raise EvalInputError("McNemar", f"negative discordant counts ({b}, {c})")
    total = b + c
    if exact:
        method = "McNemar exact (binomial)"
        if total == 0:
            return TestResult(0.0, 1.0, method + "; no discordant pairs")
        p = min(1.0, 2.0 * float(stats.binom.cdf(min(b, c), total, 0.5)))
        return TestResult(float(min(b, c)), p, method)
    method = "McNemar chi-square" + (" (continuity corrected)" if correction else "")
    if total == 0:
        return TestResult(0.0, 1.0, method + "; no discordant pairs", df=1)
    num = (abs(b - c) - (1.0 if correction else 0.0)) ** 2
    num = max(num, 0.0)
    stat = num / total
    return TestResult(stat, float(stats.chi2.sf(stat, 1)), method, df=1)


def discordant_pairs(correct_a: np.ndarray, correct_b: np.ndarray) -> DiscordantPairs:
    a = np.asarray(correct_a, dtype=bool)
    b = np.asarray(correct_b, dtype=bool)
    return DiscordantPairs(int(np.sum(a & ~b)), int(np.sum(~a & b)), len(a))


def compare_paired_binary(
    y_true: Iterable[object],
    pred_a: Iterable[object],
    pred_b: Iterable[object],
    exact: bool = True,
    source: str = "paired predictions",
) -> dict[str, TestResult]:
    """McNemar tests of sensitivity (malignant cases), specificity (benign) and accuracy."""
    y = as_binary_labels(y_true, f"{source}: truth")
    a = as_binary_labels(pred_a, f"{source}: prediction A")
    b = as_binary_labels(pred_b, f"{source}: prediction B")
    check_same_length(source, truth=y, a=a, b=b)
    correct_a, correct_b = a == y, b == y
    out = {}
    for name, mask in (
        ("sensitivity", y == 1),
        ("specificity", y == 0),
        ("accuracy", np.ones_like(y, dtype=bool)),
    ):
        pairs = discordant_pairs(correct_a[mask], correct_b[mask])
        out[name] = mcnemar(pairs.b, pairs.c, exact=exact)
    return out


def chi_square_2x2(
    table: np.ndarray | list[list[int]], correction: bool = False, fisher_when_small: bool = False
) -> TestResult:
    """Pearson chi-square on a 2x2 table of independent proportions.

    With ``fisher_when_small`` a table with an expected count below 5 gets Fisher's
    exact test instead (and the method string says so).
    """
    t = np.asarray(table, dtype=float)
    if t.shape != (2, 2) or np.any(t < 0):
        raise EvalInputError(
            "chi-square", f"need a 2x2 table of non-negative counts, got {t.tolist()}"
        )
    rows, cols = t.sum(axis=1), t.sum(axis=0)
    if np.any(rows == 0) or np.any(cols == 0):
        return TestResult(
            None,
            None,
            "Pearson chi-square",
            df=1,
            undefined="a row or column of the 2x2 table is empty",
        )
    expected = np.outer(rows, cols) / t.sum()
    if fisher_when_small and np.any(expected < 5):
        _, p = stats.fisher_exact(t.astype(int))
        return TestResult(None, float(p), "Fisher exact (an expected count < 5)")
    stat, p, df, _ = stats.chi2_contingency(t, correction=correction)
    method = "Pearson chi-square" + (" (Yates corrected)" if correction else "")
    return TestResult(float(stat), float(p), method, df=float(df))


def compare_predictive_values(tp_a: int, fp_a: int, tp_b: int, fp_b: int) -> TestResult:
    """Chi-square test of PPV (or, with TN/FN, NPV) between two raters."""
    return chi_square_2x2([[tp_a, fp_a], [tp_b, fp_b]])


def compare_proportions(x_a: int, n_a: int, x_b: int, n_b: int) -> TestResult:
    """Two independent proportions (subgroups): chi-square, Fisher when counts are small."""
    if n_a == 0 or n_b == 0:
        return TestResult(None, None, "Pearson chi-square", undefined="an empty group")
    return chi_square_2x2([[x_a, n_a - x_a], [x_b, n_b - x_b]], fisher_when_small=True)


def wilcoxon_rank_sum(
    a: Iterable[object], b: Iterable[object], source: str = "covariate"
) -> TestResult:
    """Two-sided Wilcoxon rank-sum (Mann-Whitney U) test for non-normal covariates."""
    x = as_scores(a, f"{source} (group A)")
    y = as_scores(b, f"{source} (group B)")
    res = stats.mannwhitneyu(x, y, alternative="two-sided")
    return TestResult(
        float(res.statistic),
        float(res.pvalue),
        "Wilcoxon rank-sum (Mann-Whitney U), two-sided",
        estimate=float(np.median(x) - np.median(y)),
    )


def t_test(
    a: Iterable[object], b: Iterable[object], equal_var: bool = True, source: str = "covariate"
) -> TestResult:
    """Unpaired two-sided t-test (Welch's when equal_var is False)."""
    x = as_scores(a, f"{source} (group A)")
    y = as_scores(b, f"{source} (group B)")
    if len(x) < 2 or len(y) < 2:
        return TestResult(None, None, "t-test", undefined="a group has fewer than 2 values")
    res = stats.ttest_ind(x, y, equal_var=equal_var)
    name = "Student t-test (unpaired)" if equal_var else "Welch t-test (unpaired)"
    df = getattr(res, "df", None)
    return TestResult(
        float(res.statistic),
        float(res.pvalue),
        name,
        df=None if df is None else float(df),
        estimate=float(x.mean() - y.mean()),
    )
