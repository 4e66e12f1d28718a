"""ONNX Runtime clip classifier against torch: probabilities, lesion check, heatmaps,
dynamic batch, the export cache, and the errors a user can meet."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from sonorisk.errors import ConfigError
from sonorisk.models.load import classifier_card, load_classifier_file
from sonorisk.runtime.sessions import MissingRuntimeError, OrtOptions

from .rt_helpers import PROB_TOL, save_tiny_classifier


def _clips(n: int, size: int = 32, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 8, size, size, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("classifiers")
    return {
        "i3d": save_tiny_classifier(out / "i3d.pt", "i3d", lesion_check=False),
        "lite3d": save_tiny_classifier(out / "lite3d.pt", "lite3d", lesion_check=True),
        "static2d": save_tiny_classifier(out / "static2d.pt", "static2d", lesion_check=False),
    }


@pytest.mark.parametrize("kind", ["i3d", "lite3d", "static2d"])
@pytest.mark.parametrize("n_clips", [1, 5])
def test_scores_agree_with_torch(checkpoints, ort_options, kind, n_clips) -> None:
    torch_model = load_classifier_file(checkpoints[kind])
    onnx_model = load_classifier_file(checkpoints[kind], runtime="onnx", ort=ort_options)
    clips = _clips(n_clips)
    # batch_size 2: the graph's batch axis is dynamic (2, 2, 1 for five clips).
    want = torch_model.predict(clips, heatmaps=True, batch_size=2)
    got = onnx_model.predict(clips, heatmaps=True, batch_size=2)
    assert len(got) == len(want) == n_clips
    for g, w in zip(got, want, strict=True):
        assert abs(g.probability - w.probability) <= PROB_TOL
        for name, p in w.class_probabilities.items():
            assert abs(g.class_probabilities[name] - p) <= PROB_TOL
        if kind == "lite3d":  # the model with a lesion check
            assert w.lesion_probability is not None
            assert abs(g.lesion_probability - w.lesion_probability) <= PROB_TOL
        else:
            assert g.lesion_probability is None and w.lesion_probability is None
        assert g.heatmap.shape == w.heatmap.shape == (8, 32, 32)
        assert float(np.abs(g.heatmap - w.heatmap).max()) <= PROB_TOL
    # Without heatmaps the same probabilities, and no heatmap.
    plain = onnx_model.predict(clips, heatmaps=False)
    assert all(p.heatmap is None for p in plain)
    assert (
        max(abs(p.probability - w.probability) for p, w in zip(plain, want, strict=True))
        <= PROB_TOL
    )


def test_card_names_the_model_and_the_runtime(checkpoints, ort_options) -> None:
    torch_card = classifier_card(load_classifier_file(checkpoints["lite3d"]))
    onnx_card = classifier_card(
        load_classifier_file(checkpoints["lite3d"], runtime="onnx", ort=ort_options)
    )
    assert "runtime" not in torch_card
    runtime = onnx_card.pop("runtime")
    assert runtime["name"] == "onnxruntime" and runtime["threads"] == 1
    assert onnx_card == torch_card  # kind, classes, provenance, training data: the model's


def test_second_load_reuses_the_export_and_builds_no_torch_model(
    tmp_path, checkpoints, monkeypatch
) -> None:
    from sonorisk.runtime import onnx_export
    from sonorisk.video_classifier import registry

    options = OrtOptions(threads=1, cache_dir=tmp_path / "cache")
    load_classifier_file(checkpoints["i3d"], runtime="onnx", ort=options)
    (graph,) = (tmp_path / "cache").glob("classifier-*.onnx")
    stamp = graph.stat().st_mtime_ns

    def fail(*args, **kwargs):
        raise AssertionError("exported or built again although the graph is cached")

    monkeypatch.setattr(onnx_export, "export", fail)
    monkeypatch.setattr(registry, "load_classifier", fail)
    again = load_classifier_file(checkpoints["i3d"], runtime="onnx", ort=options)
    assert again.predict(_clips(1), heatmaps=False)[0].probability >= 0.0
    assert graph.stat().st_mtime_ns == stamp
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [graph.name]  # no temp files


def test_a_changed_model_file_exports_again(tmp_path, checkpoints) -> None:
    options = OrtOptions(threads=1, cache_dir=tmp_path / "cache")
    load_classifier_file(checkpoints["i3d"], runtime="onnx", ort=options)
    other = save_tiny_classifier(tmp_path / "other.pt", "i3d", lesion_check=False, seed=5)
    load_classifier_file(other, runtime="onnx", ort=options)
    assert len(list((tmp_path / "cache").glob("classifier-*.onnx"))) == 2


def test_missing_onnxruntime_names_the_extra(checkpoints, tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    with pytest.raises(MissingRuntimeError, match=r"sonorisk\[onnx\]"):
        load_classifier_file(
            checkpoints["i3d"], runtime="onnx", ort=OrtOptions(cache_dir=tmp_path / "cache")
        )


def test_classifiers_without_a_gap_head_are_refused(tmp_path, ort_options) -> None:
    path = save_tiny_classifier(tmp_path / "svm.pt", "pca-svm", lesion_check=False)
    with pytest.raises(ConfigError, match="GAP classifiers"):
        load_classifier_file(path, runtime="onnx", ort=ort_options)


def test_unknown_runtime_and_gpu_are_clear_errors(checkpoints) -> None:
    with pytest.raises(ConfigError, match="unknown runtime 'tensorrt'"):
        load_classifier_file(checkpoints["i3d"], runtime="tensorrt")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="CPU only"):
        load_classifier_file(checkpoints["i3d"], device="cuda", runtime="onnx")


def test_the_cache_never_goes_into_the_package(checkpoints) -> None:
    from sonorisk.models.store import bundled_dir

    with pytest.raises(ConfigError, match="never into the package"):
        load_classifier_file(
            checkpoints["i3d"], runtime="onnx", ort=OrtOptions(cache_dir=bundled_dir() / "onnx")
        )
