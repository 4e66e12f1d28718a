"""RTSP through PyAV against a real RTSP server on loopback (Debian rtsp-server-perl).

ffmpeg pushes a clip to the server's source port; sonorisk reads the client
port over UDP (the only transport this server offers clients).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sonorisk.errors import StreamDisconnectedError, StreamTimeoutError, VideoError
from sonorisk.io import open_video
from sonorisk.io.writer import write_video

from .conftest import moving_frames  # noqa: TID252

# Skipped only off CI: CI installs both (scripts/setup.sh), so there a missing
# tool fails the run instead of silently skipping the real-server tests.
pytestmark = pytest.mark.skipif(
    (shutil.which("rtsp-server-perl") is None or shutil.which("ffmpeg") is None)
    and not os.environ.get("CI"),
    reason="needs Debian packages rtsp-server-perl and ffmpeg",
)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_port(port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(0.2)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout_s} s")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(3)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(3)


@pytest.fixture(scope="module")
def rtsp_server() -> Iterator[tuple[int, int]]:
    """(client_port, source_port) of a running server; high ports need no root."""
    client_port, source_port = _free_port(), _free_port()
    proc = subprocess.Popen(
        ["rtsp-server-perl", "-c", str(client_port), "-s", str(source_port),
         "--client_listen_address", "127.0.0.1", "--source_listen_address", "127.0.0.1",
         "--rtp_start_port", str(20000 + client_port % 20000)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        _wait_port(client_port, 10)
        _wait_port(source_port, 10)
        yield client_port, source_port
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def push_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rtsp") / "push.mp4"
    write_video(path, moving_frames(100, 160, 120), 25.0, "h264")
    return path


@pytest.fixture
def pusher(rtsp_server, push_clip) -> Iterator[tuple[str, subprocess.Popen]]:
    """ffmpeg pushing the clip in a loop at real time; yields (client URL, process)."""
    client_port, source_port = rtsp_server
    name = f"live{time.monotonic_ns() % 100000}"
    proc = subprocess.Popen(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-re", "-stream_loop", "-1",
         "-i", str(push_clip), "-c:v", "mpeg4", "-q:v", "5", "-f", "rtsp",
         f"rtsp://127.0.0.1:{source_port}/{name}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"rtsp://127.0.0.1:{client_port}/{name}"
    try:
        deadline = time.monotonic() + 15
        while True:  # bounded: the push needs a moment to announce the stream
            try:
                with open_video(url, rtsp_transport="udp", open_timeout_s=2,
                                read_timeout_s=2) as probe:
                    next(probe)
                break
            except VideoError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.3)
        yield url, proc
    finally:
        _stop(proc)


def test_frames_arrive_from_a_live_push(pusher):
    url, _ = pusher
    with open_video(url, rtsp_transport="udp", open_timeout_s=5, read_timeout_s=5) as src:
        assert src.meta.is_live and src.meta.frame_count is None
        assert src.meta.codec == "mpeg4"
        assert (src.meta.width, src.meta.height) == (160, 120)
        frames = []
        for frame in src:
            frames.append(frame)
            if len(frames) == 20:
                break
    assert [f.image.shape for f in frames] == [(120, 160, 3)] * 20
    times = [f.timestamp_s for f in frames]
    assert times[0] == 0.0 and all(b > a for a, b in zip(times, times[1:], strict=False))
    assert 20 / 25 * 0.5 < times[-1] < 20 / 25 * 2  # roughly real time at 25 fps
    assert src.stats.frames_delivered == 20 and src.stats.end_reason == "closed"


def test_killing_the_pusher_gives_a_typed_end_in_bounded_time(pusher):
    url, proc = pusher
    read_timeout = 2.0
    got = 0
    with pytest.raises((StreamTimeoutError, StreamDisconnectedError)) as info, open_video(
        url, rtsp_transport="udp", open_timeout_s=5, read_timeout_s=read_timeout
    ) as src:
        for _ in src:
            got += 1
            if got == 10:
                proc.kill()  # the scanner's feed dies mid-stream
                killed = time.monotonic()
    waited = time.monotonic() - killed
    assert got >= 10
    assert waited < 3 * read_timeout + 3, f"took {waited:.1f} s to notice"
    assert url in str(info.value)
    assert src.stats.end_reason in ("timeout", "disconnected")
    assert src.stats.error is info.value


def test_nothing_listening_fails_fast():
    url = f"rtsp://127.0.0.1:{_free_port()}/live"
    start = time.monotonic()
    with pytest.raises(StreamDisconnectedError) as info:
        open_video(url, rtsp_transport="udp", open_timeout_s=5)
    assert time.monotonic() - start < 3
    assert url in str(info.value) and "could not connect" in str(info.value)


def test_silent_server_times_out_on_open():
    """A peer that accepts the connection and never answers: a typed timeout."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    accepted: list[socket.socket] = []
    thread = threading.Thread(target=lambda: accepted.append(server.accept()[0]), daemon=True)
    thread.start()
    url = f"rtsp://127.0.0.1:{port}/live"
    start = time.monotonic()
    try:
        with pytest.raises(StreamTimeoutError) as info:
            open_video(url, rtsp_transport="tcp", open_timeout_s=1.5, read_timeout_s=1.5)
    finally:
        for conn in accepted:
            conn.close()
        server.close()
    assert time.monotonic() - start < 6
    assert url in str(info.value)
