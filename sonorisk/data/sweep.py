"""Render a freehand sweep across a slab: frames, lesion masks and boxes.

Each frame is the probe footprint (a window of the slab, anchored at the skin)
moved along a smooth random path, tilted, squeezed under pressure and gently
deformed by a smooth displacement field, all in one ``cv2.remap``. Each
lesion's cross-section follows its elevational profile: as the probe passes
through the lesion it appears, grows to full size and shrinks away (an
ellipsoid's cross-section, sqrt(1 - ((e - c) / r)^2)). The lesion layer is
sampled through the same map as the background, and its mask through exactly
the same map, so the box derived from the warped mask matches the lesion
pixels in every frame. Speckle is re-drawn each frame, partly correlated with
the previous frame; gain drifts slowly.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import cv2
import numpy as np

from sonorisk.data.motion import MotionParams, SweepPath, make_path, smooth_curve
from sonorisk.data.slab import Slab, mask_box
from sonorisk.data.speckle import SpeckleField
from sonorisk.records import Box


@dataclass(frozen=True)
class SweepParams:
    """How a sweep is rendered (fractions of the footprint unless named otherwise)."""

    motion: MotionParams = field(default_factory=MotionParams)
    footprint_depth: tuple[float, float] = (0.72, 0.90)  # share of slab height in view
    lesion_visible: tuple[float, float] = (0.55, 0.85)  # share of the sweep showing a lesion
    lesion_offset: float = 0.15  # lateral offset of the footprint centre from the lesion
    elastic: float = 0.008  # displacement amplitude, x footprint width
    elastic_period: int = 24  # frames between independent deformation fields
    speckle_strength: float = 0.22  # exponent of the multiplicative speckle
    speckle_rho: float = 0.75  # frame-to-frame speckle correlation at rest
    speckle_grain: float = 1.0
    min_lesion_px: int = 12  # a lesion is drawn and boxed when this many pixels show


@dataclass
class SweepFrame:
    """One rendered frame with its ground truth."""

    index: int
    image: np.ndarray  # HxW uint8
    masks: list[np.ndarray]  # bool HxW, one per visible lesion
    boxes: list[Box]  # xyxy, x2/y2 exclusive, one per visible lesion (from the mask)
    lesions: list[int]  # index into slab.lesions of each visible lesion
    elevation: float = 0.0


@dataclass(frozen=True)
class _LesionPlan:
    center_e: float  # elevation of the widest cross-section
    radius_e: float  # half the elevational extent
    drift: tuple[float, float]  # lesion-centre shift (px) per unit of elevation
    anisotropy: float  # cross-section aspect change through the lesion


def cross_section_scale(elevation: float, center: float, radius: float) -> float:
    """Scale of an ellipsoid's cross-section at ``elevation`` (0 outside it)."""
    t = (elevation - center) / radius
    return float(np.sqrt(1.0 - t * t)) if abs(t) < 1.0 else 0.0


class SweepRenderer:
    """Renders one sweep of ``n_frames`` at ``out_size`` (width, height)."""

    def __init__(
        self,
        slab: Slab,
        n_frames: int,
        out_size: tuple[int, int],
        rng: np.random.Generator,
        params: SweepParams | None = None,
    ) -> None:
        if n_frames < 1:
            raise ValueError("a sweep needs at least one frame")
        self.slab = slab
        self.n_frames = n_frames
        self.out_w, self.out_h = out_size
        self.rng = rng
        self.params = params or SweepParams()
        self.path: SweepPath = make_path(n_frames, rng, self.params.motion)
        self._plan_footprint()
        self._plans = [self._plan_lesion() for _ in slab.lesions]
        self._grid_u, self._grid_v = np.meshgrid(
            (np.arange(self.out_w, dtype=np.float32) + 0.5) / self.out_w - 0.5,
            (np.arange(self.out_h, dtype=np.float32) + 0.5) / self.out_h,
        )
        self._elastic_keys: dict[int, np.ndarray] = {}
        self._elastic_seed = int(rng.integers(0, 2**31))
        # Speckle grain follows the source's own grain: larger when the slab is upsampled.
        grain = self.params.speckle_grain * max(1.0, slab.speckle_grain * self.out_w / self.span)
        self._speckle = SpeckleField((self.out_h, self.out_w), rng, grain)

    # -- planning ---------------------------------------------------------------
    def _plan_footprint(self) -> None:
        height, width = self.slab.height, self.slab.width
        aspect = self.out_w / self.out_h
        depth = height * self.rng.uniform(*self.params.footprint_depth)
        span = depth * aspect
        if span > width * 1.05:  # narrow stills: the footprint's width limits its depth
            span = width * 1.05
            depth = span / aspect
        self.span, self.depth = float(span), float(depth)
        self.top = float(self.rng.uniform(0.0, 0.04) * max(0.0, height - depth))
        if self.slab.lesions:
            centre = float(np.mean([lesion.center[0] for lesion in self.slab.lesions]))
        else:
            centre = width / 2 + self.rng.uniform(-0.25, 0.25) * max(0.0, width - span)
        centre += self.rng.uniform(-1, 1) * self.params.lesion_offset * span
        # Keep the footprint on the slab (past an edge the renderer mirrors the slab).
        low, high = span / 2, width - span / 2
        self.centre = float(np.clip(centre, min(low, high), max(low, high)))
        # Where the probe slides: the path, kept on the slab (a hand stops at its edge).
        slide = self.centre + self.path.lateral * span
        self.centres = np.clip(slide, min(low, high) - 0.01 * width, max(low, high) + 0.01 * width)

    def _plan_lesion(self) -> _LesionPlan:
        visible = self.rng.uniform(*self.params.lesion_visible)
        radius = visible / 2
        center = self.rng.uniform(max(radius, 0.3), min(1 - radius, 0.7)) if radius < 0.5 else 0.5
        drift = (
            self.rng.uniform(-0.15, 0.15) * self.span,
            self.rng.uniform(-0.04, 0.04) * self.depth,
        )
        return _LesionPlan(center, radius, drift, self.rng.uniform(-0.15, 0.15))

    # -- per frame --------------------------------------------------------------
    def _elastic(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Smooth displacement (source px), blended between keyframe fields."""
        period = max(1, self.params.elastic_period)
        k, rem = divmod(index, period)
        frac = rem / period
        blend = frac * frac * (3 - 2 * frac)  # smoothstep
        a, b = self._elastic_key(k), self._elastic_key(k + 1)
        field_ = (1 - blend) * a + blend * b
        return field_[..., 0], field_[..., 1]

    def _elastic_key(self, k: int) -> np.ndarray:
        if k not in self._elastic_keys:
            # Drawn from a child generator seeded by the keyframe number, so the
            # draws do not depend on the order frames are rendered in.
            seed = int(self._elastic_seed) + k
            rng = np.random.default_rng(seed)
            grid = rng.standard_normal((4, 6, 2)).astype(np.float32)
            amplitude = self.params.elastic * self.span
            smooth = cv2.resize(grid, (self.out_w, self.out_h), interpolation=cv2.INTER_CUBIC)
            # Tissue near the probe moves most.
            falloff = (1.0 - 0.6 * self._grid_v)[..., None]
            self._elastic_keys[k] = smooth * amplitude * falloff
            self._elastic_keys.pop(k - 2, None)
        return self._elastic_keys[k]

    def _maps(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        path = self.path
        theta = float(path.tilt[index])
        squeeze = float(path.compression[index])
        centre = float(self.centres[index])
        p = self._grid_u * self.span
        q_frac = self._grid_v
        # Pressure squeezes the tissue near the probe: the display shows more of it.
        q = q_frac * self.depth * (1.0 + squeeze * (1.0 - q_frac))
        cos_t, sin_t = np.cos(theta), np.sin(theta)
        dx, dy = self._elastic(index)
        map_x = centre + cos_t * p - sin_t * q + dx
        map_y = self.top + sin_t * p + cos_t * q + dy
        return map_x.astype(np.float32), map_y.astype(np.float32)

    def render(self, index: int) -> SweepFrame:
        slab, params = self.slab, self.params
        map_x, map_y = self._maps(index)
        image = cv2.remap(
            slab.background, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101
        )
        elevation = float(self.path.elevation[index])
        masks: list[np.ndarray] = []
        boxes: list[Box] = []
        visible: list[int] = []
        for k, (lesion, plan) in enumerate(zip(slab.lesions, self._plans, strict=True)):
            scale = cross_section_scale(elevation, plan.center_e, plan.radius_e)
            if scale < 0.05:
                continue
            offset = elevation - plan.center_e
            sx = scale * (1.0 + plan.anisotropy * offset / plan.radius_e)
            sy = scale * (1.0 - plan.anisotropy * offset / plan.radius_e)
            cx, cy = lesion.center
            # Source of a displayed point inside the scaled lesion layer.
            lx = (cx + (map_x - cx - plan.drift[0] * offset) / sx).astype(np.float32)
            ly = (cy + (map_y - cy - plan.drift[1] * offset) / sy).astype(np.float32)
            mask = (
                cv2.remap(
                    lesion.mask.astype(np.float32),
                    lx,
                    ly,
                    cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_CONSTANT,
                    borderValue=0,
                )
                > 0.5
            )
            if int(mask.sum()) < params.min_lesion_px:
                continue
            box = mask_box(mask)
            if box is None or box[2] - box[0] < 2 or box[3] - box[1] < 2:
                continue
            weight = cv2.remap(
                lesion.weight,
                lx,
                ly,
                cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_CONSTANT,
                borderValue=0,
            )
            source = lesion.layer if lesion.layer is not None else slab.image
            layer = cv2.remap(source, lx, ly, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
            image = image * (1.0 - weight) + layer * weight
            if lesion.offset is not None:
                image = image + cv2.remap(
                    lesion.offset,
                    lx,
                    ly,
                    cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_CONSTANT,
                    borderValue=0,
                )
            masks.append(mask)
            boxes.append(box)
            visible.append(k)
        image = self._finish(image, index)
        return SweepFrame(index, image, masks, boxes, visible, elevation)

    def _finish(self, image: np.ndarray, index: int) -> np.ndarray:
        """Speckle decorrelation, gain and depth-gain drift; to uint8."""
        path, params = self.path, self.params
        if index > 0:
            speed = abs(float(path.elevation[index] - path.elevation[index - 1])) * self.n_frames
        else:
            speed = 0.0
        # Faster elevational motion decorrelates speckle faster.
        rho = params.speckle_rho * float(np.exp(-0.5 * max(0.0, speed - 1.0)))
        if params.speckle_strength > 0:
            speckle = self._speckle.next(rho)
            cv2.max(speckle, 0.3, dst=speckle)  # type: ignore[call-overload, unused-ignore]  # cv2 stubs: no scalar
            image = image * cv2.pow(speckle, params.speckle_strength)
        depth_gain = 1.0 + float(path.tgc[index]) * (self._grid_v - 0.5)
        image = image * float(path.gain[index]) * depth_gain
        return np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)

    def __iter__(self) -> Iterator[SweepFrame]:
        for index in range(self.n_frames):
            yield self.render(index)


def render_sweep(
    slab: Slab,
    n_frames: int,
    out_size: tuple[int, int],
    rng: np.random.Generator,
    params: SweepParams | None = None,
) -> Iterator[SweepFrame]:
    """Frames of one sweep, in order (a generator: minutes of video stay out of memory)."""
    return iter(SweepRenderer(slab, n_frames, out_size, rng, params))


__all__ = ["SweepFrame", "SweepParams", "SweepRenderer", "render_sweep", "smooth_curve"]
