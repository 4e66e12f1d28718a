"""Files through PyAV: every container/codec the scanners export decodes right."""

from __future__ import annotations

import numpy as np
import pytest

from sonorisk.io import open_video
from sonorisk.records import Frame

from .conftest import moving_frames  # noqa: TID252

CASES = [
    ("mjpeg.avi", "mjpeg", "mjpeg"),
    ("xvid.avi", "mpeg4", "mpeg4"),
    ("h264.avi", "h264", "h264"),
    ("raw.avi", "rawvideo", "rawvideo"),
    ("h264.mp4", "h264", "h264"),
    ("mjpeg.mov", "mjpeg", "mjpeg"),
    ("mpeg2.mpg", "mpeg2video", "mpeg2video"),
]


@pytest.mark.parametrize(("name", "codec", "decoder"), CASES)
def test_file_decodes_all_frames_with_metadata(make_video, name, codec, decoder):
    path = make_video(name, n=24, codec=codec, fps=30)
    originals = moving_frames(24)
    with open_video(path) as src:
        assert src.meta.codec == decoder
        assert (src.meta.width, src.meta.height) == (160, 120)
        assert src.meta.fps == pytest.approx(30, rel=0.01)
        assert not src.meta.is_live
        frames = list(src)
        assert src.stats.end_reason == "eof"
        assert src.stats.error is None
    assert len(frames) == 24
    assert src.stats.frames_delivered == 24 and src.stats.frames_dropped == 0
    assert [f.index for f in frames] == list(range(24))
    times = np.array([f.timestamp_s for f in frames])
    assert times[0] == 0.0
    np.testing.assert_allclose(np.diff(times), 1 / 30, rtol=0.02)
    for frame, original in zip(frames, originals, strict=True):
        assert isinstance(frame, Frame)
        assert frame.image.dtype == np.uint8 and frame.image.shape == (120, 160, 3)
        # Lossy codecs stay close to what was written, in the right order.
        err = np.abs(frame.image.astype(int) - original.astype(int)).mean()
        assert err < 6, f"frame {frame.index}: mean abs error {err:.1f}"


def test_gray_on_request(make_video):
    path = make_video("g.avi", n=5)
    with open_video(path, color="gray") as src:
        frames = list(src)
    assert all(f.image.shape == (120, 160) and f.image.dtype == np.uint8 for f in frames)
    rgb = moving_frames(5)[2].astype(float).mean(axis=2)
    assert np.abs(frames[2].image.astype(float) - rgb).mean() < 8


def test_closing_early_stops_the_decoder(make_video):
    path = make_video("long.avi", n=60)
    src = open_video(path)
    first = next(src)
    src.close()
    assert first.index == 0
    assert src.stats.end_reason == "closed"
    assert not src._thread.is_alive()
    with pytest.raises(StopIteration):
        next(src)


def test_bad_color_argument(make_video):
    with pytest.raises(ValueError, match="color"):
        open_video(make_video("c.avi", n=2), color="bgr")  # type: ignore[arg-type]


@pytest.mark.parametrize("codec", ["mjpeg", "mpeg4", "mpeg2video"])
def test_writer_keeps_one_quality_on_every_frame(tmp_path, codec) -> None:
    """The quantiser reaches the encoder: the 12th frame of a still scene is as
    close to the source as the first (a rate-controlled encoder, what ffmpeg's
    ``q:v`` given through PyAV left, blurs each frame more than the last)."""
    import cv2

    from sonorisk.io.writer import write_video

    rng = np.random.default_rng(0)
    image = cv2.GaussianBlur((rng.random((240, 320, 3)) * 255).astype(np.uint8), (0, 0), 1.5)
    path = tmp_path / f"still.{codec}.avi"
    assert write_video(path, [image] * 12, fps=30.0, codec=codec) == 12
    with open_video(path, color="rgb") as video:
        errors = [np.abs(f.image.astype(float) - image).mean() for f in video]
    assert len(errors) == 12
    assert errors[0] < 6.0  # near the source at q 3-4 (chroma is subsampled)
    assert max(errors) < errors[0] + 0.5


def test_writer_quantiser_sets_the_compression(tmp_path) -> None:
    from sonorisk.io.writer import VideoWriter, write_video

    rng = np.random.default_rng(1)
    image = (rng.random((120, 160, 3)) * 255).astype(np.uint8)
    sizes = {}
    for q in (2, 3, 10, 31):
        path = tmp_path / f"q{q}.avi"
        with VideoWriter(path, 30.0, 160, 120, "mjpeg", qscale=q) as writer:
            for _ in range(4):
                writer.write(image)
        sizes[q] = path.stat().st_size
    assert sizes[2] > sizes[3] > sizes[10] > sizes[31]
    write_video(tmp_path / "default.avi", [image] * 4, fps=30.0)
    assert (tmp_path / "default.avi").stat().st_size == sizes[3]  # MJPEG's default is 3
    with pytest.raises(ValueError, match="takes no quantiser"):
        VideoWriter(tmp_path / "x.mp4", 30.0, 160, 120, "h264", qscale=5)
    with pytest.raises(ValueError, match="2 \\(best\\) to 31"):
        VideoWriter(tmp_path / "y.avi", 30.0, 160, 120, "mjpeg", qscale=40)
