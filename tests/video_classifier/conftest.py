from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True)
def _few_threads():
    import torch

    # One thread: on a 2-core machine shared with another busy process, two
    # OpenMP threads spin-wait on each other (measured: the I3D lesion test took
    # 81 s with 2 threads, 5 s with 1, while a detector trained beside it).
    torch.set_num_threads(1)
    yield


@pytest.fixture(scope="session")
def phantom_dir(tmp_path_factory):
    """8 phantom sweeps (benign, malignant, normal) with boxes: a small video dataset."""
    from sonorisk.data.synth import synthesize_phantom

    out = tmp_path_factory.mktemp("phantom") / "ds"
    synthesize_phantom(
        8,
        out,
        seed=0,
        frames=24,
        size=(96, 64),
        proportions={"benign": 0.4, "malignant": 0.4, "normal": 0.2},
    )
    return out
