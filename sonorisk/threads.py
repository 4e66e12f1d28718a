"""Threads per process, and why OpenMP must not spin.

Every process sonorisk starts (batch workers, Serve replicas, training, the
tests) runs torch, and torch's CPU kernels run on an OpenMP thread pool. By
default GNU OpenMP threads *spin* for a while after each parallel region,
waiting for the next one. On a machine with spare cores that is a small gain;
on a shared machine it is a cliff: measured on a 2-core machine, two torch
processes with 2 threads each ran 1000 small convolutions in 31 s against
0.58 s with ``OMP_WAIT_POLICY=PASSIVE`` (a detector training step: 28 s
against 2.1 s), because each process's spinning threads take the cores the
other needs (``benchmarks/threads.py`` measures it side by side).

So:

1. ``OMP_WAIT_POLICY=PASSIVE`` is set as the default when ``sonorisk`` is
   imported (libgomp reads it once, when torch loads it, so it must be in the
   environment before ``import torch``; every entry point imports ``sonorisk``
   first). An explicit value in the environment is kept.
2. Processes are sized so that threads x processes <= the CPUs this process
   may use (:func:`cpu_count`, which respects affinity masks and cgroup
   quotas: a container limited to 2 CPUs on a 64-core host has 2).
3. Child processes inherit the policy (:func:`child_env` for Ray workers,
   which do not inherit the driver's environment).

docs/performance.md says how to size threads, workers and replicas.
"""

from __future__ import annotations

import contextlib
import math
import os
from pathlib import Path

WAIT_POLICY = "PASSIVE"


def passive_openmp() -> None:
    """Default ``OMP_WAIT_POLICY`` to PASSIVE (a value already set is kept)."""
    os.environ.setdefault("OMP_WAIT_POLICY", WAIT_POLICY)


def _cgroup_cpus(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """The CPU quota of this cgroup (v2 ``cpu.max`` or v1 cfs files), or None."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        if quota != "max":
            return int(quota) / int(period)
        return None
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None


def cpu_count() -> int:
    """CPUs this process may really use: the affinity mask, capped by a cgroup quota."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        n = os.cpu_count() or 1
    quota = _cgroup_cpus()
    if quota is not None:
        n = min(n, max(1, math.floor(quota)))
    return max(1, n)


def threads_per_process(processes: int, cpus: int | None = None) -> int:
    """Torch threads for each of ``processes`` processes sharing ``cpus`` CPUs."""
    if processes < 1:
        raise ValueError(f"processes must be >= 1, got {processes}")
    return max(1, (cpus if cpus is not None else cpu_count()) // processes)


def processes_for(threads: int, cpus: int | None = None) -> int:
    """How many processes of ``threads`` threads each fit on ``cpus`` CPUs (>= 1)."""
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    return max(1, (cpus if cpus is not None else cpu_count()) // threads)


def set_torch_threads(threads: int) -> None:
    """Torch intra-op threads for this process, and one inter-op thread; OpenCV's
    threads the same.

    sonorisk runs one model call at a time per process, so inter-op
    parallelism only adds threads that compete with the intra-op pool.
    """
    import torch

    torch.set_num_threads(max(1, threads))
    # Raises once set, or once parallel work ran: then the value stands.
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(1)
    # OpenCV (optical flow, resizing, cropping) gets the same count: its own
    # default is every core, which competes with the models on a busy machine.
    with contextlib.suppress(ImportError):
        import cv2

        cv2.setNumThreads(max(1, threads))


def set_niceness(niceness: int) -> None:
    """Run every thread of this process at ``niceness`` (Linux schedules threads,
    so each is set; threads started later inherit it from their starter). Only
    lowering priority needs no privilege: a value below the current one is left."""
    tasks = Path("/proc/self/task")
    ids = [int(t.name) for t in tasks.iterdir()] if tasks.is_dir() else [0]
    for tid in ids:
        with contextlib.suppress(OSError):  # a thread that just ended
            if os.getpriority(os.PRIO_PROCESS, tid) < niceness:
                os.setpriority(os.PRIO_PROCESS, tid, niceness)


def child_env(threads: int) -> dict[str, str]:
    """Environment for a child process that runs ``threads`` torch threads."""
    n = str(max(1, threads))
    return {
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", WAIT_POLICY),
        "OMP_NUM_THREADS": n,
        "MKL_NUM_THREADS": n,
    }
