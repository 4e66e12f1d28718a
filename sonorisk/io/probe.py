"""Byte-level checks on container files, before and after decoding.

FFmpeg reads a cut-off AVI until the bytes run out and a cut-off MP4 not at all
(its index is at the end); neither says "truncated". The container's own size
fields do: an AVI's RIFF chunk and an MP4/MOV's top-level boxes declare their
lengths, so a file shorter than declared was cut short, and an MP4 cut at a box
boundary lacks its index ('moov') or its media data ('mdat').
"""

from __future__ import annotations

import stat
import struct
from pathlib import Path
from typing import BinaryIO

_MP4_TOP_BOXES = {
    b"ftyp",
    b"moov",
    b"mdat",
    b"free",
    b"skip",
    b"wide",
    b"uuid",
    b"pnot",
    b"meta",
    b"moof",
    b"mfra",
    b"styp",
    b"sidx",
    b"pdin",
    b"prfl",
}


def truncation_reason(path: Path) -> str | None:
    """Why the file is shorter than its container declares, or None if it is not."""
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(12)
            if len(head) >= 12 and head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"AVI ":
                declared = struct.unpack("<I", head[4:8])[0] + 8
                if head[:4] == b"RIFF" and declared > size:
                    return f"RIFF header declares {declared} bytes, file has {size}"
                return None
            if len(head) >= 8 and head[4:8] in _MP4_TOP_BOXES:
                return _mp4_truncation(fh, size)
    except OSError:
        return None
    return None


def _mp4_truncation(fh: BinaryIO, size: int) -> str | None:
    offset = 0
    seen: set[bytes] = set()
    for _ in range(10_000):  # bounded: a real file has a handful of top-level boxes
        if offset >= size:
            return _mp4_missing_box(seen)
        fh.seek(offset)
        header = fh.read(16)
        if len(header) < 8:
            return f"box header cut at byte {offset} of {size}"
        box_size, kind = struct.unpack(">I4s", header[:8])
        seen.add(kind)
        if box_size == 1:
            if len(header) < 16:
                return f"box header cut at byte {offset} of {size}"
            box_size = struct.unpack(">Q", header[8:16])[0]
        elif box_size == 0:  # extends to the end of the file
            return _mp4_missing_box(seen)
        if box_size < 8:
            return None  # not a box structure we understand; let FFmpeg judge
        if offset + box_size > size:
            name = kind.decode("latin-1")
            return (
                f"'{name}' box at byte {offset} declares {box_size} bytes, "
                f"only {size - offset} remain"
            )
        offset += box_size
    return None


def _mp4_missing_box(seen: set[bytes]) -> str | None:
    """An MP4 whose boxes are whole but whose index or media data is absent.

    A recorder writes the index ('moov') last unless it moves it to the front
    (faststart); a file cut at a box boundary then lacks the index, or holds
    the index without the frames ('mdat') it points to. FFmpeg says "invalid
    data" or finds zero frames; both are a cut file.
    """
    if b"moov" not in seen:
        return "no 'moov' box: the index, which a recorder writes last, is missing"
    if b"mdat" not in seen:
        return "no 'mdat' box: the index lists frames the file does not hold"
    return None


def avi_declared_size(path: Path) -> tuple[int, int] | None:
    """Frame size (width, height) an AVI's headers claim, or None if not an AVI.

    FFmpeg replaces an absurd header size with the bitstream's (MJPEG) or with
    0x0 (raw video); reading the claim ourselves lets us refuse the file and
    say what the header actually said.
    """
    try:
        with path.open("rb") as fh:
            head = fh.read(64 * 1024)
    except OSError:
        return None
    if head[:4] != b"RIFF" or head[8:12] != b"AVI ":
        return None
    sizes: list[tuple[int, int]] = []
    at = head.find(b"avih")
    if at >= 0 and at + 48 <= len(head):
        sizes.append(struct.unpack("<II", head[at + 40 : at + 48]))
    vids = head.find(b"strhvids")
    strh = head.find(b"vids")
    at = head.find(b"strf", vids if vids >= 0 else max(strh, 0))
    if at >= 0 and at + 20 <= len(head):
        w, h = struct.unpack("<ii", head[at + 12 : at + 20])
        sizes.append((w, abs(h)))  # negative height = top-down rows
    if not sizes:
        return None
    # The stream format (strf) is what decoders use; report it when present.
    return sizes[-1]


def special_file_kind(mode: int) -> str | None:
    """What a non-regular file is ("character device", ...), None for a regular file.

    Devices and sockets are no recording: /dev/zero reports 0 bytes yet never
    ends, a block device is a whole disk. Naming the kind says why it is refused.
    """
    kinds = (
        (stat.S_ISDIR, "directory"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISFIFO, "FIFO (named pipe)"),
    )
    return next((name for test, name in kinds if test(mode)), None)
