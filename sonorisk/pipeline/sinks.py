"""Sinks: what reads the frames and events as they pass the scorer.

A sink gets every frame before the scorer sees it (``frame``) and every event
the scorer emits (``events``). The document is one sink (``fold.ScoreFold``);
the overlay writer is another; a live stream adds its Server-Sent Events
(``sonorisk.serving.stream_events``). Scoring a file and a stream then differ
only in the source of the frames and the sinks they are given.
"""

from __future__ import annotations

import struct
import tempfile
import zlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Protocol

import numpy as np

from sonorisk.pipeline.events import Event
from sonorisk.pipeline.scorer import VideoResult
from sonorisk.pipeline.visualize import write_overlay
from sonorisk.records import Frame


class Sink(Protocol):
    def frame(self, frame: Frame) -> None: ...

    def events(self, events: Iterable[Event]) -> None: ...


class Sinks:
    """Several sinks fed as one, in order."""

    def __init__(self, sinks: Sequence[Sink]) -> None:
        self.sinks = list(sinks)

    def frame(self, frame: Frame) -> None:
        for sink in self.sinks:
            sink.frame(frame)

    def events(self, events: Iterable[Event]) -> None:
        events = list(events)
        for sink in self.sinks:
            sink.events(events)


_HEADER = struct.Struct("<qdIIIQ")  # index, timestamp, height, width, channels, bytes


class FrameSpool:
    """Frames kept on disk, compressed losslessly, until they are read back once.

    The overlay shows the final answer (merged lesions, the video risk) on every
    frame, which is known only at the end; spooling the frames as they pass
    spares decoding the file a second time, and a live stream cannot be decoded
    again at all. zlib level 1: the black margins of ultrasound frames compress
    well and cheaply; memory holds one frame at a time.
    """

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        # Anonymous: gone when closed (``close``), and when the process dies.
        self._file: IO[bytes] = tempfile.TemporaryFile(  # noqa: SIM115
            dir=folder, prefix=".spool-"
        )
        self.count = 0

    def add(self, frame: Frame) -> None:
        image = np.ascontiguousarray(frame.image, dtype=np.uint8)
        if image.ndim == 2:
            image = image[:, :, None]
        data = zlib.compress(image.tobytes(), 1)
        height, width, channels = image.shape
        self._file.write(
            _HEADER.pack(frame.index, frame.timestamp_s, height, width, channels, len(data))
        )
        self._file.write(data)
        self.count += 1

    def __iter__(self) -> Iterator[Frame]:
        self._file.flush()
        self._file.seek(0)
        for _ in range(self.count):
            index, timestamp, height, width, channels, size = _HEADER.unpack(
                self._file.read(_HEADER.size)
            )
            image = np.frombuffer(zlib.decompress(self._file.read(size)), np.uint8)
            image = image.reshape(height, width, channels)
            yield Frame(index, timestamp, image[:, :, 0] if channels == 1 else image)

    def close(self) -> None:
        self._file.close()


class OverlayWriter:
    """The overlay video: fed the frames as they pass, drawn with the final result."""

    def __init__(self, path: Path, fps: float) -> None:
        self.path = path
        self.fps = fps
        self._spool = FrameSpool(path.parent)

    def frame(self, frame: Frame) -> None:
        self._spool.add(frame)

    def events(self, events: Iterable[Event]) -> None:
        """Drawn from the final result (``write``), not event by event."""

    def write(self, result: VideoResult) -> int:
        """Encode the overlay; the frames written. Frees the spool."""
        try:
            return write_overlay(
                self.path, self._spool, list(result.lesions), result.risk, self.fps
            )
        finally:
            self.close()

    def close(self) -> None:
        self._spool.close()
