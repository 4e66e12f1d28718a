"""The RPN head in the exported detector graph, and ``runtime: onnx-int8`` (the
detector's graph quantized to 8-bit integers, calibrated on phantom frames)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sonorisk.errors import ConfigError
from sonorisk.models.load import load_classifier_file, load_detector_file
from sonorisk.runtime import check_runtime
from sonorisk.runtime.onnx_detector import OnnxBackbone, OnnxRpnHead
from sonorisk.runtime.quantize import KEEP_FLOAT, int8_path, phantom_frames
from sonorisk.tracking.postprocess import box_iou

from .rt_helpers import save_tiny_detector
from .test_onnx_detector import BUNDLE

# What int8 may cost against float on the bundled detector (docs/runtime.md
# has the agreement measured on held-out BUSI sweeps): where float finds a
# lesion with a score of at least 0.5, int8 finds a box over it.
INT8_IOU_MIN = 0.5
INT8_MATCHED_SHARE = 0.9


def test_rpn_head_outputs_agree_with_torch(tmp_path, ort_options) -> None:
    path = save_tiny_detector(tmp_path / "detector.pt", "efficientnet_lite0")
    reference = load_detector_file(path).model
    exported = load_detector_file(path, runtime="onnx", ort=ort_options).model
    assert isinstance(exported.backbone, OnnxBackbone)
    assert isinstance(exported.rpn.head, OnnxRpnHead)
    for shape in [(1, 3, 96, 128), (2, 3, 97, 141)]:
        images = torch.randn(shape, generator=torch.Generator().manual_seed(1))
        with torch.inference_mode():
            maps = reference.backbone(images)
            want = reference.rpn.head(list(maps.values()))
            got = exported.rpn.head(list(exported.backbone(images).values()))
        for got_level, want_level in zip(got, want, strict=True):  # objectness, then deltas
            assert len(got_level) == len(want_level) == len(maps)
            for g, w in zip(got_level, want_level, strict=True):
                assert g.shape == w.shape
                assert float((g - w).abs().max()) <= 1e-4 * max(1.0, float(w.abs().max()))


def test_rpn_head_never_answers_without_the_backbone(tmp_path, ort_options) -> None:
    path = save_tiny_detector(tmp_path / "detector.pt", "efficientnet_lite0")
    model = load_detector_file(path, runtime="onnx", ort=ort_options).model
    images = torch.randn(1, 3, 96, 128)
    with torch.inference_mode():
        features = list(model.backbone(images).values())
        model.rpn.head(features)
        # Its outputs were used: a second call would be a stale answer.
        with pytest.raises(RuntimeError, match="right after the ONNX backbone"):
            model.rpn.head(features)


def test_calibration_frames_are_fixed_and_varied() -> None:
    first, again = phantom_frames(), phantom_frames()
    assert len(first) == len(again) >= 16
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert len({f.shape for f in first}) >= 4  # several frame shapes
    assert all(f.dtype == np.uint8 and f.std() > 5 for f in first)  # not blank


@pytest.fixture(scope="module")
def int8_detector(ort_options):
    from sonorisk.models.resolve import resolve_models

    return load_detector_file(resolve_models(BUNDLE).detector, runtime="onnx-int8", ort=ort_options)


def test_int8_graph_is_quantized_cached_and_says_so(int8_detector, ort_options) -> None:
    import onnx

    info = int8_detector.info["runtime"]
    assert "int8" in info["exported"] and info["graph"].endswith(".onnx")
    path = ort_options.cache_dir / info["graph"]
    assert path.is_file() and path == int8_path(
        path.with_name(path.name.split("-int8")[0] + ".onnx")
    )
    graph = onnx.load(str(path))
    ops = {n.op_type for n in graph.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    meta = {p.key: p.value for p in graph.metadata_props}
    assert "phantom frames" in meta["sonorisk.calibration"]
    # The RPN head's output convolutions stay in float: no weight of theirs is quantized.
    float_convs = [
        n for n in graph.graph.node if n.op_type == "Conv" and any(k in n.name for k in KEEP_FLOAT)
    ]
    assert float_convs
    for node in float_convs:
        producers = {o: n for n in graph.graph.node for o in n.output}
        weight = producers.get(node.input[1])
        assert weight is None or weight.op_type != "DequantizeLinear"
    # A second load finds the graph in the cache: same file, not rewritten.
    stamp = path.stat().st_mtime_ns
    from sonorisk.models.resolve import resolve_models

    load_detector_file(resolve_models(BUNDLE).detector, runtime="onnx-int8", ort=ort_options)
    assert path.stat().st_mtime_ns == stamp


def test_int8_boxes_stay_on_the_lesions_float_finds(
    int8_detector, ort_options, sweep_frames
) -> None:
    from sonorisk.models.resolve import resolve_models

    reference = load_detector_file(resolve_models(BUNDLE).detector, runtime="onnx", ort=ort_options)
    frames = sweep_frames[::2]
    want = [d for i in range(0, len(frames), 4) for d in reference.predict(frames[i : i + 4])]
    got = [d for i in range(0, len(frames), 4) for d in int8_detector.predict(frames[i : i + 4])]
    confident = [(w[0], g) for w, g in zip(want, got, strict=True) if w and w[0].score >= 0.5]
    assert len(confident) >= len(frames) // 2  # the comparison is not vacuous
    matched = sum(1 for w, g in confident if any(box_iou(w.box, d.box) >= INT8_IOU_MIN for d in g))
    assert matched >= INT8_MATCHED_SHARE * len(confident), (matched, len(confident))


def test_int8_keeps_the_classifier_in_float(tmp_path, ort_options) -> None:
    from .rt_helpers import save_tiny_classifier

    path = save_tiny_classifier(tmp_path / "c.pt", "lite3d", lesion_check=False)
    model = load_classifier_file(path, runtime="onnx-int8", ort=ort_options)
    assert "int8" not in model.runtime_info["graph"]


def test_int8_is_refused_on_a_gpu() -> None:
    with pytest.raises(ConfigError, match="onnx-int8 runs on the CPU only"):
        check_runtime("onnx-int8", "cuda")
