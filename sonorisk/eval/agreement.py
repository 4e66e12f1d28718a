"""Agreement between readers: Cohen's kappa (weighted), Fleiss' kappa, ICC.

- Cohen's kappa with unweighted, linear or quadratic weights over an ordered
  category list (BI-RADS); asymptotic standard error of Fleiss, Cohen & Everitt
  (1969), normal CI.
- Fleiss' kappa for many raters with a seeded case bootstrap CI.
- The six intraclass correlations of Shrout & Fleiss (1979) with their F-based
  CIs (ICC(2,*) via Satterthwaite degrees of freedom, as in their paper and R psych).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any, cast

import numpy as np
import pandas as pd
from scipy import stats

from sonorisk.eval.bootstrap import bootstrap_ci
from sonorisk.eval.errors import EvalInputError, MissingValueError, ShapeError
from sonorisk.eval.intervals import Estimate, z_value

WEIGHTS = ("unweighted", "linear", "quadratic")


def _codes(values: Sequence[object], categories: Sequence[object], source: str) -> np.ndarray:
    index = {c: i for i, c in enumerate(categories)}
    out = np.empty(len(values), dtype=int)
    for i, v in enumerate(values):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            raise MissingValueError(source, f"missing rating at row {i}")
        if v not in index:
            raise EvalInputError(
                source, f"rating {v!r} at row {i} is not one of {list(categories)}"
            )
        out[i] = index[v]
    return out


def _agreement_weights(k: int, weights: str) -> np.ndarray:
    if weights not in WEIGHTS:
        raise EvalInputError("kappa", f"weights must be one of {WEIGHTS}, got {weights!r}")
    i, j = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
    if weights == "unweighted" or k == 1:
        return (i == j).astype(float)
    d = np.abs(i - j) / (k - 1)
    return 1.0 - d if weights == "linear" else 1.0 - d**2


def cohen_kappa(
    ratings_a: Sequence[object],
    ratings_b: Sequence[object],
    categories: Sequence[object] | None = None,
    weights: str = "unweighted",
    level: float = 0.95,
    source: str = "ratings",
) -> Estimate:
    """Cohen's kappa between two readers; ``categories`` gives the order (needed for weights)."""
    a, b = list(ratings_a), list(ratings_b)
    if len(a) != len(b) or not a:
        raise ShapeError(
            source, f"two readers need the same, non-zero number of ratings ({len(a)} vs {len(b)})"
        )
    # ratings sort: BI-RADS codes, numbers or text
    cats = list(categories) if categories is not None else sorted(cast("set[Any]", set(a) | set(b)))
    ca, cb = _codes(a, cats, f"{source} (reader A)"), _codes(b, cats, f"{source} (reader B)")
    k, n = len(cats), len(a)
    w = _agreement_weights(k, weights)
    p = np.zeros((k, k))
    np.add.at(p, (ca, cb), 1.0)
    p /= n
    row, col = p.sum(axis=1), p.sum(axis=0)
    po = float(np.sum(w * p))
    pe = float(np.sum(w * np.outer(row, col)))
    method = f"Cohen's kappa ({weights}), asymptotic SE (Fleiss, Cohen & Everitt 1969)"
    if abs(1.0 - pe) < 1e-12:
        return Estimate.missing("chance agreement is 1 (both readers used one category)", method)
    kappa = (po - pe) / (1.0 - pe)
    wr = w @ col  # mean weight of row category i against reader B's margins
    wc = row @ w  # mean weight of column category j against reader A's margins
    inner = p * (w - (wr[:, None] + wc[None, :]) * (1.0 - kappa)) ** 2
    var = (inner.sum() - (kappa - pe * (1.0 - kappa)) ** 2) / (n * (1.0 - pe) ** 2)
    se = math.sqrt(max(var, 0.0))
    half = z_value(level) * se
    return Estimate(kappa, max(-1.0, kappa - half), min(1.0, kappa + half), method, level)


def fleiss_kappa(
    ratings: np.ndarray | pd.DataFrame,
    categories: Sequence[object] | None = None,
    level: float = 0.95,
    n_resamples: int = 1000,
    seed: int = 0,
    source: str = "ratings",
) -> Estimate:
    """Fleiss' kappa for an (n cases x r raters) table of categorical ratings."""
    table = np.asarray(ratings, dtype=object)
    if table.ndim != 2 or table.shape[0] < 2 or table.shape[1] < 2:
        raise ShapeError(source, f"need cases x raters with >= 2 of each, got shape {table.shape}")
    cats = list(categories) if categories is not None else sorted(set(table.ravel().tolist()))
    codes = _codes(table.ravel().tolist(), cats, source).reshape(table.shape)
    counts = np.zeros((table.shape[0], len(cats)))
    for j in range(table.shape[1]):
        np.add.at(counts, (np.arange(table.shape[0]), codes[:, j]), 1.0)

    def kappa_of(c: np.ndarray) -> float | None:
        n_r = c.sum(axis=1)[0]
        pj = c.sum(axis=0) / c.sum()
        pi = (np.sum(c * c, axis=1) - n_r) / (n_r * (n_r - 1))
        pbar, pe = pi.mean(), float(np.sum(pj**2))
        if abs(1 - pe) < 1e-12:
            return None
        return float((pbar - pe) / (1 - pe))

    est = kappa_of(counts)
    method = "Fleiss' kappa"
    if est is None:
        return Estimate.missing("all ratings fall in one category", method)
    y = np.zeros(table.shape[0], dtype=int)  # unstratified: resample cases
    ci = bootstrap_ci(
        lambda idx: kappa_of(counts[idx]), y, est, n_resamples, seed, level, stratified=False
    )
    return Estimate(est, ci.ci_low, ci.ci_high, f"{method}; CI: {ci.method}", level, ci.undefined)


def kappa_matrix(
    ratings: pd.DataFrame,
    categories: Sequence[object] | None = None,
    weights: str = "unweighted",
    level: float = 0.95,
) -> dict[tuple[str, str], Estimate]:
    """Cohen's kappa for every pair of reader columns of a cases x readers table (Fig. 5)."""
    out = {}
    for a, b in combinations(ratings.columns, 2):
        out[(str(a), str(b))] = cohen_kappa(
            ratings[a].tolist(),
            ratings[b].tolist(),
            categories,
            weights,
            level,
            source=f"ratings {a} vs {b}",
        )
    return out


# --- ICC ---------------------------------------------------------------------------------------
ICC_FORMS = ("ICC(1,1)", "ICC(2,1)", "ICC(3,1)", "ICC(1,k)", "ICC(2,k)", "ICC(3,k)")
ICC_DESCRIPTIONS = {
    "ICC(1,1)": "one-way random, single rater",
    "ICC(2,1)": "two-way random, absolute agreement, single rater",
    "ICC(3,1)": "two-way mixed, consistency, single rater",
    "ICC(1,k)": "one-way random, mean of k raters",
    "ICC(2,k)": "two-way random, absolute agreement, mean of k raters",
    "ICC(3,k)": "two-way mixed, consistency, mean of k raters",
}


@dataclass(frozen=True)
class IccResult:
    form: str
    description: str
    estimate: Estimate
    f_value: float
    df1: float
    df2: float
    p_value: float


def icc(
    ratings: np.ndarray | pd.DataFrame, level: float = 0.95, source: str = "ratings"
) -> dict[str, IccResult]:
    """All six Shrout-Fleiss ICCs of an (n targets x k judges) numeric table, complete cases."""
    x = np.asarray(ratings, dtype=float)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 2:
        raise ShapeError(source, f"need targets x judges with >= 2 of each, got shape {x.shape}")
    if np.isnan(x).any():
        raise MissingValueError(source, f"{int(np.isnan(x).sum())} missing rating(s)")
    n, k = x.shape
    grand = x.mean()
    ss_rows = k * np.sum((x.mean(axis=1) - grand) ** 2)
    ss_cols = n * np.sum((x.mean(axis=0) - grand) ** 2)
    ss_total = np.sum((x - grand) ** 2)
    ss_err = ss_total - ss_rows - ss_cols
    msr = ss_rows / (n - 1)
    msc = ss_cols / (k - 1)
    mse = ss_err / ((n - 1) * (k - 1))
    msw = (ss_cols + ss_err) / (n * (k - 1))
    alpha = 1.0 - level
    if msw <= 0 or mse <= 0:
        raise EvalInputError(
            source, "no within-target variance: every judge gave identical ratings"
        )
    method = "F-distribution CI (Shrout & Fleiss 1979)"

    def est(value: float, lo: float, hi: float, m: str = method) -> Estimate:
        return Estimate(float(value), float(lo), float(hi), m, level)

    out: dict[str, IccResult] = {}
    # One-way model.
    f1 = msr / msw
    df1, df2 = n - 1, n * (k - 1)
    fl = f1 / stats.f.ppf(1 - alpha / 2, df1, df2)
    fu = f1 * stats.f.ppf(1 - alpha / 2, df2, df1)
    p1 = float(stats.f.sf(f1, df1, df2))
    icc11 = (msr - msw) / (msr + (k - 1) * msw)
    out["ICC(1,1)"] = IccResult(
        "ICC(1,1)",
        ICC_DESCRIPTIONS["ICC(1,1)"],
        est(icc11, (fl - 1) / (fl + k - 1), (fu - 1) / (fu + k - 1)),
        f1,
        df1,
        df2,
        p1,
    )
    out["ICC(1,k)"] = IccResult(
        "ICC(1,k)",
        ICC_DESCRIPTIONS["ICC(1,k)"],
        est((msr - msw) / msr, 1 - 1 / fl, 1 - 1 / fu),
        f1,
        df1,
        df2,
        p1,
    )
    # Two-way models share the F of rows against residual.
    f3 = msr / mse
    df2b = (n - 1) * (k - 1)
    fl3 = f3 / stats.f.ppf(1 - alpha / 2, df1, df2b)
    fu3 = f3 * stats.f.ppf(1 - alpha / 2, df2b, df1)
    p3 = float(stats.f.sf(f3, df1, df2b))
    out["ICC(3,1)"] = IccResult(
        "ICC(3,1)",
        ICC_DESCRIPTIONS["ICC(3,1)"],
        est(
            (msr - mse) / (msr + (k - 1) * mse),
            (fl3 - 1) / (fl3 + k - 1),
            (fu3 - 1) / (fu3 + k - 1),
        ),
        f3,
        df1,
        df2b,
        p3,
    )
    out["ICC(3,k)"] = IccResult(
        "ICC(3,k)",
        ICC_DESCRIPTIONS["ICC(3,k)"],
        est((msr - mse) / msr, 1 - 1 / fl3, 1 - 1 / fu3),
        f3,
        df1,
        df2b,
        p3,
    )
    icc21 = (msr - mse) / (msr + (k - 1) * mse + k * (msc - mse) / n)
    icc2k = (msr - mse) / (msr + (msc - mse) / n)
    # Satterthwaite degrees of freedom for the ICC(2,*) interval.
    fj = msc / mse
    vn = (k - 1) * (n - 1) * (k * icc21 * fj + n * (1 + (k - 1) * icc21) - k * icc21) ** 2
    vd = (n - 1) * k**2 * icc21**2 * fj**2 + (n * (1 + (k - 1) * icc21) - k * icc21) ** 2
    v = vn / vd
    fs_l = stats.f.ppf(1 - alpha / 2, n - 1, v)
    fs_u = stats.f.ppf(1 - alpha / 2, v, n - 1)
    lo2 = n * (msr - fs_l * mse) / (fs_l * (k * msc + (k * n - k - n) * mse) + n * msr)
    hi2 = n * (fs_u * msr - mse) / (k * msc + (k * n - k - n) * mse + n * fs_u * msr)
    m2 = f"{method}, Satterthwaite df = {v:.2f}"
    out["ICC(2,1)"] = IccResult(
        "ICC(2,1)", ICC_DESCRIPTIONS["ICC(2,1)"], est(icc21, lo2, hi2, m2), f3, df1, df2b, p3
    )
    out["ICC(2,k)"] = IccResult(
        "ICC(2,k)",
        ICC_DESCRIPTIONS["ICC(2,k)"],
        est(icc2k, lo2 * k / (1 + lo2 * (k - 1)), hi2 * k / (1 + hi2 * (k - 1)), m2),
        f3,
        df1,
        df2b,
        p3,
    )
    return {form: out[form] for form in ICC_FORMS}
