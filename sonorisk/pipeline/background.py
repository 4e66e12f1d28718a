"""One model call at a time in a worker thread, polled without waiting.

The live schedule (``PipelineConfig.schedule: when_free``) never lets a frame
wait for a model: the detector and the classifier each get one of these, the
scorer submits work when the call before it has returned, and collects the
answer on a later frame. Torch, ONNX Runtime and Ray handle calls all release
the GIL while they work, so the frames keep flowing meanwhile.

An exception raised by the call is raised again where the answer is collected
(``poll`` or ``wait``), so a model error reaches the caller exactly as it would
from a direct call.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

Tag = TypeVar("Tag")


@dataclass(frozen=True)
class Answer(Generic[Tag]):
    tag: Tag  # what the caller attached to the call (which frames, which clips)
    result: Any
    seconds: float  # how long the call itself took


class BackgroundCall(Generic[Tag]):
    """A single worker thread running one call at a time."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._pool: ThreadPoolExecutor | None = None
        self._future: Future[tuple[Any, float]] | None = None
        self._tag: Tag | None = None

    @property
    def busy(self) -> bool:
        return self._future is not None

    @property
    def tag(self) -> Tag | None:
        """The tag of the call in flight (None when idle)."""
        return self._tag

    def submit(self, tag: Tag, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        if self._future is not None:
            raise RuntimeError(f"{self.name}: a call is already in flight")
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix=self.name)

        def timed() -> tuple[Any, float]:
            started = time.perf_counter()
            return fn(*args, **kwargs), time.perf_counter() - started

        self._tag = tag
        self._future = self._pool.submit(timed)

    def poll(self) -> Answer[Tag] | None:
        """The answer if the call in flight has returned, else None (never waits)."""
        if self._future is None or not self._future.done():
            return None
        return self._collect()

    def wait(self) -> Answer[Tag] | None:
        """The answer of the call in flight, waiting for it (None when idle)."""
        if self._future is None:
            return None
        return self._collect()

    def _collect(self) -> Answer[Tag]:
        assert self._future is not None
        future, tag = self._future, self._tag
        self._future, self._tag = None, None
        result, seconds = future.result()  # re-raises the call's exception here
        return Answer(tag, result, seconds)  # type: ignore[arg-type]  # tag set with the future

    def close(self) -> None:
        """Wait for the call in flight (its answer is dropped) and end the thread."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self._future, self._tag = None, None
