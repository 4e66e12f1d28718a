"""Shared test fixtures: where the shared real data lives, small helpers."""

from __future__ import annotations

import os
import sys
from pathlib import Path

# Before any test imports torch: OpenMP threads must not spin while Ray
# replicas, batch workers and the tests share the cores (sonorisk/threads.py).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SONORISK_SHARED", REPO.parent / "shared")).resolve()
SHARED_DATA = SHARED / "data"
BUSI = SHARED_DATA / "busi"
REAL_VIDEOS = SHARED_DATA / "real_ultrasound_video"
STATS_REFERENCE = SHARED_DATA / "stats_reference"


@pytest.fixture(scope="session")
def busi_dir() -> Path:
    if not (BUSI / "manifest.csv").is_file():
        pytest.fail(f"shared BUSI data missing at {BUSI} (CI has ../shared beside the repo)")
    return BUSI


@pytest.fixture(scope="session")
def real_videos_dir() -> Path:
    if not REAL_VIDEOS.is_dir():
        pytest.fail(f"shared real videos missing at {REAL_VIDEOS}")
    return REAL_VIDEOS


@pytest.fixture(scope="session")
def stats_reference_dir() -> Path:
    if not STATS_REFERENCE.is_dir():
        pytest.fail(f"shared stats reference missing at {STATS_REFERENCE}")
    return STATS_REFERENCE


@pytest.fixture(scope="session")
def postgres_url():
    """A throwaway PostgreSQL server for the session (tests/pg_helpers.py): its URL
    without a database; ``pg_helpers.new_database`` makes one per test."""
    from .pg_helpers import postgres_server  # noqa: TID252

    with postgres_server() as url:
        yield url


# ------------------------------------------------------------------ exit
# The suite runs Ray drivers, gRPC, ONNX Runtime, PyAV and torch in this one
# process. After every test had passed, a CI run died with SIGSEGV while the
# interpreter was finalising (after pytest's summary), so its exit status was
# 139 for a green suite. The crash is in a C extension's teardown, not in the
# code under test (the service's own exit is tested in test_serve_process.py).
# So once pytest has reported, the process leaves with pytest's own status and
# skips finalisation; every fixture has already torn down by then.
_EXIT_STATUS = pytest.StashKey[int]()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    session.config.stash[_EXIT_STATUS] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    if config.stash.get(_EXIT_STATUS, None) is None or os.environ.get("SONORISK_TEST_FINALIZE"):
        return  # not a full session (e.g. --collect-only errors), or asked to finalise
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(config.stash[_EXIT_STATUS])
