"""A tissue slab for sweep synthesis: background, lesion layers and lesion masks.

A still (or a phantom) is treated as a slab the probe sweeps across. The sweep
renderer needs the tissue *without* the lesions (``background``) and, per
lesion, the pixels to paste back (``image`` under the soft ``weight``) scaled
by the lesion's elevational cross-section. For a real still the background is
made by filling each lesion (and the column behind it, where its shadow or
enhancement lies) with tissue copied from the same depth beside it, since
breast tissue is layered by depth.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np


@dataclass
class SlabLesion:
    """One lesion of a slab (all arrays share the slab's HxW)."""

    mask: np.ndarray  # bool: the lesion's own pixels (the box comes from these)
    weight: np.ndarray  # float32 in [0,1]: where the lesion layer replaces the background
    center: tuple[float, float]  # (x, y) centroid of the mask, slab pixels


@dataclass
class Slab:
    """Grayscale tissue in [0,1] float32 with its lesions."""

    image: np.ndarray  # HxW float32, tissue with lesions
    background: np.ndarray  # HxW float32, the same tissue with lesions removed
    lesions: list[SlabLesion] = field(default_factory=list)
    mm_per_px: float | None = None  # physical scale when known (phantom)

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


def mask_box(mask: np.ndarray) -> tuple[float, float, float, float] | None:
    """Tight box (x1, y1, x2, y2) of a boolean mask, x2/y2 exclusive; None if empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1)


def posterior_column(mask: np.ndarray, length_factor: float = 0.8) -> np.ndarray:
    """Soft weight of the column behind (below) a lesion, fading with depth.

    Its length is ``length_factor`` x the lesion's height; this is where
    posterior enhancement or shadowing lies, so it belongs to the lesion layer.
    """
    height = mask.shape[0]
    box = mask_box(mask)
    out = np.zeros(mask.shape, np.float32)
    if box is None:
        return out
    x1, y1, x2, y2 = (int(v) for v in box)
    length = max(2, int(round((y2 - y1) * length_factor)))
    # Each column starts below the lowest lesion pixel of that column.
    cols = np.arange(x1, x2)
    sub = mask[:, x1:x2]
    bottoms = height - 1 - np.argmax(sub[::-1], axis=0)
    present = sub.any(axis=0)
    for col, bottom, ok in zip(cols, bottoms, present, strict=True):
        if not ok:
            continue
        end = min(height, bottom + 1 + length)
        ramp = 1.0 - np.arange(end - bottom - 1, dtype=np.float32) / length
        out[bottom + 1:end, col] = ramp
    return out


def _soft(region: np.ndarray, feather_px: float) -> np.ndarray:
    """A soft version of a [0,1] region: 1 inside, fading over ~feather_px outside."""
    region = region.astype(np.float32)
    if feather_px <= 0:
        return region
    k = int(2 * round(2 * feather_px) + 1)
    blurred = cv2.GaussianBlur(region, (k, k), feather_px)
    return np.maximum(region, np.clip(blurred * 2.0, 0.0, 1.0))


def lesion_weight(mask: np.ndarray, margin_px: int, feather_px: float,
                  posterior: float = 0.8) -> np.ndarray:
    """The soft layer of a lesion: mask + margin + posterior column, feathered."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * margin_px + 1, 2 * margin_px + 1))
    core = cv2.dilate(mask.astype(np.uint8), kernel).astype(np.float32)
    region = np.maximum(core, posterior_column(mask, posterior))
    return _soft(region, feather_px)


def _fill_from_side(
    image: np.ndarray, region: np.ndarray, forbidden: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Replace ``region`` (soft weight) with tissue at the same depth beside it.

    Picks the horizontal shift whose source overlaps ``forbidden`` (lesions and
    their columns) least, nearest shifts first; what still overlaps is inpainted.
    """
    height, width = image.shape
    hard = region > 0.02
    cols = np.flatnonzero(hard.any(axis=0))
    if cols.size == 0:
        return image
    x1, x2 = int(cols[0]), int(cols[-1]) + 1
    span = x2 - x1
    best: tuple[int, int] | None = None
    ys, xs = np.nonzero(hard)
    # Scoring every candidate on a subsample of the region keeps this fast.
    step = max(1, ys.size // 4000)
    ys, xs = ys[::step], xs[::step]
    candidates = [d for d in range(-width, width + 1) if abs(d) >= max(4, span // 2)]
    candidates.sort(key=lambda d: (abs(d), rng.random()))
    for shift in candidates:
        src_x = xs + shift
        if src_x.min() < 0 or src_x.max() >= width:
            continue
        overlap = int(forbidden[ys, src_x].sum())
        if best is None or overlap < best[1]:
            best = (shift, overlap)
            if overlap == 0:
                break
    filled = image.copy()
    if best is None:
        # Region as wide as the image: nothing beside it to copy.
        leftover = hard
    else:
        shift = best[0]
        moved = np.zeros_like(image)
        if shift > 0:
            moved[:, : width - shift] = image[:, shift:]
        else:
            moved[:, -shift:] = image[:, : width + shift]
        filled = image * (1.0 - region) + moved * region
        shifted_forbidden = np.zeros_like(forbidden)
        if shift > 0:
            shifted_forbidden[:, : width - shift] = forbidden[:, shift:]
        else:
            shifted_forbidden[:, -shift:] = forbidden[:, : width + shift]
        leftover = hard & shifted_forbidden
    if leftover.any():
        as_u8 = np.clip(filled * 255.0, 0, 255).astype(np.uint8)
        kernel = np.ones((5, 5), np.uint8)
        hole = cv2.dilate(leftover.astype(np.uint8), kernel)
        inpainted = cv2.inpaint(as_u8, hole, 5, cv2.INPAINT_TELEA).astype(np.float32) / 255.0
        # Inpainting is smooth; put back texture from the image's own speckle.
        texture = image - cv2.GaussianBlur(image, (0, 0), 3.0)
        texture = np.roll(texture, shift=(int(rng.integers(20, 60)), 0), axis=(0, 1))
        filled = np.where(hole > 0, np.clip(inpainted + texture, 0, 1), filled)
    return filled.astype(np.float32)


def slab_from_still(
    image: np.ndarray,
    masks: list[np.ndarray],
    rng: np.random.Generator,
    margin_px: int | None = None,
) -> Slab:
    """Build a slab from a grayscale uint8 still and its boolean lesion masks."""
    gray = image.astype(np.float32) / 255.0
    height, width = gray.shape
    scale = max(height, width)
    margin = margin_px if margin_px is not None else max(3, int(round(0.012 * scale)))
    feather = max(1.5, margin / 2)
    lesions: list[SlabLesion] = []
    for mask in masks:
        if not mask.any():
            continue
        ys, xs = np.nonzero(mask)
        weight = lesion_weight(mask, margin, feather)
        lesions.append(SlabLesion(mask, weight, (float(xs.mean()), float(ys.mean()))))
    background = gray
    if lesions:
        forbidden = np.zeros((height, width), bool)
        for lesion in lesions:
            forbidden |= lesion.weight > 0.02
        for lesion in lesions:
            background = _fill_from_side(background, lesion.weight, forbidden, rng)
    return Slab(gray, background.astype(np.float32), lesions)
