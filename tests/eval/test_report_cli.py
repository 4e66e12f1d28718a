"""``sonorisk eval report`` end to end through sonorisk.cli.main on simulated tables."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.metrics import cohen_kappa_score, roc_auc_score

from sonorisk.cli import main
from sonorisk.eval.operating_points import threshold_for_sensitivity

NAN_WORD = re.compile(r"\bnan\b", re.IGNORECASE)
EXPECTED_TABLES = {
    "auc",
    "operating_points",
    "covariates",
    "subgroups",
    "table4_readers",
    "table5_birads_changes",
    "kappa_pairs",
    "fleiss_kappa",
    "icc",
    "reading_time_terciles",
    "mrmc",
    "subtype_auc",
    "subtype_confusion",
}
EXPECTED_FIGURES = {"roc_models", "roc_readers", "calibration", "kappa_matrix"}


@pytest.fixture(scope="module")
def report_dir(study_files, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report")
    code = main(
        [
            "eval",
            "report",
            str(study_files.predictions),
            "--truth",
            str(study_files.truth),
            "--reads",
            str(study_files.reads),
            "--out",
            str(out),
            "--bootstrap",
            "300",
            "--seed",
            "3",
        ]
    )
    assert code == 0
    return out


def _table(report_dir: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(report_dir / "tables" / f"{name}.csv", dtype=str, keep_default_na=False)


def test_files_exist_and_no_nan(report_dir):
    assert {p.stem for p in (report_dir / "tables").glob("*.csv")} == EXPECTED_TABLES
    assert {p.stem for p in (report_dir / "figures").glob("*.png")} == EXPECTED_FIGURES
    assert (report_dir / "imrmc_input.txt").is_file()
    for path in [
        report_dir / "report.md",
        report_dir / "report.html",
        *(report_dir / "tables").glob("*.csv"),
    ]:
        text = path.read_text()
        assert not NAN_WORD.search(text), path
    md = (report_dir / "report.md").read_text()
    # provenance: the simulated models are flagged on the report and in the HTML
    assert "SYNTHETIC/DEMO SCORES" in md and "not a clinical result" in md
    assert "SYNTHETIC/DEMO SCORES" in (report_dir / "report.html").read_text()
    # every table with intervals says, in its own notes, how they were computed
    sections = {s.split("\n", 1)[0]: s for s in md.split("\n### ")[1:]}
    no_intervals = ("BI-RADS changes", "Continuous", "Subtype head: confusion")
    with_intervals = [t for t in sections if not t.startswith(no_intervals)]
    assert len(with_intervals) == len(EXPECTED_TABLES) - 3
    for title in with_intervals:
        assert "95% confidence intervals" in sections[title], title
    assert "Clopper-Pearson" in md and "Mercaldo" in md and "DeLong" in md
    assert "Shrout & Fleiss" in md and "Obuchowski-Rockette" in md


def test_auc_table_numbers(report_dir, study):
    table = _table(report_dir, "auc").set_index("model")
    y = (study.truth["truth"] == "malignant").astype(int).to_numpy()
    for model in ("WAUVE", "TimeSformer", "ResNet50-2D"):
        expected = roc_auc_score(y, study.predictions[model])
        assert table.loc[model, "AUC (DeLong CI)"].startswith(f"{expected:.4f} (")
        assert table.loc[model, "AUC (bootstrap CI)"].startswith(f"{expected:.4f} (")
    assert table.loc["WAUVE", "p vs WAUVE"].startswith("—")
    assert re.fullmatch(r"<0\.001|\d\.\d{3}", table.loc["ResNet50-2D", "p vs WAUVE"])


def test_operating_point_matches_reader_sensitivity(report_dir, study):
    reads = study.reads
    malignant_ids = set(study.truth.loc[study.truth["truth"] == "malignant", "id"])
    un = reads[(reads["session"] == "unaided") & reads["case_id"].isin(malignant_ids)]
    target = un["birads"].isin(["4A", "4B", "4C", "5"]).mean()
    y = (study.truth["truth"] == "malignant").astype(int).to_numpy()
    op = threshold_for_sensitivity(y, study.predictions["WAUVE"].to_numpy(), target)
    ops = _table(report_dir, "operating_points")
    first = ops.iloc[0]
    assert first["model"] == "WAUVE" and float(first["threshold"]) == pytest.approx(
        op.threshold, abs=5e-5
    )
    assert "readers' pooled unaided sensitivity" in first["rule"]


def test_table4_reader_rows(report_dir, study):
    t4 = _table(report_dir, "table4_readers")
    truth = study.truth.set_index("id")["truth"]
    reads = study.reads.assign(
        malignant=study.reads["case_id"].map(truth) == "malignant",
        call=study.reads["birads"].isin(["4A", "4B", "4C", "5"]),
    )
    for reader, session, group in (("R1", "unaided", "without AI"), ("R3", "aided", "with AI")):
        part = reads[(reads["reader"] == reader) & (reads["session"] == session)]
        sens = part.loc[part["malignant"], "call"].mean() * 100
        spec = (~part.loc[~part["malignant"], "call"]).mean() * 100
        row = t4[(t4["reader"] == reader) & (t4["group"] == group)].iloc[0]
        assert row["Sens % (95% CI)"].startswith(f"{sens:.2f} (")
        assert row["Spec % (95% CI)"].startswith(f"{spec:.2f} (")
    avg = t4[(t4["reader"] == "Avg") & (t4["group"] == "without AI")].iloc[0]
    un = reads[reads["session"] == "unaided"]
    tp = int((un["malignant"] & un["call"]).sum())
    assert f"TP {tp} " in avg["counts"]
    assert avg["p against"] == "WAUVE"


def test_kappa_and_icc_tables(report_dir, study):
    kp = _table(report_dir, "kappa_pairs")
    reads = study.reads
    a = reads[(reads["reader"] == "R1") & (reads["session"] == "aided")].sort_values("case_id")
    b = reads[(reads["reader"] == "R2") & (reads["session"] == "aided")].sort_values("case_id")
    expected = cohen_kappa_score(a["birads"], b["birads"])
    row = kp[(kp["session"] == "aided") & (kp["reader A"] == "R1") & (kp["reader B"] == "R2")]
    assert row.iloc[0]["kappa (95% CI)"].startswith(f"{expected:.3f} (")
    assert len(kp) == 12  # 6 pairs x 2 sessions
    icc_t = _table(report_dir, "icc")
    assert len(icc_t) == 12 and set(icc_t["form"]) == {
        "ICC(1,1)",
        "ICC(2,1)",
        "ICC(3,1)",
        "ICC(1,k)",
        "ICC(2,k)",
        "ICC(3,k)",
    }


def test_pngs_are_valid_images(report_dir):
    for png in (report_dir / "figures").glob("*.png"):
        with Image.open(png) as im:
            im.verify()
        with Image.open(png) as im:
            assert im.format == "PNG" and min(im.size) >= 300
            pixels = np.asarray(im.convert("L"), dtype=float)
        assert pixels.std() > 10, f"{png.name} looks blank"


def test_long_parquet_predictions_without_reads(study, tmp_path):
    truth = study.truth.assign(grp=np.where(study.truth["truth"] == "malignant", "x", "y"))
    truth.loc[truth.index[:3], "grp"] = "y"
    long = study.predictions.drop(columns="note").melt(
        id_vars="id", var_name="model", value_name="score"
    )
    preds = tmp_path / "preds.parquet"
    long.to_parquet(preds)
    truth_path = tmp_path / "truth.csv"
    truth.to_csv(truth_path, index=False)
    out = tmp_path / "out"
    code = main(
        [
            "eval",
            "report",
            str(preds),
            "--truth",
            str(truth_path),
            "--out",
            str(out),
            "--threshold",
            "0.5",
            "--bootstrap",
            "100",
            "--subgroup",
            "grp",
            "--subgroup",
            "age:60",
            "--note",
            "demo run on simulated data",
        ]
    )
    assert code == 0
    md = (out / "report.md").read_text()
    assert "demo run on simulated data" in md and "fixed threshold 0.5" in md
    assert not (out / "tables" / "table4_readers.csv").exists()
    sub = _table(out, "subgroups")
    assert set(sub["group"]) == {"x", "y", "age <= 60", "age > 60"}
    # group x holds only malignant cases: AUC is "n/a (reason)", never NaN
    x_row = sub[sub["group"] == "x"].iloc[0]
    assert (
        x_row["AUC (DeLong CI)"].startswith("n/a (")
        and "one truth class" in x_row["AUC (DeLong CI)"]
    )
    for path in out.rglob("*"):
        if path.suffix in (".md", ".html", ".csv"):
            assert not NAN_WORD.search(path.read_text()), path
    assert {p.stem for p in (out / "figures").glob("*.png")} == {"roc_models", "calibration"}


def test_subtype_head_tables(report_dir, study):
    from sklearn.metrics import confusion_matrix

    classes = ["IDC", "fibroadenoma", "inflammatory", "mucinous"]
    probs = study.predictions[[f"subtype:{c}" for c in classes]].to_numpy()
    labels = study.truth["subtype"].to_numpy()
    aucs = _table(report_dir, "subtype_auc").set_index("class")
    for j, c in enumerate(classes):
        expected = roc_auc_score(labels == c, probs[:, j])
        assert aucs.loc[c, "AUC (DeLong CI)"].startswith(f"{expected:.4f} (")
    cm = _table(report_dir, "subtype_confusion").set_index("truth \\ predicted")
    expected_cm = confusion_matrix(labels, np.array(classes)[probs.argmax(axis=1)], labels=classes)
    np.testing.assert_array_equal(cm.loc[classes, classes].astype(int).to_numpy(), expected_cm)


def test_report_options(study_files, tmp_path):
    out = tmp_path / "opts"
    code = main(
        ["eval", "report", str(study_files.predictions), "--truth", str(study_files.truth),
         "--reads", str(study_files.reads), "--out", str(out), "--bootstrap", "50",
         "--level", "0.9", "--kappa-weights", "quadratic", "--mrmc-covariance", "jackknife",
         "--mrmc-rating", "confidence", "--target-specificity", "0.8",
         "--reference-model", "TimeSformer"]
    )  # fmt: skip
    assert code == 0
    md = (out / "report.md").read_text()
    assert "90% confidence intervals" in md and "95% confidence" not in md
    ops = _table(out, "operating_points")
    assert "Sens % (90% CI)" in ops.columns
    first = ops.iloc[0]
    assert first["model"] == "TimeSformer" and "specificity >= 0.8000" in first["rule"]
    spec = float(first["Spec % (90% CI)"].split()[0])
    assert spec >= 80.0
    assert "p vs TimeSformer" in _table(out, "auc").columns
    assert "quadratic" in md and "jackknife covariance" in md and "Ratings: confidence" in md
    imrmc = (out / "imrmc_input.txt").read_text()
    assert "ratings: confidence" in imrmc


def test_calibration_bins():
    from sonorisk.eval.figures import calibration_bins

    y = np.r_[np.zeros(50, int), np.ones(50, int)]
    s = np.r_[np.linspace(0, 0.49, 50), np.linspace(0.5, 1, 50)]
    mean_score, observed, counts = calibration_bins(y, s, n_bins=4)
    assert counts.sum() == 100 and len(counts) == 4
    assert np.all(np.diff(mean_score) > 0)
    assert observed[0] == 0.0 and observed[-1] == 1.0


def test_degenerate_inputs_print_reasons(tmp_path):
    """Five cases, a constant model and a perfect one: every cell a number or n/a (reason)."""
    truth = tmp_path / "t.csv"
    preds = tmp_path / "p.csv"
    pd.DataFrame({"id": list("abcde"), "truth": [1, 1, 1, 0, 0]}).to_csv(truth, index=False)
    pd.DataFrame(
        {"id": list("abcde"), "const": [0.5] * 5, "perfect": [0.9, 0.8, 0.7, 0.1, 0.2]}
    ).to_csv(preds, index=False)
    out = tmp_path / "out"
    assert main(["eval", "report", str(preds), "--truth", str(truth), "--out", str(out),
                 "--bootstrap", "50"]) == 0  # fmt: skip
    ops = _table(out, "operating_points").set_index("model")
    const = ops.loc["const"]
    assert const["NPV % (95% CI)"] == "n/a (no negative calls)"
    low, high = re.findall(r"\((\S+), (\S+)\)", const["PPV % (95% CI)"])[0]
    assert float(low) < 60.0 < float(high)  # not a zero-width logit interval
    auc_t = _table(out, "auc").set_index("model")
    assert auc_t.loc["perfect", "p vs const"].startswith("n/a (")
    for path in out.rglob("*"):
        if path.suffix in (".md", ".html", ".csv"):
            assert not NAN_WORD.search(path.read_text()), path


def test_config_file_and_flag_precedence(study_files, tmp_path, capsys):
    cfg = tmp_path / "report.yaml"
    cfg.write_text("n_bootstrap: 40\nthreshold: 0.4\nsubgroups: [site, 'age:55']\n")
    out = tmp_path / "out"
    args = ["eval", "report", str(study_files.predictions), "--truth", str(study_files.truth),
            "--out", str(out), "--config", str(cfg)]  # fmt: skip
    assert main([*args, "--target-sensitivity", "0.9"]) == 0
    md = (out / "report.md").read_text()
    # the flag's rule replaced the file's threshold; the file's other keys stayed
    assert "sensitivity >= 0.9000" in md and "fixed threshold" not in md
    assert "40 resamples" in md and "age <= 55" in md
    cfg.write_text("n_bootstrap: 0\n")
    assert main(args) == 2
    assert "n_bootstrap: must be >= 1" in capsys.readouterr().err
    cfg.write_text("kappa: linear\n")
    assert main(args) == 2
    assert "unknown key(s) ['kappa']" in capsys.readouterr().err
