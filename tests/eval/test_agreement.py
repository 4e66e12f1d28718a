"""Kappa statistics against scikit-learn/statsmodels; ICC forms and errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters, cohens_kappa
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss

from sonorisk.eval.agreement import cohen_kappa, fleiss_kappa, icc, kappa_matrix
from sonorisk.eval.birads import BIRADS_SCALE
from sonorisk.eval.errors import EvalInputError, MissingValueError


def _ordinal_pair(rng, n=150, k=6):
    a = rng.integers(0, k, n)
    b = np.clip(a + rng.integers(-1, 2, n), 0, k - 1)
    return a, b


@pytest.mark.parametrize(
    ("ours", "sk", "sm"),
    [
        ("unweighted", None, None),
        ("linear", "linear", "linear"),
        ("quadratic", "quadratic", "quadratic"),
    ],
)
def test_cohen_kappa_matches_references(rng, ours, sk, sm):
    a, b = _ordinal_pair(rng)
    k = cohen_kappa(a, b, categories=list(range(6)), weights=ours)
    assert k.estimate == pytest.approx(cohen_kappa_score(a, b, weights=sk))
    table = pd.crosstab(a, b).reindex(index=range(6), columns=range(6), fill_value=0).to_numpy()
    ref = cohens_kappa(table, wt=sm) if sm else cohens_kappa(table)
    se = (k.ci_high - k.ci_low) / (2 * 1.959963984540054)
    assert ref.kappa == pytest.approx(k.estimate)
    assert se == pytest.approx(ref.std_kappa, rel=1e-6)


def test_cohen_kappa_on_birads_and_undefined():
    a = ["3", "4A", "4B", "5", "3", "4C"]
    b = ["3", "4A", "4C", "5", "4A", "4C"]
    k = cohen_kappa(a, b, BIRADS_SCALE)
    assert -1 <= k.estimate <= 1
    same = cohen_kappa(["3"] * 4, ["3"] * 4, BIRADS_SCALE)
    assert not same.defined and "one category" in same.undefined
    with pytest.raises(EvalInputError, match="not one of"):
        cohen_kappa(["3", "7"], ["3", "3"], BIRADS_SCALE)
    with pytest.raises(EvalInputError, match="weights must be"):
        cohen_kappa(a, b, BIRADS_SCALE, weights="cubic")


def test_fleiss_kappa_matches_statsmodels(rng):
    truth = rng.integers(0, 4, 80)
    ratings = np.stack(
        [np.where(rng.random(80) < 0.7, truth, rng.integers(0, 4, 80)) for _ in range(4)], axis=1
    )
    ours = fleiss_kappa(ratings, categories=[0, 1, 2, 3], n_resamples=200, seed=1)
    counts, _ = aggregate_raters(ratings, n_cat=4)
    assert ours.estimate == pytest.approx(sm_fleiss(counts, method="fleiss"))
    assert ours.ci_low < ours.estimate < ours.ci_high
    assert "200 resamples" in ours.method


def test_kappa_matrix_pairs(rng):
    a, b = _ordinal_pair(rng, 60, 4)
    frame = pd.DataFrame({"R1": a, "R2": b, "R3": a})
    mat = kappa_matrix(frame, categories=[0, 1, 2, 3])
    assert set(mat) == {("R1", "R2"), ("R1", "R3"), ("R2", "R3")}
    assert mat[("R1", "R3")].estimate == pytest.approx(1.0)


def test_icc_errors():
    with pytest.raises(MissingValueError):
        icc(np.array([[1.0, np.nan], [2.0, 3.0], [1.0, 1.0]]))
    with pytest.raises(EvalInputError, match="identical"):
        icc(np.array([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]))
    with pytest.raises(EvalInputError, match="shape"):
        icc(np.array([[1.0, 2.0]]))
