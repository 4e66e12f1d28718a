"""Stream-host parts that need no Ray: stream ids that name their host, the
numbered event log a host serves to the ingress, merged Prometheus text, and
the config keys of the hosts."""

from __future__ import annotations

import pytest

from sonorisk.errors import ConfigError
from sonorisk.serving.config import ServeConfig, StreamsConfig
from sonorisk.serving.metrics import Metrics, StreamMetrics, merge_exposition
from sonorisk.serving.streamhost import StreamRef
from sonorisk.serving.streampool import StreamNotFound, StreamPool, lost_status
from sonorisk.serving.streams import StreamSession


def test_a_stream_id_names_its_host_and_incarnation():
    ref = StreamRef(3, "0a1b2c", "0123456789ab")
    assert str(ref) == "3-0a1b2c-0123456789ab"
    assert StreamRef.parse(str(ref)) == ref
    for bad in (
        "",
        "nope",
        "3-0a1b2c",
        "x-0a1b2c-0123456789ab",
        "3-0A1B2C-0123456789ab",
        "3-0a1b2c-0123456789ab/../x",
        "12345-0a1b2c-0123456789ab",
    ):
        assert StreamRef.parse(bad) is None, bad


def test_the_pool_refuses_ids_it_cannot_hold():
    config = ServeConfig()
    config.streams.replicas = 2
    pool = StreamPool(config)
    assert pool._ref("1-0a1b2c-0123456789ab").host == 1
    for bad in ("2-0a1b2c-0123456789ab", "garbage"):  # no host 2; not an id
        with pytest.raises(StreamNotFound):
            pool._ref(bad)
    status = lost_status("1-0a1b2c-0123456789ab", "its stream host died")
    assert status["state"] == "failed" and status["last_error"] == "its stream host died"
    assert status["host"] == {"replica": 1, "lost": True}


def test_events_are_numbered_and_a_slow_reader_loses_only_the_oldest():
    session = StreamSession(
        "s", "rtsp://x/y", StreamsConfig(event_queue=5), lambda fps: None, notice=["research"]
    )
    assert session.seq == 0 and session.events_after(0) == ([], 0)
    for k in range(3):
        session._publish({"event": "stats", "k": k})
    events, seq = session.events_after(0)
    assert seq == 3 and [e["k"] for e in events] == [0, 1, 2]
    assert [e["k"] for e in session.events_after(2)[0]] == [2]
    for k in range(3, 9):
        session._publish({"event": "stats", "k": k})
    events, seq = session.events_after(3)  # 4..9 held; 4 fell out of the bounded log
    assert seq == 9 and [e["k"] for e in events] == [4, 5, 6, 7, 8]
    assert session.events_after(9) == ([], 9)
    assert not session.running  # never started: holds no slot


def test_metrics_of_several_processes_merge_into_one_valid_text():
    from prometheus_client.parser import text_string_to_metric_families

    ingress, host_a, host_b = Metrics(), StreamMetrics(), StreamMetrics()
    ingress.jobs.labels("done").inc()
    ingress.observe_stage("detector", 0.02)
    host_a.frames_in.labels("s1").inc(5)
    host_b.frames_in.labels("s2").inc(7)
    host_a.box_latency.observe(0.04)
    host_b.box_latency.observe(0.5)
    host_b.observe_stage("detector", 0.02)
    text = merge_exposition([ingress.render(), host_a.render(), host_b.render()]).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}  # parses: valid
    assert text.count("# TYPE sonorisk_box_latency_seconds histogram") == 1

    def value(family: str, sample: str, **labels) -> float:
        (found,) = [
            s.value for s in families[family].samples if s.name == sample and s.labels == labels
        ]
        return found

    assert value("sonorisk_stream_frames_in", "sonorisk_stream_frames_in_total", stream="s1") == 5
    assert value("sonorisk_stream_frames_in", "sonorisk_stream_frames_in_total", stream="s2") == 7
    assert value("sonorisk_box_latency_seconds", "sonorisk_box_latency_seconds_count") == 2
    assert (
        value("sonorisk_box_latency_seconds", "sonorisk_box_latency_seconds_bucket", le="0.05") == 1
    )
    assert (
        value(
            "sonorisk_stage_latency_seconds",
            "sonorisk_stage_latency_seconds_count",
            stage="detector",
        )
        == 2
    )
    assert value("sonorisk_jobs_finished", "sonorisk_jobs_finished_total", status="done") == 1
    assert not any(name.endswith("_created") for name in families)


def test_stream_host_keys_are_checked():
    config = ServeConfig()
    config.streams.replicas = 0
    with pytest.raises(ConfigError, match="streams.replicas"):
        config.validate()
    config = ServeConfig()
    config.streams.torch_threads = 0
    with pytest.raises(ConfigError, match="streams.torch_threads"):
        config.validate()


def test_stream_events_write_boxes_as_the_document_does_and_drop_flicker():
    from sonorisk.pipeline.events import FrameBoxes, LesionBox, LesionEnded, LesionUpdated
    from sonorisk.pipeline.report import box_json
    from sonorisk.records import LesionRisk, LesionStatus
    from sonorisk.serving.stream_events import StreamEventSink
    from sonorisk.serving.stream_stats import StreamStats

    published: list[dict] = []
    sink = StreamEventSink(published.append, StreamStats("s"))
    sink.segment = 2
    box = LesionBox(7, (1.23456, 2.0, 30.98765, 40.5), 0.912345, "detector")
    risk = LesionRisk(7, 0.75, 2, LesionStatus.SCORED, 0.9)
    sink.events(
        [FrameBoxes(5, 0.2, (box,), True, 0.01), LesionUpdated(risk), LesionEnded(8, 3, 4, True)]
    )
    boxes, lesion, dropped = published
    assert boxes["boxes"] == [{"lesion_id": 7, **box_json(box)}]
    assert boxes["boxes"][0]["box"] == [1.23, 2.0, 30.99, 40.5]  # the document's rounding
    assert lesion == {
        "event": "lesion",
        "segment": 2,
        "lesion_id": 7,
        "risk": 0.75,
        "clips": 2,
        "status": "scored",
        "confidence": 0.9,
        "ended": False,
    }
    assert dropped["dropped"] and [e["lesion_id"] for e in sink.table()] == [7]
    sink.events([LesionEnded(7, 0, 40, False, risk)])
    assert sink.table()[0]["ended"] is True
    sink.events([LesionEnded(7, 0, 40, True)])  # withdrawn: gone from the table
    assert sink.table() == []
