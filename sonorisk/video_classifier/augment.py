"""Clip augmentation in plain torch (``pytorchvideo.transforms`` does not import
with current torchvision).

Works on float clips ``B x C x T x H x W`` in [0, 1]. One random draw per clip
and the same transform for all its frames, so augmentation never invents
motion the probe did not make. Seed 000's set: flip, rotation, scaling,
contrast/brightness, blur; resampling (a crop from a smaller video); and
calipers measuring the lesion (burned into the frames, so warped with them).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from sonorisk.data.calipers import draw_calipers
from sonorisk.video_classifier.config import AugmentConfig


def _gaussian_kernel(sigma: float, device: torch.device) -> torch.Tensor:
    radius = max(1, int(math.ceil(2 * sigma)))
    x = torch.arange(-radius, radius + 1, device=device, dtype=torch.float32)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def augment_clips(x: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """A randomly augmented copy of ``x`` (``B x C x T x H x W``, values in [0, 1])."""
    b, c, t, h, w = x.shape
    dev = x.device

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator).to(dev)

    out = x
    calipers = rand(b) < cfg.calipers_prob
    if calipers.any():
        out = x.clone()
        for i in torch.nonzero(calipers).flatten().tolist():
            out[i] = torch.maximum(out[i], caliper_layer(h, w, rand(5).tolist(), dev))
    out = out.reshape(b, c * t, h, w)
    # Rotation + zoom + flip as one affine warp per clip (zero padding = black,
    # like the ultrasound background).
    angle = (rand(b) * 2 - 1) * math.radians(cfg.rotate_deg)
    scale = cfg.scale_min + rand(b) * (1 - cfg.scale_min)  # <1: zoom in
    flip = (rand(b) < 0.5) if cfg.hflip else torch.zeros(b, dtype=torch.bool, device=dev)
    sx = scale * torch.where(flip, -1.0, 1.0)
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.zeros(b, 2, 3, device=dev)
    theta[:, 0, 0] = cos * sx
    theta[:, 0, 1] = -sin * scale
    theta[:, 1, 0] = sin * sx
    theta[:, 1, 1] = cos * scale
    grid = F.affine_grid(theta, [b, c * t, h, w], align_corners=False)
    out = F.grid_sample(out, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    out = out.reshape(b, c, t, h, w)
    # Brightness and contrast (per clip).
    gain = 1 + (rand(b) * 2 - 1) * cfg.brightness
    contrast = 1 + (rand(b) * 2 - 1) * cfg.contrast
    mean = out.mean(dim=(1, 2, 3, 4), keepdim=True)
    out = (out - mean) * contrast.view(b, 1, 1, 1, 1) + mean
    out = out * gain.view(b, 1, 1, 1, 1)
    # Gaussian blur on some clips (separable, sigma 0.5-1.5 px).
    blur = rand(b) < cfg.blur_prob
    for i in torch.nonzero(blur).flatten().tolist():
        sigma = 0.5 + float(rand(1)) * 1.0
        k = _gaussian_kernel(sigma, dev)
        pad = len(k) // 2
        frames = out[i].reshape(c * t, 1, h, w)
        frames = F.conv2d(F.pad(frames, (pad, pad, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
        frames = F.conv2d(F.pad(frames, (0, 0, pad, pad), mode="replicate"), k.view(1, 1, -1, 1))
        out[i] = frames.reshape(c, t, h, w)
    # Resampling on some clips: shrunk by area, enlarged back (what a crop cut
    # from a smaller video and resized to the model's size looks like).
    resample = rand(b) < cfg.resample_prob
    for i in torch.nonzero(resample).flatten().tolist():
        factor = cfg.resample_min + float(rand(1)) * (1.0 - cfg.resample_min)
        out[i] = resample_frames(out[i].reshape(c * t, h, w), factor).reshape(c, t, h, w)
    return out.clamp_(0.0, 1.0)


def caliper_layer(h: int, w: int, draw: list[float], device: torch.device) -> torch.Tensor:
    """An ``h x w`` layer of calipers (1 on the marks, 0.9 on the dotted lines,
    0 elsewhere) measuring a lesion about the crop's centre, as the pipeline
    crops it (the box's long side two thirds of the crop, sonorisk's margin
    0.25): sides 0.3-0.67 of the crop, centre moved up to 0.05, a dotted line on
    half of them. ``draw``: five uniform numbers in [0, 1)."""
    bw, bh = (0.3 + 0.37 * u for u in draw[:2])
    cx = 0.5 + 0.1 * (draw[2] - 0.5)
    cy = 0.5 + 0.1 * (draw[3] - 0.5)
    box = ((cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h)
    layer = draw_calipers(np.zeros((h, w), np.uint8), box, line=draw[4] < 0.5)
    return torch.from_numpy(layer).to(device, torch.float32).div_(255.0)


def resample_frames(frames: torch.Tensor, factor: float) -> torch.Tensor:
    """Float frames ``N x H x W`` shrunk to ``factor`` of their side (by area)
    and enlarged back (bilinear): what a crop cut from a video ``factor`` times
    smaller looks like once resized to the model's input (when the crop was cut
    from at least its own size of source pixels)."""
    n, h, w = frames.shape
    small = (max(1, round(h * factor)), max(1, round(w * factor)))
    out = F.interpolate(frames.unsqueeze(0), size=small, mode="area")
    return F.interpolate(out, size=(h, w), mode="bilinear", align_corners=False)[0]
