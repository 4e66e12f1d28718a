"""The README's main job, `sonorisk demo`: example sweeps scored with released models.

With the tiny test bundle (junk weights) the report's structure and honesty are
checked; with the bundle that ships in the package (when present), one example
still is scored by the real models."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import jsonschema
import pytest

import sonorisk
from sonorisk.cli import main
from sonorisk.models.bundle import read_bundle, verify_bundle
from sonorisk.pipeline.demo import default_examples
from sonorisk.pipeline.report import RESEARCH_NOTICE, load_schema

SHIPPED = Path(sonorisk.__file__).parent / "bundled"


def _examples(tmp_path: Path, ids: list[str]) -> Path:
    """A BUSI-layout folder with some of the repository's example stills."""
    src = default_examples()
    rows = [r for r in csv.DictReader((src / "manifest.csv").open()) if r["id"] in ids]
    out = tmp_path / "examples"
    for row in rows:
        (out / row["label"]).mkdir(parents=True, exist_ok=True)
        for f in (src / row["label"]).glob(f"{row['id']}*.png"):
            shutil.copy(f, out / row["label"] / f.name)
    with (out / "manifest.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return out


def test_examples_are_held_out_busi_stills() -> None:
    from sonorisk.data.splits import read_id_lines

    held = set(read_id_lines(Path(__file__).parents[2] / "configs/release/heldout_groups.txt"))
    rows = list(csv.DictReader((default_examples() / "manifest.csv").open()))
    assert len(rows) == 5 and {r["label"] for r in rows} == {"benign", "malignant", "normal"}
    assert all(r["group"] in held for r in rows)  # never trained on
    assert "CC0" in (default_examples().parent / "README.md").read_text()


def test_demo_reports_every_video_and_lesion_with_the_bundle(
    exported: Path, tmp_path: Path
) -> None:
    out = tmp_path / "demo"
    assert (
        main(
            [
                "demo",
                "--models",
                str(exported),
                "--out",
                str(out),
                "--frames",
                "24",
                "--threads",
                "1",
                "--no-progress",
            ]
        )
        == 0
    )
    bundle = read_bundle(exported)
    report = (out / "REPORT.md").read_text()
    assert f"{bundle.name} {bundle.version}" in report and bundle.sha256 in report
    assert RESEARCH_NOTICE in report and bundle.notice in report
    docs = [json.loads(p.read_text()) for p in sorted((out / "scores").glob("*.json"))]
    assert len(docs) == 5
    schema = load_schema()
    for doc in docs:
        jsonschema.validate(doc, schema)
        assert doc["models"]["bundle"]["name"] == bundle.name
        assert doc["models"]["bundle"]["sha256"] == bundle.sha256
        assert (out / "scores" / doc["outputs"]["overlay"]).is_file()
        # Every video has a row, every lesion a line; no risk without a clip.
        stem = Path(doc["video"]["source"]).stem
        assert f"| {stem} |" in report
        for lesion in doc["lesions"]:
            assert (lesion["risk"] is None) == (lesion["clips_used"] == 0)
        if doc["risk"] is None:
            assert doc["status"] == "no scorable lesion"
    assert "Held-out figures" in report and "detector_ap50" in report


def test_demo_without_examples_says_what_is_missing(
    tmp_path: Path, exported: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(
            [
                "demo",
                "--models",
                str(exported),
                "--examples",
                str(tmp_path),
                "--out",
                str(tmp_path / "o"),
                "--no-progress",
            ]
        )
        != 0
    )
    assert "no example stills" in capsys.readouterr().err


@pytest.mark.skipif(not any(SHIPPED.glob("*/*/metadata.json")), reason="no bundle ships here")
def test_the_shipped_bundle_verifies_and_scores_an_example(tmp_path: Path) -> None:
    (folder,) = sorted(SHIPPED.glob("*/*/metadata.json"))[-1:]
    folder = folder.parent
    assert verify_bundle(folder).ok
    bundle = read_bundle(folder)
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    assert size <= 30_000_000  # the limit for the default bundle in the repository
    assert {"detector_ap50_stills", "end_to_end_auc", "classifier_auc_gt_boxes"} <= set(
        bundle.metrics
    )
    out = tmp_path / "demo"
    examples = _examples(tmp_path, ["malignant_153"])
    assert (
        main(
            [
                "demo",
                "--models",
                str(folder),
                "--examples",
                str(examples),
                "--out",
                str(out),
                "--frames",
                "30",
                "--threads",
                "1",
                "--no-progress",
            ]
        )
        == 0
    )
    (doc_path,) = (out / "scores").glob("*.json")
    doc = json.loads(doc_path.read_text())
    assert doc["models"]["bundle"]["name"] == bundle.name
    assert bundle.notice in doc["notice"]
    assert not any("DEMONSTRATION" in line for line in doc["notice"])  # a real model, no toy
    # The real detector finds the lesion of this held-out still's sweep.
    assert doc["lesions"] and max(len(les["boxes"]) for les in doc["lesions"]) >= 15
