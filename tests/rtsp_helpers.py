"""A real RTSP server on loopback (Debian rtsp-server-perl) and ffmpeg pushers.

Shared by tests/io (reading RTSP through PyAV) and tests/serving (live
streams through the HTTP API). The server offers clients UDP only; ffmpeg
pushes to its source port with ``-re ... -f rtsp``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

# Skipped only off CI: CI installs both (scripts/setup.sh), so there a missing
# tool fails the run instead of silently skipping the real-server tests.
needs_rtsp_tools = pytest.mark.skipif(
    (shutil.which("rtsp-server-perl") is None or shutil.which("ffmpeg") is None)
    and not os.environ.get("CI"),
    reason="needs Debian packages rtsp-server-perl and ffmpeg",
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(0.2)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout_s} s")


def stop_process(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(3)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(3)


def _niced(niceness: int):  # noqa: ANN202 (a preexec_fn, or None)
    return (lambda: os.nice(niceness)) if niceness else None


@contextmanager
def rtsp_server(niceness: int = 0) -> Iterator[tuple[int, int]]:
    """(client_port, source_port) of a running server; high ports need no root.
    ``niceness``: run it at that lower priority (benchmarks)."""
    client_port, source_port = free_port(), free_port()
    proc = subprocess.Popen(
        [
            "rtsp-server-perl",
            "-c",
            str(client_port),
            "-s",
            str(source_port),
            "--client_listen_address",
            "127.0.0.1",
            "--source_listen_address",
            "127.0.0.1",
            "--rtp_start_port",
            str(20000 + client_port % 20000),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=_niced(niceness),
    )
    try:
        wait_port(client_port, 10)
        wait_port(source_port, 10)
        yield client_port, source_port
    finally:
        stop_process(proc)


def start_pusher(
    clip: Path,
    source_port: int,
    name: str,
    *,
    loop: bool = True,
    codec_args: tuple[str, ...] = ("-c:v", "mpeg4", "-q:v", "5"),
    niceness: int = 0,
) -> subprocess.Popen:
    """ffmpeg pushing ``clip`` at real time (``-re``) to ``rtsp://.../name``;
    ``niceness``: at that lower priority (benchmarks)."""
    args = ["ffmpeg", "-nostdin", "-loglevel", "error", "-re"]
    if loop:
        args += ["-stream_loop", "-1"]
    args += ["-i", str(clip), *codec_args, "-f", "rtsp", f"rtsp://127.0.0.1:{source_port}/{name}"]
    return subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_niced(niceness)
    )


def wait_for_stream(url: str, proc: subprocess.Popen, timeout_s: float = 15.0) -> None:
    """Bounded: the push needs a moment to announce the stream."""
    from sonorisk.errors import VideoError
    from sonorisk.io import open_video

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with open_video(url, rtsp_transport="udp", open_timeout_s=2, read_timeout_s=2) as probe:
                next(probe)
            return
        except VideoError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise
            time.sleep(0.3)
