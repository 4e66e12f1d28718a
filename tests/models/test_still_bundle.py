"""A bundle may carry a still classifier (still_classifier.safetensors, since
sonorisk-busi 1.3.0): exported, hashed, verified, resolved and loaded into
ScoringModels.still with its card; one built on another detector is refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sonorisk.models.bundle import BundleError, export_bundle, read_bundle, verify_bundle
from sonorisk.models.load import ScoringModels, load_models, still_missing_reason
from sonorisk.models.resolve import resolve_model_file, resolve_models
from sonorisk.still_classifier import build_still_classifier
from sonorisk.still_classifier.config import CropConfig, ModelConfig, StillClassifierConfig

from .conftest import bundle_info  # noqa: TID252


def _still(tmp_path: Path, **model) -> Path:
    config = StillClassifierConfig(
        crop=CropConfig(size=48),
        model=ModelConfig(**{"backbone": "random", "trunk_blocks": 3, "head_channels": 8, **model}),
    )
    return build_still_classifier(config).save(
        tmp_path / "still.safetensors",
        dtype="float16",
        training_data={"description": "random (test)"},
    )


def test_a_bundle_with_a_still_classifier_loads_it(tmp_path: Path, checkpoints) -> None:
    import numpy as np

    folder = export_bundle(
        checkpoints.detector,
        checkpoints.classifier,
        tmp_path / "b",
        "tiny",
        "1.3.0",
        bundle_info(),
        still_classifier=_still(tmp_path),
    )
    assert verify_bundle(folder).ok
    bundle = read_bundle(folder)
    assert bundle.has_model("still_classifier")
    meta = json.loads((folder / "metadata.json").read_text())
    assert "still_classifier.safetensors" in meta["files"]
    assert meta["models"]["still_classifier"]["stored"] == "all"
    resolved = resolve_models(str(folder))
    assert resolved.still_classifier == (folder / "still_classifier.safetensors").resolve()
    assert "still_classifier" in resolved.section()["files"]
    assert resolve_model_file(str(folder), "still_classifier") == resolved.still_classifier
    models = load_models(resolved)
    assert models.still is not None
    assert models.cards["still_classifier"]["classes"] == ["benign", "malignant"]
    score = models.still.predict([np.zeros((30, 40, 3), np.uint8)])[0]
    assert 0.0 <= score.probability <= 1.0
    # A changed still classifier is refused before anything loads.
    changed = tmp_path / "changed"
    shutil.copytree(folder, changed)
    data = bytearray((changed / "still_classifier.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (changed / "still_classifier.safetensors").write_bytes(bytes(data))
    with pytest.raises(Exception, match="still_classifier.safetensors"):
        resolve_models(str(changed))


def test_a_bundle_without_one_says_so(exported: Path) -> None:
    resolved = resolve_models(str(exported))
    assert resolved.still_classifier is None
    assert "still_classifier" not in resolved.section()["files"]
    models = ScoringModels(object(), object(), {}, resolved)
    assert models.still is None
    assert "has no still-image classifier" in still_missing_reason(models)
    with pytest.raises(Exception, match="has no still-image classifier"):
        resolve_model_file(str(exported), "still_classifier")


def test_a_still_classifier_on_another_detector_is_refused(
    tmp_path: Path, checkpoints, lite0_detector: Path
) -> None:
    still = build_still_classifier(
        StillClassifierConfig(
            crop=CropConfig(size=48), model=ModelConfig(trunk_blocks=3, head_channels=8)
        ),
        detector=lite0_detector,
    )
    path = still.save(tmp_path / "s.safetensors")
    with pytest.raises(BundleError, match="not a still classifier for this bundle"):
        export_bundle(
            checkpoints.detector,
            checkpoints.classifier,
            tmp_path / "b",
            "tiny",
            "1.3.0",
            bundle_info(),
            still_classifier=path,
        )
    assert not (tmp_path / "b" / "tiny" / "1.3.0").exists()


def test_metadata_naming_an_unlisted_still_file_is_refused(tmp_path: Path, exported: Path) -> None:
    folder = tmp_path / "x"
    shutil.copytree(exported, folder)
    meta = json.loads((folder / "metadata.json").read_text())
    meta["models"]["still_classifier"] = {"file": "still_classifier.safetensors"}
    (folder / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="models.still_classifier.file"):
        read_bundle(folder)


SHIPPED = Path(__file__).parents[2] / "sonorisk" / "bundled"


@pytest.mark.skipif(not any(SHIPPED.glob("*/*/metadata.json")), reason="no bundle ships here")
def test_the_shipped_still_classifier_builds_on_the_shipped_detector() -> None:
    """The default release's still classifier stores only what it trained and names
    the bundle's own detector; its held-out figure and comparison are in the card."""
    from sonorisk.still_classifier import load_still_classifier

    folder = sorted(SHIPPED.glob("*/*/metadata.json"))[-1].parent
    bundle = read_bundle(folder)
    assert bundle.has_model("still_classifier")
    meta = bundle.metadata
    base = meta["models"]["still_classifier"]["base"]
    assert base["file"] == "detector.safetensors"
    assert base["sha256"] == bundle.files["detector.safetensors"].sha256
    assert bundle.files["still_classifier.safetensors"].bytes < 3_000_000
    figure = bundle.metrics["still_classifier_auc_gt_boxes"]
    assert 0.5 < figure["value"] <= 1 and figure["ci_low"] < figure["value"] < figure["ci_high"]
    assert meta["still_classifier"]["comparison"]
    assert "## Still classifier" in bundle.card.read_text()
    still = load_still_classifier(bundle.model_file("still_classifier"))
    assert still.info["subtypes"] is None  # BUSI has no subtypes: no subtype head ships
    assert "heldout" in json.dumps(still.info["training_data"])


def test_release_adds_a_still_classifier_and_keeps_the_base_figures(
    tmp_path: Path, checkpoints, exported: Path
) -> None:
    from sonorisk.models.release import main

    figures = {
        "summary": "a CAM head (test)",
        "chosen": "head",
        "comparison": [
            {
                "model": "CAM head (test)",
                "stored": "0.01 MB",
                "cv_auc": 0.7,
                "auc": 0.75,
                "ci_low": 0.6,
                "ci_high": 0.9,
                "n": 20,
                "n_malignant": 8,
                "shipped": "yes",
            }
        ],
        "metrics": {
            "still_classifier_auc_gt_boxes": {
                "value": 0.75,
                "ci_low": 0.6,
                "ci_high": 0.9,
                "n": 20,
                "method": "DeLong",
                "note": "test",
            }
        },
    }
    (tmp_path / "f.json").write_text(json.dumps(figures))
    held = Path(__file__).parents[2] / "configs/release/heldout_groups.txt"
    assert (
        main(
            [
                "--detector",
                str(checkpoints.detector),
                "--classifier",
                str(checkpoints.classifier),
                "--out",
                str(tmp_path / "b"),
                "--version",
                "9.9.9",
                "--heldout-groups",
                str(held),
                "--metrics-from",
                str(exported),
                "--still-classifier",
                str(_still(tmp_path)),
                "--still-figures",
                str(tmp_path / "f.json"),
            ]
        )
        == 0
    )
    bundle = read_bundle(tmp_path / "b" / "sonorisk-busi" / "9.9.9")
    assert set(bundle.metrics) == {"detector_ap50", "still_classifier_auc_gt_boxes"}
    assert bundle.metadata["still_classifier"]["comparison"] == figures["comparison"]
    assert "still_classifier" in bundle.metadata["training"]["configs"]
    card = bundle.card.read_text()
    assert "## Still classifier" in card and "| CAM head (test) | 0.01 MB | 0.700 | 0.750" in card
