"""Thread sizing and the OpenMP wait policy (sonorisk/threads.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sonorisk import threads


def test_cgroup_v2_quota_caps_cpus(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert threads._cgroup_cpus(tmp_path) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert threads._cgroup_cpus(tmp_path) is None


def test_cgroup_v1_quota(tmp_path: Path) -> None:
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("300000\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert threads._cgroup_cpus(tmp_path) == 3.0
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")  # no limit
    assert threads._cgroup_cpus(tmp_path) is None
    assert threads._cgroup_cpus(tmp_path / "missing") is None


def test_cpu_count_respects_affinity_and_quota(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5, 6, 7})
    monkeypatch.setattr(threads, "_cgroup_cpus", lambda: 2.5)
    assert threads.cpu_count() == 2  # a container limited to 2.5 CPUs on an 8-core host
    monkeypatch.setattr(threads, "_cgroup_cpus", lambda: None)
    assert threads.cpu_count() == 8
    monkeypatch.setattr(threads, "_cgroup_cpus", lambda: 0.5)
    assert threads.cpu_count() == 1  # never zero


def test_sizing_never_oversubscribes() -> None:
    for cpus in (1, 2, 3, 8, 16):
        for n in (1, 2, 3, 4, 5):
            t = threads.threads_per_process(n, cpus)
            p = threads.processes_for(n, cpus)
            assert t >= 1 and p >= 1
            assert n * t <= max(cpus, n)  # more processes than cores: one thread each
            assert p * n <= max(cpus, n)
    assert threads.threads_per_process(2, 8) == 4
    assert threads.processes_for(3, 8) == 2
    with pytest.raises(ValueError, match="processes"):
        threads.threads_per_process(0, 2)
    with pytest.raises(ValueError, match="threads"):
        threads.processes_for(0, 2)


def _child(code: str, env: dict[str, str]) -> str:
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return out.stdout.strip()


def test_importing_sonorisk_makes_openmp_passive_before_torch_loads() -> None:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    # The policy is in the environment by the time torch (and libgomp) load.
    code = (
        "import os, sys, sonorisk; assert 'torch' not in sys.modules; "
        "print(os.environ.get('OMP_WAIT_POLICY'))"
    )
    assert _child(code, env) == "PASSIVE"
    # A value the user set is kept.
    assert _child(code, {**env, "OMP_WAIT_POLICY": "ACTIVE"}) == "ACTIVE"


def test_set_torch_threads_in_a_fresh_process() -> None:
    code = (
        "from sonorisk.threads import set_torch_threads; import torch; "
        "set_torch_threads(1); print(torch.get_num_threads(), "
        "torch.get_num_interop_threads())"
    )
    assert _child(code, dict(os.environ)) == "1 1"


def test_child_env_carries_policy_and_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert threads.child_env(3) == {
        "OMP_WAIT_POLICY": "PASSIVE",
        "OMP_NUM_THREADS": "3",
        "MKL_NUM_THREADS": "3",
    }
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert threads.child_env(0)["OMP_WAIT_POLICY"] == "ACTIVE"
    assert threads.child_env(0)["OMP_NUM_THREADS"] == "1"


def test_set_torch_threads_sets_opencv_threads_too() -> None:
    code = (
        "from sonorisk.threads import set_torch_threads; import cv2; "
        "set_torch_threads(1); print(cv2.getNumThreads())"
    )
    assert _child(code, dict(os.environ)) == "1"


def test_set_niceness_lowers_every_thread_and_never_raises_priority() -> None:
    # In a child: the test process keeps its own priority.
    code = (
        "import os, threading, time\n"
        "from sonorisk.threads import set_niceness\n"
        "stop = threading.Event()\n"
        "worker = threading.Thread(target=stop.wait); worker.start()\n"
        "base = os.getpriority(os.PRIO_PROCESS, 0)\n"
        "set_niceness(base + 4)\n"
        "tids = [int(t) for t in os.listdir('/proc/self/task')]\n"
        "levels = {os.getpriority(os.PRIO_PROCESS, t) for t in tids}\n"
        "set_niceness(base)  # asks for more priority: left as it is\n"
        "after = {os.getpriority(os.PRIO_PROCESS, t) for t in tids}\n"
        "late = []\n"
        "t = threading.Thread(target=lambda: late.append(os.getpriority(os.PRIO_PROCESS, 0)))\n"
        "t.start(); t.join(); stop.set(); worker.join()\n"
        "print(len(tids), sorted(levels) == [base + 4], after == levels, late == [base + 4])"
    )
    assert _child(code, dict(os.environ)) == "2 True True True"
