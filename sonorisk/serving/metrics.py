"""Prometheus metrics of the service (``GET /metrics``), on registries of their own:
one in the ingress, one in each stream host, merged when scraped."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

_LATENCY_BUCKETS = (
    0.005,
    0.01,
    0.02,
    0.03,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.3,
    0.5,
    0.75,
    1.0,
    1.5,
    2.0,
    3.0,
    5.0,
    10.0,
    30.0,
)


class StreamMetrics:
    """What live streams and model calls record: a stream host's whole registry
    (one per host process; the ingress merges them into ``/metrics``)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.frames_in = Counter(
            "sonorisk_stream_frames_in", "frames received from live streams", ["stream"], registry=r
        )
        self.frames_processed = Counter(
            "sonorisk_stream_frames_processed",
            "stream frames pushed through the pipeline",
            ["stream"],
            registry=r,
        )
        self.frames_dropped = Counter(
            "sonorisk_stream_frames_dropped",
            "stream frames dropped because compute fell behind",
            ["stream"],
            registry=r,
        )
        self.reconnects = Counter(
            "sonorisk_stream_reconnects",
            "reconnection attempts after a stream dropped",
            ["stream"],
            registry=r,
        )
        self.box_latency = Histogram(
            "sonorisk_box_latency_seconds",
            "stream frame arrival to its boxes out",
            registry=r,
            buckets=_LATENCY_BUCKETS,
        )
        self.clip_latency = Histogram(
            "sonorisk_clip_latency_seconds",
            "arrival of a clip's last frame to its score out",
            registry=r,
            buckets=_LATENCY_BUCKETS,
        )
        self.stage_latency = Histogram(
            "sonorisk_stage_latency_seconds",
            "model call round trip through Ray Serve",
            ["stage"],
            registry=r,
            buckets=_LATENCY_BUCKETS,
        )

    def observe_stage(self, stage: str, seconds: float) -> None:
        self.stage_latency.labels(stage).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class Metrics(StreamMetrics):
    """The ingress's metrics: jobs, uploads, queues, replicas, and (empty until the
    stream hosts' are merged in, ``merge_exposition``) the stream families."""

    def __init__(self) -> None:
        super().__init__()
        r = self.registry
        self.jobs = Counter(
            "sonorisk_jobs_finished", "upload jobs finished", ["status"], registry=r
        )
        self.uploads_rejected = Counter(
            "sonorisk_uploads_rejected", "uploads refused before scoring", ["status"], registry=r
        )
        self.queue_depth = Gauge("sonorisk_queue_depth", "items waiting", ["queue"], registry=r)
        self.streams_active = Gauge(
            "sonorisk_streams_active", "live streams being scored", registry=r
        )
        self._replicas: Callable[[], dict[str, int]] | None = None
        r.register(_ReplicaCollector(self))

    def set_replica_source(self, source: Callable[[], dict[str, int]]) -> None:
        self._replicas = source


def merge_exposition(texts: Iterable[bytes | str]) -> bytes:
    """Several processes' Prometheus text as one: families of the same name become
    one family, samples with the same name and labels are added (counters and
    histogram buckets of different processes sum; per-stream series are disjoint).
    ``*_created`` series are dropped: a sum of creation times means nothing."""
    from prometheus_client.parser import text_string_to_metric_families

    families: dict[str, Any] = {}
    samples: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], Any]] = {}
    for text in texts:
        if isinstance(text, bytes):
            text = text.decode()
        for family in text_string_to_metric_families(text):
            if family.name.endswith("_created"):
                continue
            families.setdefault(family.name, family)
            merged = samples.setdefault(family.name, {})
            for sample in family.samples:
                if sample.name.endswith("_created"):
                    continue
                key = (sample.name, tuple(sorted(sample.labels.items())))
                old = merged.get(key)
                merged[key] = (
                    sample if old is None else old._replace(value=old.value + sample.value)
                )
    out = []
    for name, family in families.items():
        family.samples = list(samples[name].values())
        out.append(family)
    registry = CollectorRegistry()
    registry.register(_Fixed(out))
    return generate_latest(registry)


class _Fixed:
    """A collector yielding families already made."""

    def __init__(self, families: list[Any]) -> None:
        self.families = families

    def collect(self):  # noqa: ANN201 (prometheus collector protocol)
        return iter(self.families)


class _ReplicaCollector:
    """Running replicas per deployment, read from Serve when scraped."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self):  # noqa: ANN201 (prometheus collector protocol)
        family = GaugeMetricFamily(
            "sonorisk_replicas", "running replicas per deployment", labels=["deployment"]
        )
        source = self.metrics._replicas
        if source is not None:
            try:
                counts = source()
            except Exception:  # noqa: BLE001 (a scrape must not fail on Serve's status)
                counts = {}
            for name, n in sorted(counts.items()):
                family.add_metric([name], n)
        yield family
