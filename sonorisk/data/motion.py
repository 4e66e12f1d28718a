"""Freehand probe motion: smooth random paths for a sweep.

A sweep has an elevational position ``e`` (through the slab, 0 -> 1; lesions
sit at elevations inside it), an in-plane lateral position (the probe slides),
a tilt (in-plane rotation), a compression (probe pressure) and a gain. Each is
a smooth random curve; speed varies along the sweep and may briefly reverse,
as a hand does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d


@dataclass(frozen=True)
class MotionParams:
    """Ranges of the random probe motion (fractions unless named otherwise)."""

    speed_variation: float = 0.6  # std of the elevational speed around its mean
    reversal_probability: float = 0.3  # chance that the hand backs up once in a sweep
    lateral_travel: tuple[float, float] = (0.0, 0.35)  # in-plane slide, x footprint width
    lateral_wobble: float = 0.03  # hand tremor, x footprint width
    tilt_deg: float = 5.0  # max in-plane rotation
    compression: float = 0.05  # max vertical squeeze under probe pressure
    gain_drift: float = 0.10  # max relative change of overall gain
    tgc_drift: float = 0.10  # max change of the depth-gain slope
    # Passes through the slab: 1 is one sweep; 2 goes there and back, as a
    # radiologist scans across a lesion and returns to it (the lesion leaves
    # the view at the turn and comes back), 3 crosses it three times, ...
    passes: int = 1


@dataclass(frozen=True)
class SweepPath:
    """Per-frame probe state (arrays of length n_frames)."""

    elevation: np.ndarray  # position through the slab, about 0..1
    lateral: np.ndarray  # footprint centre offset, x footprint width (about -0.5..0.5)
    tilt: np.ndarray  # radians
    compression: np.ndarray  # >= 0
    gain: np.ndarray  # multiplicative, about 1
    tgc: np.ndarray  # depth-gain slope change

    def __len__(self) -> int:
        return int(self.elevation.shape[0])


def smooth_curve(n: int, rng: np.random.Generator, n_knots: int = 6) -> np.ndarray:
    """A smooth random curve of length n with values roughly in [-1, 1]."""
    knots = rng.uniform(-1.0, 1.0, size=n_knots + 1)
    x = np.linspace(0.0, n_knots, n)
    curve = np.interp(x, np.arange(n_knots + 1), knots)
    if n > 3:
        curve = gaussian_filter1d(curve, sigma=max(1.0, n / n_knots / 2.5), mode="nearest")
        peak = np.abs(curve).max()
        if peak > 0:
            curve = curve / peak * np.abs(knots).max()
    return curve


def elevation_path(
    n: int, rng: np.random.Generator, speed_variation: float, reversal_probability: float
) -> np.ndarray:
    """Elevational positions from 0 to 1 at varying speed, maybe backing up once."""
    if n == 1:
        return np.array([0.5])
    speed = 1.0 + speed_variation * smooth_curve(n, rng, n_knots=int(rng.integers(3, 8)))
    speed = np.clip(speed, 0.15, None)
    if rng.random() < reversal_probability and n >= 16:
        # The hand backs up: a stretch of negative speed somewhere mid-sweep.
        start = int(rng.integers(n // 4, n // 2))
        length = int(rng.integers(max(2, n // 12), max(3, n // 5)))
        bump = np.zeros(n)
        bump[start : start + length] = np.hanning(min(length, n - start) + 2)[1:-1]
        speed = speed - bump * rng.uniform(1.2, 2.0)
    position = np.concatenate([[0.0], np.cumsum(speed[1:])])
    span = position.max() - position.min()
    return (position - position.min()) / span if span > 0 else np.full(n, 0.5)


def fold_passes(progress: np.ndarray, passes: int) -> np.ndarray:
    """Progress 0 -> 1 along the whole scan as elevation going back and forth:
    0 -> 1 in the first pass, 1 -> 0 in the second, and so on."""
    if passes < 1:
        raise ValueError(f"passes must be >= 1, got {passes}")
    x = np.clip(progress, 0.0, 1.0) * passes
    k = np.minimum(np.floor(x), passes - 1)  # the pass each frame is in
    within = x - k
    return np.where(k % 2 == 0, within, 1.0 - within)


def make_path(n: int, rng: np.random.Generator, params: MotionParams) -> SweepPath:
    """Draw every per-frame probe state for an n-frame sweep."""
    progress = elevation_path(n, rng, params.speed_variation, params.reversal_probability)
    elevation = fold_passes(progress, params.passes)  # one pass: progress as it is
    travel = rng.uniform(*params.lateral_travel) * rng.choice([-1.0, 1.0])
    lateral = travel * (elevation - 0.5) + params.lateral_wobble * smooth_curve(
        n, rng, n_knots=max(3, n // 15 + 3)
    )
    tilt = np.deg2rad(params.tilt_deg) * (0.6 * rng.uniform(-1, 1) + 0.4 * smooth_curve(n, rng))
    compression = params.compression * (0.5 + 0.5 * smooth_curve(n, rng, n_knots=4))
    gain = 1.0 + params.gain_drift * smooth_curve(n, rng, n_knots=3)
    tgc = params.tgc_drift * smooth_curve(n, rng, n_knots=3)
    return SweepPath(elevation, lateral, tilt, compression, gain, tgc)
