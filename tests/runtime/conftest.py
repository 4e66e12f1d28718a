"""Fixtures for the ONNX Runtime tests: an exported-graph cache per session and a
short sweep of a held-out example still (helpers and tolerances: rt_helpers)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sonorisk.records import Frame
from sonorisk.runtime.sessions import OrtOptions

from .rt_helpers import REPO


@pytest.fixture(autouse=True)
def one_thread() -> None:
    # The tests share 2 cores with other work: one torch thread, as ort_options
    # gives ONNX Runtime.
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def ort_options(tmp_path_factory: pytest.TempPathFactory) -> OrtOptions:
    """One cache for the session: each model file exports once."""
    return OrtOptions(threads=1, cache_dir=tmp_path_factory.mktemp("onnx-cache"))


@pytest.fixture(scope="session")
def sweep_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 24-frame sweep (480x360) of a benign example still held out from training; the
    bundled models score its lesion from 3 clips at a risk of about 0.27 (not saturated)."""
    from sonorisk.data.synth import synthesize_from_stills

    out = tmp_path_factory.mktemp("sweep")
    synthesize_from_stills(
        REPO / "examples" / "busi", 1, out, seed=0, frames=24, ids=["benign_082"]
    )
    (video,) = sorted((out / "videos").iterdir())
    return video


@pytest.fixture(scope="session")
def sweep_frames(sweep_video: Path) -> list[Frame]:
    from sonorisk.io import open_video

    with open_video(sweep_video, color="rgb") as source:
        return list(source)
