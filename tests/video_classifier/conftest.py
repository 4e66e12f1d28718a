from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True)
def _few_threads():
    import torch

    # The CI machine has 2 cores; more threads only add contention.
    torch.set_num_threads(2)
    yield
