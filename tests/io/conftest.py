"""Fixtures for sonorisk.io tests: small real video files made on the fly."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from sonorisk.io.writer import write_video

# The clips in ../shared/data/real_ultrasound_video (see its README).
REAL_VIDEO_NAMES = [
    "Reg_Image_18122_crop.mp4",
    "Reg_Image_181739_trimmed_crop.mp4",
    "Reg_Image_182340_crop.mp4",
    "Reg_pat1Image_133410.mpeg",
    "Cov_convex_volpecelli_sonographic_v1.mov",
]


def moving_frames(n: int, width: int = 160, height: int = 120, seed: int = 0) -> list[np.ndarray]:
    """Textured frames with a bright disc moving right: each frame differs."""
    rng = np.random.default_rng(seed)
    base = rng.integers(20, 90, (height, width, 3), dtype=np.uint8)
    base = cv2.GaussianBlur(base, (5, 5), 0)
    out = []
    for i in range(n):
        img = base.copy()
        cx = int(15 + (width - 30) * i / max(n - 1, 1))
        cv2.circle(img, (cx, height // 2), max(4, height // 8), (220, 200, 180), -1)
        out.append(img)
    return out


@pytest.fixture
def make_video(tmp_path: Path) -> Callable[..., Path]:
    """make_video(name, n=30, codec="mjpeg", fps=25, width=160, height=120) -> path."""

    def _make(
        name: str,
        n: int = 30,
        codec: str = "mjpeg",
        fps: float = 25.0,
        width: int = 160,
        height: int = 120,
        seed: int = 0,
    ) -> Path:
        path = tmp_path / name
        write_video(path, moving_frames(n, width, height, seed), fps, codec)
        return path

    return _make


@pytest.fixture
def noisy_mjpeg(tmp_path: Path) -> Path:
    """An MJPEG AVI whose frames have similar sizes (noise), so byte cuts fall mid-video."""
    rng = np.random.default_rng(1)
    frames: Iterator[np.ndarray] = (
        rng.integers(0, 255, (96, 128, 3), dtype=np.uint8) for _ in range(40)
    )
    path = tmp_path / "noisy.avi"
    write_video(path, frames, 25.0, "mjpeg")
    return path
