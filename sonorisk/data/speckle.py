"""Speckle: Rayleigh-distributed multiplicative texture, partially correlated in time.

Speckle is the envelope of a sum of random scatterer echoes: the magnitude of
a low-pass-filtered complex Gaussian field is Rayleigh distributed. Between
frames the scatterers seen by the beam change as the probe moves, so each new
field is ``rho * previous + sqrt(1 - rho^2) * fresh`` (still Gaussian, so the
magnitude stays Rayleigh) with ``rho`` falling as the probe moves faster.
"""

from __future__ import annotations

import cv2
import numpy as np

# Ultrasound speckle grains are longer laterally than axially.
GRAIN_SIGMA_XY = (1.4, 0.8)


def _fresh(
    shape: tuple[int, int], rng: np.random.Generator, sigma_xy: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Real and imaginary parts of a unit-power low-pass complex Gaussian field."""
    sx, sy = sigma_xy
    parts = []
    for _ in range(2):
        noise = rng.standard_normal(shape, dtype=np.float32)
        parts.append(cv2.GaussianBlur(noise, (0, 0), sigmaX=sx, sigmaY=sy))
    power = float(np.mean(parts[0] * parts[0]) + np.mean(parts[1] * parts[1]))
    norm = np.float32(1.0 / np.sqrt(max(power, 1e-12)))
    return parts[0] * norm, parts[1] * norm


class SpeckleField:
    """A complex Gaussian field evolving frame to frame; ``next`` gives Rayleigh magnitudes."""

    def __init__(
        self, shape: tuple[int, int], rng: np.random.Generator, grain_scale: float = 1.0
    ) -> None:
        self.shape = shape
        self.rng = rng
        self.sigma_xy = (GRAIN_SIGMA_XY[0] * grain_scale, GRAIN_SIGMA_XY[1] * grain_scale)
        self.field: tuple[np.ndarray, np.ndarray] | None = None

    def next(self, rho: float) -> np.ndarray:
        """Rayleigh magnitude (unit RMS, float32) correlated ``rho`` with the previous one."""
        real, imag = _fresh(self.shape, self.rng, self.sigma_xy)
        if self.field is not None:
            rho = float(np.clip(rho, 0.0, 1.0))
            # float32-rounded weights, as Python floats (cv2 takes doubles)
            keep, new = float(np.float32(rho)), float(np.float32(np.sqrt(1.0 - rho * rho)))
            real = cv2.addWeighted(self.field[0], keep, real, new, 0.0)
            imag = cv2.addWeighted(self.field[1], keep, imag, new, 0.0)
        self.field = (real, imag)
        return _psf(cv2.magnitude(real, imag), self.sigma_xy)


def rayleigh_texture(
    shape: tuple[int, int], rng: np.random.Generator, grain_scale: float = 1.0
) -> np.ndarray:
    """One static Rayleigh speckle field (unit RMS)."""
    sigma = (GRAIN_SIGMA_XY[0] * grain_scale, GRAIN_SIGMA_XY[1] * grain_scale)
    real, imag = _fresh(shape, rng, sigma)
    return _psf(cv2.magnitude(real, imag), sigma)


def _psf(magnitude: np.ndarray, sigma_xy: tuple[float, float]) -> np.ndarray:
    """Soften the envelope as a scanner's point-spread function does.

    Without it, log compression turns the field's near-zero valleys into a
    crackle of thin dark lines that real B-mode images do not show.
    """
    sx, sy = sigma_xy
    return cv2.GaussianBlur(magnitude, (0, 0), sigmaX=0.45 * sx, sigmaY=0.45 * sy)
