"""Jobs that take too long: a deadline per job, and /health's stuck workers (issue 15)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from sonorisk.errors import ConfigError
from sonorisk.serving.config import ServeConfig
from sonorisk.serving.jobs import JobRunner, JobStore

from .conftest import scored_document, wait_stored  # noqa: TID252


def test_a_worker_blocked_past_the_timeout_is_reported_stuck(tmp_path: Path):
    store = JobStore(f"sqlite:///{tmp_path / 'jobs.db'}", owner="a")
    release = threading.Event()
    entered = threading.Event()

    def blocked(job):
        entered.set()
        release.wait(60)  # a call that never returns, until the test lets it
        return scored_document(), {}

    runner = JobRunner(store, tmp_path / "r", blocked, workers=2, max_attempts=1, heartbeat=False)
    store.create("j1", "v.avi", tmp_path / "v.avi", 1)
    runner.submit("j1")
    assert entered.wait(60)
    time.sleep(0.3)
    report = runner.workers_report(timeout_s=0.1, grace_s=0.1)
    assert report["total"] == 2 and report["busy"] == 1 and report["stuck"] == ["j1"]
    assert report["longest_s"] >= 0.2
    assert runner.workers_report(timeout_s=None)["stuck"] == []  # no limit, never stuck
    assert runner.workers_report(timeout_s=60)["stuck"] == []
    release.set()
    assert wait_stored(store, "j1", 60.0).status == "done"
    deadline = time.monotonic() + 10
    while runner.workers_report(0.1, 0.1)["busy"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert runner.workers_report(timeout_s=0.1, grace_s=0.1) == {
        "total": 2,
        "busy": 0,
        "stuck": [],
        "longest_s": 0.0,
    }
    runner.shutdown()
    store.close()


def test_the_job_timeout_must_be_positive():
    config = ServeConfig()
    config.jobs.timeout_s = 0
    with pytest.raises(ConfigError, match="jobs.timeout_s"):
        config.validate()
    config.jobs.timeout_s = None
    config.validate()
