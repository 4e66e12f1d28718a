"""Sinks: the frame spool the overlay writer draws from gives back every frame
exactly, in order, and leaves nothing behind."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sonorisk.pipeline.sinks import FrameSpool, Sinks
from sonorisk.records import Frame


def test_the_spool_gives_back_every_frame_exactly(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frames = [
        Frame(i * 2, i / 30.0, rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)) for i in range(5)
    ]
    frames.append(Frame(11, 0.5, rng.integers(0, 256, (24, 32), dtype=np.uint8)))  # gray
    spool = FrameSpool(tmp_path)
    for frame in frames:
        spool.add(frame)
    back = list(spool)
    assert [(f.index, f.timestamp_s) for f in back] == [(f.index, f.timestamp_s) for f in frames]
    for a, b in zip(back, frames, strict=True):
        assert a.image.shape == b.image.shape and np.array_equal(a.image, b.image)
    spool.close()
    assert list(tmp_path.iterdir()) == []  # anonymous: nothing left in the output folder


def test_sinks_get_frames_and_events_in_order() -> None:
    seen: list[tuple[str, object]] = []

    class Recorder:
        def __init__(self, name: str) -> None:
            self.name = name

        def frame(self, frame: Frame) -> None:
            seen.append((self.name, frame.index))

        def events(self, events) -> None:
            seen.append((self.name, tuple(events)))

    sinks = Sinks([Recorder("a"), Recorder("b")])
    sinks.frame(Frame(3, 0.1, np.zeros((2, 2), np.uint8)))
    sinks.events(iter(["x", "y"]))  # an iterator: each sink still gets every event
    assert seen == [("a", 3), ("b", 3), ("a", ("x", "y")), ("b", ("x", "y"))]
