"""Stream hosts: the processes where live streams run.

A stream's work (the RTSP reader, tracking, optical flow, clip cropping: one
``StreamSession`` and its ``IncrementalScorer``) is stateful and must stay in
one process, frames in order. The models are not: they stay in the Detector
and Classifier deployments, reached through the same adapters as jobs use.

Why hosts are named Ray actors and not a Serve deployment: Serve routes each
request to whichever replica its router picks and offers no way to address one
replica; model multiplexing only *prefers* the replica holding an id and falls
back to another one when that replica is busy, which would split a stream's
status, events and stop over processes that do not hold it. A named actor is
one process that every ingress replica can address by name, and calls to it go
nowhere else. So ``streams.replicas`` hosts ``<app>-stream-host-<k>`` run as
detached actors (``streampool.py`` creates, finds and restarts them), and a
stream id says where its stream lives: ``<k>-<incarnation>-<key>``. The
ingress keeps no table of streams, so any number of ingress replicas can serve
any stream. ``incarnation`` is drawn when a host process starts: after a host
died and Ray restarted it, ids of its old streams no longer match, and such a
stream is reported failed (its host died) instead of unknown (404).

Each host is an async actor: control calls (start, status, stop) and event
long-polls interleave on its event loop while each stream's reader and
processor run in their own threads, as they did in the ingress.
"""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from dataclasses import dataclass
from typing import Any

from sonorisk.serving.config import ServeConfig, StreamsConfig
from sonorisk.serving.heap import freeze

DETECTOR, CLASSIFIER = "Detector", "Classifier"  # deployment names (deployments.py)
LOST, UNKNOWN = "lost", "unknown"


def host_name(app_name: str, index: int) -> str:
    return f"{app_name}-stream-host-{index}"


@dataclass(frozen=True)
class StreamRef:
    """Where a stream lives, as its id says: host index and incarnation."""

    host: int
    incarnation: str
    key: str

    _PATTERN = re.compile(r"^(\d{1,4})-([0-9a-f]{6})-([0-9a-f]{12})$")

    @classmethod
    def parse(cls, stream_id: str) -> StreamRef | None:
        match = cls._PATTERN.match(stream_id)
        if match is None:
            return None
        return cls(int(match[1]), match[2], match[3])

    def __str__(self) -> str:
        return f"{self.host}-{self.incarnation}-{self.key}"


class StreamHost:
    """One host process: many streams, each in its own threads (``StreamSession``)."""

    def __init__(self, index: int, config: ServeConfig) -> None:
        import ray

        from sonorisk.serving.metrics import StreamMetrics
        from sonorisk.threads import set_torch_threads

        set_torch_threads(config.streams.torch_threads)
        self.index = index
        self.config = config
        self.incarnation = uuid.uuid4().hex[:6]
        self.node = ray.get_runtime_context().get_node_id()
        self.metrics = StreamMetrics()
        self.sessions: dict[str, Any] = {}
        self._handles: tuple[Any, Any] | None = None
        freeze()  # a full collection would pause every stream (heap.py)

    # ------------------------------------------------------------- helpers
    def _describe(self) -> dict[str, Any]:
        return {
            "replica": self.index,
            "incarnation": self.incarnation,
            "pid": os.getpid(),
            "node": self.node,
        }

    def _find(self, stream_id: str) -> tuple[Any, dict[str, Any]]:
        """(session, {}), or (None, why it is missing)."""
        ref = StreamRef.parse(stream_id)
        if ref is not None and ref.host == self.index and ref.incarnation != self.incarnation:
            return None, {
                "missing": LOST,
                "reason": f"its stream host (replica {self.index}) died and was "
                "restarted; the stream was lost",
            }
        session = self.sessions.get(stream_id)
        if session is None:
            return None, {"missing": UNKNOWN}
        return session, {}

    def _model_handles(self) -> tuple[Any, Any]:
        # Looked up on first use: the hosts start while the application deploys.
        if self._handles is None:
            from ray import serve

            app = self.config.app_name
            self._handles = (
                serve.get_deployment_handle(DETECTOR, app_name=app),
                serve.get_deployment_handle(CLASSIFIER, app_name=app),
            )
        return self._handles

    def _full_status(self, session: Any) -> dict[str, Any]:
        out = session.status()
        detector, classifier = session.adapters
        out["serving"] = {"detector": detector.usage(), "classifier": classifier.usage()}
        out["host"] = self._describe()
        return out

    # --------------------------------------------------------------- calls
    async def load(self) -> dict[str, Any]:
        """What placement and the ingress's health and metrics need."""
        sessions = list(self.sessions.values())
        return {
            **self._describe(),
            "active": sum(1 for s in sessions if s.running),
            "backlog": sum(s.ingest.backlog() for s in sessions),
            "streams": [
                {"stream_id": s.stream_id, "url": s.url, "state": s.state} for s in sessions
            ],
        }

    async def start(
        self, url: str, config: StreamsConfig, pipeline: Any, info: dict[str, Any]
    ) -> str:
        """Start scoring ``url``; the new stream's id (which names this host)."""
        from sonorisk.pipeline.scorer import IncrementalScorer
        from sonorisk.serving.remote import RemoteClassifier, RemoteDetector
        from sonorisk.serving.streams import StreamSession

        jobs = self.config.jobs
        kwargs = {
            "retry_s": jobs.model_retry_s,
            "call_timeout_s": jobs.model_call_timeout_s,
            "on_latency": self.metrics.observe_stage,
        }
        det_handle, cls_handle = self._model_handles()
        detector = RemoteDetector(det_handle, info["detector"], **kwargs)
        classifier = RemoteClassifier(cls_handle, info["classifier_config"], **kwargs)

        def make_scorer(fps: float | None) -> IncrementalScorer:
            return IncrementalScorer(detector, classifier, pipeline, fps=fps)

        stream_id = str(StreamRef(self.index, self.incarnation, uuid.uuid4().hex[:12]))
        session = StreamSession(
            stream_id,
            url,
            config,
            make_scorer,
            notice=info["notice"],
            models=info.get("cards"),
            metrics=self.metrics,
        )
        session.adapters = (detector, classifier)
        self.sessions[stream_id] = session
        freeze()  # the modules the first stream imported, too
        session.start()
        return stream_id

    async def status(self, stream_id: str) -> dict[str, Any]:
        session, missing = self._find(stream_id)
        return missing if session is None else self._full_status(session)

    async def subscribe(self, stream_id: str) -> dict[str, Any]:
        """The ``hello`` event of a new subscription and the event number it starts after."""
        session, missing = self._find(stream_id)
        if session is None:
            return missing
        seq = session.seq  # before the status: an event in between is sent, not lost
        return {
            "seq": seq,
            "hello": {
                "event": "hello",
                "stream_id": stream_id,
                "url": session.url,
                "notice": session.notice,
                "status": self._full_status(session),
            },
        }

    async def events(self, stream_id: str, after: int, timeout_s: float) -> dict[str, Any]:
        """Events numbered above ``after``; waits up to ``timeout_s`` for the first one.
        ``ended``: the stream stopped and every event it sent is in this answer."""
        session, missing = self._find(stream_id)
        if session is None:
            return missing
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            running = session.running  # read first: once it is False, no event follows
            events, seq = session.events_after(after)
            if events or not running or loop.time() >= deadline:
                return {"events": events, "next": seq, "ended": not running}
            await asyncio.sleep(0.01)

    async def stop(self, stream_id: str) -> dict[str, Any]:
        session, missing = self._find(stream_id)
        if session is None:
            return missing
        await asyncio.to_thread(session.stop)
        return self._full_status(session)

    async def metrics_text(self) -> bytes:
        return self.metrics.render()
