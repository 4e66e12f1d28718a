"""``open_video``: the one entry point for files and live streams."""

from __future__ import annotations

from pathlib import Path

from sonorisk.errors import NotAVideoError
from sonorisk.io.dicom_source import DicomSource, is_dicom
from sonorisk.io.pyav_source import PyAVSource, sniff_file
from sonorisk.io.source import Color, VideoSource
from sonorisk.io.still import raster_format

# URL schemes that are live feeds: they never end normally, and a silent peer
# is a timeout, not the end of a file.
LIVE_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "udp://", "srt://", "tcp://")


def is_live_url(source: str | Path) -> bool:
    return isinstance(source, str) and source.lower().startswith(LIVE_SCHEMES)


def open_video(
    source: str | Path,
    *,
    color: Color = "rgb",
    open_timeout_s: float = 10.0,
    read_timeout_s: float = 10.0,
    frame_timeout_s: float = 30.0,
    strict: bool = False,
    rtsp_transport: str | None = None,
    options: dict[str, str] | None = None,
    dicom_fallback_fps: float = 30.0,
) -> VideoSource:
    """Open a video file, DICOM cine or live URL as a ``VideoSource``.

    Dispatch: ``rtsp://`` (and other live schemes) go to PyAV with network
    timeouts; a file with the DICOM magic (``DICM`` at byte 128) goes to
    pydicom; anything else to PyAV.

    ``open_timeout_s``/``read_timeout_s``: PyAV's network (and I/O interrupt)
    timeouts. ``frame_timeout_s``: the watchdog on each wait for a frame.
    ``strict``: raise the ``TruncatedVideoError``/``CorruptVideoError`` of a
    damaged file at its end instead of only recording it in ``stats``.
    ``rtsp_transport``: ``"udp"``, ``"tcp"``, ... (FFmpeg's default when None).
    ``dicom_fallback_fps``: timestamps for a cine without any frame-time tag
    (its ``meta.fps`` stays None).
    """
    if is_live_url(source):
        url = str(source)
        opts = dict(options or {})
        if rtsp_transport:
            opts["rtsp_transport"] = rtsp_transport
        return PyAVSource(
            url,
            color=color,
            open_timeout_s=open_timeout_s,
            read_timeout_s=read_timeout_s,
            frame_timeout_s=frame_timeout_s,
            live=True,
            strict=strict,
            options=opts,
        )
    if isinstance(source, str) and "://" in source:
        # Other URLs (http, file) are finite files read through FFmpeg.
        return PyAVSource(
            source,
            color=color,
            open_timeout_s=open_timeout_s,
            read_timeout_s=read_timeout_s,
            frame_timeout_s=frame_timeout_s,
            strict=strict,
            options=options,
        )
    path = Path(source)
    sniff_file(path)
    # Told by its bytes before FFmpeg "opens" it as a one-frame video; a FIFO is
    # not read here (that would eat the stream).
    still = raster_format(path) if path.is_file() else None
    if still is not None:
        raise NotAVideoError(
            path,
            f"is a still image ({still.upper()}), not a video: "
            "`sonorisk score` scores it as a still image",
        )
    if is_dicom(path):
        return DicomSource(
            str(path),
            color=color,
            open_timeout_s=open_timeout_s,
            frame_timeout_s=frame_timeout_s,
            strict=strict,
            fallback_fps=dicom_fallback_fps,
        )
    return PyAVSource(
        str(path),
        color=color,
        open_timeout_s=open_timeout_s,
        read_timeout_s=read_timeout_s,
        frame_timeout_s=frame_timeout_s,
        strict=strict,
        options=options,
    )
