"""RTSP through PyAV against a real RTSP server on loopback (Debian rtsp-server-perl).

ffmpeg pushes a clip to the server's source port; sonorisk reads the client
port over UDP (the only transport this server offers clients).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sonorisk.errors import StreamDisconnectedError, StreamTimeoutError
from sonorisk.io import open_video
from sonorisk.io.writer import write_video

from ..rtsp_helpers import free_port as _free_port  # noqa: TID252
from ..rtsp_helpers import needs_rtsp_tools, start_pusher, stop_process, wait_for_stream  # noqa: TID252
from ..rtsp_helpers import rtsp_server as _rtsp_server  # noqa: TID252
from .conftest import moving_frames  # noqa: TID252

pytestmark = needs_rtsp_tools


@pytest.fixture(scope="module")
def rtsp_server() -> Iterator[tuple[int, int]]:
    """(client_port, source_port) of a running server; high ports need no root."""
    with _rtsp_server() as ports:
        yield ports


@pytest.fixture(scope="module")
def push_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rtsp") / "push.mp4"
    write_video(path, moving_frames(100, 160, 120), 25.0, "h264")
    return path


@pytest.fixture
def pusher(rtsp_server, push_clip) -> Iterator[tuple[str, object]]:
    """ffmpeg pushing the clip in a loop at real time; yields (client URL, process)."""
    client_port, source_port = rtsp_server
    name = f"live{time.monotonic_ns() % 100000}"
    proc = start_pusher(push_clip, source_port, name)
    url = f"rtsp://127.0.0.1:{client_port}/{name}"
    try:
        wait_for_stream(url, proc)
        yield url, proc
    finally:
        stop_process(proc)


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
    with (
        pytest.raises((StreamTimeoutError, StreamDisconnectedError)) as info,
        open_video(url, rtsp_transport="udp", open_timeout_s=5, read_timeout_s=read_timeout) as src,
    ):
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
