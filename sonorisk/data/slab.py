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
    # What is pasted under ``weight`` (default: the slab's image), and an optional
    # additive offset around the lesion (posterior shadow/enhancement, halo) that
    # scales with it; the phantom knows these apart, a real still does not.
    layer: np.ndarray | None = None
    offset: np.ndarray | None = None


@dataclass
class Slab:
    """Grayscale tissue in [0,1] float32 with its lesions."""

    image: np.ndarray  # HxW float32, tissue with lesions
    background: np.ndarray  # HxW float32, the same tissue with lesions removed
    lesions: list[SlabLesion] = field(default_factory=list)
    mm_per_px: float | None = None  # physical scale when known (phantom)
    # Speckle grain of the slab's own texture, as a multiple of speckle.GRAIN_SIGMA_XY
    # in slab pixels; the sweep's re-drawn speckle matches it on screen.
    speckle_grain: float = 1.0

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
    present = np.any(sub, axis=0)
    for col, bottom, ok in zip(cols, bottoms, present, strict=True):
        if not ok:
            continue
        end = min(height, bottom + 1 + length)
        ramp = 1.0 - np.arange(end - bottom - 1, dtype=np.float32) / length
        out[bottom + 1 : end, col] = ramp
    return out


def _soft(region: np.ndarray, feather_px: float) -> np.ndarray:
    """A soft version of a [0,1] region: 1 inside, fading over ~feather_px outside."""
    region = region.astype(np.float32)
    if feather_px <= 0:
        return region
    k = int(2 * round(2 * feather_px) + 1)
    blurred = cv2.GaussianBlur(region, (k, k), feather_px)
    return np.maximum(region, np.clip(blurred * 2.0, 0.0, 1.0))


def lesion_weight(
    mask: np.ndarray, margin_px: int, feather_px: float, posterior: float = 0.8
) -> np.ndarray:
    """The soft layer of a lesion: mask + margin + posterior column, feathered."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * margin_px + 1, 2 * margin_px + 1))
    core = cv2.dilate(mask.astype(np.uint8), kernel).astype(np.float32)
    region = np.maximum(core, posterior_column(mask, posterior))
    return _soft(region, feather_px)


def _shifted(array: np.ndarray, shift: int) -> np.ndarray:
    """``out[:, x] = array[:, x + shift]`` (zeros where that falls off the image)."""
    out = np.zeros_like(array)
    width = array.shape[1]
    if shift > 0:
        out[:, : width - shift] = array[:, shift:]
    elif shift < 0:
        out[:, -shift:] = array[:, : width + shift]
    else:
        out[:] = array
    return out


def _fill_from_side(
    image: np.ndarray, region: np.ndarray, forbidden: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Replace ``region`` (soft weight) with tissue at the same depth beside it.

    Like patch-based inpainting restricted to horizontal shifts: the shift is
    chosen so that the shifted image matches the tissue on a ring around the
    region (low-pass brightness, so no shadow is copied into bright tissue) and
    its source avoids ``forbidden`` (lesions and their columns). The copy is
    gain-matched to the ring; whatever still comes from a lesion is inpainted.
    """
    height, width = image.shape
    hard = region > 0.02
    cols = np.flatnonzero(hard.any(axis=0))
    if cols.size == 0:
        return image
    reach = max(6, int(0.02 * max(height, width)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1, 2 * reach + 1))
    ring = (cv2.dilate(hard.astype(np.uint8), kernel) > 0) & ~hard & ~forbidden
    smooth = cv2.GaussianBlur(image, (0, 0), 4.0)
    ys, xs = np.nonzero(hard)
    ry, rx = np.nonzero(ring)
    # Scoring every candidate on subsamples keeps this fast.
    ys, xs = ys[:: max(1, ys.size // 3000)], xs[:: max(1, xs.size // 3000)]
    ry, rx = ry[:: max(1, ry.size // 2000)], rx[:: max(1, rx.size // 2000)]
    best: tuple[float, int, float] | None = None  # (score, shift, overlap fraction)
    for shift in range(-width + 1, width, 2):
        if shift == 0:
            continue
        src_x = xs + shift
        if src_x.min() < 0 or src_x.max() >= width:
            continue
        overlap = float(forbidden[ys, src_x].mean())
        ring_x = np.clip(rx + shift, 0, width - 1)
        mismatch = float(np.abs(smooth[ry, ring_x] - smooth[ry, rx]).mean()) if rx.size else 0.0
        score = mismatch + 2.0 * overlap + 1e-4 * rng.random()
        if best is None or score < best[0]:
            best = (score, shift, overlap)
    filled = image.copy()
    if best is None:
        # Region as wide as the image: nothing beside it to copy.
        leftover = hard
    else:
        shift = best[1]
        moved = _shifted(image, shift)
        if rx.size:
            ring_x = np.clip(rx + shift, 0, width - 1)
            gain = float(
                np.clip(smooth[ry, rx].mean() / max(smooth[ry, ring_x].mean(), 1e-3), 0.7, 1.4)
            )
            moved = moved * gain
        # Blend over a wider band than the lesion layer's feather: seams vanish into it.
        blend = np.maximum(
            region, np.clip(cv2.GaussianBlur(region, (0, 0), reach / 2) * 1.5, 0.0, 1.0)
        )
        filled = image * (1.0 - blend) + moved * blend
        leftover = hard & _shifted(forbidden, shift)
    if leftover.any():
        as_u8 = np.clip(filled * 255.0, 0, 255).astype(np.uint8)
        hole = cv2.dilate(leftover.astype(np.uint8), np.ones((5, 5), np.uint8))
        inpainted = cv2.inpaint(as_u8, hole, 5, cv2.INPAINT_TELEA).astype(np.float32) / 255.0
        # Inpainting is smooth; put back texture from the image's own speckle.
        texture = image - cv2.GaussianBlur(image, (0, 0), 3.0)
        texture = np.roll(texture, shift=(int(rng.integers(20, 60)), 0), axis=(0, 1))
        filled = np.where(hole > 0, inpainted + texture, filled)
    return np.clip(filled, 0.0, 1.0).astype(np.float32)


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
