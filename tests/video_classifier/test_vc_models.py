"""Every classifier: clips in, ClipScores with probabilities and heatmaps out; bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from vc_helpers import tiny_config

from sonorisk.errors import ConfigError, InputError
from sonorisk.records import Clip
from sonorisk.video_classifier.registry import build_classifier

SUBTYPES = ["idc", "fibroadenoma", "mucinous_carcinoma", "inflammatory_mass"]


def _clips(n: int = 2, size: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (n, 8, size, size, 3), dtype=np.uint8)


@pytest.mark.parametrize("kind", ["i3d", "lite3d", "timesformer", "static2d"])
@pytest.mark.parametrize("task", ["binary", "subtype"])
def test_scores_and_heatmaps(kind: str, task: str) -> None:
    if task == "binary":
        cfg = tiny_config(kind)
    else:
        cfg = tiny_config(kind, classes=SUBTYPES, malignant=["idc", "mucinous_carcinoma"])
    model = build_classifier(cfg)
    clips = _clips(3)
    records = [
        Clip(7, i, tuple(range(8 * i, 8 * i + 8)), ((0, 0, 1, 1),) * 8, clips[i]) for i in range(3)
    ]
    scores = model.predict(records)
    assert len(scores) == 3
    for i, s in enumerate(scores):
        assert (s.track_id, s.clip_index, s.frame_indices) == (7, i, records[i].frame_indices)
        assert set(s.class_probabilities) == set(cfg.model.classes)
        assert sum(s.class_probabilities.values()) == pytest.approx(1.0, abs=1e-5)
        mal = sum(s.class_probabilities[c] for c in cfg.model.malignant_classes)
        assert s.probability == pytest.approx(mal, abs=1e-5)
        assert s.heatmap is not None and s.heatmap.shape == (8, 32, 32)
        assert s.heatmap.dtype == np.float32
        assert s.heatmap.min() >= 0.0 and s.heatmap.max() <= 1.0
        assert s.heatmap.std() > 0  # a real map, not a constant
    # Batched and unbatched scoring agree; heatmaps can be skipped.
    single = model.predict(clips[:1], heatmaps=False)
    assert single[0].heatmap is None
    assert single[0].probability == pytest.approx(scores[0].probability, abs=1e-4)
    assert model.provenance["init"] == "random"


def test_gap_cam_decomposes_the_logit() -> None:
    # For a GAP head the CAM's mean is exactly the malignant logit margin (minus bias).
    model = build_classifier(tiny_config("i3d")).eval()
    x = model.to_input(_clips(2))
    logits, maps = model.evidence(x)
    w = model.malignancy_weights()
    margin = logits @ w - model.head.fc.bias @ w
    assert torch.allclose(maps.flatten(1).mean(1), margin, atol=1e-4)
    # Frames of the clip stay separate in the map (T/2 after I3D's temporal pool).
    assert maps.shape[1] == 4


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: np.zeros((0, 8, 32, 32, 3), np.uint8), "empty batch"),
        (lambda: [], "empty batch"),
        (lambda: np.zeros((2, 8, 32, 32, 3), np.float32), "dtype float32"),
        (lambda: np.zeros((2, 7, 32, 32, 3), np.uint8), "length 8"),
        (lambda: np.zeros((2, 8, 32, 32), np.uint8), "shape"),
        (lambda: np.zeros((2, 8, 64, 64, 3), np.uint8), "crop_size 32"),
        (lambda: ["not a clip"], "not Clip records"),
    ],
)
def test_bad_input_is_a_clear_error(make, match: str) -> None:
    model = build_classifier(tiny_config("i3d"))
    with pytest.raises(InputError, match=match) as info:
        model.predict(make(), source="video.avi")
    assert "video.avi" in str(info.value)


def test_bad_configs() -> None:
    cfg = tiny_config("timesformer", size=30)
    with pytest.raises(ConfigError, match="multiple of 8"):
        build_classifier(cfg)
    cfg = tiny_config("i3d")
    cfg.model.malignant_classes = ["cancer"]
    with pytest.raises(ConfigError, match="not in classes"):
        build_classifier(cfg)
    cfg = tiny_config("i3d")
    cfg.model.malignant_classes = ["benign", "malignant"]
    with pytest.raises(ConfigError, match="some but not all"):
        build_classifier(cfg)
    cfg = tiny_config("i3d")
    cfg.model.i3d.depth = 18
    with pytest.raises(ConfigError, match="50, 101 or 152"):
        build_classifier(cfg)


@pytest.mark.parametrize("backbone", ["resnet50", "densenet121", "mobilenet_v2", "googlenet"])
def test_seed000_backbones(backbone: str) -> None:
    cfg = tiny_config("static2d")
    cfg.model.static2d.backbone = backbone  # type: ignore[assignment]
    model = build_classifier(cfg)
    s = model.predict(_clips(1))[0]
    assert s.heatmap.shape == (8, 32, 32) and 0 <= s.probability <= 1


def test_shipped_configs_load_and_validate() -> None:
    from pathlib import Path

    from sonorisk.config import load_config
    from sonorisk.video_classifier.config import ClassifierConfig

    configs = Path(__file__).parents[2] / "configs"
    files = sorted(configs.glob("classifier*.yaml")) + [configs / "release" / "classifier.yaml"]
    assert len(files) >= 6
    kinds = set()
    for path in files:
        cfg = load_config(ClassifierConfig, path)
        cfg.validate()
        kinds.add(cfg.model.kind)
    assert kinds == {"i3d", "lite3d", "timesformer", "static2d", "pca-svm"}
    with pytest.raises(ConfigError, match="unknown key"):
        load_config(ClassifierConfig, files[0], {"model.i3d.widht": 3})


def test_full_size_i3d_r50_shape() -> None:
    # The paper's model at full width (ResNet-50 channels) on a small clip.
    cfg = tiny_config("i3d", size=64)
    cfg.model.i3d.width = 64
    cfg.model.i3d.spatial_strides = [1, 2, 2, 2]
    model = build_classifier(cfg)
    n_params = sum(p.numel() for p in model.parameters())
    assert 27e6 < n_params < 29e6  # I3D-R50 is ~28M parameters
    s = model.predict(_clips(1, size=64))[0]
    assert s.heatmap.shape == (8, 64, 64)


def test_mixed_precision_only_on_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    import contextlib

    model = build_classifier(tiny_config("i3d"))
    assert isinstance(model.autocast(), contextlib.nullcontext)  # the CPU runs float32
    # On a CUDA device the scoring step runs under float16 autocast (no GPU here:
    # only which context is chosen is checked).
    monkeypatch.setattr(type(model), "device", property(lambda self: torch.device("cuda")))
    chosen = model.autocast()
    assert isinstance(chosen, torch.autocast) and chosen.fast_dtype == torch.float16
    monkeypatch.setattr(type(model), "amp", False)
    assert isinstance(model.autocast(), contextlib.nullcontext)
