"""Every real scanner clip in ../shared decodes with the frame count ffprobe reports."""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest

from sonorisk.io import open_video

from .conftest import REAL_VIDEO_NAMES  # noqa: TID252


def ffprobe_frame_count(path: str) -> int:
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "csv=p=0",
            path,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    return int(out.strip().split(",")[0])


@pytest.mark.skipif(
    shutil.which("ffprobe") is None and not os.environ.get("CI"),
    reason="ffprobe (Debian ffmpeg) missing; CI installs it and never skips",
)
@pytest.mark.parametrize("name", REAL_VIDEO_NAMES)
def test_real_video_frame_count_matches_ffprobe(real_videos_dir, name):
    path = real_videos_dir / name
    expected = ffprobe_frame_count(str(path))
    with open_video(path, color="gray") as src:
        meta = src.meta
        indices, times, means = [], [], []
        for frame in src:
            indices.append(frame.index)
            times.append(frame.timestamp_s)
            means.append(float(frame.image.mean()))
    assert src.stats.end_reason == "eof"
    assert src.stats.frames_dropped == 0
    assert len(indices) == expected
    assert indices == list(range(expected))
    assert np.all(np.diff(times) > 0)
    assert meta.fps is not None and 10 < meta.fps < 60
    # The duration the container states agrees with the frames decoded.
    assert times[-1] == pytest.approx(expected / meta.fps, rel=0.05)
    assert 5 < np.mean(means) < 200  # real images, not blank frames


def test_every_shared_clip_is_covered(real_videos_dir):
    on_disk = {p.name for p in real_videos_dir.iterdir() if p.is_file() and p.suffix != ".md"}
    assert on_disk == set(REAL_VIDEO_NAMES)
