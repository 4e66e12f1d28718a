"""DeLong with a single malignant (or benign) case (issue 15): no variance, so no CI and no p.

pROC's var() is NA there, ci.auc gives NA-NA and roc.test stops. The AUC
itself is defined; its interval and every DeLong test are marked undefined and
print as "n/a (reason)", also in subgroup tables, the report and MRMC.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from sonorisk.cli import main
from sonorisk.eval.errors import EvalInputError
from sonorisk.eval.formatting import fmt_estimate, fmt_p
from sonorisk.eval.mrmc import obuchowski_rockette
from sonorisk.eval.roc import (
    auc_delong_ci,
    delong,
    delong_test_paired,
    delong_test_unpaired,
)
from sonorisk.eval.subgroups import subgroup_analysis

ONE_POSITIVE = np.array([1, 0, 0, 0, 0, 0])
ONE_NEGATIVE = 1 - ONE_POSITIVE
SCORES_A = np.array([0.9, 0.1, 0.5, 0.3, 0.95, 0.2])
SCORES_B = np.array([0.6, 0.4, 0.5, 0.7, 0.2, 0.1])


@pytest.mark.parametrize(("y", "cls"), [(ONE_POSITIVE, "malignant"), (ONE_NEGATIVE, "benign")])
def test_auc_defined_but_its_interval_is_not(y, cls):
    est = auc_delong_ci(y, SCORES_A)
    assert est.estimate == pytest.approx(roc_auc_score(y, SCORES_A))
    assert est.ci_low is None and est.ci_high is None
    assert est.undefined == f"DeLong variance undefined: only 1 {cls} case"
    text = fmt_estimate(est)
    assert text.startswith(f"{est.estimate:.4f} (CI n/a: DeLong variance undefined")
    res = delong(y, [SCORES_A, SCORES_B])
    assert np.isnan(res.covariance).all() and res.undefined == est.undefined


@pytest.mark.parametrize("y", [ONE_POSITIVE, ONE_NEGATIVE])
def test_paired_test_has_no_p_value(y):
    test = delong_test_paired(y, SCORES_A, SCORES_B)
    assert test.p_value is None and test.statistic is None
    assert test.estimate == pytest.approx(roc_auc_score(y, SCORES_A) - roc_auc_score(y, SCORES_B))
    assert fmt_p(test).startswith("n/a (DeLong variance undefined")


def test_unpaired_test_names_the_group_with_one_case(rng):
    y_b = np.r_[np.ones(10, int), np.zeros(10, int)]
    s_b = rng.normal(size=20) + y_b
    test = delong_test_unpaired(ONE_POSITIVE, SCORES_A, y_b, s_b)
    assert test.p_value is None and test.undefined.startswith("group A: DeLong variance")


def test_two_of_each_class_still_give_a_number():
    y = np.array([1, 1, 0, 0, 0])
    est = auc_delong_ci(y, [0.9, 0.4, 0.5, 0.1, 0.2])
    assert est.ci_low is not None and math.isfinite(est.ci_low) and est.undefined is None


def test_subgroup_row_with_one_malignant_case():
    y = np.r_[1, np.zeros(5, int), np.ones(8, int), np.zeros(8, int)]
    rng = np.random.default_rng(3)
    scores = rng.uniform(size=len(y)) * 0.5 + 0.5 * y
    groups = pd.Series(["x"] * 6 + ["y"] * 16, name="site")
    res = subgroup_analysis(y, scores, 0.5, groups)
    x_row = next(r for r in res.rows if r.group == "x")
    assert x_row.n_malignant == 1 and x_row.auc.defined and x_row.auc.ci_low is None
    assert "CI n/a: DeLong variance undefined: only 1 malignant case" in fmt_estimate(x_row.auc)
    assert res.tests["auc"].p_value is None
    assert "only 1 malignant case" in fmt_p(res.tests["auc"])


def test_report_subgroup_table_says_na(study, tmp_path):
    """Through the command: the subgroup row prints n/a, never a CI or p of a zero variance."""
    truth = study.truth.copy()
    malignant = truth.index[truth["truth"] == "malignant"]
    truth["grp"] = "big"
    truth.loc[truth.index[truth["truth"] == "benign"][:10], "grp"] = "tiny"
    truth.loc[malignant[:1], "grp"] = "tiny"  # one malignant case in group "tiny"
    truth_path, pred_path = tmp_path / "truth.csv", tmp_path / "predictions.csv"
    truth.to_csv(truth_path, index=False)
    study.predictions[["id", "WAUVE", "note"]].to_csv(pred_path, index=False)
    out = tmp_path / "out"
    assert (
        main(
            [
                "eval",
                "report",
                str(pred_path),
                "--truth",
                str(truth_path),
                "--out",
                str(out),
                "--bootstrap",
                "50",
                "--subgroup",
                "grp",
                "--threshold",
                "0.5",
            ]
        )
        == 0
    )
    table = pd.read_csv(out / "tables" / "subgroups.csv", dtype=str, keep_default_na=False)
    tiny = table[table["group"] == "tiny"].iloc[0]
    assert tiny["n malignant"] == "1"
    assert "(CI n/a: DeLong variance undefined: only 1 malignant case)" in tiny["AUC (DeLong CI)"]
    first = table.iloc[0]  # p is printed on the first row of the covariate
    assert first["AUC p"].startswith("n/a (group") and "only 1 malignant case" in first["AUC p"]


@pytest.mark.parametrize("covariance", ["delong", "jackknife"])
def test_mrmc_with_one_malignant_case_is_a_clear_error(loaded, covariance):
    _, _, reads = loaded
    malignant = sorted(reads.loc[reads["truth"] == 1, "case_id"].unique())
    keep = reads[(reads["truth"] == 0) | (reads["case_id"] == malignant[0])]
    with pytest.raises(EvalInputError, match="1 malignant .* needs at least 2 of each"):
        obuchowski_rockette(keep, covariance=covariance)
