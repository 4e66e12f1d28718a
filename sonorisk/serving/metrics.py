"""Prometheus metrics of the service (``GET /metrics``), on a registry of its own."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

_LATENCY_BUCKETS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0,
                    1.5, 2.0, 3.0, 5.0, 10.0, 30.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.frames_in = Counter("sonorisk_stream_frames_in", "frames received from live streams",
                                 ["stream"], registry=r)
        self.frames_processed = Counter("sonorisk_stream_frames_processed",
                                        "stream frames pushed through the pipeline", ["stream"],
                                        registry=r)
        self.frames_dropped = Counter("sonorisk_stream_frames_dropped",
                                      "stream frames dropped because compute fell behind",
                                      ["stream"], registry=r)
        self.reconnects = Counter("sonorisk_stream_reconnects",
                                  "reconnection attempts after a stream dropped", ["stream"],
                                  registry=r)
        self.box_latency = Histogram("sonorisk_box_latency_seconds",
                                     "stream frame arrival to its boxes out", registry=r,
                                     buckets=_LATENCY_BUCKETS)
        self.clip_latency = Histogram("sonorisk_clip_latency_seconds",
                                      "arrival of a clip's last frame to its score out",
                                      registry=r, buckets=_LATENCY_BUCKETS)
        self.stage_latency = Histogram("sonorisk_stage_latency_seconds",
                                       "model call round trip through Ray Serve", ["stage"],
                                       registry=r, buckets=_LATENCY_BUCKETS)
        self.jobs = Counter("sonorisk_jobs_finished", "upload jobs finished", ["status"],
                            registry=r)
        self.uploads_rejected = Counter("sonorisk_uploads_rejected",
                                        "uploads refused before scoring", ["status"], registry=r)
        self.queue_depth = Gauge("sonorisk_queue_depth", "items waiting", ["queue"], registry=r)
        self.streams_active = Gauge("sonorisk_streams_active", "live streams being scored",
                                    registry=r)
        self._replicas: Callable[[], dict[str, int]] | None = None
        r.register(_ReplicaCollector(self))

    def set_replica_source(self, source: Callable[[], dict[str, int]]) -> None:
        self._replicas = source

    def observe_stage(self, stage: str, seconds: float) -> None:
        self.stage_latency.labels(stage).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _ReplicaCollector:
    """Running replicas per deployment, read from Serve when scraped."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self):  # noqa: ANN201 (prometheus collector protocol)
        family = GaugeMetricFamily("sonorisk_replicas", "running replicas per deployment",
                                   labels=["deployment"])
        source = self.metrics._replicas
        if source is not None:
            try:
                counts = source()
            except Exception:  # noqa: BLE001 (a scrape must not fail on Serve's status)
                counts = {}
            for name, n in sorted(counts.items()):
                family.add_metric([name], n)
        yield family
