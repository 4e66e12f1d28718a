"""The verbs end to end (create, progress, migrate, export) and the export policies."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from sonorisk.cli import main
from sonorisk.reader_study.export import export_tables
from sonorisk.reader_study.schema import SCHEMA_VERSION
from sonorisk.reader_study.store import StudyStore, default_db_url

from .conftest import NOTICE, RISKS


def test_help_does_not_import_the_web_stack() -> None:
    code = (
        "import argparse, sys; import sonorisk.reader_study.cli as c; "
        "p = argparse.ArgumentParser(); c.register({'root': p.add_subparsers()}); "
        "print(sorted(m for m in ('fastapi', 'sqlalchemy', 'uvicorn', 'torch', 'jinja2') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
    helptext = subprocess.run(
        [sys.executable, "-m", "sonorisk.cli", "reader-study", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    for verb in ("create", "serve", "export", "progress", "migrate"):
        assert verb in helptext


def test_create_progress_migrate_through_the_cli(
    study_inputs: dict, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "study"
    cases = tmp_path / "cases.txt"
    ids = sorted(p.stem for p in (study_inputs["dataset"] / "videos").glob("*.avi"))[:3]
    cases.write_text("\n".join(ids) + "\n")
    assert (
        main(
            [
                "reader-study",
                "create",
                "--dataset",
                str(study_inputs["dataset"]),
                "--ai",
                str(study_inputs["ai"]),
                "--readers",
                str(study_inputs["readers"]),
                "--out",
                str(out),
                "--seed",
                "4",
                "--washout",
                "--washout-days",
                "0",
                "--cases",
                str(cases),
                "--title",
                "CLI study",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "3 cases, 2 readers" in printed and "links.txt" in printed
    store = StudyStore.open(default_db_url(out))
    try:
        assert store.meta()["title"] == "CLI study" and store.washout_s == 0.0
        assert sorted(c["case_id"] for c in store.cases()) == ids
        store.open_step("R2", 0)
        store.save_read("R2", 0, "4C", 80)
    finally:
        store.close()
    assert main(["reader-study", "progress", str(out)]) == 0
    table = capsys.readouterr().out
    assert "R1" in table and "   1/3" in table and "at step 2" in table
    assert main(["reader-study", "migrate", str(out)]) == 0
    assert f"schema version {SCHEMA_VERSION}" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--readers", "MISSING"], "MISSING: reader list not found"),
        (["--ai", "NOAI"], "NOAI: AI results folder not found"),
        (["--washout-days", "-1"], "washout_days: must be >= 0"),
    ],
)
def test_bad_create_inputs_exit_2_with_one_line(
    study_inputs: dict, tmp_path: Path, capsys: pytest.CaptureFixture, args: list[str], message: str
) -> None:
    base = {
        "--dataset": str(study_inputs["dataset"]),
        "--ai": str(study_inputs["ai"]),
        "--readers": str(study_inputs["readers"]),
        "--out": str(tmp_path / "s"),
    }
    extra = []
    for flag, value in zip(args[::2], args[1::2], strict=True):
        if flag in base:
            base[flag] = str(tmp_path / value)
        else:
            extra += [flag, value]
    argv = ["reader-study", "create", *[x for kv in base.items() for x in kv], *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("sonorisk: error:") and message in err and "\n" not in err


def test_serving_or_exporting_a_missing_study_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["reader-study", "export", str(tmp_path), "--out", str(tmp_path / "x")]) == 2
    assert "no study database here" in capsys.readouterr().err


def _finish(store: StudyStore) -> None:
    for rid in store.reader_ids():
        for st in store.steps(rid):
            store.open_step(rid, st.step)
            truth = store.case(st.case_id)["truth"]
            store.save_read(rid, st.step, "4B" if truth else "3", 70 if truth else 30)


def test_export_policies_for_cases_without_an_ai_risk(study: Path) -> None:
    store = StudyStore.open(default_db_url(study))
    try:
        partial = export_tables(store)
        assert partial.imrmc_text() is None and partial.unfinished
        _finish(store)
        excluded = export_tables(store)
        assert len(excluded.excluded) == 1 and excluded.unfinished == []
        assert len(excluded.truth) == len(RISKS) - 1
        assert len(excluded.reads) == 2 * 2 * (len(RISKS) - 1) and len(excluded.reads_all) == 20
        assert "left out of this analysis" in excluded.predictions["note"][0]
        assert NOTICE[1] in excluded.predictions["note"][0]
        negative = export_tables(store, "negative")
        assert negative.excluded == [] and len(negative.truth) == len(RISKS)
        no_risk = negative.predictions[
            negative.predictions["id"].isin(
                [c["case_id"] for c in store.cases() if c["ai_risk"] is None]
            )
        ]
        assert no_risk["AI"].tolist() == [0.0]
        assert "scored 0 (a negative call) by the export policy" in no_risk["note"].iloc[0]
        text = negative.imrmc_text()
        assert (
            text is not None and "NR: 2" in text and f"N1: {sum(negative.truth['truth'])}" in text
        )
        assert text.count(",unaided,") == text.count(",aided,") == 2 * len(RISKS)
    finally:
        store.close()
    out = study.parent / "export"
    assert (
        main(["reader-study", "export", str(study), "--out", str(out), "--no-score", "negative"])
        == 0
    )
    reads = pd.read_csv(out / "reads.csv")
    assert list(reads.columns[:6]) == [
        "reader",
        "case_id",
        "session",
        "birads",
        "confidence",
        "reading_time_s",
    ]
    assert set(reads["session"]) == {"unaided", "aided"} and len(reads) == 20
    assert (out / "imrmc_input.txt").is_file() and (out / "imrmc_confidence.txt").is_file()
    assert not (out / "excluded_cases.csv").exists()


def test_relink_revokes_the_old_link(study: Path, capsys: pytest.CaptureFixture) -> None:
    from fastapi.testclient import TestClient

    from sonorisk.reader_study.create import read_links
    from sonorisk.reader_study.web import create_app

    old = read_links(study / "links.txt")
    assert main(["reader-study", "relink", str(study), "R1"]) == 0
    new = read_links(study / "links.txt")
    assert new["R1"] != old["R1"] and new["R2"] == old["R2"]
    assert new["R1"] in capsys.readouterr().out
    store = StudyStore.open(default_db_url(study))
    try:
        client = TestClient(create_app(study, store=store), follow_redirects=False)
        assert client.get(old["R1"]).status_code == 404
        assert client.get(new["R1"]).headers["location"] == "/reader/R1"
    finally:
        store.close()
    assert main(["reader-study", "relink", str(study), "R9"]) == 2
    assert "no reader 'R9'" in capsys.readouterr().err
