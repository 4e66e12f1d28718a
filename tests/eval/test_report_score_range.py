"""eval report on scores that are not probabilities (issue 15): a loud warning, no calibration.

Logits or decision values rank cases as well as probabilities do, so AUC and
tests stand, but a calibration plot of them against a fraction malignant means
nothing: the model is left out of it, and the report says so.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sonorisk.cli import main
from sonorisk.eval.report import NOT_PROBABILITIES


def _run(study, tmp_path, change) -> tuple[int, str, str]:
    predictions = study.predictions[["id", "WAUVE", "TimeSformer", "note"]].copy()
    change(predictions)
    pred_path, truth_path = tmp_path / "predictions.csv", tmp_path / "truth.csv"
    predictions.to_csv(pred_path, index=False)
    study.truth.to_csv(truth_path, index=False)
    out = tmp_path / "out"
    code = main(
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
            "site",
        ]
    )
    return code, (out / "report.md").read_text(), (out / "report.html").read_text()


def _logit(p: pd.Series) -> pd.Series:
    p = p.clip(1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def test_logit_scores_are_flagged_and_left_out_of_calibration(study, tmp_path, capsys):
    code, md, html = _run(
        study, tmp_path, lambda p: p.__setitem__("TimeSformer", _logit(p["TimeSformer"]))
    )
    assert code == 0
    warning = next(line for line in md.splitlines() if NOT_PROBABILITIES in line)
    assert "'TimeSformer'" in warning and "outside [0, 1]" in warning
    assert "left out of the calibration plot" in warning and "'WAUVE'" not in warning
    assert md.index("**Warnings:**") < md.index("### ")  # at the top, before any table
    assert f"<p class='warn'>{NOT_PROBABILITIES}" in html
    assert NOT_PROBABILITIES in capsys.readouterr().out  # the command line says it too
    # The calibration plot is still drawn for the model whose scores are probabilities.
    assert (tmp_path / "out" / "figures" / "calibration.png").is_file()


def test_no_calibration_plot_when_no_model_gives_probabilities(study, tmp_path):
    def scale(p):
        p["WAUVE"] = p["WAUVE"] * 100  # percent
        p["TimeSformer"] = _logit(p["TimeSformer"])

    code, md, _ = _run(study, tmp_path, scale)
    assert code == 0
    assert "no calibration plot" in md and "calibration.png" not in md
    assert not (tmp_path / "out" / "figures" / "calibration.png").exists()
    assert "roc_models.png" in md  # the rest of the report is unchanged


@pytest.mark.parametrize("value", [0.0, 1.0])
def test_probabilities_at_the_bounds_give_no_warning(study, tmp_path, value):
    code, md, _ = _run(study, tmp_path, lambda p: p.__setitem__("WAUVE", value))
    assert code == 0 and NOT_PROBABILITIES not in md
    assert (tmp_path / "out" / "figures" / "calibration.png").is_file()
