"""Bundles: export, verify (a flipped byte or a missing file is named), the
resolver's precedence, and outputs that name the bundle."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import jsonschema
import pytest

from sonorisk.cli import main
from sonorisk.errors import InputError
from sonorisk.models import store
from sonorisk.models.bundle import (
    CARD,
    METADATA,
    BundleError,
    export_bundle,
    read_bundle,
    sha256_file,
    verify_bundle,
)
from sonorisk.models.resolve import resolve_model_file, resolve_models

from .conftest import NOTICE, bundle_info, copy_bundle  # noqa: TID252


def test_export_writes_weights_metadata_and_card(exported: Path, checkpoints):
    assert exported.name == "1.0.0" and exported.parent.name == "tiny"
    assert sorted(p.name for p in exported.iterdir()) == [
        CARD,
        "classifier.safetensors",
        "detector.safetensors",
        METADATA,
    ]
    meta = json.loads((exported / METADATA).read_text())
    for key in (
        "name",
        "version",
        "task",
        "intended_use",
        "limitations",
        "training_data",
        "training",
        "heldout_groups",
        "metrics",
        "input_format",
        "output_format",
        "package_versions",
        "files",
        "notice",
        "models",
    ):
        assert meta.get(key), key
    assert meta["training_data"]["licence"] == "CC0 1.0"
    assert meta["package_versions"]["torch"] and meta["package_versions"]["safetensors"]
    assert meta["metrics"]["detector_ap50"] == {
        "value": 0.8123,
        "ci_low": 0.75,
        "ci_high": 0.86,
        "n": 120,
        "method": "bootstrap over images",
        "note": "plain, no TTA",
    }
    # Every file but metadata.json itself is listed with its hash, the card included.
    assert set(meta["files"]) == {CARD, "classifier.safetensors", "detector.safetensors"}
    for name, entry in meta["files"].items():
        assert entry == {
            "sha256": sha256_file(exported / name),
            "bytes": (exported / name).stat().st_size,
        }
    assert meta["models"]["detector"]["backbone"] == "mobilenet_v3_small"
    assert meta["models"]["classifier"]["kind"] == "i3d"
    assert meta["weights"]["stored_dtype"] == "float16"
    card = (exported / CARD).read_text()
    for text in (
        NOTICE,
        "## Intended use",
        "## Limitations",
        "## Training data",
        "CC0 1.0",
        "Data in Brief",
        "bash scripts/release.sh",
        "## Evaluation",
        "| detector_ap50 | 0.812 | 0.750–0.860 | 120 | bootstrap over images",
        "## Licence",
        meta["files"]["detector.safetensors"]["sha256"],
    ):
        assert text in card, text
    # The training optimizer state stayed behind; fp16 halves the weights.
    assert (
        exported / "detector.safetensors"
    ).stat().st_size < 0.6 * checkpoints.detector.stat().st_size
    report = verify_bundle(exported)
    assert report.ok and not report.extras
    assert read_bundle(exported).sha256 == sha256_file(exported / METADATA)


def test_export_refuses_incomplete_info_swapped_roles_and_overwriting(
    tmp_path: Path, checkpoints, exported
):
    info = bundle_info()
    del info["notice"]
    with pytest.raises(BundleError, match="notice"):
        export_bundle(checkpoints.detector, checkpoints.classifier, tmp_path, "x", "1", info)
    with pytest.raises(BundleError, match="licence"):
        export_bundle(
            checkpoints.detector,
            checkpoints.classifier,
            tmp_path,
            "x",
            "1",
            bundle_info(training_data={"description": "d", "citation": "c"}),
        )
    with pytest.raises(BundleError, match="unknown fields"):
        export_bundle(
            checkpoints.detector,
            checkpoints.classifier,
            tmp_path,
            "x",
            "1",
            bundle_info(metrics={"auc": {"value": 0.9, "ci": [0.8, 1]}}),
        )
    with pytest.raises(BundleError, match="bad bundle name"):
        export_bundle(
            checkpoints.detector, checkpoints.classifier, tmp_path, "../x", "1", bundle_info()
        )
    with pytest.raises(InputError, match="expected a detector"):
        export_bundle(
            checkpoints.classifier, checkpoints.detector, tmp_path, "x", "1", bundle_info()
        )
    assert not (tmp_path / "x" / "1").exists()
    with pytest.raises(BundleError, match="already exists"):
        export_bundle(
            checkpoints.detector,
            checkpoints.classifier,
            exported.parent.parent,
            "tiny",
            "1.0.0",
            bundle_info(),
        )
    extra = tmp_path / "groups.txt"
    extra.write_text("g1\ng2\n")
    again = export_bundle(
        checkpoints.detector,
        checkpoints.classifier,
        tmp_path,
        "x",
        "2",
        bundle_info(),
        dtype=None,
        extra_files={"heldout/groups.txt": extra},
    )
    assert (again / "heldout" / "groups.txt").read_text() == "g1\ng2\n"
    assert "heldout/groups.txt" in read_bundle(again).files and verify_bundle(again).ok


def test_a_flipped_byte_is_named_by_verify_and_refused_by_the_loader(
    exported: Path, tmp_path: Path, capsys
):
    bundle = copy_bundle(exported, tmp_path / "b")
    assert main(["models", "verify", str(bundle)]) == 0
    assert "ok: tiny 1.0.0" in capsys.readouterr().out
    weights = bundle / "classifier.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    report = verify_bundle(bundle)
    assert [p.file for p in report.problems] == ["classifier.safetensors"]
    with pytest.raises(BundleError, match=r"classifier\.safetensors: sha256 .* does not match"):
        report.raise_for_problems()
    assert main(["models", "verify", str(bundle)]) == 1
    err = capsys.readouterr().err
    assert f"{weights}: sha256" in err and "FAILED" in err
    with pytest.raises(InputError, match=r"classifier\.safetensors.*refusing to load"):
        resolve_models(str(bundle))


def test_a_missing_file_is_named_and_extra_files_are_reported(
    exported: Path, tmp_path: Path, capsys
):
    bundle = copy_bundle(exported, tmp_path / "b")
    (bundle / CARD).unlink()
    (bundle / "notes.txt").write_text("not part of the bundle")
    report = verify_bundle(bundle)
    assert [(p.file, p.reason.split(":")[0]) for p in report.problems] == [(CARD, "missing")]
    assert report.extras == ["notes.txt"]
    assert main(["models", "verify", str(bundle)]) == 1
    captured = capsys.readouterr()
    assert f"{bundle / CARD}: missing" in captured.err
    assert "notes.txt is not listed" in captured.out
    # The model files are intact: the bundle still loads (only they are checked at load).
    assert resolve_models(str(bundle)).bundle.name == "tiny"
    (bundle / "detector.safetensors").unlink()
    with pytest.raises(InputError, match=r"detector\.safetensors.*missing"):
        resolve_models(str(bundle))


def test_bad_metadata_is_named(exported: Path, tmp_path: Path):
    bundle = copy_bundle(exported, tmp_path / "b")
    meta = json.loads((bundle / METADATA).read_text())
    meta["files"]["../../etc/passwd"] = {"sha256": "0" * 64, "bytes": 1}
    (bundle / METADATA).write_text(json.dumps(meta))
    with pytest.raises(BundleError, match=r"metadata\.json.*not a relative path"):
        verify_bundle(bundle)
    (bundle / METADATA).write_text("{broken")
    with pytest.raises(BundleError, match=r"metadata\.json: not valid JSON"):
        read_bundle(bundle)


def test_resolver_precedence(
    exported: Path, checkpoints, tmp_path: Path, isolated_model_dirs: Path, monkeypatch
):
    bundled = store.bundled_dir()
    user = isolated_model_dirs
    # Nothing anywhere: the error says how to get models.
    with pytest.raises(InputError, match=r"sonorisk models install.*sonorisk demo"):
        resolve_models()
    beta = copy_bundle(exported, bundled, "beta", "1.0.0")
    alpha = copy_bundle(exported, user, "alpha", "1.0.0")
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    shutil.copy(checkpoints.detector, legacy / "detector.pt")
    shutil.copy(checkpoints.classifier, legacy / "classifier.pt")

    # default: the only bundled name
    default = resolve_models()
    assert (default.bundle.name, default.where) == ("beta", "bundled")
    assert default.detector == (beta / "detector.safetensors").resolve()
    # a name: installed and bundled are both searched; the highest version wins
    assert resolve_models("alpha").where == "installed"
    copy_bundle(exported, bundled, "alpha", "1.1.0")
    assert (resolve_models("alpha").bundle.version, resolve_models("alpha").where) == (
        "1.1.0",
        "bundled",
    )
    assert resolve_models("alpha@1.0.0").bundle.path == alpha
    with pytest.raises(InputError, match="no such model bundle.*alpha@1.0.0"):
        resolve_models("alpha@9")
    # default.txt and then the environment choose among several names
    (bundled / store.DEFAULT_FILE).write_text("alpha@1.0.0\n")
    assert resolve_models().bundle.path == alpha
    monkeypatch.setenv(store.ENV_DEFAULT, "beta")
    assert resolve_models().bundle.name == "beta"
    # a folder beats names; a folder of versions gives its highest
    folder = resolve_models(str(alpha))
    assert (folder.bundle.name, folder.where) == ("alpha", "installed")
    outside = copy_bundle(exported, tmp_path / "elsewhere")
    assert resolve_models(str(outside)).where == "folder"
    assert resolve_models(str(bundled / "alpha")).bundle.version == "1.1.0"
    # a legacy folder (sonorisk demo's) still works, as files
    old = resolve_models(str(legacy))
    assert (old.where, old.bundle, old.detector.name) == ("files", None, "detector.pt")
    # explicit files beat everything; one file replaces that role only
    files = resolve_models("alpha", checkpoints.detector, checkpoints.classifier)
    assert (files.where, files.bundle, files.detector) == (
        "files",
        None,
        checkpoints.detector.resolve(),
    )
    mixed = resolve_models(str(alpha), None, checkpoints.classifier)
    assert mixed.detector == (alpha / "detector.safetensors").resolve()
    assert mixed.classifier == checkpoints.classifier.resolve() and mixed.bundle is None
    assert mixed.sha256["classifier"] == sha256_file(checkpoints.classifier)
    # what eval --checkpoint takes
    assert (
        resolve_model_file("alpha@1.0.0", "classifier")
        == (alpha / "classifier.safetensors").resolve()
    )
    assert resolve_model_file(checkpoints.detector, "detector") == checkpoints.detector
    with pytest.raises(InputError, match="is a file"):
        resolve_models(str(checkpoints.detector))
    with pytest.raises(InputError, match="model folder not found"):
        resolve_models(str(tmp_path / "nowhere"))


def _phantom_video(tmp_path: Path) -> Path:
    from sonorisk.data.synth import synthesize_phantom

    out = synthesize_phantom(
        1, tmp_path / "phantom", seed=3, frames=24, size=(128, 96), proportions={"malignant": 1}
    )
    return next((out / "videos").glob("*.avi"))


def test_score_names_the_bundle_its_version_and_sha256(exported: Path, tmp_path: Path, capsys):
    from sonorisk.pipeline.report import load_schema

    video = _phantom_video(tmp_path)
    bundle = copy_bundle(exported, tmp_path / "b")
    out = tmp_path / "out"
    assert (
        main(
            [
                "score",
                str(video),
                "--models",
                str(bundle),
                "--out",
                str(out),
                "--no-progress",
                "--detector-min-size",
                "96",
            ]
        )
        == 0
    )
    assert NOTICE in capsys.readouterr().out
    document = json.loads((out / f"{video.stem}.json").read_text())
    jsonschema.validate(document, load_schema())
    section = document["models"]["bundle"]
    assert (section["name"], section["version"], section["where"]) == ("tiny", "1.0.0", "folder")
    assert section["sha256"] == sha256_file(bundle / METADATA)
    assert section["files"]["detector"]["sha256"] == sha256_file(bundle / "detector.safetensors")
    assert NOTICE in document["notice"]
    assert document["models"]["detector"]["checkpoint"].endswith("detector.safetensors")


def test_score_without_flags_uses_the_default_bundle(exported: Path, tmp_path: Path):
    video = _phantom_video(tmp_path)
    copy_bundle(exported, store.bundled_dir())
    out = tmp_path / "out"
    assert (
        main(["score", str(video), "--out", str(out), "--no-progress", "--detector-min-size", "96"])
        == 0
    )
    section = json.loads((out / f"{video.stem}.json").read_text())["models"]["bundle"]
    assert (section["name"], section["version"], section["where"]) == ("tiny", "1.0.0", "bundled")


def test_batch_rows_name_the_bundle(exported: Path, tmp_path: Path, checkpoints):
    """The row a batch worker makes (score_one, run here in-process)."""
    from sonorisk.serving.batch import COLUMNS, BatchSettings, score_one

    video = _phantom_video(tmp_path)
    bundle = copy_bundle(exported, tmp_path / "b")
    settings = BatchSettings(models=resolve_models(str(bundle)), detector_min_size=96)
    outcome = score_one(str(video), settings)
    row = outcome["row"]
    assert {"model_bundle", "model_version", "model_sha256"} <= set(COLUMNS)
    assert (row["model_bundle"], row["model_version"]) == ("tiny", "1.0.0")
    assert row["model_sha256"] == sha256_file(bundle / METADATA)
    assert outcome["document"]["models"]["bundle"]["sha256"] == row["model_sha256"]
    assert "test_time_augmentation" not in outcome["document"]["models"]["detector"]
    # `batch --detector-tta`: the workers' detector runs the mirrored view too, and
    # every document says so (a result must say how its boxes were found).
    flipped = score_one(str(video), replace(settings, detector_tta=True))
    assert "flip" in flipped["document"]["models"]["detector"]["test_time_augmentation"]
    assert flipped["row"]["status"] == row["status"]
    loose = BatchSettings(
        models=resolve_models(None, checkpoints.detector, checkpoints.classifier),
        detector_min_size=96,
    )
    row = score_one(str(video), loose)["row"]
    assert row["model_bundle"] is None and row["status"] != "failed"


def test_serve_resolves_the_default_bundle_when_nothing_is_configured(exported: Path):
    from sonorisk.errors import ConfigError
    from sonorisk.serving.config import ServeConfig
    from sonorisk.serving.server import resolve_paths

    with pytest.raises(ConfigError, match=r"models\.bundle.*sonorisk models install"):
        resolve_paths(ServeConfig())
    bundle = copy_bundle(exported, store.bundled_dir())
    config = resolve_paths(ServeConfig())
    assert config.models.bundle == str(bundle.resolve())
    assert config.models.detector is None and config.models.classifier is None


def test_batch_csv_names_the_bundle_and_rescores_for_another(
    exported: Path, tmp_path: Path, capsys
):
    """`sonorisk batch` end to end (one worker process): every row names the bundle;
    a rerun with the same bundle skips, with another bundle scores again; a CSV of
    an older sonorisk (fewer columns) is upgraded, not misaligned."""
    import csv

    from sonorisk.serving.batch import COLUMNS

    video = _phantom_video(tmp_path)
    one = copy_bundle(exported, tmp_path / "b", "tiny", "1.0.0")
    two = copy_bundle(exported, tmp_path / "b", "tiny", "2.0.0")  # other metadata, other sha
    out = tmp_path / "results.csv"
    old_columns = COLUMNS[: COLUMNS.index("model_bundle")]
    with out.open("w", newline="") as fh:  # a results table of an older sonorisk
        writer = csv.DictWriter(fh, fieldnames=old_columns)
        writer.writeheader()
        writer.writerow({"video": "old.avi", "path": "/nowhere/old.avi", "status": "failed"})
    args = [
        "batch",
        str(video),
        "--out",
        str(out),
        "--workers",
        "1",
        "--no-progress",
        "--models",
        str(one),
    ]
    assert main(args) == 0
    rows = {r["path"]: r for r in csv.DictReader(out.open())}
    row = rows[str(video.resolve())]
    assert (row["model_bundle"], row["model_version"]) == ("tiny", "1.0.0")
    assert row["model_sha256"] == sha256_file(one / METADATA)
    assert rows["/nowhere/old.avi"]["status"] == "failed"  # kept, in its columns
    capsys.readouterr()
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[0])["skipped"] == 1
    assert main(args[:-1] + [str(two)]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[0])["skipped"] == 0
    rows = {r["path"]: r for r in csv.DictReader(out.open())}
    assert rows[str(video.resolve())]["model_version"] == "2.0.0"


def test_eval_takes_a_bundle_folder_or_name(
    exported: Path, tmp_path: Path, busi_dir: Path, isolated_model_dirs: Path
):
    import pandas as pd

    from sonorisk.data.splits import read_id_lines
    from sonorisk.data.synth import synthesize_phantom

    repo = Path(__file__).resolve().parents[2]
    groups = tmp_path / "groups.txt"
    groups.write_text("\n".join(read_id_lines(repo / "configs/release/heldout_groups.txt")[:2]))
    bundle = copy_bundle(exported, tmp_path / "b")
    result = tmp_path / "det.json"
    assert (
        main(
            [
                "eval",
                "detector",
                "--data",
                str(busi_dir),
                "--checkpoint",
                str(bundle),
                "--groups",
                str(groups),
                "--no-progress",
                "--json",
                str(result),
            ]
        )
        == 0
    )
    assert json.loads(result.read_text())["checkpoint"] == str(
        (bundle / "detector.safetensors").resolve()
    )

    copy_bundle(exported, isolated_model_dirs)  # installed as tiny 1.0.0
    data = synthesize_phantom(
        2,
        tmp_path / "ds",
        seed=5,
        frames=24,
        size=(96, 64),
        proportions={"benign": 1, "malignant": 1},
    )
    table = tmp_path / "scores.csv"
    assert (
        main(
            [
                "eval",
                "classifier",
                "--data",
                str(data),
                "--checkpoint",
                "tiny@1.0.0",
                "--out",
                str(table),
            ]
        )
        == 0
    )
    assert len(pd.read_csv(table)) == 2
