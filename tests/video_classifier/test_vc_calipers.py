"""Caliper augmentation of clips (train.augment.calipers_prob): calipers burned
into every frame alike, about the crop's centre, only where asked."""

from __future__ import annotations

import pytest
import torch

from sonorisk.config import load_config
from sonorisk.errors import ConfigError
from sonorisk.video_classifier.augment import augment_clips
from sonorisk.video_classifier.config import AugmentConfig, ClassifierConfig

ONLY = dict(hflip=False, rotate_deg=0.0, scale_min=1.0, brightness=0.0, contrast=0.0, blur_prob=0.0)


def clips(n: int = 6) -> torch.Tensor:
    frame = 0.2 + 0.3 * torch.rand(n, 3, 1, 56, 56, generator=torch.Generator().manual_seed(2))
    return frame.repeat(1, 1, 8, 1, 1)


def test_calipers_mark_every_frame_alike_near_the_centre() -> None:
    clip = clips()
    out = augment_clips(clip, AugmentConfig(**ONLY, calipers_prob=1.0), torch.Generator())
    assert out.shape == clip.shape and out.min() >= 0 and out.max() <= 1
    assert torch.allclose(out, out[:, :, :1].expand_as(out))  # burned in: no motion
    changed = (out - clip).abs().amax(dim=(1, 2)) > 0.05  # n x H x W
    for marks in changed:
        ys, xs = torch.nonzero(marks, as_tuple=True)
        assert len(ys) >= 4 * 7  # four "+" marks at least
        # a lesion's measure: inside the crop, around its centre, not at a border only
        assert 0.1 * 56 < float(xs.float().mean()) < 0.9 * 56
        assert 0.1 * 56 < float(ys.float().mean()) < 0.9 * 56
    # the marks are bright: where drawn the pixel is at least the dotted line's 0.9
    assert float(out.amax(dim=(1, 2, 3, 4)).min()) >= 0.9


def test_no_calipers_unless_asked() -> None:
    clip = clips()
    out = augment_clips(clip, AugmentConfig(**ONLY), torch.Generator().manual_seed(0))
    assert torch.allclose(out, clip, atol=1e-5)
    many = clips(40)
    cfg = AugmentConfig(**ONLY, calipers_prob=0.5)
    half = augment_clips(many, cfg, torch.Generator().manual_seed(0))
    marked = int(((half - many).abs().flatten(1).amax(dim=1) > 0.05).sum())
    assert 10 <= marked <= 30  # about half of 40 clips


def test_calipers_prob_is_validated() -> None:
    with pytest.raises(ConfigError, match="calipers_prob"):
        load_config(ClassifierConfig, overrides={"train.augment.calipers_prob": 1.2})
