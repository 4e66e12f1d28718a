"""Checks on an uploaded file before any scoring: size, magic bytes, container probe.

Videos and still images (PNG, JPEG, TIFF, BMP; a single-frame DICOM) are
accepted. Each refusal is an ``UploadRejected`` carrying the HTTP status and a
reason that names what is wrong: 413 too large, 415 neither a video nor a still
image sonorisk reads (wrong content type, GIF, text, unknown bytes, no video
stream), 422 a file that cannot be scored (empty, truncated, corrupt, absurd
dimensions; an image the still reader refuses: corrupt, too small, a
decompression bomb, an unsupported mode).
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
    # Still images (sonorisk.io.still reads them).
    (0, b"\x89PNG\r\n\x1a\n", "png"),
    (0, b"\xff\xd8\xff", "jpeg"),
    (0, b"II*\x00", "tiff"),
    (0, b"MM\x00*", "tiff"),
]
STILL_CONTAINERS = frozenset({"png", "jpeg", "tiff", "bmp"})
# The sizes a BMP's DIB header declares (BITMAPCOREHEADER ... BITMAPV5HEADER): "BM"
# alone starts too many other files.
_BMP_HEADERS = {12, 40, 52, 56, 64, 108, 124}
# What a refused file most likely is, for the reason text.
_KNOWN_NOT_VIDEO: list[tuple[bytes, str]] = [
    (b"GIF8", "a GIF image (not read: send PNG, JPEG, TIFF or BMP)"),
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"\x1f\x8b", "a gzip archive"),
]
ACCEPTED = "AVI, MP4/MOV, MKV/WebM, MPEG-PS/TS, FLV, DICOM; still images: PNG, JPEG, TIFF, BMP"


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
    kind: str = "video"  # or "still"
    notes: tuple[str, ...] = ()  # what the still reader changed (e.g. 16 bits scaled to 8)


def check_content_type(content_type: str | None, allowed: list[str]) -> None:
    if not content_type:
        return
    kind = content_type.split(";")[0].strip().lower()
    if not any(fnmatch.fnmatch(kind, pattern) for pattern in allowed):
        raise UploadRejected(
            415,
            f"content type {kind!r} is not accepted (neither a video "
            f"nor a still image); send the file's bytes as one of "
            f"{allowed}",
        )


def check_declared_size(content_length: str | None, max_bytes: int) -> None:
    if content_length is None:
        return
    try:
        size = int(content_length)
    except ValueError:
        raise UploadRejected(400, f"bad Content-Length {content_length!r}") from None
    if size > max_bytes:
        raise UploadRejected(413, f"upload of {size} bytes exceeds the limit of {max_bytes} bytes")


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
        if head[offset : offset + len(magic)] == magic:
            if name == "avi" and head[8:12] != b"AVI ":
                kind = head[8:12].decode("latin-1", "replace")
                raise UploadRejected(
                    415, f"not a video: a RIFF file of type {kind!r} (e.g. WAV), not AVI"
                )
            return name
    if head[:2] == b"BM" and int.from_bytes(head[14:18], "little") in _BMP_HEADERS:
        return "bmp"
    if len(head) >= 376 and head[0] == 0x47 and head[188] == 0x47:
        return "mpeg-ts"
    for magic, what in _KNOWN_NOT_VIDEO:
        if head.startswith(magic):
            raise UploadRejected(415, f"not a video or still image: the content is {what}")
    if _looks_like_text(head[:512]):
        raise UploadRejected(415, "not a video or still image: the content is text")
    raise UploadRejected(
        415,
        f"not a video or still image: unknown content starting with "
        f"{head[:8]!r} (accepted: {ACCEPTED})",
    )


def check_upload(path: Path) -> UploadInfo:
    """Magic bytes, then a container probe that decodes at most the first frame; a
    still image (or single-frame DICOM) is read whole by the still reader, which
    refuses a decompression bomb from its header, before decoding."""
    from sonorisk.io import open_video

    size = path.stat().st_size
    if size == 0:
        raise UploadRejected(422, "empty upload (0 bytes)")
    with path.open("rb") as fh:
        head = fh.read(1024)
    container = sniff_magic(head)
    if container in STILL_CONTAINERS or (container == "dicom" and _is_still(path)):
        return check_still(path, container)
    try:
        with open_video(
            path, color="rgb", open_timeout_s=10, frame_timeout_s=15, strict=True
        ) as source:
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
    return UploadInfo(container, meta.codec, meta.width, meta.height, meta.fps, meta.frame_count)


def _is_still(path: Path) -> bool:
    from sonorisk.io.still import is_still

    return is_still(path)


def check_still(path: Path, container: str) -> UploadInfo:
    """Read a still image as scoring will (``sonorisk.io.still.read_still``); 422 with
    the reader's reason when it refuses it."""
    from sonorisk.io.still import read_still

    try:
        still = read_still(path)
    except InputError as exc:
        raise UploadRejected(422, f"unreadable image: {_reason(exc)}") from exc
    except MemoryError:
        raise UploadRejected(413, "image too large to decode") from None
    except Exception as exc:  # noqa: BLE001 (a reader fault must not cost the server)
        raise UploadRejected(
            422, f"unreadable image: {type(exc).__name__}: {str(exc)[:300]}"
        ) from exc
    return UploadInfo(
        container,
        still.format,
        still.width,
        still.height,
        None,
        1,
        kind="still",
        notes=tuple(still.notes),
    )


def _reason(exc: InputError) -> str:
    return exc.reason
