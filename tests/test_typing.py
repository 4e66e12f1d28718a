"""The package type-checks (``mypy sonorisk`` with pyproject's ``[tool.mypy]``), and the
repository is in one format with no lint finding (``ruff format --check``, ``ruff check``).

sonorisk ships ``py.typed``, so its annotations are part of what users get.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # a minute or more on 2 cores: the cache starts empty
def test_mypy_passes(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "mypy_cache"), "sonorisk"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, f"mypy found errors:\n{out.stdout}\n{out.stderr}"


@pytest.mark.parametrize("command", [["format", "--check"], ["check"]])
def test_ruff_finds_nothing(command: list[str]) -> None:
    """One formatter for the whole repository: run ``ruff format .`` before committing."""
    out = subprocess.run(
        [sys.executable, "-m", "ruff", *command, "."],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, f"ruff {' '.join(command)}:\n{out.stdout}\n{out.stderr}"
