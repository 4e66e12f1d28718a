"""The suite's exit status is pytest's own (tests/conftest.py leaves the process
once pytest has reported, skipping interpreter finalisation): a failing test
still fails the run, a green one passes, and the summary is printed first."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CONFTEST = Path(__file__).resolve().parent / "conftest.py"


def run_with_suite_hooks(tmp_path: Path, body: str) -> subprocess.CompletedProcess[str]:
    """pytest on one test file beside a copy of the suite's own conftest."""
    shutil.copyfile(CONFTEST, tmp_path / "conftest.py")
    (tmp_path / "test_one.py").write_text(body)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", "."],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("body", "status", "summary"),
    [
        ("def test_ok():\n    assert True\n", 0, "1 passed"),
        ("def test_bad():\n    assert 1 == 2\n", 1, "1 failed"),
        ("def test_broken(:\n", 2, "1 error"),
    ],
)
def test_the_run_exits_with_pytests_status(tmp_path: Path, body: str, status: int, summary: str):
    done = run_with_suite_hooks(tmp_path, body)
    assert done.returncode == status, done.stdout + done.stderr
    assert summary in done.stdout.splitlines()[-1], done.stdout


def test_interpreter_finalisation_is_skipped(tmp_path: Path):
    """What crashed in CI (exit 139 after 1033 passed) ran after pytest's
    report: atexit handlers and module teardown. They must not run."""
    body = (
        "import atexit\n\n"
        "atexit.register(lambda: print('FINALISED', flush=True))\n\n"
        "def test_ok():\n    assert True\n"
    )
    done = run_with_suite_hooks(tmp_path, body)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
    assert "FINALISED" not in done.stdout
