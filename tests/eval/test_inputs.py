"""Bad input: clear typed errors naming the table/column and the reason."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sonorisk.cli import main
from sonorisk.errors import InputError
from sonorisk.eval.errors import (
    BiradsScaleError,
    MismatchedIdsError,
    MissingColumnError,
    MissingValueError,
    NonBinaryLabelError,
    SingleClassError,
)
from sonorisk.eval.roc import auc, auc_delong_ci
from sonorisk.eval.tables import load_predictions, load_reads, load_truth

TRUTH = pd.DataFrame({"id": ["a", "b", "c", "d"], "truth": [1, 0, "malignant", "benign"]})


def test_truth_labels():
    t = load_truth(TRUTH)
    assert t["truth"].tolist() == [1, 0, 1, 0]
    with pytest.raises(NonBinaryLabelError, match="column 'truth'.*'suspicious' at row 1"):
        load_truth(TRUTH.assign(truth=[1, "suspicious", 0, 1]))
    with pytest.raises(NonBinaryLabelError, match="label 2"):
        load_truth(TRUTH.assign(truth=[1, 2, 0, 1]))
    with pytest.raises(MissingValueError, match="1 missing label"):
        load_truth(TRUTH.assign(truth=[1, None, 0, 1]))
    with pytest.raises(MissingColumnError, match="'truth'"):
        load_truth(TRUTH.drop(columns="truth"))
    with pytest.raises(InputError, match="duplicate id"):
        load_truth(TRUTH.assign(id=["a", "a", "c", "d"]))


def test_single_class_truth():
    with pytest.raises(SingleClassError, match="only malignant"):
        auc([1, 1, 1], [0.2, 0.5, 0.9])
    with pytest.raises(SingleClassError, match="only benign"):
        auc_delong_ci([0, 0], [0.2, 0.5])


def test_prediction_errors():
    t = load_truth(TRUTH)
    with pytest.raises(MismatchedIdsError, match="not in the truth table.*'e'"):
        load_predictions(pd.DataFrame({"id": ["a", "b", "c", "e"], "m": [0.1, 0.2, 0.3, 0.4]}), t)
    with pytest.raises(MismatchedIdsError, match="truth id\\(s\\) without a row"):
        load_predictions(pd.DataFrame({"id": ["a", "b", "c"], "m": [0.1, 0.2, 0.3]}), t)
    with pytest.raises(MissingValueError, match="column 'm'.*row 2"):
        load_predictions(pd.DataFrame({"id": list("abcd"), "m": [0.1, 0.2, np.nan, 0.4]}), t)
    with pytest.raises(InputError, match="non-numeric score 'high'"):
        load_predictions(pd.DataFrame({"id": list("abcd"), "m": [0.1, "high", 0.3, 0.4]}), t)
    long = pd.DataFrame(
        {
            "id": list("abcd") * 2,
            "model": ["x"] * 4 + ["y"] * 4,
            "score": np.arange(8) / 10,
            "note": ["demo model"] * 4 + [None] * 4,
        }
    )
    p = load_predictions(long, t)
    assert p.models == ["x", "y"] and p.notes == {"x": "demo model"}
    assert p.scores.loc["c", "y"] == pytest.approx(0.6)
    with pytest.raises(MissingValueError, match="model 'y' has no score"):
        load_predictions(long.iloc[:-1], t)


def test_reads_errors():
    t = load_truth(TRUTH)
    good = pd.DataFrame(
        {
            "reader": ["R1"] * 4,
            "case_id": list("abcd"),
            "session": ["unaided"] * 4,
            "birads": ["3", "4A", "4b", 5],
        }
    )
    assert load_reads(good, t)["birads_code"].tolist() == [2, 3, 4, 6]
    with pytest.raises(BiradsScaleError, match="column 'birads'.*7.*row 1"):
        load_reads(good.assign(birads=["3", 7, "4A", "5"]), t)
    with pytest.raises(InputError, match="session.*'second'"):
        load_reads(good.assign(session=["unaided", "second", "aided", "aided"]), t)
    with pytest.raises(MismatchedIdsError, match="not in the truth table"):
        load_reads(good.assign(case_id=list("abcz")), t)
    with pytest.raises(InputError, match="confidence.*\\[0, 100\\]"):
        load_reads(good.assign(confidence=[10, 20, 130, 40]), t)
    with pytest.raises(InputError, match="duplicate"):
        load_reads(good.assign(case_id=list("aacd")), t)


def test_cli_reports_bad_input_in_one_line(tmp_path, capsys):
    truth = tmp_path / "truth.csv"
    preds = tmp_path / "preds.csv"
    TRUTH.to_csv(truth, index=False)
    pd.DataFrame({"id": ["a", "b", "c", "zz"], "m": [0.1, 0.2, 0.3, 0.4]}).to_csv(
        preds, index=False
    )
    code = main(["eval", "report", str(preds), "--truth", str(truth), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2
    assert str(preds) in err and "not in the truth table" in err and "Traceback" not in err
    code = main(
        [
            "eval",
            "report",
            str(tmp_path / "missing.csv"),
            "--truth",
            str(truth),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert code == 2 and "file not found" in capsys.readouterr().err
    pd.DataFrame({"id": list("abcd"), "truth": [1, 1, 1, 1]}).to_csv(truth, index=False)
    pd.DataFrame({"id": list("abcd"), "m": [0.1, 0.2, 0.3, 0.4]}).to_csv(preds, index=False)
    code = main(["eval", "report", str(preds), "--truth", str(truth), "--out", str(tmp_path / "o")])
    assert code == 2 and "only malignant" in capsys.readouterr().err


def test_ids_compare_as_text_in_files(tmp_path):
    """ "007" in the truth file is not "7" in the predictions file (they matched before)."""
    truth = tmp_path / "truth.csv"
    truth.write_text("id,truth\n007,1\n008,0\n009,1\n010,0\n")
    predictions = tmp_path / "pred.csv"
    predictions.write_text("id,m\n7,0.9\n8,0.1\n9,0.8\n10,0.2\n")
    t = load_truth(truth)
    assert list(t.index) == ["007", "008", "009", "010"]
    with pytest.raises(MismatchedIdsError, match="not in the truth table"):
        load_predictions(predictions, t)
    predictions.write_text("id,m\n007,0.9\n008,0.1\n009,0.8\n010,0.2\n")
    assert load_predictions(predictions, t).scores.loc["007", "m"] == pytest.approx(0.9)
