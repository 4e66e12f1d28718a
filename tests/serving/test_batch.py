"""``sonorisk batch``: CSV + Parquet + JSON per video, resumable, failures recorded."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import jsonschema
import pandas as pd
import pytest

from sonorisk.cli import main
from sonorisk.pipeline.report import load_schema


@pytest.fixture
def archive(tmp_path: Path, sweeps) -> Path:
    folder = tmp_path / "archive"
    (folder / "day2").mkdir(parents=True)
    shutil.copy(sweeps["malignant"], folder / "a.avi")
    shutil.copy(sweeps["normal"], folder / "day2" / "a.avi")  # same name, other folder
    (folder / "notes.avi").write_text("not a video")
    data = sweeps["benign"].read_bytes()
    (folder / "cut.avi").write_bytes(data[: len(data) * 2 // 3])
    (folder / "readme.txt").write_text("ignored: not a video extension")
    return folder


def _rows(path: Path) -> dict[str, dict[str, str]]:
    return {r["path"]: r for r in csv.DictReader(path.open())}


def test_batch_scores_records_failures_and_resumes(
    archive: Path, tmp_path: Path, serving_models, capsys
):
    out = tmp_path / "results.csv"
    args = [
        "batch",
        str(archive),
        "--models",
        str(serving_models.folder),
        "--out",
        str(out),
        "--workers",
        "2",
        "--no-progress",
    ]
    assert main(args) == 1  # one file failed: said in the exit status, the batch went on
    captured = capsys.readouterr()
    assert "notes.avi" in captured.err
    rows = _rows(out)
    assert len(rows) == 4
    by_name = {Path(p).relative_to(archive).as_posix(): r for p, r in rows.items()}
    assert by_name["notes.avi"]["status"] == "failed"
    assert "not a video" in by_name["notes.avi"]["error"] or by_name["notes.avi"]["error"]
    assert by_name["a.avi"]["status"] == "scored" and 0 <= float(by_name["a.avi"]["risk"]) <= 1
    normal = by_name["day2/a.avi"]
    assert normal["status"] in ("scored", "no scorable lesion")
    if normal["status"] == "no scorable lesion":
        assert normal["risk"] == ""  # never a number without a lesion
    cut = by_name["cut.avi"]  # scored up to the cut, the damage recorded
    assert cut["status"] in ("scored", "no scorable lesion") and cut["error"]
    json_dir = tmp_path / "results.json"
    for name in ("a.json", "day2/a.json", "cut.json"):
        document = json.loads((json_dir / name).read_text())
        jsonschema.validate(document, load_schema())
    table = pd.read_parquet(out.with_suffix(".parquet"))
    assert len(table) == 4 and set(table["status"]) >= {"scored", "failed"}
    assert {"risk", "lesions", "clips", "error", "wall_s"} <= set(table.columns)

    # Rerun: finished files are skipped, the failed one is tried again.
    assert main(args) == 1
    summary = json.loads(capsys.readouterr().out.splitlines()[0])
    assert summary["skipped"] == 3 and summary["failed"] == 1
    # A changed file is scored again; the table keeps one row per video.
    os.utime(archive / "a.avi", None)
    (archive / "notes.avi").unlink()
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out.splitlines()[0])
    assert summary["skipped"] == 2 and summary["scored"] == 1
    assert len(pd.read_parquet(out.with_suffix(".parquet"))) == 4  # the old failed row stays


def test_batch_takes_a_glob_and_refuses_nothing_matching(
    tmp_path: Path, sweeps, serving_models, capsys
):
    out = tmp_path / "r.csv"
    pattern = str(sweeps["benign"].parent / "*benign.avi")
    assert (
        main(
            [
                "batch",
                pattern,
                "--models",
                str(serving_models.folder),
                "--out",
                str(out),
                "--workers",
                "1",
                "--no-progress",
            ]
        )
        == 0
    )
    assert len(_rows(out)) == 1
    assert (
        main(
            [
                "batch",
                str(tmp_path / "nothing*.avi"),
                "--models",
                str(serving_models.folder),
                "--out",
                str(out),
            ]
        )
        == 2
    )
    assert "no file matches" in capsys.readouterr().err


def test_batch_with_the_onnx_runtime_agrees_with_torch(
    tmp_path: Path, sweeps, serving_models, monkeypatch, capsys
):
    # Worker processes inherit the cache folder; graphs are exported once per model file.
    monkeypatch.setenv("SONORISK_ONNX_CACHE", str(tmp_path / "onnx-cache"))
    risks = {}
    for runtime in ("torch", "onnx"):
        out = tmp_path / f"{runtime}.csv"
        assert (
            main(
                [
                    "batch",
                    str(sweeps["malignant"]),
                    "--models",
                    str(serving_models.folder),
                    "--out",
                    str(out),
                    "--workers",
                    "1",
                    "--runtime",
                    runtime,
                    "--no-progress",
                ]
            )
            == 0
        )
        (row,) = _rows(out).values()
        assert row["status"] == "scored", row
        risks[runtime] = float(row["risk"])
        (written,) = (tmp_path / f"{runtime}.json").glob("*.json")
        document = json.loads(written.read_text())
        cards = document["models"]
        assert ("runtime" in cards["classifier"]) == (runtime == "onnx")
    assert any((tmp_path / "onnx-cache").iterdir())
    assert abs(risks["onnx"] - risks["torch"]) < 1e-4  # docs/runtime.md: the tolerance


def test_two_inputs_with_one_stem_get_two_results_and_reruns_keep_them_apart(
    tmp_path: Path, sweeps, serving_models, capsys
):
    folder = tmp_path / "archive"
    folder.mkdir()
    shutil.copy(sweeps["malignant"], folder / "good.avi")
    shutil.copy(sweeps["normal"], folder / "good.mkv")  # same stem, another container
    out = tmp_path / "r.csv"
    args = [
        "batch",
        str(folder),
        "--models",
        str(serving_models.folder),
        "--out",
        str(out),
        "--workers",
        "1",
        "--no-progress",
    ]
    assert main(args) == 0
    rows = _rows(out)
    names = {Path(p).name: r["json"] for p, r in rows.items()}
    assert names == {"good.avi": "good.avi.json", "good.mkv": "good.mkv.json"}
    for video, name in names.items():
        document = json.loads((tmp_path / "r.json" / name).read_text())
        assert Path(document["video"]["source"]).name == video  # each its own result
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-2])["skipped"] == 2


def test_a_row_naming_a_shared_result_is_scored_again(
    tmp_path: Path, sweeps, serving_models, capsys
):
    """A results table from before unique names (good.avi and good.mkv both on
    good.json): the rerun must not take that JSON for either input's result."""
    folder = tmp_path / "archive"
    folder.mkdir()
    shutil.copy(sweeps["benign"], folder / "good.avi")
    shutil.copy(sweeps["benign"], folder / "good.mkv")
    out = tmp_path / "r.csv"
    args = [
        "batch",
        str(folder),
        "--models",
        str(serving_models.folder),
        "--out",
        str(out),
        "--workers",
        "1",
        "--no-progress",
    ]
    assert main(args) == 0
    rows = list(_rows(out).values())
    (tmp_path / "r.json" / "good.json").write_text("{}")
    with out.open("w", newline="") as fh:  # the table as the old naming left it
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "json": "good.json"})
    capsys.readouterr()
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out.splitlines()[-2])
    assert summary["skipped"] == 0 and summary["scored"] + summary["no_lesion"] == 2


def test_a_formula_file_name_is_text_in_the_table_and_reruns_still_skip_it(
    tmp_path: Path, sweeps, serving_models, capsys
):
    folder = tmp_path / "archive"
    folder.mkdir()
    hostile = "=cmd|' -C calc'!A0.avi"
    shutil.copy(sweeps["benign"], folder / hostile)
    out = tmp_path / "r.csv"
    args = [
        "batch",
        str(folder),
        "--models",
        str(serving_models.folder),
        "--out",
        str(out),
        "--workers",
        "1",
        "--no-progress",
    ]
    assert main(args) == 0
    with out.open(newline="") as fh:
        (row,) = list(csv.DictReader(fh))
    assert row["video"] == "'" + hostile  # shown as text by a spreadsheet, never run
    assert not any(v.startswith(("=", "+", "@")) for v in row.values())
    table = pd.read_parquet(out.with_suffix(".parquet"))
    assert table["video"][0] == hostile  # the Parquet copy keeps the real name
    capsys.readouterr()
    assert main(args) == 0  # the escaped path is read back: finished, skipped
    assert json.loads(capsys.readouterr().out.splitlines()[-2])["skipped"] == 1


def test_a_fifo_or_dangling_link_with_a_video_name_gets_a_failed_row(
    tmp_path: Path, sweeps, serving_models, capsys
):
    folder = tmp_path / "archive"
    folder.mkdir()
    shutil.copy(sweeps["benign"], folder / "real.avi")
    os.mkfifo(folder / "pipe.avi")
    (folder / "gone.avi").symlink_to(tmp_path / "nowhere.avi")
    out = tmp_path / "r.csv"
    assert (
        main(
            [
                "batch",
                str(folder),
                "--models",
                str(serving_models.folder),
                "--out",
                str(out),
                "--workers",
                "1",
                "--no-progress",
            ]
        )
        == 1
    )
    rows = {Path(p).name: r for p, r in _rows(out).items()}
    # (Paths are resolved: the dangling link's row names where it points.)
    assert set(rows) == {"real.avi", "pipe.avi", "nowhere.avi"}
    assert rows["pipe.avi"]["status"] == "failed" and "FIFO" in rows["pipe.avi"]["error"]
    assert rows["nowhere.avi"]["status"] == "failed" and "dangling" in rows["nowhere.avi"]["error"]
    assert rows["real.avi"]["status"] != "failed"


def test_a_folder_of_stills_and_videos_is_scored_row_by_row_with_its_kind(
    tmp_path: Path, sweeps, stills, still_bundle, capsys
):
    folder = tmp_path / "archive"
    (folder / "day2").mkdir(parents=True)
    shutil.copy(stills["png"], folder / "lesion.png")
    shutil.copy(stills["jpeg"], folder / "lesion.jpg")  # same stem: distinct results
    shutil.copy(stills["png"], folder / "day2" / "scan_0001")  # no extension: its bytes
    shutil.copy(stills["corrupt"], folder / "corrupt.png")
    (folder / "renamed.png").write_text("a text file with an image's name")
    (folder / "notes.txt").write_text("not an image, not a video: not listed")
    shutil.copy(sweeps["malignant"], folder / "sweep.avi")
    out = tmp_path / "r.csv"
    args = [
        "batch",
        str(folder),
        "--models",
        str(still_bundle),
        "--out",
        str(out),
        "--workers",
        "2",
        "--no-progress",
    ]
    assert main(args) == 1  # two files failed: said in the exit status, the batch went on
    rows = {Path(p).relative_to(folder).as_posix(): r for p, r in _rows(out).items()}
    assert set(rows) == {
        "lesion.png",
        "lesion.jpg",
        "day2/scan_0001",
        "corrupt.png",
        "renamed.png",
        "sweep.avi",
    }
    assert {k: r["kind"] for k, r in rows.items()} == {
        "lesion.png": "still",
        "lesion.jpg": "still",
        "day2/scan_0001": "still",
        "corrupt.png": "still",
        "renamed.png": "still",
        "sweep.avi": "video",
    }
    for name in ("lesion.png", "lesion.jpg", "day2/scan_0001"):
        row = rows[name]
        # The phantom frame holds its lesion: found and scored by the still classifier.
        assert row["status"] == "scored" and 0 <= float(row["risk"]) <= 1, row
        assert row["frames"] == "1" and row["fps"] == "" and row["model_bundle"]
        document = json.loads((tmp_path / "r.json" / row["json"]).read_text())
        jsonschema.validate(document, load_schema())
        assert document["video"]["kind"] == "still"
    assert {rows[n]["json"] for n in ("lesion.png", "lesion.jpg")} == {
        "lesion.png.json",
        "lesion.jpg.json",
    }
    corrupt = rows["corrupt.png"]
    assert corrupt["status"] == "failed" and "PNG" in corrupt["error"], corrupt
    assert corrupt["error_type"] == "InputError" and corrupt["model_sha256"]
    renamed = rows["renamed.png"]
    assert renamed["status"] == "failed" and "not a still image" in renamed["error"]
    assert rows["sweep.avi"]["status"] == "scored" and rows["sweep.avi"]["fps"]
    table = pd.read_parquet(out.with_suffix(".parquet"))
    assert sorted(table["kind"]) == ["still"] * 5 + ["video"]
    # Rerun: the finished files are skipped, the two failed ones tried again.
    capsys.readouterr()
    assert main(args) == 1
    summary = json.loads(capsys.readouterr().out.splitlines()[0])
    assert summary["skipped"] == 4 and summary["failed"] == 2
