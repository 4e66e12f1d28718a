"""`sonorisk serve` as a service manager runs it: a process stopped with SIGTERM.

A real `sonorisk serve` subprocess with its own local Ray; nothing it started
may outlive it (issue 15: SIGTERM used to leave a Ray crash dump and two Ray
processes behind).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest
import yaml

from sonorisk.config import to_dict

from .conftest import TOKEN, service_config


def _wait_healthy(url: str, proc: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(
                f"sonorisk serve exited early with {proc.returncode}:\n"
                f"{proc.stdout.read()[-3000:] if proc.stdout else ''}"
            )
        try:
            if httpx.get(f"{url}/health", timeout=5).json().get("status") == "ok":
                return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(1.0)
    raise AssertionError(f"no healthy /health at {url} within {timeout_s} s")


def _alive(procs: list[psutil.Process]) -> list[str]:
    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(f"{p.pid} {p.name()}")
        except psutil.NoSuchProcess:
            pass
    return out


@pytest.mark.timeout(420)
def test_sigterm_stops_the_service_and_every_ray_process(serving_models, tmp_path: Path):
    config = service_config(serving_models, tmp_path / "data")
    config.ray.num_cpus = 2
    config.ray.object_store_memory = 200 * 1024**2
    config_file = tmp_path / "serve.yaml"
    config_file.write_text(yaml.safe_dump(to_dict(config)))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RAY_ADDRESS": ""}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sonorisk.cli", "serve", "--config", str(config_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{config.port}"
        _wait_healthy(url, proc, timeout_s=300)
        jobs = httpx.get(f"{url}/v1/jobs", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
        assert jobs.status_code == 200
        tree = psutil.Process(proc.pid).children(recursive=True)
        assert any("raylet" in p.name() or "gcs_server" in p.name() for p in tree), (
            "the service's own Ray was not found among its children"
        )

        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=180)
        assert proc.returncode == 0, output[-3000:]
        assert "SIGTERM received, shutting down" in output
        deadline = time.monotonic() + 30
        while _alive(tree) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _alive(tree) == [], "processes outlived sonorisk serve"
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{url}/health", timeout=3)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
