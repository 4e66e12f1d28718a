"""The statistics agree with R's reference packages to 1e-10 (issue 15).

One Rscript run (tests/eval/against_r.R) computes, on seeded random data with
ties and tiny classes, what pROC (DeLong AUC, ``ci.auc(method="delong")``,
paired and unpaired ``roc.test``), psych (``cohen.kappa``, unweighted, linear
and quadratic; ``ICC``, all six forms), vcd (``Kappa``: the weighted kappa
interval) and epiR (``epi.tests`` exact intervals) print; each test compares
one family with sonorisk.eval. Where R says NA (a single malignant case),
sonorisk must say undefined, not print a number.

CI installs R (scripts/setup.sh: r-base-core r-cran-proc r-cran-psych
r-cran-epir r-cran-vcd), so there a missing Rscript or package fails;
elsewhere it skips.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sonorisk.eval.agreement import ICC_FORMS, cohen_kappa, icc
from sonorisk.eval.binary import ConfusionCounts, metrics_from_counts
from sonorisk.eval.intervals import Estimate, clopper_pearson
from sonorisk.eval.roc import auc_delong_ci, delong_test_paired, delong_test_unpaired

R_SCRIPT = Path(__file__).with_name("against_r.R")
RSCRIPT = shutil.which("Rscript")
ON_CI = bool(os.environ.get("CI"))
TOL = 1e-10
R_PACKAGES = "r-base-core r-cran-proc r-cran-psych r-cran-epir r-cran-vcd"

# Skipped only off CI: CI installs R (scripts/setup.sh), so there a missing R fails the run.
pytestmark = pytest.mark.skipif(
    RSCRIPT is None and not ON_CI, reason=f"needs Rscript (Debian {R_PACKAGES})"
)


def _roc_data(seed: int, n_pos: int, n_neg: int, decimals: int | None) -> pd.DataFrame:
    """Two correlated scores; rounding to ``decimals`` makes ties."""
    rng = np.random.default_rng(seed)
    y = np.r_[np.ones(n_pos, int), np.zeros(n_neg, int)]
    s1 = rng.normal(size=len(y)) + 1.2 * y
    s2 = 0.6 * s1 + 0.8 * rng.normal(size=len(y)) + 0.3 * y
    if decimals is not None:
        s1, s2 = np.round(s1, decimals), np.round(s2, decimals)
    order = rng.permutation(len(y))  # classes interleaved, as in real tables
    return pd.DataFrame({"y": y[order], "s1": s1[order], "s2": s2[order]})


ROC_DATA = {
    "roc_three_pos_ties": _roc_data(1, 3, 9, 0),
    "roc_three_pos": _roc_data(2, 3, 40, None),
    "roc_three_neg_ties": _roc_data(3, 30, 3, 1),
    "roc_rating_scale": _roc_data(4, 25, 30, 0),
    "roc_larger": _roc_data(5, 80, 120, None),
    "roc_one_pos": _roc_data(6, 1, 8, None),  # pROC: NA interval and tests
}


def _kappa_data(seed: int, n: int, k: int, spread: int) -> pd.DataFrame:
    """Two readers' ratings on categories 1..k; the second strays up to ``spread`` steps."""
    rng = np.random.default_rng(seed)
    a = rng.integers(1, k + 1, size=n)
    b = np.clip(a + rng.integers(-spread, spread + 1, size=n), 1, k)
    return pd.DataFrame({"a": a, "b": b, "k": k})


KAPPA_DATA = {
    "kappa_birads": _kappa_data(11, 60, 7, 1),
    "kappa_tiny": _kappa_data(12, 9, 3, 1),
    "kappa_unused_level": _kappa_data(13, 25, 6, 2).assign(
        a=lambda d: d["a"].clip(upper=5), b=lambda d: d["b"].clip(upper=5)
    ),  # 6 never used
}


def _icc_data(seed: int, n: int, k: int, decimals: int | None) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 1)) + 0.5 * rng.normal(size=(1, k)) + 0.8 * rng.normal(size=(n, k))
    if decimals is not None:
        x = np.round(x, decimals)
    return pd.DataFrame(x, columns=[f"r{j}" for j in range(k)])


ICC_DATA = {
    "icc_small": _icc_data(21, 6, 4, None),
    "icc_ties": _icc_data(22, 20, 3, 0),
    "icc_two_raters": _icc_data(23, 5, 2, 1),
}

COUNTS = {  # tp, fp, fn, tn: ordinary, tiny classes, zero cells
    "counts_wauve": (112, 38, 3, 37),
    "counts_three_pos": (2, 5, 1, 30),
    "counts_perfect_sens": (3, 1, 0, 12),
    "counts_tiny": (1, 0, 2, 4),
}


@pytest.fixture(scope="module")
def r_values(tmp_path_factory) -> dict[str, float]:
    """Every number R computes for the data above, by key (NaN where R says NA)."""
    if RSCRIPT is None:
        pytest.fail(f"Rscript missing: apt-get install {R_PACKAGES} (scripts/setup.sh)")
    d = tmp_path_factory.mktemp("against_r")
    for name, frame in {**ROC_DATA, **KAPPA_DATA, **ICC_DATA}.items():
        frame.to_csv(d / f"{name}.csv", index=False, float_format="%.17g")
    pd.DataFrame(
        [(name, *c) for name, c in COUNTS.items()], columns=["name", "tp", "fp", "fn", "tn"]
    ).to_csv(d / "counts.csv", index=False)
    env = {**os.environ, "TZ": "UTC"}  # R asks timedatectl for the zone otherwise
    run = subprocess.run(
        [RSCRIPT, "--vanilla", str(R_SCRIPT), str(d)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    if run.returncode != 0:
        message = f"Rscript failed:\n{run.stderr[-2000:]}"
        if "there is no package called" in run.stderr and not ON_CI:
            pytest.skip(message)
        pytest.fail(message)
    table = pd.read_csv(d / "results.csv", dtype={"value": str}, keep_default_na=False)
    return {
        k: (math.nan if v == "NA" else float(v))
        for k, v in zip(table.key, table.value, strict=True)
    }


def _close(ours: float | None, theirs: float, what: str) -> None:
    """Equal to TOL; R's NA must be our None (undefined), never a number."""
    if math.isnan(theirs):
        assert ours is None, f"{what}: R says NA, sonorisk {ours}"
        return
    assert ours is not None, f"{what}: sonorisk undefined, R {theirs}"
    assert abs(ours - theirs) <= TOL * max(1.0, abs(theirs)), f"{what}: {ours} vs R {theirs}"


def _close_estimate(est: Estimate, r: dict[str, float], key: str) -> None:
    _close(est.estimate, r[f"{key}.estimate"], f"{key} estimate")
    _close(est.ci_low, r[f"{key}.ci_low"], f"{key} lower")
    _close(est.ci_high, r[f"{key}.ci_high"], f"{key} upper")


@pytest.mark.parametrize("name", ROC_DATA)
def test_proc_delong_auc_ci_and_tests(r_values, name):
    d = ROC_DATA[name]
    y, s1, s2 = d["y"].to_numpy(), d["s1"].to_numpy(), d["s2"].to_numpy()
    est = auc_delong_ci(y, s1)
    _close(est.estimate, r_values[f"{name}.auc"], f"{name} AUC")
    _close(est.ci_low, r_values[f"{name}.ci_low"], f"{name} CI lower")
    _close(est.ci_high, r_values[f"{name}.ci_high"], f"{name} CI upper")
    _close(delong_test_paired(y, s1, s2).p_value, r_values[f"{name}.paired_p"], f"{name} paired p")
    # pROC's unpaired p is a t test with Welch df, sonorisk's a normal one: the statistic agrees.
    _close(
        delong_test_unpaired(y, s1, y, s2).statistic,
        r_values[f"{name}.unpaired_statistic"],
        f"{name} unpaired statistic",
    )


@pytest.mark.parametrize("weights", ["linear", "quadratic"])
@pytest.mark.parametrize("name", KAPPA_DATA)
def test_psych_cohen_kappa(r_values, name, weights):
    d = KAPPA_DATA[name]
    categories = list(range(1, int(d["k"].iloc[0]) + 1))
    a, b = d["a"].tolist(), d["b"].tolist()
    _close_estimate(cohen_kappa(a, b, categories), r_values, f"{name}.unweighted")
    weighted = cohen_kappa(a, b, categories, weights=weights)
    key = f"{name}.{weights}"
    _close(weighted.estimate, r_values[f"{key}.estimate"], f"{key} psych estimate")
    _close(weighted.estimate, r_values[f"{key}.vcd_estimate"], f"{key} vcd estimate")
    # The interval is vcd's (psych's weighted variance is wrong, see against_r.R), clipped
    # to [-1, 1] as sonorisk and psych clip it.
    _close(weighted.ci_low, max(-1.0, r_values[f"{key}.ci_low"]), f"{key} lower")
    _close(weighted.ci_high, min(1.0, r_values[f"{key}.ci_high"]), f"{key} upper")


@pytest.mark.parametrize("name", ICC_DATA)
def test_psych_icc_all_six_forms(r_values, name):
    result = icc(ICC_DATA[name].to_numpy())
    for form in ICC_FORMS:
        key = f"{name}.{form}"
        _close_estimate(result[form].estimate, r_values, key)
        _close(result[form].f_value, r_values[f"{key}.F"], f"{key} F")
        _close(result[form].p_value, r_values[f"{key}.p"], f"{key} p")


@pytest.mark.parametrize("name", COUNTS)
def test_epir_exact_intervals(r_values, name):
    tp, fp, fn, tn = COUNTS[name]
    m = metrics_from_counts(ConfusionCounts(tp=tp, fn=fn, tn=tn, fp=fp))
    assert m.sensitivity.method == m.specificity.method == "Clopper-Pearson exact"
    _close_estimate(m.sensitivity, r_values, f"{name}.se")
    _close_estimate(m.specificity, r_values, f"{name}.sp")
    _close_estimate(m.accuracy, r_values, f"{name}.diag.ac")
    # The report's PPV/NPV interval is the logit one; the exact one is what epiR prints.
    _close_estimate(clopper_pearson(tp, tp + fp), r_values, f"{name}.pv.pos")
    _close_estimate(clopper_pearson(tn, tn + fn), r_values, f"{name}.pv.neg")
