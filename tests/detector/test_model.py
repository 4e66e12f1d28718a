from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sonorisk.detector.model import build_model
from sonorisk.errors import ConfigError, InputError

from .conftest import tiny_model


@pytest.mark.parametrize(
    "architecture,backbone",
    [
        ("fasterrcnn", "resnet18"),
        ("fasterrcnn", "mobilenet_v3_small"),
        ("retinanet", "resnet18"),
        ("retinanet", "mobilenet_v3_small"),
        ("fasterrcnn", "efficientnet_lite0"),
        ("retinanet", "efficientnet_lite0"),
    ],
)
def test_models_build_train_and_infer(architecture: str, backbone: str):
    torch.manual_seed(0)
    model, source = build_model(tiny_model(architecture=architecture, backbone=backbone))
    assert source.kind == "random"
    model.train()
    images = [torch.rand(3, 90, 120), torch.rand(3, 100, 80)]
    targets = [
        {"boxes": torch.tensor([[10.0, 10.0, 60.0, 50.0]]), "labels": torch.tensor([1])},
        {"boxes": torch.zeros((0, 4)), "labels": torch.zeros(0, dtype=torch.int64)},
    ]
    losses = model(images, targets)
    assert losses and all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    model.eval()
    with torch.no_grad():
        out = model(images)
    assert len(out) == 2 and set(out[0]) >= {"boxes", "scores", "labels"}
    assert (out[0]["labels"] <= 1).all()  # one class: lesion


def test_default_config_is_the_papers_detector():
    from sonorisk.detector.config import ModelConfig

    cfg = ModelConfig()
    assert (cfg.architecture, cfg.backbone) == ("fasterrcnn", "resnet34")
    model, _ = build_model(ModelConfig(min_size=64, max_size=96))
    assert type(model).__name__ == "FasterRCNN"
    assert type(model.backbone.body.layer1[0]).__name__ == "BasicBlock"  # ResNet-18/34 block
    assert len(model.backbone.body.layer3) == 6  # ResNet-34: 3-4-6-3 blocks
    assert hasattr(model.backbone, "fpn")


def test_pretrained_backbone_from_file(tmp_path: Path):
    import torchvision

    reference = torchvision.models.resnet18(weights=None)
    with torch.no_grad():
        reference.conv1.weight.fill_(0.0123)
    path = tmp_path / "r18.pth"
    torch.save(reference.state_dict(), path)
    model, source = build_model(tiny_model(backbone="resnet18", pretrained=str(path)))
    assert source.kind == "file" and source.name == str(path) and len(source.sha256) == 64
    assert torch.allclose(
        model.backbone.body.conv1.weight, torch.full_like(model.backbone.body.conv1.weight, 0.0123)
    )
    # Pretrained weights: batch norm frozen (torchvision's default behaviour).
    assert type(model.backbone.body.bn1).__name__ == "FrozenBatchNorm2d"
    random_model, _ = build_model(tiny_model(backbone="resnet18"))
    assert type(random_model.backbone.body.bn1).__name__ == "BatchNorm2d"


def test_pretrained_file_errors(tmp_path: Path):
    with pytest.raises(InputError, match="not found"):
        build_model(tiny_model(backbone="resnet18", pretrained=str(tmp_path / "none.pth")))
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(InputError, match="junk.pth.*not a readable"):
        build_model(tiny_model(backbone="resnet18", pretrained=str(junk)))
    import torchvision

    wrong = tmp_path / "mnv3.pth"
    torch.save(torchvision.models.mobilenet_v3_small(weights=None).state_dict(), wrong)
    with pytest.raises(InputError, match="do not fit backbone resnet18"):
        build_model(tiny_model(backbone="resnet18", pretrained=str(wrong)))


def test_bad_sizes_are_config_errors():
    with pytest.raises(ConfigError, match="min_size"):
        build_model(tiny_model(min_size=8))
