"""Checks on an uploaded file before any scoring: size, magic bytes, container probe.

Each refusal is an ``UploadRejected`` carrying the HTTP status and a reason
that names what is wrong: 413 too large, 415 not a video (wrong content type,
still image, text, unknown bytes, no video stream), 422 a video that cannot be
scored (empty, truncated, corrupt, absurd dimensions).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path

from sonorisk.errors import (
    CorruptVideoError,
    EmptyVideoError,
    InputError,
    NotAVideoError,
    TruncatedVideoError,
    UnsupportedVideoError,
    VideoError,
)

# Containers sonorisk reads (docs/video-input.md), by their first bytes.
_MAGIC: list[tuple[int, bytes, str]] = [
    (0, b"RIFF", "avi"),
    (4, b"ftyp", "mp4/mov"),
    (4, b"moov", "mov"),
    (4, b"mdat", "mov"),
    (4, b"free", "mov"),
    (4, b"wide", "mov"),
    (4, b"skip", "mov"),
    (0, b"\x1a\x45\xdf\xa3", "matroska/webm"),
    (0, b"\x00\x00\x01\xba", "mpeg-ps"),
    (0, b"\x00\x00\x01\xb3", "mpeg video"),
    (0, b"FLV", "flv"),
    (0, b"\x30\x26\xb2\x75\x8e\x66\xcf\x11", "asf/wmv"),
    (128, b"DICM", "dicom"),
]
# What a refused file most likely is, for the reason text.
_KNOWN_NOT_VIDEO: list[tuple[bytes, str]] = [
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"BM", "a BMP image"),
]


class UploadRejected(Exception):
    """An upload refused with an HTTP status and a reason."""

    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(f"{status}: {reason}")


@dataclass(frozen=True)
class UploadInfo:
    container: str
    codec: str
    width: int
    height: int
    fps: float | None
    frame_count: int | None


def check_content_type(content_type: str | None, allowed: list[str]) -> None:
    if not content_type:
        return
    kind = content_type.split(";")[0].strip().lower()
    if not any(fnmatch.fnmatch(kind, pattern) for pattern in allowed):
        raise UploadRejected(415, f"content type {kind!r} is not a video; send the file's "
                                  f"bytes as one of {allowed}")


def check_declared_size(content_length: str | None, max_bytes: int) -> None:
    if content_length is None:
        return
    try:
        size = int(content_length)
    except ValueError:
        raise UploadRejected(400, f"bad Content-Length {content_length!r}") from None
    if size > max_bytes:
        raise UploadRejected(413, f"upload of {size} bytes exceeds the limit of "
                                  f"{max_bytes} bytes")


def _looks_like_text(head: bytes) -> bool:
    if not head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(b >= 9 for b in head)


def sniff_magic(head: bytes) -> str:
    """The container the first bytes announce; ``UploadRejected(415)`` if none."""
    for offset, magic, name in _MAGIC:
        if head[offset:offset + len(magic)] == magic:
            if name == "avi" and head[8:12] != b"AVI ":
                kind = head[8:12].decode("latin-1", "replace")
                raise UploadRejected(415, f"not a video: a RIFF file of type {kind!r} "
                                          "(e.g. WAV), not AVI")
            return name
    if len(head) >= 376 and head[0] == 0x47 and head[188] == 0x47:
        return "mpeg-ts"
    for magic, what in _KNOWN_NOT_VIDEO:
        if head.startswith(magic):
            raise UploadRejected(415, f"not a video: the content is {what}")
    if _looks_like_text(head[:512]):
        raise UploadRejected(415, "not a video: the content is text")
    raise UploadRejected(415, f"not a video: unknown content starting with {head[:8]!r} "
                              "(accepted: AVI, MP4/MOV, MKV/WebM, MPEG-PS/TS, FLV, "
                              "DICOM cine)")


def check_upload(path: Path) -> UploadInfo:
    """Magic bytes, then a container probe that decodes at most the first frame."""
    from sonorisk.io import open_video

    size = path.stat().st_size
    if size == 0:
        raise UploadRejected(422, "empty upload (0 bytes)")
    with path.open("rb") as fh:
        head = fh.read(1024)
    container = sniff_magic(head)
    try:
        with open_video(path, color="rgb", open_timeout_s=10, frame_timeout_s=15,
                        strict=True) as source:
            meta = source.meta
            next(iter(source))  # decode the first frame only
    except StopIteration:
        raise UploadRejected(422, "corrupt video: no decodable frame") from None
    except (NotAVideoError, UnsupportedVideoError) as exc:
        raise UploadRejected(415, _reason(exc)) from exc
    except EmptyVideoError as exc:
        raise UploadRejected(422, f"empty video: {_reason(exc)}") from exc
    except TruncatedVideoError as exc:
        raise UploadRejected(422, f"truncated video: {_reason(exc)}") from exc
    except CorruptVideoError as exc:
        raise UploadRejected(422, f"corrupt video: {_reason(exc)}") from exc
    except VideoError as exc:
        raise UploadRejected(422, f"unreadable video: {_reason(exc)}") from exc
    # A clean first frame of a file whose container declares more bytes than
    # arrived: refuse now rather than score half a video.
    from sonorisk.io.probe import truncation_reason

    cut = truncation_reason(path)
    if cut is not None:
        raise UploadRejected(422, f"truncated video: {cut}")
    return UploadInfo(container, meta.codec, meta.width, meta.height, meta.fps,
                      meta.frame_count)


def _reason(exc: InputError) -> str:
    return exc.reason
