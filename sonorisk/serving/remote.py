"""Thin adapters that let ``IncrementalScorer`` drive models living in Ray Serve.

``RemoteDetector.predict(images, frame_indices)`` and
``RemoteClassifier.predict(clips, heatmaps, batch_size)`` have the signatures
the scorer expects of a local detector/classifier; each call goes to a
deployment handle. A call whose replica died (killed, node lost) is retried
on another replica (or the replacement Serve starts) until
``jobs.model_retry_s`` runs out; then ``ModelUnavailableError`` says which
model and why, and the job is retried or failed with that reason. Calls are
stateless, so a retry gives exactly the answer the lost call would have.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from sonorisk.detector.interface import FrameLike, as_frames
from sonorisk.errors import InputError, SonoriskError
from sonorisk.records import Clip, ClipScore, Detection
from sonorisk.video_classifier.clips import ClipConfig

log = logging.getLogger(__name__)


class ModelUnavailableError(SonoriskError):
    """A model deployment could not answer within the retry budget."""


def _retryable() -> tuple[type[BaseException], ...]:
    import ray.exceptions as rex
    import ray.serve.exceptions as sex

    return (
        rex.RayActorError,
        rex.ActorUnavailableError,
        rex.GetTimeoutError,
        sex.DeploymentUnavailableError,
        sex.BackPressureError,
        sex.ReplicaUnavailableError,
        TimeoutError,
        ConnectionError,
    )


class _RemoteModel:
    role = "model"

    def __init__(
        self,
        handle: Any,
        *,
        retry_s: float = 60.0,
        call_timeout_s: float = 120.0,
        on_latency: Callable[[str, float], None] | None = None,
    ) -> None:
        self.handle = handle
        self.retry_s = retry_s
        self.call_timeout_s = call_timeout_s
        self.on_latency = on_latency
        self.calls = 0
        self.retries = 0
        self.nodes: Counter[str] = Counter()  # which Ray nodes answered
        self._lock = threading.Lock()

    def _call(self, method: str, *args: Any) -> Any:
        retryable = _retryable()
        deadline = time.monotonic() + self.retry_s
        delay = 0.2
        attempt = 0
        while True:
            attempt += 1
            started = time.perf_counter()
            try:
                reply = (
                    getattr(self.handle, method).remote(*args).result(timeout_s=self.call_timeout_s)
                )
            except retryable as exc:
                if time.monotonic() + delay > deadline:
                    raise ModelUnavailableError(
                        f"{self.role} deployment unavailable: {attempt} attempts over "
                        f"{self.retry_s:.0f} s failed; last error: "
                        f"{type(exc).__name__}: {str(exc)[:300]}"
                    ) from exc
                with self._lock:
                    self.retries += 1
                log.warning(
                    "%s call failed (%s); retrying in %.1f s", self.role, type(exc).__name__, delay
                )
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            elapsed = time.perf_counter() - started
            with self._lock:
                self.calls += 1
                self.nodes[reply["node"]] += 1
            if self.on_latency is not None:
                self.on_latency(self.role, elapsed)
            if "input_error" in reply:  # the caller's own bad input (deployments._answer)
                raise InputError(*reply["input_error"])
            return reply["result"]

    def usage(self) -> dict[str, Any]:
        with self._lock:
            return {"calls": self.calls, "retries": self.retries, "nodes": dict(self.nodes)}


class RemoteDetector(_RemoteModel):
    """A ``FrameDetector`` whose model runs in the Detector deployment."""

    role = "detector"

    def __init__(self, handle: Any, info: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(handle, **kwargs)
        self.info = info

    def predict(
        self, frames: Sequence[FrameLike], frame_indices: Sequence[int] | None = None
    ) -> list[list[Detection]]:
        found = as_frames(frames, frame_indices)
        if not found:
            return []
        # The deployment's wire format: images and their indices side by side.
        return self._call("predict", [f.image for f in found], [f.index for f in found])


class RemoteClassifier(_RemoteModel):
    """A clip scorer whose model runs in the Classifier deployment.

    ``config`` is the model's ``ClassifierConfig`` (the scorer builds clips
    with its ``clips`` section)."""

    role = "classifier"

    def __init__(self, handle: Any, config: Any, **kwargs: Any) -> None:
        super().__init__(handle, **kwargs)
        self.config = config

    @property
    def clip_config(self) -> ClipConfig:
        """How the scorer cuts clips for this model (``ClipScorer``)."""
        return self.config.clips

    def predict(
        self, clips: Sequence[Clip], heatmaps: bool = False, batch_size: int = 16
    ) -> list[ClipScore]:
        clips = list(clips)
        if not clips:
            return []
        return self._call("predict", clips, bool(heatmaps))
