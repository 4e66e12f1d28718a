"""One model call at a time in a worker thread, polled without waiting.

The live schedule (``PipelineConfig.schedule: when_free``) never lets a frame
wait for a model: the detector and the classifier each get one of these, the
scorer submits work when the call before it has returned, and collects the
answer on a later frame. Files (``in_order`` with ``overlap``) use them to
detect the next batch of keyframes, and to score clips, while frames are
tracked. Each call runs in a thread of its own that ends with the call. Torch,
ONNX Runtime and Ray handle calls all release the GIL while they work, so the
frames keep flowing meanwhile.

An exception raised by the call is raised again where the answer is collected
(``poll`` or ``wait``), so a model error reaches the caller exactly as it would
from a direct call.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

Tag = TypeVar("Tag")


@dataclass(frozen=True)
class Answer(Generic[Tag]):
    tag: Tag  # what the caller attached to the call (which frames, which clips)
    result: Any
    seconds: float  # how long the call itself took


class _Call(threading.Thread):
    """One call in its own thread, which ends when the call returns: no idle
    thread is left behind by a scorer that is dropped without ``close``. Not a
    daemon: the interpreter waits for a call in flight at exit instead of
    tearing down the model under it (which aborts the process)."""

    def __init__(self, name: str, fn: Callable[[], Any]) -> None:
        super().__init__(name=name, daemon=False)
        self._fn = fn
        self.result: Any = None
        self.error: BaseException | None = None
        self.seconds = 0.0

    def run(self) -> None:
        started = time.perf_counter()
        try:
            self.result = self._fn()
        except BaseException as exc:  # noqa: BLE001 - raised again where collected
            self.error = exc
        finally:
            self.seconds = time.perf_counter() - started


class BackgroundCall(Generic[Tag]):
    """One model call at a time, each in a thread of its own."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._call: _Call | None = None
        self._tag: Tag | None = None

    @property
    def busy(self) -> bool:
        return self._call is not None

    @property
    def tag(self) -> Tag | None:
        """The tag of the call in flight (None when idle)."""
        return self._tag

    def submit(self, tag: Tag, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        if self._call is not None:
            raise RuntimeError(f"{self.name}: a call is already in flight")
        self._tag = tag
        self._call = _Call(self.name, lambda: fn(*args, **kwargs))
        self._call.start()

    def poll(self) -> Answer[Tag] | None:
        """The answer if the call in flight has returned, else None (never waits)."""
        if self._call is None or self._call.is_alive():
            return None
        return self._collect()

    def wait(self) -> Answer[Tag] | None:
        """The answer of the call in flight, waiting for it (None when idle)."""
        if self._call is None:
            return None
        return self._collect()

    def _collect(self) -> Answer[Tag]:
        assert self._call is not None
        call, tag = self._call, self._tag
        self._call, self._tag = None, None
        call.join()
        if call.error is not None:
            raise call.error  # the call's exception, where the answer is collected
        return Answer(tag, call.result, call.seconds)  # type: ignore[arg-type]  # set with the call

    def close(self) -> None:
        """Wait for the call in flight (its answer and any error are dropped)."""
        if self._call is not None:
            self._call.join()
        self._call, self._tag = None, None
