"""Measurement calipers drawn as a scanner burns them into a frozen image.

Many BUSI stills carry the radiologist's calipers on the lesion: small "+"
marks at the two ends of each measured axis, often joined by a dotted line.
Cine filmed while scanning carries none (calipers are placed on a frozen
frame), so a model that reads calipers as lesion evidence scores clinical cine
differently from the stills it was measured on (docs/end-to-end.md,
"Calipers"). Drawing calipers lets training show them where no lesion is
(the detector's ``train.augment.calipers_p``) or on lesions of either class
(the clip classifier's ``train.augment.calipers_prob``), and lets a probe ask
whether a model reads them (scripts/caliper_probe.py).
"""

from __future__ import annotations

import numpy as np

from sonorisk.records import Box

MARK, LINE = 255, 230  # the "+" marks are white; the dotted line a little darker


def draw_calipers(
    image: np.ndarray, box: Box, *, line: bool = True, arm: int | None = None
) -> np.ndarray:
    """A copy of ``image`` (H x W or H x W x C, uint8) with calipers measuring
    ``box`` (x1, y1, x2, y2, pixels) on both axes: "+" marks at the middle of its
    left and right sides and of its top and bottom, with a dotted line between
    each pair when ``line``. ``arm``: half the width of a "+" in pixels (default
    1.2% of the image's width, at least 3). Marks off the image are clipped."""
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError(f"expected an H x W (x C) uint8 image, got {image.dtype} {image.shape}")
    out = image.copy()
    arm = max(3, round(0.012 * image.shape[1])) if arm is None else arm
    x1, y1, x2, y2 = (round(float(v)) for v in box)
    cx, cy = (x1 + x2) // 2, (y1 + y2) // 2
    for a, b in (((x1, cy), (x2, cy)), ((cx, y1), (cx, y2))):
        if line:
            steps = max(2, int(np.hypot(b[0] - a[0], b[1] - a[1]) // 4))
            for t in np.linspace(0.0, 1.0, steps):
                _put(out, round(a[0] + t * (b[0] - a[0])), round(a[1] + t * (b[1] - a[1])), LINE)
        for x, y in (a, b):
            for d in range(-arm, arm + 1):
                _put(out, x + d, y, MARK)
                _put(out, x, y + d, MARK)
    return out


def _put(image: np.ndarray, x: int, y: int, value: int) -> None:
    if 0 <= y < image.shape[0] and 0 <= x < image.shape[1]:
        image[y, x] = value


def random_caliper_box(
    height: int, width: int, rng: np.random.Generator, min_side: float = 0.1, max_side: float = 0.4
) -> Box:
    """A box to measure anywhere in an ``height`` x ``width`` image, its sides
    ``min_side``..``max_side`` of the image's shorter side (lesion-sized)."""
    short = min(height, width)
    w, h = (float(rng.uniform(min_side, max_side)) * short for _ in range(2))
    x1 = float(rng.uniform(0, max(width - w, 1)))
    y1 = float(rng.uniform(0, max(height - h, 1)))
    return (x1, y1, x1 + w, y1 + h)
