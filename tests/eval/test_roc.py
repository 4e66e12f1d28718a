"""AUC, ROC curve and DeLong against scikit-learn, a bootstrap and invariance properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

from sonorisk.eval.roc import (
    auc,
    auc_bootstrap_ci,
    auc_delong_ci,
    delong,
    delong_test_paired,
    delong_test_unpaired,
    one_vs_rest_auc,
    roc_curve,
)

from .conftest import binormal


@pytest.mark.parametrize("ties", [False, True])
def test_auc_matches_sklearn(rng, ties):
    for n_pos, n_neg in ((5, 7), (60, 40), (115, 75)):
        y, s = binormal(rng, n_pos, n_neg, 0.8, ties)
        assert auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)


def test_roc_curve_matches_sklearn(rng):
    y, s = binormal(rng, 40, 30, 1.0, ties=True)
    ours = roc_curve(y, s)
    fpr, tpr, thr = sk_roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_allclose(ours.fpr, fpr)
    np.testing.assert_allclose(ours.tpr, tpr)
    np.testing.assert_allclose(ours.thresholds[1:], thr[1:])
    # trapezoid area under our curve is the Mann-Whitney AUC (ties = 1/2)
    assert np.trapezoid(ours.tpr, ours.fpr) == pytest.approx(auc(y, s))


labels_and_scores = st.integers(min_value=2, max_value=40).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, 1), min_size=n, max_size=n).filter(lambda v: 0 < sum(v) < len(v)),
        st.lists(st.integers(-5, 5), min_size=n, max_size=n),  # small range: many ties
    )
)


@settings(max_examples=60, deadline=None)
@given(labels_and_scores)
def test_auc_invariances(data):
    y, s = np.array(data[0]), np.array(data[1], dtype=float)
    a = auc(y, s)
    assert 0.0 <= a <= 1.0
    assert auc(y, -s) == pytest.approx(1.0 - a, abs=1e-12)  # reversing the score
    assert auc(1 - y, s) == pytest.approx(1.0 - a, abs=1e-12)  # swapping the classes
    assert auc(y, np.exp(s / 3) * 7 + 2) == pytest.approx(a, abs=1e-12)  # monotone transform
    perm = np.random.default_rng(len(y)).permutation(len(y))
    assert auc(y[perm], s[perm]) == pytest.approx(a, abs=1e-12)  # case order
    assert auc(y, np.zeros_like(s)) == pytest.approx(0.5)  # all tied: one half
    assert a == pytest.approx(roc_auc_score(y, s), abs=1e-12)


def test_delong_variance_agrees_with_bootstrap(rng):
    y, s = binormal(rng, 115, 75, 1.2)
    var = float(delong(y, s[None, :]).covariance[0, 0])
    boot = auc_bootstrap_ci(y, s, n_resamples=2000, seed=3)
    idx = np.random.default_rng(5).integers
    aucs = []
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    for _ in range(500):  # an independent bootstrap through scikit-learn's AUC
        take = np.r_[pos[idx(0, len(pos), len(pos))], neg[idx(0, len(neg), len(neg))]]
        aucs.append(roc_auc_score(y[take], s[take]))
    boot_var = float(np.var(aucs, ddof=1))
    assert var == pytest.approx(boot_var, rel=0.2)
    dl = auc_delong_ci(y, s)
    # the two 95% intervals nearly coincide on 190 cases
    assert abs(dl.ci_low - boot.ci_low) < 0.02 and abs(dl.ci_high - boot.ci_high) < 0.02
    assert dl.ci_low < dl.estimate < dl.ci_high
    assert "DeLong" in dl.method and "2000 resamples" in boot.method


def test_delong_covariance_matrix_paired(rng):
    y, s = binormal(rng, 80, 90, 1.0)
    s2 = s + rng.normal(scale=0.5, size=len(s))
    res = delong(y, np.vstack([s, s2]))
    cov = res.covariance
    assert cov.shape == (2, 2) and np.allclose(cov, cov.T)
    assert cov[0, 1] > 0  # correlated scores -> positively correlated AUC errors
    assert np.linalg.eigvalsh(cov).min() >= -1e-15


def test_delong_paired_test(rng):
    y, s = binormal(rng, 100, 100, 1.0)
    same = delong_test_paired(y, s, s * 2 + 1)
    assert same.p_value == 1.0 and same.estimate == 0.0
    noise = delong_test_paired(y, s, rng.normal(size=len(y)))
    assert noise.p_value < 1e-4 and noise.estimate > 0
    close = delong_test_paired(y, s, s + rng.normal(scale=0.05, size=len(y)))
    assert close.p_value > 0.05


def test_delong_null_calibration():
    """Under H0 (two exchangeable noisy copies) the paired test rejects about 5%."""
    rng = np.random.default_rng(99)
    rejections, reps = 0, 300
    for _ in range(reps):
        y, base = binormal(rng, 40, 40, 1.0)
        a = base + rng.normal(scale=0.7, size=80)
        b = base + rng.normal(scale=0.7, size=80)
        rejections += delong_test_paired(y, a, b).p_value < 0.05
    assert 0.02 <= rejections / reps <= 0.09


def test_delong_unpaired(rng):
    ya, sa = binormal(rng, 50, 50, 1.5)
    yb, sb = binormal(rng, 60, 40, 0.2)
    res = delong_test_unpaired(ya, sa, yb, sb)
    va = delong(ya, sa[None, :]).covariance[0, 0]
    vb = delong(yb, sb[None, :]).covariance[0, 0]
    assert res.estimate == pytest.approx(auc(ya, sa) - auc(yb, sb))
    assert res.statistic == pytest.approx(res.estimate / np.sqrt(va + vb))
    assert res.p_value < 0.01


def test_one_vs_rest_auc_matches_sklearn(rng):
    classes = sorted(["IDC", "fibroadenoma", "mucinous", "inflammatory"])
    labels = rng.choice(classes, size=200)
    probs = rng.dirichlet(np.ones(4), size=200)
    probs[np.arange(200), [classes.index(c) for c in labels]] += 0.3
    probs /= probs.sum(axis=1, keepdims=True)
    ours = one_vs_rest_auc(labels, {c: probs[:, i] for i, c in enumerate(classes)})
    ref = roc_auc_score(labels, probs, multi_class="ovr", average=None, labels=classes)
    for i, c in enumerate(classes):
        assert ours[c].estimate == pytest.approx(ref[i])
        assert ours[c].ci_low < ours[c].estimate < ours[c].ci_high


def test_perfect_separation_is_exactly_one():
    # found by hypothesis: a rounding order once gave 1.0000000000000002
    y = np.array([0, 1, 1, 0, 1, 0, 1, 1, 0, 1, 1, 1, 0, 1, 1, 1, 1, 0])
    assert auc(y, y.astype(float)) == 1.0
    assert auc(y, -y.astype(float)) == 0.0
