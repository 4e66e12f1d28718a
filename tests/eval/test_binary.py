"""Threshold metrics, tests between raters and operating points against reference code."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from sklearn.metrics import confusion_matrix, f1_score
from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar
from statsmodels.stats.proportion import proportion_confint

from sonorisk.eval.binary import (
    ConfusionCounts,
    binary_metrics,
    confusion_counts,
    metrics_from_counts,
    multiclass_confusion,
)
from sonorisk.eval.comparisons import (
    chi_square_2x2,
    compare_paired_binary,
    compare_proportions,
    mcnemar,
    t_test,
    wilcoxon_rank_sum,
)
from sonorisk.eval.formatting import fmt_estimate
from sonorisk.eval.intervals import clopper_pearson
from sonorisk.eval.operating_points import (
    threshold_for_sensitivity,
    threshold_for_specificity,
    youden_threshold,
)

from .conftest import binormal


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 200).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_clopper_pearson_matches_statsmodels(xn):
    x, n = xn
    est = clopper_pearson(x, n)
    if n == 0:
        assert not est.defined and "0/0" in est.undefined
        return
    lo, hi = proportion_confint(x, n, alpha=0.05, method="beta")
    assert est.ci_low == pytest.approx(0.0 if x == 0 else lo, abs=1e-10)
    assert est.ci_high == pytest.approx(1.0 if x == n else hi, abs=1e-10)


def test_binary_metrics_against_sklearn(rng):
    y = rng.integers(0, 2, 300)
    pred = np.where(rng.random(300) < 0.8, y, 1 - y)
    m = binary_metrics(y, pred)
    tn, fp, fn, tp = confusion_matrix(y, pred).ravel()
    assert m.counts == ConfusionCounts(tp, fn, tn, fp)
    assert m.sensitivity.estimate == pytest.approx(tp / (tp + fn))
    assert m.specificity.estimate == pytest.approx(tn / (tn + fp))
    assert m.ppv.estimate == pytest.approx(tp / (tp + fp))
    assert m.npv.estimate == pytest.approx(tn / (tn + fn))
    assert m.accuracy.estimate == pytest.approx((tp + tn) / 300)
    assert m.f1.estimate == pytest.approx(f1_score(y, pred))
    for e in (m.sensitivity, m.specificity, m.ppv, m.npv, m.accuracy):
        assert e.ci_low < e.estimate < e.ci_high


def test_predictive_value_at_100_percent_uses_exact_interval():
    # Reader R4 of WAUVE Table 4: NPV 100% (26 TN, 0 FN). The logit interval is
    # undefined there; we print the exact interval and say so, not "100 (100, 100)".
    m = metrics_from_counts(ConfusionCounts(tp=115, fn=0, tn=26, fp=49))
    assert m.npv.estimate == 1.0 and m.npv.ci_high == 1.0
    assert m.npv.ci_low == pytest.approx(proportion_confint(26, 26, method="beta")[0])
    assert "undefined at 0% or 100%" in m.npv.method


def test_undefined_metrics_print_reason_not_nan():
    m = metrics_from_counts(ConfusionCounts(tp=0, fn=0, tn=5, fp=0))
    assert not m.sensitivity.defined
    text = fmt_estimate(m.sensitivity, percent=True)
    # "malignant" contains the letters n-a-n: look for NaN as a word
    assert text.startswith("n/a (") and not re.search(r"\bnan\b", text, re.IGNORECASE)
    assert not m.ppv.defined and "no positive calls" in m.ppv.undefined


def test_multiclass_confusion_matches_sklearn(rng):
    classes = ["IDC", "fibroadenoma", "mucinous", "inflammatory"]
    truth = rng.choice(classes, 120)
    pred = np.where(rng.random(120) < 0.7, truth, rng.choice(classes, 120))
    ours = multiclass_confusion(truth, pred, classes)
    np.testing.assert_array_equal(ours.matrix, confusion_matrix(truth, pred, labels=classes))
    assert ours.accuracy() == pytest.approx(np.mean(truth == pred))


@pytest.mark.parametrize(("b", "c"), [(0, 0), (3, 9), (12, 4), (30, 41), (1, 0)])
def test_mcnemar_matches_statsmodels(b, c):
    table = [[50, b], [c, 40]]
    exact = mcnemar(b, c, exact=True)
    chi = mcnemar(b, c, exact=False, correction=True)
    assert exact.p_value == pytest.approx(sm_mcnemar(table, exact=True).pvalue)
    if b + c:
        ref = sm_mcnemar(table, exact=False, correction=True)
        assert chi.statistic == pytest.approx(ref.statistic)
        assert chi.p_value == pytest.approx(ref.pvalue)


def test_compare_paired_binary_uses_the_right_cases(rng):
    y = np.r_[np.ones(50, int), np.zeros(50, int)]
    a = y.copy()
    b = y.copy()
    b[:10] = 0  # B misses 10 cancers: sensitivity differs, specificity does not
    res = compare_paired_binary(y, a, b)
    assert res["sensitivity"].p_value == pytest.approx(2 * 0.5**10)
    assert res["specificity"].p_value == 1.0
    assert res["accuracy"].p_value == pytest.approx(2 * 0.5**10)


def test_chi_square_and_fisher_fallback():
    t = [[30, 10], [20, 25]]
    res = chi_square_2x2(t)
    assert res.p_value == pytest.approx(stats.chi2_contingency(t, correction=False)[1])
    small = compare_proportions(3, 4, 1, 6)
    assert "Fisher" in small.method
    assert small.p_value == pytest.approx(stats.fisher_exact([[3, 1], [1, 5]])[1])
    empty = chi_square_2x2([[0, 0], [3, 4]])
    assert empty.p_value is None and empty.undefined


def test_continuous_covariate_tests(rng):
    a, b = rng.normal(50, 10, 40), rng.normal(44, 10, 35)
    w = wilcoxon_rank_sum(a, b)
    assert w.p_value == pytest.approx(stats.mannwhitneyu(a, b).pvalue)
    t = t_test(a, b)
    assert t.p_value == pytest.approx(stats.ttest_ind(a, b).pvalue)
    assert t_test(a, b, equal_var=False).method.startswith("Welch")


def test_operating_points(rng):
    y, s = binormal(rng, 115, 75, 1.5)
    op = threshold_for_sensitivity(y, s, 0.9739)
    assert op.metrics.sensitivity.estimate >= 0.9739
    # the next higher observed score would fall below the target
    higher = np.unique(s[s > op.threshold])
    if higher.size:
        assert np.mean(s[y == 1] >= higher[0]) < 0.9739
    op2 = threshold_for_specificity(y, s, 0.8)
    assert op2.metrics.specificity.estimate >= 0.8
    lower = np.unique(s[s < op2.threshold])
    if lower.size:
        assert np.mean(s[y == 0] < lower[-1]) < 0.8
    yo = youden_threshold(y, s)
    brute = max(np.mean(s[y == 1] >= t) + np.mean(s[y == 0] < t) - 1 for t in np.unique(s))
    assert yo.metrics.sensitivity.estimate + yo.metrics.specificity.estimate - 1 == pytest.approx(
        brute
    )
    assert "Youden" in yo.rule and "sensitivity >= 0.9739" in op.rule


def test_confusion_counts_rejects_bad_predictions():
    from sonorisk.eval.errors import NonBinaryLabelError

    with pytest.raises(NonBinaryLabelError, match="predicted label"):
        confusion_counts([0, 1, 1], [0, 2, 1])


def test_logit_interval_falls_back_when_its_variance_is_zero():
    # everything called malignant: sensitivity 100%, specificity 0%
    m = metrics_from_counts(ConfusionCounts(tp=3, fn=0, tn=0, fp=2))
    lo, hi = proportion_confint(3, 5, method="beta")
    assert (m.ppv.ci_low, m.ppv.ci_high) == (pytest.approx(lo), pytest.approx(hi))
    assert "variance zero" in m.ppv.method
