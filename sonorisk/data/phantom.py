"""A procedural breast phantom: layered tissue with speckle and BI-RADS-like lesions.

No input image is needed. Tissue is built as an echo-level map in dB (skin,
subcutaneous fat with lobules, Cooper's ligaments, the fibroglandular layer with
ducts, retromammary fat, pectoralis with striations), multiplied by Rayleigh
speckle and log-compressed, as a scanner does. Lesions follow BI-RADS
ultrasound descriptors:

- benign-like: oval, parallel (wider than tall), circumscribed margin,
  homogeneous hypoechoic (or anechoic) interior, posterior enhancement;
- malignant-like: irregular, not parallel (taller than wide), angular,
  microlobulated or spiculated margin, heterogeneous interior, echogenic halo,
  posterior shadowing.

Subtypes mix these the way the real ones can (mucinous carcinoma is often oval
and circumscribed with enhancement; an inflammatory mass is benign but
indistinct), so the look alone does not give the label away. This is a
simulator for testing software, not a model of any patient.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from sonorisk.data.slab import Slab, SlabLesion, lesion_weight
from sonorisk.data.speckle import rayleigh_texture

DYNAMIC_RANGE_DB = 50.0
DEPTH_MM = 40.0  # depth of the slab (a linear breast probe's typical setting)

# Echo levels (dB, 0 = brightest) of each tissue.
SKIN_DB, DERMIS_DB, FAT_DB, SEPTA_DB = -4.0, -14.0, -27.0, -12.0
GLAND_DB, DUCT_DB, RETRO_FAT_DB = -13.0, -30.0, -29.0
MUSCLE_DB, FASCIA_DB = -25.0, -9.0


@dataclass(frozen=True)
class LesionSpec:
    """What a phantom lesion looks like (BI-RADS descriptors) and what it is."""

    pathology: str
    subtype: str
    size_mm: float  # largest diameter
    aspect: float  # width / height (> 1: wider than tall)
    angle_deg: float  # long-axis angle from horizontal
    margin: str  # circumscribed | indistinct | angular | microlobulated | spiculated
    shape: str  # oval | round | irregular
    echo_db: float  # interior echo level
    heterogeneity_db: float  # std of the interior texture
    posterior_db: float  # > 0 enhancement, < 0 shadowing
    halo_db: float = 0.0  # echogenic rim (malignant-like)
    calcifications: int = 0  # bright echogenic foci inside
    birads: str = "3"

    @property
    def orientation(self) -> str:
        tall = self.aspect < 1.0 or abs(self.angle_deg) > 30
        return "not parallel" if tall else "parallel"

    @property
    def posterior(self) -> str:
        if self.posterior_db > 1:
            return "enhancement"
        if self.posterior_db < -1:
            return "shadowing"
        return "no posterior features"

    @property
    def echo_pattern(self) -> str:
        if self.echo_db < -42:
            return "anechoic"
        if self.heterogeneity_db > 3:
            return "heterogeneous"
        return "hypoechoic"

    def descriptors(self) -> dict[str, Any]:
        return {
            "shape": self.shape,
            "orientation": self.orientation,
            "margin": self.margin,
            "echo_pattern": self.echo_pattern,
            "posterior": self.posterior,
            "halo": self.halo_db > 0,
            "calcifications": self.calcifications > 0,
        }


# Subtype -> weight within its pathology.
BENIGN_SUBTYPES = {"fibroadenoma": 0.55, "cyst": 0.15, "papilloma": 0.15, "inflammatory mass": 0.15}
MALIGNANT_SUBTYPES = {"IDC": 0.6, "DCIS": 0.2, "mucinous carcinoma": 0.2}


def sample_lesion_spec(
    pathology: str, rng: np.random.Generator, subtype: str | None = None
) -> LesionSpec:
    """A random lesion of the given pathology with subtype-typical descriptors."""
    u = rng.uniform
    table = BENIGN_SUBTYPES if pathology == "benign" else MALIGNANT_SUBTYPES
    if pathology not in ("benign", "malignant"):
        raise ValueError(f"phantom lesions are benign or malignant, not {pathology!r}")
    if subtype is None:
        names = list(table)
        weights = np.array(list(table.values()))
        subtype = names[int(rng.choice(len(names), p=weights / weights.sum()))]
    elif subtype not in table:
        raise ValueError(f"unknown {pathology} subtype {subtype!r}; choose from {list(table)}")
    if subtype == "fibroadenoma":
        return LesionSpec(
            pathology,
            subtype,
            u(8, 25),
            u(1.4, 2.1),
            u(-10, 10),
            str(rng.choice(["circumscribed", "circumscribed", "microlobulated"])),
            "oval",
            u(-39, -34),
            u(0.5, 1.5),
            u(4, 8),
            birads=str(rng.choice(["3", "3", "4A"])),
        )
    if subtype == "cyst":
        return LesionSpec(
            pathology,
            subtype,
            u(5, 18),
            u(1.1, 1.7),
            u(-10, 10),
            "circumscribed",
            "oval",
            u(-50, -46),
            0.3,
            u(8, 12),
            birads="2",
        )
    if subtype == "papilloma":
        return LesionSpec(
            pathology,
            subtype,
            u(5, 12),
            u(1.2, 1.8),
            u(-15, 15),
            "circumscribed",
            "oval",
            u(-36, -31),
            u(1.5, 3.0),
            u(0, 3),
            birads=str(rng.choice(["3", "4A"])),
        )
    if subtype == "inflammatory mass":
        return LesionSpec(
            pathology,
            subtype,
            u(10, 30),
            u(1.0, 1.6),
            u(-20, 20),
            "indistinct",
            "irregular",
            u(-35, -29),
            u(2.5, 4.5),
            u(-2, 3),
            birads=str(rng.choice(["3", "4A", "4B"])),
        )
    if subtype == "IDC":
        return LesionSpec(
            pathology,
            subtype,
            u(8, 20),
            u(0.75, 1.05),
            u(-35, 35),
            str(rng.choice(["spiculated", "angular", "microlobulated"])),
            "irregular",
            u(-41, -36),
            u(2.5, 4.5),
            -u(8, 16),
            halo_db=u(4, 8),
            calcifications=int(rng.integers(0, 4)),
            birads=str(rng.choice(["4B", "4C", "5", "5"])),
        )
    if subtype == "DCIS":
        return LesionSpec(
            pathology,
            subtype,
            u(6, 25),
            u(0.9, 1.6),
            u(-25, 25),
            str(rng.choice(["indistinct", "microlobulated", "angular"])),
            "irregular",
            u(-36, -31),
            u(3.0, 5.0),
            u(-4, 1),
            calcifications=int(rng.integers(4, 12)),
            birads=str(rng.choice(["4A", "4B", "4C"])),
        )
    # mucinous carcinoma: the benign look-alike (oval, circumscribed, enhancement).
    return LesionSpec(
        pathology,
        subtype,
        u(10, 30),
        u(1.1, 1.6),
        u(-15, 15),
        str(rng.choice(["circumscribed", "microlobulated", "indistinct"])),
        str(rng.choice(["oval", "round"])),
        u(-24, -18),
        u(2.0, 4.0),
        u(3, 7),
        birads=str(rng.choice(["4A", "4B", "4C"])),
    )


@dataclass
class PhantomLesion:
    spec: LesionSpec
    center_mm: tuple[float, float]


@dataclass
class PhantomCase:
    """A phantom slab with its lesions' specs."""

    slab: Slab
    lesions: list[PhantomLesion] = field(default_factory=list)


def _wavy(
    x: np.ndarray, base: float, amplitude: float, rng: np.random.Generator, n_waves: int = 3
) -> np.ndarray:
    """A smooth random boundary y(x)."""
    out = np.full_like(x, base, dtype=np.float32)
    for k in range(1, n_waves + 1):
        out += (
            amplitude
            / k
            * np.sin(
                2 * np.pi * k * x / x.max() * rng.uniform(0.3, 1.0) + rng.uniform(0, 2 * np.pi)
            )
        )
    return out


def _lowpass_noise(
    shape: tuple[int, int], sigma: float, rng: np.random.Generator, sigma_y: float | None = None
) -> np.ndarray:
    noise: np.ndarray = rng.standard_normal(shape).astype(np.float32)
    noise = cv2.GaussianBlur(noise, (0, 0), sigmaX=sigma, sigmaY=sigma_y or sigma)
    return noise / (noise.std() + 1e-6)


def _draw_curve(canvas: np.ndarray, points: np.ndarray, value: float, thickness: int) -> None:
    cv2.polylines(
        canvas, [np.round(points).astype(np.int32)], False, float(value), thickness, cv2.LINE_AA
    )


def tissue_db(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """The lesion-free echo map (dB) of layered breast tissue."""
    px_per_mm = height / DEPTH_MM
    x = np.arange(width, dtype=np.float32)
    y = np.arange(height, dtype=np.float32)[:, None]
    skin = _wavy(x, rng.uniform(0.6, 1.0) * px_per_mm, 0.2 * px_per_mm, rng)
    dermis = skin + rng.uniform(1.2, 2.0) * px_per_mm
    gland_top = _wavy(x, rng.uniform(7, 12) * px_per_mm, 2.0 * px_per_mm, rng)
    gland_bottom = _wavy(x, rng.uniform(23, 28) * px_per_mm, 2.0 * px_per_mm, rng)
    muscle_top = gland_bottom + _wavy(x, rng.uniform(2.0, 3.5) * px_per_mm, 0.6 * px_per_mm, rng)
    muscle_bottom = muscle_top + rng.uniform(7, 11) * px_per_mm

    db: np.ndarray = np.full((height, width), FAT_DB, np.float32)
    # Subcutaneous fat: dark lobules separated by brighter septa.
    lobules = _lowpass_noise((height, width), 2.2 * px_per_mm, rng, 1.3 * px_per_mm)
    fat = FAT_DB + 3.0 * lobules + 6.0 * np.exp(-((np.abs(lobules) / 0.18) ** 2))
    db[:] = fat
    # Fibroglandular tissue: coarse and fine heterogeneity plus islands of fat.
    coarse = _lowpass_noise((height, width), 2.5 * px_per_mm, rng, 1.0 * px_per_mm)
    fine = _lowpass_noise((height, width), 0.6 * px_per_mm, rng, 0.3 * px_per_mm)
    islands = np.clip(coarse - 0.6, 0, None)
    gland = GLAND_DB + 2.0 * fine + 2.0 * coarse - 14.0 * np.minimum(islands, 1.0)
    in_gland = (y >= gland_top) & (y < gland_bottom)
    db = np.where(in_gland, gland, db)
    # Soft layer edges: blend a few pixels across the gland boundaries.
    db = cv2.GaussianBlur(db, (0, 0), 1.2)
    in_retro = (y >= gland_bottom) & (y < muscle_top)
    db = np.where(in_retro, RETRO_FAT_DB + 2.0 * lobules, db)
    in_muscle = (y >= muscle_top) & (y < muscle_bottom)
    striation = _lowpass_noise((height, width), 3.0 * px_per_mm, rng, 0.25 * px_per_mm)
    db = np.where(in_muscle, MUSCLE_DB + 5.0 * np.clip(striation, 0, None), db)
    deep = y >= muscle_bottom
    db = np.where(deep, MUSCLE_DB - 6.0 + 3.0 * lobules, db)

    lines = np.zeros((height, width), np.float32)
    for boundary, value, thick in (
        (skin, SKIN_DB, 2),
        (dermis, -10.0, 1),
        (muscle_top, FASCIA_DB, 2),
        (muscle_bottom, FASCIA_DB, 2),
    ):
        _draw_curve(lines, np.stack([x, boundary], axis=1), 60.0 + value, thick)
    # Cooper's ligaments: bright arcs from the gland surface up towards the skin.
    for _ in range(int(rng.integers(4, 9))):
        x0 = rng.uniform(0, width)
        top_y = float(np.interp(x0, x, dermis)) + rng.uniform(0.5, 2.0) * px_per_mm
        bottom_y = float(np.interp(x0, x, gland_top)) + 0.5 * px_per_mm
        t = np.linspace(0, 1, 30)
        lean = rng.uniform(-6, 6) * px_per_mm
        xs = x0 + lean * t + rng.uniform(-1.5, 1.5) * px_per_mm * np.sin(np.pi * t)
        ys = bottom_y + (top_y - bottom_y) * t
        _draw_curve(
            lines, np.stack([xs, ys], axis=1), 60.0 + SEPTA_DB, max(1, int(0.3 * px_per_mm))
        )
    # Ducts: thin dark tubes running roughly horizontally in the gland.
    ducts: np.ndarray = np.zeros((height, width), np.float32)
    for _ in range(int(rng.integers(0, 3))):
        yc = rng.uniform(0.3, 0.7)
        t = np.linspace(0, 1, 40)
        xs = rng.uniform(-0.2, 0.5) * width + t * rng.uniform(0.4, 0.9) * width
        ys = (
            np.interp(xs, x, gland_top) * (1 - yc)
            + np.interp(xs, x, gland_bottom) * yc
            + rng.uniform(-2, 2) * px_per_mm * np.sin(np.pi * t * rng.uniform(1, 3))
        )
        _draw_curve(ducts, np.stack([xs, ys], axis=1), 1.0, max(1, int(0.6 * px_per_mm)))
    ducts = cv2.GaussianBlur(ducts, (0, 0), 0.3 * px_per_mm)
    db = db * (1 - ducts) + (DUCT_DB + 3.0 * fine) * ducts
    # Fascia and ligaments are not uniformly bright: their echo varies along them.
    fade = 9.0 * np.abs(_lowpass_noise((height, width), 2.5 * px_per_mm, rng))
    db = np.where(lines > 0, np.maximum(db, lines - 60.0 - fade), db)
    # Depth attenuation, mostly (not fully) compensated by time-gain control.
    db -= 0.25 * (y / px_per_mm)
    return db.astype(np.float32)


def lesion_shape(
    spec: LesionSpec,
    px_per_mm: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """(inside mask, signed radial distance) on a local square grid centred on the lesion."""
    width_mm = spec.size_mm if spec.aspect >= 1 else spec.size_mm * spec.aspect
    a = 0.5 * width_mm * px_per_mm  # semi-axis along the lesion's long axis (x before rotation)
    b = a / spec.aspect
    half = int(np.ceil(max(a, b) * 1.9)) + 4
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1].astype(np.float32)
    theta = np.deg2rad(spec.angle_deg)
    u = xx * np.cos(theta) + yy * np.sin(theta)
    v = -xx * np.sin(theta) + yy * np.cos(theta)
    rho = np.sqrt((u / a) ** 2 + (v / b) ** 2)
    phi = np.arctan2(v / b, u / a)
    radius = np.ones_like(phi)
    harmonics = {
        "circumscribed": (0.02, 3),
        "indistinct": (0.06, 6),
        "angular": (0.10, 7),
        "microlobulated": (0.06, 14),
        "spiculated": (0.06, 6),
    }
    amp, order = harmonics[spec.margin]
    if spec.shape == "oval" and spec.margin == "circumscribed":
        amp = 0.015
    for k in range(2, order + 1):
        radius += amp * rng.uniform(0.3, 1.0) * np.cos(k * phi + rng.uniform(0, 2 * np.pi))
    if spec.margin == "angular":
        # A few sharp corners: triangular bumps.
        for _ in range(int(rng.integers(3, 6))):
            centre = rng.uniform(-np.pi, np.pi)
            d = np.angle(np.exp(1j * (phi - centre)))
            radius += 0.18 * np.clip(1 - np.abs(d) / 0.3, 0, None)
    if spec.margin == "spiculated":
        # Short, tapering spicules radiating from the mass.
        for _ in range(int(rng.integers(8, 16))):
            centre = rng.uniform(-np.pi, np.pi)
            d = np.angle(np.exp(1j * (phi - centre)))
            radius += (
                rng.uniform(0.1, 0.3)
                * np.clip(1 - np.abs(d) / rng.uniform(0.04, 0.07), 0, None) ** 1.5
            )
    signed = (rho - radius) * min(a, b)  # ~ pixels outside (>0) or inside (<0) the margin
    return signed <= 0, signed


def _paste(canvas: np.ndarray, patch: np.ndarray, cx: int, cy: int, op: str = "add") -> None:
    half = patch.shape[0] // 2
    y1, x1 = cy - half, cx - half
    y2, x2 = y1 + patch.shape[0], x1 + patch.shape[1]
    cy1, cx1 = max(0, y1), max(0, x1)
    cy2, cx2 = min(canvas.shape[0], y2), min(canvas.shape[1], x2)
    if cy1 >= cy2 or cx1 >= cx2:
        return
    sub = patch[cy1 - y1 : cy2 - y1, cx1 - x1 : cx2 - x1]
    if op == "add":
        canvas[cy1:cy2, cx1:cx2] += sub
    else:
        canvas[cy1:cy2, cx1:cx2] = np.maximum(canvas[cy1:cy2, cx1:cx2], sub)


@dataclass
class DrawnLesion:
    """One lesion drawn into tissue: what replaces the tissue, and what it adds around it."""

    interior_db: np.ndarray  # the tissue map with the lesion's interior in place
    offset_db: np.ndarray  # additive dB around it: echogenic halo, posterior shadow/enhancement
    mask: np.ndarray  # bool lesion pixels
    alpha: np.ndarray  # soft interior weight (the margin: sharp or indistinct)


def add_lesion(
    db: np.ndarray,
    spec: LesionSpec,
    center: tuple[int, int],
    px_per_mm: float,
    rng: np.random.Generator,
) -> DrawnLesion:
    """Draw one lesion into a copy of the echo map ``db``."""
    height, width = db.shape
    inside, signed = lesion_shape(spec, px_per_mm, rng)
    cx, cy = center
    mask = np.zeros((height, width), np.float32)
    _paste(mask, inside.astype(np.float32), cx, cy, "max")
    mask_bool = mask > 0.5

    # Interior: a set level plus texture, blended across the margin (sharp when
    # circumscribed, soft when indistinct).
    edge_px = {
        "circumscribed": 0.7,
        "microlobulated": 1.0,
        "angular": 1.0,
        "spiculated": 1.2,
        "indistinct": 2.5,
    }[spec.margin]
    alpha_patch = 1.0 / (1.0 + np.exp(signed / edge_px))
    alpha = np.zeros((height, width), np.float32)
    _paste(alpha, alpha_patch.astype(np.float32), cx, cy, "max")
    texture = spec.heterogeneity_db * _lowpass_noise((height, width), 0.5 * px_per_mm, rng)
    interior = spec.echo_db + texture
    out = db * (1 - alpha) + interior * alpha
    if spec.calcifications:
        ys, xs = np.nonzero(mask_bool)
        for _ in range(spec.calcifications):
            i = int(rng.integers(0, ys.size))
            cv2.circle(out, (int(xs[i]), int(ys[i])), max(1, int(0.25 * px_per_mm)), -3.0, -1)

    offset = np.zeros((height, width), np.float32)
    if spec.halo_db > 0:
        ring = np.clip(1.0 - np.abs(signed - 1.2 * px_per_mm) / (0.9 * px_per_mm), 0, 1)
        ring_canvas = np.zeros((height, width), np.float32)
        _paste(ring_canvas, (ring * (signed > 0)).astype(np.float32), cx, cy, "max")
        offset += spec.halo_db * ring_canvas * (1 - alpha)
    if spec.posterior_db != 0:
        # Column behind the lesion, as wide as the lesion, fading with depth.
        column: np.ndarray = np.zeros((height, width), np.float32)
        box_rows = np.flatnonzero(mask_bool.any(axis=1))
        lesion_h = box_rows[-1] - box_rows[0] + 1 if box_rows.size else 1
        length = int(lesion_h * (3.0 if spec.posterior_db < 0 else 1.5))
        for col in np.flatnonzero(mask_bool.any(axis=0)):
            bottom = int(np.flatnonzero(mask_bool[:, col])[-1])
            end = min(height, bottom + 1 + length)
            column[bottom + 1 : end, col] = 1.0 - np.arange(end - bottom - 1) / length
        column = cv2.GaussianBlur(column, (0, 0), sigmaX=0.8 * px_per_mm, sigmaY=1.0)
        offset += spec.posterior_db * column * (1 - alpha)
    return DrawnLesion(out.astype(np.float32), offset, mask_bool, alpha)


def compress(db: np.ndarray, speckle: np.ndarray) -> np.ndarray:
    """Echo map (dB) x Rayleigh speckle -> log-compressed display values in [0, 1]."""
    # Deep speckle nulls are filled in by the scanner's point-spread function and
    # display smoothing; flooring them avoids a worm-like black texture.
    amplitude_db = db + 16.0 * np.log10(np.maximum(speckle, 0.3))
    display = np.clip((amplitude_db + DYNAMIC_RANGE_DB) / DYNAMIC_RANGE_DB, 0.0, 1.0)
    return cv2.GaussianBlur(display.astype(np.float32), (0, 0), 0.7)


def make_phantom(
    pathology: str,
    rng: np.random.Generator,
    size: tuple[int, int] = (720, 400),
    subtype: str | None = None,
    n_lesions: int = 1,
    spec: LesionSpec | None = None,
    speckle: bool = True,
) -> PhantomCase:
    """A phantom slab of ``size`` (width, height) px covering DEPTH_MM of depth.

    ``pathology`` "normal" gives lesion-free tissue. ``spec`` fixes the lesion
    (tests use it for a known-intensity lesion); ``speckle=False`` leaves the
    tissue's speckle out (the sweep still adds its own unless told not to).
    """
    width, height = size
    px_per_mm = height / DEPTH_MM
    background_db = tissue_db(height, width, rng)
    grain = max(1.0, px_per_mm / 5.0)  # speckle grains ~0.3 mm lateral, ~0.2 mm axial
    texture = (
        rayleigh_texture((height, width), rng, grain)
        if speckle
        else np.ones((height, width), np.float32)
    )
    db = background_db.copy()
    offsets = np.zeros_like(db)
    drawn: list[DrawnLesion] = []
    lesions: list[PhantomLesion] = []
    if pathology != "normal":
        for k in range(n_lesions):
            lesion_spec = spec or sample_lesion_spec(pathology, rng, subtype)
            # Lesions sit in or just under the fibroglandular layer, apart laterally.
            # Deep enough to stay under the skin, shallow enough to end at the muscle.
            height_mm = (
                lesion_spec.size_mm
                if lesion_spec.aspect < 1
                else (lesion_spec.size_mm / lesion_spec.aspect)
            )
            shallowest = max(9.0, height_mm / 2 + 5.0)
            depth_mm = rng.uniform(shallowest, max(shallowest, min(22.0, 28.0 - height_mm / 2)))
            lateral = (k + rng.uniform(0.35, 0.65)) / n_lesions * width
            center = (int(lateral), int(depth_mm * px_per_mm))
            lesion = add_lesion(db, lesion_spec, center, px_per_mm, rng)
            db = lesion.interior_db
            offsets += lesion.offset_db
            drawn.append(lesion)
            lesions.append(PhantomLesion(lesion_spec, (lateral / px_per_mm, depth_mm)))
    image = compress(db + offsets, texture)
    background = compress(background_db, texture)
    slab_lesions = []
    for lesion in drawn:
        ys, xs = np.nonzero(lesion.mask)
        # The layer is the lesion's interior over the background tissue; the halo and
        # posterior features are an additive offset (display units are linear in dB),
        # so they scale with the lesion without dragging deep tissue along.
        own = background_db * (1 - lesion.alpha) + lesion.interior_db * lesion.alpha
        weight = np.maximum(
            lesion.alpha, lesion_weight(lesion.mask, margin_px=2, feather_px=1.0, posterior=0.0)
        )
        slab_lesions.append(
            SlabLesion(
                lesion.mask,
                weight.astype(np.float32),
                (float(xs.mean()), float(ys.mean())),
                layer=compress(own, texture),
                offset=(lesion.offset_db / DYNAMIC_RANGE_DB).astype(np.float32),
            )
        )
    slab = Slab(image, background, slab_lesions, mm_per_px=1.0 / px_per_mm, speckle_grain=grain)
    return PhantomCase(slab, lesions)
