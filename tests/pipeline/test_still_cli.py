"""``sonorisk score IMAGE`` through the real entry point, with a real bundle.

The bundle is the released detector and clip classifier (sonorisk/bundled)
with a small still classifier of random weights: what is tested is that a
still travels the CLI, the bundle and the detector at its trained scale, not
the still classifier's numbers. The stills are the repository's held-out
BUSI examples (examples/busi), with their masks to check the boxes.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import jsonschema
import numpy as np
import pytest

from sonorisk.cli import main
from sonorisk.pipeline.report import RESEARCH_NOTICE, load_schema

ROOT = Path(__file__).resolve().parents[2]
# The released bundle (1.3.0 shipped the still classifier; 1.4.0 the same files
# with refitted lesion rules): the one folder of sonorisk-busi in the package.
[RELEASED] = [p.parent for p in (ROOT / "sonorisk/bundled/sonorisk-busi").glob("*/metadata.json")]
EXAMPLE = ROOT / "examples" / "busi" / "benign" / "benign_082.png"


@pytest.fixture(scope="module")
def still_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    from ..still_helpers import random_still_bundle  # noqa: TID252

    torch.set_num_threads(1)
    return random_still_bundle(
        RELEASED / "detector.safetensors",
        RELEASED / "classifier.safetensors",
        tmp_path_factory.mktemp("still-cli"),
        name="still-test",
    )


def _mask_box(mask_path: Path) -> tuple[int, int, int, int]:
    mask = cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE)
    ys, xs = np.nonzero(mask > 127)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _overlap(a: list[float], b: tuple[int, ...]) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return max(w, 0) * max(h, 0) / ((b[2] - b[0]) * (b[3] - b[1]))


def test_sonorisk_score_a_png_with_a_bundle(tmp_path, still_bundle, capsys):
    out = tmp_path / "out"
    code = main(
        [
            "score",
            str(EXAMPLE),
            "--models",
            str(still_bundle),
            "--out",
            str(out),
            "--overlay",
            "--heatmaps",
            "--no-progress",
        ]
    )
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "is a still image" not in printed.err
    doc = json.loads((out / "benign_082.json").read_text())
    jsonschema.validate(doc, load_schema())
    assert doc["video"]["kind"] == "still" and doc["video"]["still"]["format"] == "png"
    assert doc["models"]["bundle"]["name"] == "still-test"
    assert "still_classifier" in doc["models"]["bundle"]["files"]
    assert doc["models"]["still_classifier"]["demonstration"] is True
    assert (
        "The still classifier is a DEMONSTRATION model (untrained (tests)); its numbers "
        "mean nothing about real patients."
    ) in doc["notice"]
    assert RESEARCH_NOTICE in doc["notice"]
    assert "TEST bundle: not a clinical result" in doc["notice"]
    # The released detector finds the mass the mask outlines, in source pixels.
    assert doc["status"] == "scored" and doc["lesions"]
    best = doc["lesions"][0]
    assert (
        _overlap(best["boxes"][0]["box"], _mask_box(EXAMPLE.with_name("benign_082_mask.png"))) > 0.5
    )
    assert f"benign_082.png: risk {doc['risk']:.3f}" in printed.out
    assert (out / doc["outputs"]["overlay"]).is_file()
    assert (out / best["clips"][0]["heatmap"]).is_file()


def test_a_bundle_without_a_still_classifier_names_it(tmp_path, capsys):
    from sonorisk.models.bundle import export_bundle

    info = {
        "task": "tests",
        "intended_use": "tests only",
        "limitations": ["none"],
        "training_data": {
            "description": "BUSI (released models)",
            "licence": "CC0 1.0",
            "citation": "none",
        },
        "notice": "TEST bundle: not a clinical result",
    }
    plain = export_bundle(
        RELEASED / "detector.safetensors",
        RELEASED / "classifier.safetensors",
        tmp_path / "bundles",
        "video-only",
        "1.2.0",
        info,
        dtype=None,
    )
    code = main(
        ["score", str(EXAMPLE), "--models", str(plain), "--out", str(tmp_path), "--no-progress"]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert str(EXAMPLE) in err and "no still-image classifier" in err and "1.2.0" in err
    assert not (tmp_path / "benign_082.json").exists()


def test_one_bad_still_does_not_stop_the_others(tmp_path, still_bundle, capsys):
    bad = tmp_path / "cut.jpg"
    cv2.imwrite(str(bad), cv2.imread(str(EXAMPLE)))
    bad.write_bytes(bad.read_bytes()[:2000])
    normal = ROOT / "examples" / "busi" / "normal" / "normal_023.png"
    code = main(
        [
            "score",
            str(bad),
            str(normal),
            "--models",
            str(still_bundle),
            "--out",
            str(tmp_path / "out"),
            "--no-progress",
        ]
    )
    printed = capsys.readouterr()
    assert code == 1
    assert f"sonorisk: error: {bad}: truncated JPEG" in printed.err
    assert printed.out.startswith("normal_023.png: ")
    doc = json.loads((tmp_path / "out" / "normal_023.json").read_text())
    jsonschema.validate(doc, load_schema())
    assert doc["video"]["kind"] == "still" and not (tmp_path / "out" / "cut.json").exists()
