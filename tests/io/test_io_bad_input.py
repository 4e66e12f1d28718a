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
@pytest.mark.parametrize(
    ("width", "height", "word"), [(100000, 100000, "100000x100000"), (0, 0, "0x0")]
)
def test_absurd_dimensions_refused_before_decoding(
    make_video, tmp_path, codec, width, height, word
):
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
        with (
            pytest.raises(StreamTimeoutError) as info,
            open_video(fifo, open_timeout_s=5, read_timeout_s=1, frame_timeout_s=2) as src,
        ):
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
        frames = list(src)
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
        frames = list(src)
        assert src.meta.fps == 1_000_000
        messages = src.stats.messages
    assert len(frames) == 5
    assert any("implausible frame rate 1e+06 fps" in m for m in messages), messages
    with open_video(good) as src:  # an ordinary rate says nothing
        list(src)
        assert not any("implausible" in m for m in src.stats.messages)


# --- issue 15: truncated MP4s, non-regular files, errors that name the input ---
def _mp4_boxes(data: bytes) -> dict[bytes, tuple[int, int]]:
    """Top-level box type -> (offset, size) of an MP4 as written."""
    boxes, offset = {}, 0
    while offset < len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        boxes[kind] = (offset, size)
        offset += size
    return boxes


def test_mp4_cut_before_its_index_is_truncated_not_unreadable(make_video, tmp_path):
    """A recording stopped before the index ('moov', written last) was saved:
    every box is whole, FFmpeg says only "invalid data"."""
    data = make_video("v.mp4", n=30, codec="h264").read_bytes()
    moov_at, _ = _mp4_boxes(data)[b"moov"]
    path = tmp_path / "no_index.mp4"
    path.write_bytes(data[:moov_at])
    with pytest.raises(TruncatedVideoError) as info:
        open_video(path)
    _assert_names(info.value, path, "cut short", "'moov'")


@pytest.mark.parametrize(
    ("keep", "word"),
    [(0, "no 'mdat' box"), (4, "box header cut"), (8, "'mdat' box"), (500, "'mdat' box")],
)
def test_faststart_mp4_cut_after_its_index_is_truncated_not_zero_frames(
    make_video, tmp_path, keep, word
):
    """Index first (faststart), cut at or into the frames: it was "a video
    stream with zero frames" or "none of its 1 frames could be decoded"."""
    import subprocess

    source = make_video("v.mp4", n=30, codec="h264")
    moved = tmp_path / "faststart.mp4"
    subprocess.run(
        [
            "ffmpeg",
            "-y",
            "-loglevel",
            "error",
            "-i",
            str(source),
            "-c",
            "copy",
            "-movflags",
            "+faststart",
            str(moved),
        ],
        check=True,
    )
    data = moved.read_bytes()
    boxes = _mp4_boxes(data)
    assert boxes[b"moov"][0] < boxes[b"mdat"][0]
    path = tmp_path / f"cut{keep}.mp4"
    path.write_bytes(data[: boxes[b"mdat"][0] + keep])
    with pytest.raises(TruncatedVideoError) as info, open_video(path) as src:
        list(src)
    _assert_names(info.value, path, "cut short", word)
    assert "zero frames" not in info.value.reason


@pytest.mark.parametrize(
    ("device", "kind"), [("/dev/zero", "character device"), ("/dev/null", "character device")]
)
def test_a_device_is_refused_by_its_kind_not_called_empty(device, kind):
    """/dev/zero was "file is empty (0 bytes)": it is a device, and endless."""
    with pytest.raises(NotAVideoError) as info:
        open_video(device)
    _assert_names(info.value, Path(device), kind, "not a regular file")


def test_a_socket_is_refused_by_its_kind(tmp_path):
    import socket

    path = tmp_path / "probe.avi"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(path))
        with pytest.raises(NotAVideoError) as info:
            open_video(path)
    _assert_names(info.value, path, "socket", "not a regular file")


def _size_changing_ts(make_video, tmp_path) -> Path:
    """MPEG-TS allows a new stream configuration mid-file: 20 frames of 160x120,
    then 20 of 128x96 (two files joined byte by byte)."""
    first = make_video("a.ts", n=20, codec="mpeg2video", width=160, height=120)
    second = make_video("b.ts", n=20, codec="mpeg2video", width=128, height=96, seed=1)
    path = tmp_path / "two_sizes.ts"
    path.write_bytes(first.read_bytes() + second.read_bytes())
    return path


def test_a_frame_size_change_is_noted_where_it_happens(make_video, tmp_path):
    path = _size_changing_ts(make_video, tmp_path)
    with open_video(path) as src:
        frames = list(src)
        notes = src.stats.messages
    assert {f.image.shape[:2] for f in frames} == {(120, 160), (96, 128)}
    changes = [n for n in notes if "frame size changed" in n]
    assert len(changes) == 1 and "from 160x120 to 128x96" in changes[0], notes
    first_small = next(f.index for f in frames if f.image.shape[:2] == (96, 128))
    assert changes[0].startswith(f"frame {first_small}:")


def test_info_crop_on_a_size_change_names_the_file_instead_of_a_traceback(
    make_video, tmp_path, capsys
):
    from sonorisk.cli import main

    path = _size_changing_ts(make_video, tmp_path)
    assert main(["info", str(path), "--crop"]) == 1  # was a ValueError traceback
    err = capsys.readouterr().err
    assert f"{path}: error: frame size changes within the video" in err, err
    assert "from 160x120 to 128x96" in err and "UnsupportedVideoError" in err
    assert main(["info", str(path)]) == 0  # without --crop: decoded, the change noted
    assert "note: frame" in capsys.readouterr().out


def test_error_text_leaves_out_the_path_inside_the_exception():
    """OSError and FFmpeg errors carry a file name of their own (resolved, or a
    server's temporary copy); our messages name the input as the user gave it."""
    from sonorisk.io.source import error_text

    hidden = "/srv/uploads/tmp-4f2a/upload.mp4"
    os_error = PermissionError(13, "Permission denied", hidden)
    ffmpeg_error = av.error.InvalidDataError(1094995529, "Invalid data found", hidden)
    assert hidden in str(os_error) and hidden in str(ffmpeg_error)
    assert error_text(os_error) == "PermissionError: Permission denied"
    assert error_text(ffmpeg_error) == "InvalidDataError: Invalid data found"
    assert error_text(ValueError("bad header")) == "ValueError: bad header"


def test_errors_name_the_input_as_given_and_no_other_path(make_video, tmp_path, monkeypatch):
    """Given a relative path, no message (error or decode note) holds an absolute one."""
    data = make_video("v.mp4", n=30, codec="h264").read_bytes()
    noisy = bytearray(make_video("n.avi", n=40, codec="mjpeg").read_bytes())
    span = len(noisy) // 5  # several frames and their chunk headers, whatever the frame size
    noisy[len(noisy) // 2 : len(noisy) // 2 + span] = bytes(span)
    inputs = {
        "junk.mp4": bytes(range(256)) * 20,
        "cut.mp4": data[: len(data) // 2],
        "no_index.mp4": data[: _mp4_boxes(data)[b"moov"][0]],
        "damaged.avi": bytes(noisy),
        "empty.avi": b"",
    }
    monkeypatch.chdir(tmp_path)
    for name, content in inputs.items():
        Path(name).write_bytes(content)
        texts = []
        try:
            with open_video(name) as src:
                list(src)
                texts = [str(src.stats.error or ""), *src.stats.messages]
        except VideoError as exc:
            assert exc.source == name
            texts = [str(exc)]
        assert texts[0].startswith(f"{name}: "), texts
        assert not any(str(tmp_path) in text for text in texts), texts
