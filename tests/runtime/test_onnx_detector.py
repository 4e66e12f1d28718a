"""ONNX Runtime detector (backbone + FPN exported, the rest in torch) against torch:
feature maps of small random detectors at any input size, boxes of the bundled
sonorisk-busi detector, and a sweep scored end to end through ``sonorisk score``."""

from __future__ import annotations

import json
import math

import jsonschema
import pytest
import torch

from sonorisk.cli import main
from sonorisk.detector.efficientnet_lite import same_pad_total
from sonorisk.models.load import load_detector_file
from sonorisk.models.resolve import resolve_models
from sonorisk.models.store import bundled_dir
from sonorisk.pipeline.report import load_schema
from sonorisk.runtime.onnx_detector import OnnxBackbone
from sonorisk.runtime.onnx_export import ENV_CACHE
from sonorisk.tracking.postprocess import box_iou

from .rt_helpers import BOX_IOU_MIN, PROB_TOL, assert_same_detections, save_tiny_detector


def test_same_padding_is_tensorflows_rule() -> None:
    # Rewritten so an ONNX trace keeps it a function of the input size; same values.
    for size in range(1, 200):
        for kernel in (1, 2, 3, 5):
            for stride in (1, 2, 3):
                tf_rule = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
                assert same_pad_total(size, kernel, stride) == tf_rule


@pytest.mark.parametrize("backbone", ["efficientnet_lite0", "mobilenet_v3_small"])
def test_feature_maps_agree_at_any_input_size(tmp_path, ort_options, backbone) -> None:
    path = save_tiny_detector(tmp_path / "detector.pt", backbone)
    reference = load_detector_file(path).model.backbone
    exported = load_detector_file(path, runtime="onnx", ort=ort_options).model.backbone
    assert isinstance(exported, OnnxBackbone)
    assert exported.out_channels == reference.out_channels
    # Traced at 96x128; other sizes, odd ones and a batch of two must agree too.
    for shape in [(1, 3, 96, 128), (2, 3, 128, 96), (1, 3, 97, 141), (1, 3, 160, 224)]:
        images = torch.randn(shape, generator=torch.Generator().manual_seed(0))
        with torch.inference_mode():
            want = reference(images)
            got = exported(images)
        assert list(got) == list(want)  # the FPN's names and order
        for name in want:
            assert got[name].shape == want[name].shape, (shape, name)
            scale = float(want[name].abs().max())
            assert float((got[name] - want[name]).abs().max()) <= 1e-4 * max(1.0, scale)


# The copy inside the package (an installed bundle of the same name would win by name).
# (The one version that ships; the release tests check there is exactly one.)
BUNDLE = max((bundled_dir() / "sonorisk-busi").iterdir())


@pytest.fixture(scope="module")
def bundled_paths():
    resolved = resolve_models(BUNDLE)
    return resolved.detector, resolved.classifier


def test_bundled_detector_boxes_agree(bundled_paths, ort_options, sweep_frames) -> None:
    detector_file, _ = bundled_paths
    reference = load_detector_file(detector_file)
    exported = load_detector_file(detector_file, runtime="onnx", ort=ort_options)
    frames = sweep_frames[::2]  # 12 frames, in batches of 4 as the pipeline sends them
    want = [d for i in range(0, len(frames), 4) for d in reference.predict(frames[i : i + 4])]
    got = [d for i in range(0, len(frames), 4) for d in exported.predict(frames[i : i + 4])]
    # The lesion is found on most frames: the comparison is not vacuous.
    assert sum(1 for d in want if d) >= len(frames) // 2
    for g, w in zip(got, want, strict=True):
        assert_same_detections(g, w)
    assert exported.info["runtime"]["name"] == "onnxruntime"


def test_score_with_runtime_onnx_finds_the_same_lesions(
    tmp_path, sweep_video, ort_options, monkeypatch
) -> None:
    monkeypatch.setenv(ENV_CACHE, str(ort_options.cache_dir))  # the CLI's default cache
    documents = {}
    for runtime in ("torch", "onnx"):
        out = tmp_path / runtime
        assert (
            main(
                [
                    "score",
                    str(sweep_video),
                    "--models",
                    str(BUNDLE),
                    "--out",
                    str(out),
                    "--runtime",
                    runtime,
                    "--no-progress",
                ]
            )
            == 0
        )
        documents[runtime] = json.loads((out / f"{sweep_video.stem}.json").read_text())
    want, got = documents["torch"], documents["onnx"]
    jsonschema.validate(got, load_schema())
    assert got["models"]["detector"]["runtime"]["name"] == "onnxruntime"
    assert got["models"]["classifier"]["runtime"]["name"] == "onnxruntime"
    assert got["status"] == want["status"] == "scored"
    assert abs(got["risk"] - want["risk"]) <= PROB_TOL
    assert [lz["lesion_id"] for lz in got["lesions"]] == [lz["lesion_id"] for lz in want["lesions"]]
    for g, w in zip(got["lesions"], want["lesions"], strict=True):
        assert g["status"] == w["status"]
        assert [(b["frame"], b["source"]) for b in g["boxes"]] == [
            (b["frame"], b["source"]) for b in w["boxes"]
        ]
        for gb, wb in zip(g["boxes"], w["boxes"], strict=True):
            assert box_iou(tuple(gb["box"]), tuple(wb["box"])) >= BOX_IOU_MIN
        assert len(g["clips"]) == len(w["clips"])
        for gc, wc in zip(g["clips"], w["clips"], strict=True):
            assert gc["frame_indices"] == wc["frame_indices"]
            assert abs(gc["probability"] - wc["probability"]) <= PROB_TOL
        if w["risk"] is not None:
            assert abs(g["risk"] - w["risk"]) <= PROB_TOL
        if w["confidence"] is not None:
            assert abs(g["confidence"] - w["confidence"]) <= PROB_TOL


def test_the_bundle_folder_is_left_as_shipped() -> None:
    assert sorted(p.name for p in BUNDLE.iterdir()) == [
        "README.md",
        "classifier.safetensors",
        "detector.safetensors",
        "metadata.json",
        "still_classifier.safetensors",
    ]
