"""Bad input: each case gets its typed error naming the file and the reason."""

from __future__ import annotations

import contextlib
import os
import struct
import threading
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from sonorisk.errors import (
    CorruptVideoError,
    EmptyVideoError,
    NotAVideoError,
    StreamTimeoutError,
    TruncatedVideoError,
    UnsupportedVideoError,
    VideoError,
    VideoNotFoundError,
)
from sonorisk.io import open_video


def _assert_names(exc: VideoError, path: Path, *words: str) -> None:
    assert str(path) in str(exc), str(exc)
    assert exc.source == str(path)
    for word in words:
        assert word in exc.reason, exc.reason


def test_missing_file(tmp_path):
    path = tmp_path / "nope.avi"
    with pytest.raises(VideoNotFoundError) as info:
        open_video(path)
    _assert_names(info.value, path, "no such file")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.avi"
    path.write_bytes(b"")
    with pytest.raises(EmptyVideoError) as info:
        open_video(path)
    _assert_names(info.value, path, "empty")


def test_text_file_is_not_video(tmp_path):
    path = tmp_path / "notes.avi"
    path.write_text("patient notes, not a video\n" * 40)
    with pytest.raises(NotAVideoError) as info:
        open_video(path)
    _assert_names(info.value, path, "not a video")


def test_binary_junk_is_not_video(tmp_path):
    path = tmp_path / "junk.mp4"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(NotAVideoError) as info:
        open_video(path)
    _assert_names(info.value, path, "not a video")


def test_png_is_not_video(tmp_path):
    path = tmp_path / "still.png"
    cv2.imwrite(str(path), np.full((40, 60), 128, np.uint8))
    with pytest.raises(NotAVideoError) as info:
        open_video(path)
    _assert_names(info.value, path, "still image")


def test_directory_is_not_video(tmp_path):
    with pytest.raises(NotAVideoError) as info:
        open_video(tmp_path)
    _assert_names(info.value, tmp_path, "directory")


def test_truncated_avi_delivers_frames_then_reports(noisy_mjpeg, tmp_path):
    data = noisy_mjpeg.read_bytes()
    path = tmp_path / "cut.avi"
    path.write_bytes(data[: int(len(data) * 0.6)])
    with open_video(path) as src:
        frames = list(src)  # no exception: the frames before the cut are the result
    assert 15 <= len(frames) <= 26, len(frames)
    assert [f.index for f in frames] == list(range(len(frames)))
    assert src.stats.end_reason == "truncated"
    assert isinstance(src.stats.error, TruncatedVideoError)
    _assert_names(src.stats.error, path, "cut short")


def test_truncated_avi_strict_raises_after_frames(noisy_mjpeg, tmp_path):
    data = noisy_mjpeg.read_bytes()
    path = tmp_path / "cut.avi"
    path.write_bytes(data[: int(len(data) * 0.6)])
    got = []
    with pytest.raises(TruncatedVideoError) as info, open_video(path, strict=True) as src:
        for frame in src:
            got.append(frame)
    assert len(got) >= 15
    _assert_names(info.value, path, "cut short")


def test_truncated_mp4_without_index(make_video, tmp_path):
    data = make_video("v.mp4", n=30, codec="h264").read_bytes()
    path = tmp_path / "cut.mp4"
    path.write_bytes(data[: int(len(data) * 0.6)])
    with pytest.raises(TruncatedVideoError) as info:
        open_video(path)
    _assert_names(info.value, path, "cut short", "mdat")


def test_corrupt_middle_delivers_the_rest_and_counts_drops(noisy_mjpeg, tmp_path):
    data = bytearray(noisy_mjpeg.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 3000] = np.random.default_rng(2).integers(0, 256, 3000, np.uint8).tobytes()
    path = tmp_path / "corrupt.avi"
    path.write_bytes(bytes(data))
    with open_video(path) as src:
        frames = list(src)
    assert src.stats.frames_dropped >= 1
    assert len(frames) + src.stats.frames_dropped == 40
    assert len(frames) >= 30
    assert frames[-1].index == 39 or src.stats.frames_dropped > 0
    assert src.stats.end_reason == "eof"
    assert isinstance(src.stats.error, CorruptVideoError)
    _assert_names(src.stats.error, path, "undecodable")
    # Strict mode raises the same error at the end.
    with pytest.raises(CorruptVideoError), open_video(path, strict=True) as src:
        list(src)


def test_zero_frames(tmp_path):
    path = tmp_path / "zero.avi"
    container = av.open(str(path), "w")
    stream = container.add_stream("mjpeg", rate=25)
    stream.width, stream.height, stream.pix_fmt = 64, 48, "yuvj420p"
    container.start_encoding()
    container.close()
    assert path.stat().st_size > 0
    with pytest.raises(EmptyVideoError) as info, open_video(path) as src:
        next(src)
    _assert_names(info.value, path, "zero frames")


def _patch_avi_size(src: Path, dst: Path, width: int, height: int) -> None:
    data = bytearray(src.read_bytes())
    avih = data.index(b"avih")
    struct.pack_into("<ii", data, avih + 40, width, height)
    strf = data.index(b"strf")
    struct.pack_into("<ii", data, strf + 12, width, height)
    dst.write_bytes(bytes(data))


@pytest.mark.parametrize("codec", ["rawvideo", "mjpeg"])
@pytest.mark.parametrize(("width", "height", "word"),
                         [(100000, 100000, "100000x100000"), (0, 0, "0x0")])
def test_absurd_dimensions_refused_before_decoding(make_video, tmp_path, codec, width,
                                                   height, word):
    good = make_video(f"good_{codec}.avi", n=5, codec=codec)
    path = tmp_path / f"absurd_{codec}.avi"
    _patch_avi_size(good, path, width, height)
    with pytest.raises(UnsupportedVideoError) as info:
        open_video(path)
    _assert_names(info.value, path, word)


def test_stalled_read_hits_the_watchdog(make_video, tmp_path):
    """A FIFO that sends most of a file and then goes quiet: a typed timeout, no hang."""
    fifo = tmp_path / "pipe.ts"
    os.mkfifo(fifo)
    # MPEG-TS: made for streaming, so probing a pipe does not wait for the end.
    data = make_video("src.ts", n=200, codec="mpeg2video", width=64, height=48).read_bytes()
    release = threading.Event()

    def writer() -> None:
        try:
            with open(fifo, "wb") as fh:
                fh.write(data[: int(len(data) * 0.8)])
                fh.flush()
                release.wait(30)  # keep the pipe open and silent
        except BrokenPipeError:
            pass  # the reader gave up first: that is what the test provokes

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    start = time.monotonic()
    got = 0
    try:
        with pytest.raises(StreamTimeoutError) as info, open_video(
            fifo, open_timeout_s=5, read_timeout_s=1, frame_timeout_s=2
        ) as src:
            for _ in src:
                got += 1
    finally:
        release.set()
        thread.join(5)
    elapsed = time.monotonic() - start
    assert got >= 1  # what arrived before the stall was delivered
    assert elapsed < 15
    _assert_names(info.value, fifo, "no frame within")
    assert src.stats.end_reason == "timeout"


def test_open_of_silent_fifo_times_out(tmp_path):
    fifo = tmp_path / "silent.avi"
    os.mkfifo(fifo)
    start = time.monotonic()
    try:
        with pytest.raises(StreamTimeoutError) as info:
            open_video(fifo, open_timeout_s=1)
    finally:
        # Open and close a writer: the worker stuck in open() sees EOF and ends.
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    assert time.monotonic() - start < 8
    _assert_names(info.value, fifo, "could not open within")


def test_header_claiming_four_billion_frames_costs_what_the_file_holds(make_video, tmp_path):
    """An AVI whose header lists 2**32-1 frames: the frames it holds, one notice, no hang."""
    good = make_video("five.avi", n=5, codec="mjpeg")
    data = bytearray(good.read_bytes())
    struct.pack_into("<I", data, data.index(b"avih") + 24, 0xFFFFFFFF)  # dwTotalFrames
    struct.pack_into("<I", data, data.index(b"strh") + 40, 0xFFFFFFFF)  # the stream's dwLength
    path = tmp_path / "claims.avi"
    path.write_bytes(bytes(data))
    started = time.perf_counter()
    with open_video(path) as src:
        frames = src.read_all()
        stats = src.stats
    assert time.perf_counter() - started < 30
    assert len(frames) == 5
    if stats.frames_dropped:  # the claim was believed: said once, in one notice
        assert stats.frames_dropped == 0xFFFFFFFF - 5
        assert isinstance(stats.error, CorruptVideoError)
        assert sum("listed in the header" in n for n in stats.messages) == 1


def test_an_implausible_header_frame_rate_is_said(make_video, tmp_path):
    good = make_video("rate.avi", n=5, codec="mjpeg")
    data = bytearray(good.read_bytes())
    strh = data.index(b"strh")
    struct.pack_into("<II", data, strh + 28, 1, 1_000_000)  # dwScale, dwRate: 1e6 fps
    path = tmp_path / "million_fps.avi"
    path.write_bytes(bytes(data))
    with open_video(path) as src:
        frames = src.read_all()
        assert src.meta.fps == 1_000_000
        messages = src.stats.messages
    assert len(frames) == 5
    assert any("implausible frame rate 1e+06 fps" in m for m in messages), messages
    with open_video(good) as src:  # an ordinary rate says nothing
        src.read_all()
        assert not any("implausible" in m for m in src.stats.messages)
