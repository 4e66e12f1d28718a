"""Render ultrasound frames into a scanner-like 1920x1080 screen capture.

The WAUVE videos are screen captures: the ultrasound image sits inside the
scanner's user interface (patient and hospital text, acoustic output indices,
a depth ruler, focus marks, a grey bar). Synthetic sweeps must look the same so
the scan-region crop (``sonorisk.io.scan_region``) and the detector meet the
clutter they will meet in real files.

A layout is made once per video (``make_layout``) and reused for every frame
(``render``): the interface is drawn once with ``cv2.putText`` and each frame
only resizes and pastes the image, so minutes of video render quickly. All text
is placeholder text; no real patient or hospital is named.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np

Shape = Literal["linear", "convex"]
BoxXYXY = tuple[float, float, float, float]

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_PROBES = {"linear": ("L12-5", "L18-4", "14L5", "ML6-15"), "convex": ("C5-1", "C1-6", "3C-RS")}


@dataclass(frozen=True)
class ScreenLayout:
    """Where the image goes on the canvas, and the pre-rendered interface.

    Canvas coordinates: ``x_canvas = x_image * scale + offset[0]`` (same for y).
    ``region`` is the displayed image area (for convex, the bounding box of the
    fan) in canvas pixels, ``x2``/``y2`` exclusive.
    """

    canvas_size: tuple[int, int]  # (width, height)
    image_shape: tuple[int, int]  # (height, width) of the source image
    shape: Shape
    region: tuple[int, int, int, int]  # x1, y1, x2, y2 in canvas pixels
    scale: float
    offset: tuple[float, float]
    mask: np.ndarray = field(repr=False)  # canvas HxW bool: where image pixels show
    background: np.ndarray = field(repr=False)  # canvas HxWx3 uint8 interface
    _region_mask: np.ndarray = field(repr=False)  # region-sized HxW bool (mask cropped)
    _overlay_idx: tuple[np.ndarray, np.ndarray] = field(repr=False)  # caliper pixels
    _overlay_rgb: np.ndarray = field(repr=False)

    def map_box(self, box: BoxXYXY) -> BoxXYXY:
        """Map a box ``(x1, y1, x2, y2)`` in image pixels into canvas pixels."""
        x1, y1, x2, y2 = box
        ox, oy = self.offset
        s = self.scale
        return (x1 * s + ox, y1 * s + oy, x2 * s + ox, y2 * s + oy)

    def map_points(self, points: np.ndarray) -> np.ndarray:
        """Map an Nx2 array of (x, y) image points into canvas pixels."""
        pts = np.asarray(points, dtype=np.float64)
        return pts * self.scale + np.asarray(self.offset)


def make_layout(
    image_shape: tuple[int, ...],
    rng: np.random.Generator,
    *,
    shape: Shape = "linear",
    canvas: tuple[int, int] = (1920, 1080),
    calipers: bool | None = None,
    color_bar: bool | None = None,
) -> ScreenLayout:
    """Draw a random but plausible scanner screen for images of ``image_shape``.

    ``calipers``/``color_bar`` default to a random choice. Deterministic for
    the state of ``rng``.
    """
    if shape not in ("linear", "convex"):
        raise ValueError(f"shape must be 'linear' or 'convex', got {shape!r}")
    ih, iw = int(image_shape[0]), int(image_shape[1])
    if ih < 2 or iw < 2:
        raise ValueError(f"image too small to render: {iw}x{ih}")
    cw, ch = canvas
    if calipers is None:
        calipers = bool(rng.random() < 0.3)
    if color_bar is None:
        color_bar = bool(rng.random() < 0.4)

    # Image area: the scanner leaves a top banner and side panels for the UI.
    top = int(rng.integers(int(0.09 * ch), int(0.14 * ch)))
    bottom_margin = int(rng.integers(int(0.05 * ch), int(0.10 * ch)))
    max_h = ch - top - bottom_margin
    max_w = int(cw * rng.uniform(0.50, 0.62))
    scale = min(max_h / ih, max_w / iw) * rng.uniform(0.85, 1.0)
    dw, dh = max(2, round(iw * scale)), max(2, round(ih * scale))
    scale_x, scale_y = dw / iw, dh / ih
    scale = (scale_x + scale_y) / 2  # the two differ by < 1 px over the image
    left_min, left_max = int(0.20 * cw), cw - dw - int(0.16 * cw)
    x1 = int(rng.integers(left_min, max(left_min + 1, left_max)))
    y1 = top
    region = (x1, y1, x1 + dw, y1 + dh)

    if shape == "convex":
        region_mask = _fan_mask(dh, dw, rng)
    else:
        region_mask = np.ones((dh, dw), dtype=bool)
    mask = np.zeros((ch, cw), dtype=bool)
    mask[y1 : y1 + dh, x1 : x1 + dw] = region_mask

    bg_level = int(rng.integers(0, 14))
    background = np.full((ch, cw, 3), bg_level, dtype=np.uint8)
    _draw_interface(background, region, shape, rng, color_bar=color_bar)

    overlay = np.zeros((ch, cw, 3), dtype=np.uint8)
    if calipers:
        _draw_calipers(overlay, background, region, rng)
    idx = np.nonzero(overlay.any(axis=2))
    return ScreenLayout(
        canvas_size=(cw, ch),
        image_shape=(ih, iw),
        shape=shape,
        region=region,
        scale=float(scale),
        offset=(float(x1), float(y1)),
        mask=mask,
        background=background,
        _region_mask=region_mask,
        _overlay_idx=(idx[0], idx[1]),
        _overlay_rgb=overlay[idx],
    )


def render(image: np.ndarray, layout: ScreenLayout) -> np.ndarray:
    """Paste one ultrasound frame into the screen; returns HxWx3 uint8 RGB."""
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got {image.dtype}")
    if image.shape[:2] != layout.image_shape:
        raise ValueError(
            f"image is {image.shape[1]}x{image.shape[0]}, layout was made for "
            f"{layout.image_shape[1]}x{layout.image_shape[0]}"
        )
    x1, y1, x2, y2 = layout.region
    shown = cv2.resize(image, (x2 - x1, y2 - y1), interpolation=cv2.INTER_LINEAR)
    if shown.ndim == 2:
        shown = np.repeat(shown[:, :, None], 3, axis=2)
    elif shown.shape[2] == 4:
        shown = shown[:, :, :3]
    out = layout.background.copy()
    if layout.shape == "linear":
        out[y1:y2, x1:x2] = shown
    else:
        # cv2.copyTo is ~8x faster than numpy boolean indexing here.
        mask_u8 = layout._region_mask.view(np.uint8)
        out[y1:y2, x1:x2] = cv2.copyTo(shown, mask_u8, out[y1:y2, x1:x2].copy())
    if len(layout._overlay_idx[0]):
        out[layout._overlay_idx] = layout._overlay_rgb
    return out


def render_screen_capture(
    image: np.ndarray,
    rng: np.random.Generator,
    *,
    shape: Shape = "linear",
    canvas: tuple[int, int] = (1920, 1080),
    calipers: bool | None = None,
    color_bar: bool | None = None,
) -> tuple[np.ndarray, ScreenLayout]:
    """One-shot helper: make a layout for ``image`` and render it.

    For a video, call ``make_layout`` once and ``render`` per frame instead.
    """
    layout = make_layout(
        image.shape, rng, shape=shape, canvas=canvas, calipers=calipers, color_bar=color_bar
    )
    return render(image, layout), layout


# --- drawing -----------------------------------------------------------------
def _fan_mask(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Annular sector (convex-probe fan) that exactly fills an h x w box.

    Defined with the apex at the origin, outer radius 1 and inner radius
    ``r``; the fan's extent (x in [-sin a, sin a], y in [r cos a, 1]) is
    stretched onto the box, so the fan touches all four sides.
    """
    half_angle = float(np.deg2rad(rng.uniform(28.0, 40.0)))
    r_inner = float(rng.uniform(0.12, 0.30))
    y_top = r_inner * np.cos(half_angle)
    px = np.linspace(0.0, 1.0, w)
    py = np.linspace(0.0, 1.0, h)
    x = (px - 0.5) * 2.0 * np.sin(half_angle)
    y = py * (1.0 - y_top) + y_top
    xx, yy = np.meshgrid(x, y)
    radius = np.hypot(xx, yy)
    angle = np.arctan2(xx, yy)
    # About a pixel of tolerance, so the fan touches all four sides of its box
    # (its extreme points are single points of the continuous shape).
    tol = 1.0 / max(h - 1, 1) * (1.0 - y_top) + 1.0 / max(w - 1, 1) * np.sin(half_angle)
    return (radius >= r_inner - tol) & (radius <= 1.0 + tol) & (np.abs(angle) <= half_angle + tol)


def _text(img: np.ndarray, text: str, org: tuple[int, int], size: float, color: tuple) -> None:
    cv2.putText(img, text, org, _FONT, size, color, max(1, round(size * 2)), cv2.LINE_AA)


def _draw_interface(
    img: np.ndarray,
    region: tuple[int, int, int, int],
    shape: Shape,
    rng: np.random.Generator,
    *,
    color_bar: bool,
) -> None:
    cw = img.shape[1]
    x1, y1, x2, y2 = region
    white = (225, 225, 225)
    grey = (150, 150, 150)
    accent = tuple(int(v) for v in rng.choice([[90, 200, 255], [255, 210, 90], [120, 255, 140]]))
    pid = int(rng.integers(100000, 999999))
    probe = str(rng.choice(_PROBES[shape]))
    depth_cm = float(
        rng.choice(
            [3.0, 3.5, 4.0, 4.5, 5.0, 6.0] if shape == "linear" else [10.0, 12.0, 14.0, 16.0]
        )
    )
    # Top banner: placeholder identity (never a real name), date, output indices.
    _text(img, "SAMPLE HOSPITAL (placeholder)", (40, 45), 0.9, white)
    _text(img, f"Patient: ANON-{pid}   ID: {pid}", (40, 85), 0.8, grey)
    _text(img, "2000-01-01  00:00:00", (cw - 420, 45), 0.8, grey)
    mi, tis = rng.uniform(0.5, 1.3), rng.uniform(0.1, 0.9)
    _text(img, f"MI {mi:.1f}  TIS {tis:.1f}", (cw - 420, 85), 0.8, white)
    cv2.line(img, (0, y1 - 12), (cw, y1 - 12), (60, 60, 60), 2)
    # Left panel: imaging parameters.
    params = [
        probe,
        "Breast" if shape == "linear" else "Abdomen",
        f"Gain {int(rng.integers(35, 70))} dB",
        f"D {depth_cm:.1f} cm",
        f"FR {int(rng.choice([18, 25, 30, 42, 50]))} Hz",
        f"DR {int(rng.integers(50, 80))}",
        f"Frq {rng.uniform(5, 14) if shape == 'linear' else rng.uniform(2, 5):.1f} MHz",
        "THI" if rng.random() < 0.5 else "CHI",
    ]
    for i, line in enumerate(params):
        _text(img, line, (40, y1 + 40 + 42 * i), 0.75, accent if i == 0 else white)
    # Depth ruler with cm ticks on the right of the image.
    rx = x2 + 18
    cv2.line(img, (rx, y1), (rx, y2), grey, 2)
    n_cm = int(depth_cm)
    for k in range(n_cm + 1):
        ty = int(y1 + (y2 - y1) * k / depth_cm)
        cv2.line(img, (rx, ty), (rx + 16, ty), white, 2)
        _text(img, str(k), (rx + 22, ty + 8), 0.6, white)
        half = int(y1 + (y2 - y1) * (k + 0.5) / depth_cm)
        if k < n_cm and half < y2:
            cv2.line(img, (rx, half), (rx + 8, half), grey, 1)
    # Focus marks: small triangles left of the ruler at one or two depths.
    for _ in range(int(rng.integers(1, 3))):
        fy = int(rng.integers(y1 + (y2 - y1) // 5, y2 - (y2 - y1) // 5))
        tri = np.array([[rx - 4, fy], [rx - 14, fy - 7], [rx - 14, fy + 7]], dtype=np.int32)
        cv2.fillPoly(img, [tri], accent)
    # Grey bar (and optionally a colour-Doppler bar) left of the image.
    gx = x1 - 60
    bar_h = min(256, (y2 - y1) // 2)
    ramp = np.linspace(255, 0, bar_h).astype(np.uint8)
    img[y1 + 10 : y1 + 10 + bar_h, gx : gx + 18] = ramp[:, None, None]
    if color_bar:
        cx = gx - 34
        hues = np.linspace(0, 1, bar_h)
        red = np.clip(2 * (0.5 - hues), 0, 1) * 255
        blue = np.clip(2 * (hues - 0.5), 0, 1) * 255
        img[y1 + 10 : y1 + 10 + bar_h, cx : cx + 18, 0] = red.astype(np.uint8)[:, None]
        img[y1 + 10 : y1 + 10 + bar_h, cx : cx + 18, 2] = blue.astype(np.uint8)[:, None]
        _text(img, "CF", (cx - 4, y1 + bar_h + 40), 0.6, white)
    # Bottom status line.
    _text(
        img,
        f"Frame --/--   {probe}   research synthetic screen",
        (40, img.shape[0] - 30),
        0.6,
        grey,
    )


def _draw_calipers(
    overlay: np.ndarray,
    background: np.ndarray,
    region: tuple[int, int, int, int],
    rng: np.random.Generator,
) -> None:
    x1, y1, x2, y2 = region
    w, h = x2 - x1, y2 - y1
    color = (255, 255, 90)
    pa = (int(x1 + w * rng.uniform(0.3, 0.45)), int(y1 + h * rng.uniform(0.35, 0.6)))
    pb = (int(x1 + w * rng.uniform(0.55, 0.7)), int(y1 + h * rng.uniform(0.35, 0.6)))
    for px, py in (pa, pb):
        cv2.line(overlay, (px - 9, py), (px + 9, py), color, 2)
        cv2.line(overlay, (px, py - 9), (px, py + 9), color, 2)
    dist = np.hypot(pb[0] - pa[0], pb[1] - pa[1]) / max(h, 1) * 4.0
    _text(background, f"D1 {dist:.2f} cm", (40, y2 - 20), 0.75, color)
