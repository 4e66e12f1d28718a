"""The Ray Serve application end to end: a real local Ray, real HTTP, real video
files, a real RTSP server and ffmpeg pushers. One service for the module."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import jsonschema
import pytest

from sonorisk.config import load_config
from sonorisk.pipeline.config import PipelineConfig
from sonorisk.pipeline.report import load_schema

from ..rtsp_helpers import (  # noqa: TID252
    needs_rtsp_tools,
    rtsp_server,
    start_pusher,
    stop_process,
    wait_for_stream,
)
from .conftest import (  # noqa: TID252
    USERS,
    EventReader,
    Service,
    boxes_event,
    long_sweep,
    png_bomb,
    risk_event,
    running_service,
    service_config,
    wait_job,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def service(serving_models, still_bundle, tmp_path_factory) -> Iterator[Service]:
    # A long short-gap so a pusher restart keeps the lesion state (tested below). The
    # models as a bundle with a still classifier, so still images are scored too.
    config = service_config(
        serving_models,
        tmp_path_factory.mktemp("serve") / "data",
        bundle=still_bundle,
        short_gap_s=30.0,
        max_streams=5,
    )
    with running_service(config) as service:
        yield service


@pytest.fixture(scope="module")
def client(service) -> Iterator[httpx.Client]:
    with service.client() as c:
        yield c


def _upload(client: httpx.Client, path: Path, **headers) -> httpx.Response:
    return client.post(
        "/v1/jobs",
        content=path.read_bytes(),
        params={"filename": path.name},
        headers={"content-type": "application/octet-stream", **headers},
    )


# ------------------------------------------------------------------ basics
def test_health_needs_no_token_everything_else_does(service):
    with service.client(token=None) as anonymous:
        health = anonymous.get("/health")
        assert health.status_code == 200
        body = health.json()
        assert body["status"] == "ok" and body["auth"] is True
        assert any("not a clinical result" in n for n in body["notice"])
        denied = anonymous.get("/v1/jobs")
        assert denied.status_code == 401 and "Bearer" in denied.json()["detail"]
        assert anonymous.get("/metrics").status_code == 401
    with service.client(token="wrong-token-wrong-token") as wrong:
        assert wrong.get("/v1/jobs").status_code == 401
    with service.client() as ok:
        assert ok.get("/v1/jobs").status_code == 200
        spec = ok.get("/openapi.json").json()
        assert {
            "/v1/jobs",
            "/v1/jobs/{job_id}",
            "/v1/jobs/{job_id}/result",
            "/v1/streams",
            "/v1/streams/{stream_id}/events",
            "/health",
            "/metrics",
        } <= set(spec["paths"])
        assert ok.get("/docs").status_code == 200


def test_an_upload_is_scored_into_the_documented_json(client, service, sweeps):
    reply = _upload(client, sweeps["malignant"])
    assert reply.status_code == 202, reply.text
    job = reply.json()
    assert job["status"] == "queued" and job["video"]["frame_count"] == 80
    status = wait_job(client, job["job_id"])
    assert status["status"] == "done", status
    assert status["serving"]["detector"]["calls"] > 0
    document = client.get(f"/v1/jobs/{job['job_id']}/result").json()
    jsonschema.validate(document, load_schema())
    assert document["video"]["source"] == sweeps["malignant"].name
    # Nothing of the server's layout reaches the client (issue 15).
    assert str(Path(service.config.data_dir).resolve()) not in json.dumps(document)
    assert document["status"] == "scored" and 0 <= document["risk"] <= 1
    assert document["lesions"] and document["lesions"][0]["clips"]
    notices = " ".join(document["notice"])
    assert "not a clinical result" in notices and "DEMONSTRATION" in notices


def test_no_lesion_gives_no_number(client, sweeps, tmp_path):
    """Seven frames hold no 8-frame clip, whatever the detector finds: the answer is
    certain to be "no scorable lesion", and it carries no number."""
    from sonorisk.io import open_video
    from sonorisk.io.writer import write_video

    with open_video(sweeps["normal"]) as source:
        frames = [f.image for _, f in zip(range(7), source, strict=False)]
    short = tmp_path / "seven_frames.avi"
    write_video(short, frames, 30.0, "mjpeg")
    status = wait_job(client, _upload(client, short).json()["job_id"])
    assert status["status"] == "done"
    document = client.get(f"/v1/jobs/{status['job_id']}/result").json()
    assert document["status"] == "no scorable lesion"
    assert document["risk"] is None and document["clips"] == 0


def test_bad_uploads_get_4xx_with_reasons_and_the_server_keeps_serving(client, service, sweeps):
    good = sweeps["benign"].read_bytes()
    cases = {
        "text": (b"patient notes, not a video\n" * 40, 415, "text"),
        "gif": (b"GIF89a" + bytes(500), 415, "GIF"),
        "unknown bytes": (bytes(range(7, 256)) * 4, 415, "unknown content"),
        "corrupt png": (b"\x89PNG\r\n\x1a\n" + bytes(500), 422, "image"),
        "decompression bomb": (png_bomb(), 422, "decompression bomb"),
        "empty": (b"", 422, "empty"),
        "truncated": (good[: len(good) // 2], 422, "truncated"),
        "too large": (good[:12] + bytes(6 * 1024 * 1024), 413, "limit"),
    }
    for name, (body, status, words) in cases.items():
        reply = client.post(
            "/v1/jobs", content=body, headers={"content-type": "application/octet-stream"}
        )
        assert reply.status_code == status, (name, reply.text)
        assert words in reply.json()["detail"], (name, reply.text)
    corrupt = client.post("/v1/jobs", content=good[:12] + bytes(range(256)) * 100)
    # The RIFF header opens as AVI, but no stream is in it: unsupported (415).
    assert corrupt.status_code == 415 and "no video stream" in corrupt.json()["detail"]
    wrong_type = client.post("/v1/jobs", content=good, headers={"content-type": "text/plain"})
    assert wrong_type.status_code == 415 and "text/plain" in wrong_type.json()["detail"]
    assert client.get("/v1/jobs/nope").status_code == 404
    assert client.get("/v1/jobs/nope/result").status_code == 404
    assert client.get("/health").json()["status"] == "ok"
    # Nothing refused was kept: every upload on disk belongs to an accepted job.
    uploads = Path(service.config.data_dir) / "uploads"
    kept = sorted(p.stem for p in uploads.iterdir())
    jobs = {j["job_id"] for j in client.get("/v1/jobs", params={"limit": 1000}).json()["jobs"]}
    assert set(kept) <= jobs and not list(uploads.glob("*.part"))


def test_a_video_a_model_replica_refuses_fails_once_with_its_reason(client, tmp_path):
    """An InputError raised inside a Ray replica reaches the job as itself (issue 15:
    it could not be unpickled, so a 1x1 video was retried 3 times as a service fault)."""
    import numpy as np

    from sonorisk.io.writer import write_video

    tiny = tmp_path / "tiny.avi"
    write_video(tiny, (np.full((1, 1, 3), 100 + i, np.uint8) for i in range(12)), 25.0, "rawvideo")
    reply = _upload(client, tiny)
    assert reply.status_code == 202, reply.text
    status = wait_job(client, reply.json()["job_id"])
    assert status["status"] == "failed" and status["attempts"] == 1, status
    assert "1x1" in status["error"] and "deserialize" not in status["error"], status
    assert client.get("/health").json()["status"] == "ok"


def test_a_client_that_drops_mid_upload_leaves_no_partial_file(client, service):
    import socket
    from urllib.parse import urlsplit

    from .conftest import TOKEN

    uploads = Path(service.config.data_dir) / "uploads"
    before = set(uploads.iterdir())
    url = urlsplit(service.base_url)
    with socket.create_connection((url.hostname, url.port)) as sock:
        sock.sendall(
            (
                f"POST /v1/jobs?filename=cut.avi HTTP/1.1\r\nHost: {url.netloc}\r\n"
                f"Authorization: Bearer {TOKEN}\r\n"
                "Content-Type: application/octet-stream\r\n"
                "Content-Length: 5000000\r\n\r\n"
            ).encode()
            + b"RIFF"
            + b"\0" * 65536
        )
        time.sleep(1.0)  # the server is receiving: its partial file exists now
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and list(uploads.glob("*.part")):
        time.sleep(0.2)
    assert not list(uploads.glob("*.part")), "a dropped upload left its partial file"
    assert set(uploads.iterdir()) <= before  # and nothing else was kept
    assert client.get("/health").status_code == 200  # the server keeps serving
    refused = client.get("/v1/jobs", params={"limit": -1})  # no way past the 1000-row cap
    assert refused.status_code == 422 and "limit" in refused.text
    assert client.get("/v1/jobs", params={"limit": 5000}).status_code == 422


def test_concurrent_uploads_all_finish_with_the_same_answer(client, sweeps):
    def one(_):
        reply = _upload(client, sweeps["malignant"])
        assert reply.status_code == 202, reply.text
        return reply.json()["job_id"]

    with ThreadPoolExecutor(6) as pool:
        ids = list(pool.map(one, range(6)))
    finals = [wait_job(client, job_id) for job_id in ids]
    assert [f["status"] for f in finals] == ["done"] * 6
    risks = {round(f["summary"]["risk"], 6) for f in finals}
    assert len(risks) == 1  # batching across jobs never changes an answer


# ------------------------------------------------------------------- stills
def _upload_as(user: str, service: Service, path: Path, content_type: str) -> dict:
    with service.client(token=USERS[user]) as c:
        reply = c.post(
            "/v1/jobs",
            content=path.read_bytes(),
            params={"filename": path.name},
            headers={"content-type": content_type},
        )
    assert reply.status_code == 202, reply.text
    return reply.json()


def test_a_still_image_upload_is_scored_as_a_still(client, stills):
    for fmt, content_type in (("png", "image/png"), ("jpeg", "image/jpeg")):
        reply = client.post(
            "/v1/jobs",
            content=stills[fmt].read_bytes(),
            params={"filename": stills[fmt].name},
            headers={"content-type": content_type},
        )
        assert reply.status_code == 202, reply.text
        job = reply.json()
        assert job["kind"] == "still" and job["user"] == "default"
        assert (job["image"]["width"], job["image"]["height"]) == (256, 192)
        status = wait_job(client, job["job_id"], timeout_s=60)
        assert status["status"] == "done", status
        document = client.get(f"/v1/jobs/{job['job_id']}/result").json()
        jsonschema.validate(document, load_schema())
        assert document["video"]["kind"] == "still"
        assert document["video"]["source"] == stills[fmt].name
        assert "still_classifier" in document["models"]
        # The phantom frame holds its lesion: found, and given a risk by the still model.
        assert document["status"] == "scored" and document["lesions"], document
        assert 0 <= document["risk"] <= 1 and status["summary"]["risk"] == document["risk"]
    assert client.get("/health").json()["status"] == "ok"


def test_history_shows_each_user_only_their_own_jobs(service, client, stills, sweeps):
    alice = [_upload_as("alice", service, stills["png"], "image/png")["job_id"] for _ in range(3)]
    bob = _upload_as("bob", service, stills["png"], "image/png")["job_id"]
    with service.client(token=USERS["alice"]) as a, service.client(token=USERS["bob"]) as b:
        for job_id in (*alice, bob):
            wait_job(a if job_id in alice else b, job_id, timeout_s=60)
        page = a.get("/v1/history", params={"limit": 2}).json()
        assert page["user"] == "alice"
        assert [j["job_id"] for j in page["jobs"]] == alice[::-1][:2]  # newest first
        entry = page["jobs"][0]
        assert entry["kind"] == "still" and entry["status"] == "done"
        assert entry["summary"]["kind"] == "still" and entry["summary"]["lesions"]
        assert 0 <= entry["summary"]["risk"] <= 1
        assert entry["links"]["result"] == f"/v1/jobs/{alice[-1]}/result"
        rest = a.get(page["next"]).json()
        assert [j["job_id"] for j in rest["jobs"]] == [alice[0]] and rest["next"] is None
        assert [j["job_id"] for j in b.get("/v1/history").json()["jobs"]] == [bob]
        # Another user's job does not exist for bob: status, result, list, cursor.
        assert b.get(f"/v1/jobs/{alice[0]}").status_code == 404
        assert b.get(f"/v1/jobs/{alice[0]}/result").status_code == 404
        assert b.get("/v1/history", params={"before": alice[0]}).status_code == 404
        assert alice[0] not in {j["job_id"] for j in b.get("/v1/jobs").json()["jobs"]}
        assert a.get(f"/v1/jobs/{alice[0]}/result").status_code == 200
    # The single token is user "default": it keeps its own jobs and sees none of theirs.
    mine = {j["job_id"] for j in client.get("/v1/history", params={"limit": 500}).json()["jobs"]}
    assert mine and not mine & {*alice, bob}
    assert client.get(f"/v1/jobs/{bob}").status_code == 404
    with service.client(token="nobody-token-0123456789") as nobody:
        assert nobody.get("/v1/history").status_code == 401


# ------------------------------------------------------------- reliability
def _replica_actors(deployment: str) -> list[str]:
    import ray

    return sorted(
        a["name"]
        for a in ray.util.list_named_actors(all_namespaces=True)
        if a["namespace"] == "serve" and f"#{deployment}#" in a["name"]
    )


def _kill(name: str) -> None:
    import ray

    ray.kill(ray.get_actor(name, namespace="serve"), no_restart=True)


def _wait_running(client: httpx.Client, job_id: str, timeout_s: float = 60) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = client.get(f"/v1/jobs/{job_id}").json()
        if (
            status["status"] == "running"
            and (status.get("serving") or {}).get("detector", {}).get("calls", 0) >= 2
        ):
            return status
        assert status["status"] != "done", "the job finished before the kill; make it longer"
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} never ran")


def test_a_killed_detector_replica_is_replaced_and_the_job_finishes(client, sweeps, tmp_path):
    from ray import serve

    video = long_sweep(sweeps["malignant"], tmp_path / "long.avi", 6)
    job_id = _upload(client, video).json()["job_id"]
    _wait_running(client, job_id)
    (victim,) = _replica_actors("Detector")
    _kill(victim)
    status = wait_job(client, job_id)
    assert status["status"] == "done", status
    # The call in flight at the kill failed and was retried, or (killed between two
    # calls) the next call waited for the replacement: either way no frame was lost.
    # configs/pipeline-cpu.yaml: a keyframe every k-th frame, b keyframes per call.
    cpu = load_config(PipelineConfig, REPO / "configs" / "pipeline-cpu.yaml")
    keyframes = -(-480 // cpu.tracking.keyframe_interval)
    assert status["serving"]["detector"]["calls"] == -(-keyframes // cpu.detector_batch_size)
    assert status["summary"]["frames"] == 480
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        replicas = _replica_actors("Detector")
        app = serve.status().applications["sonorisk"]
        if (
            replicas
            and victim not in replicas
            and app.deployments["Detector"].replica_states.get("RUNNING") == 1
        ):
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"no replacement replica: {replicas}")


def test_a_killed_ingress_resumes_the_jobs_it_had_accepted(service, client, sweeps, tmp_path):
    video = long_sweep(sweeps["benign"], tmp_path / "long.avi", 6)
    job_id = _upload(client, video).json()["job_id"]
    _wait_running(client, job_id)
    (victim,) = _replica_actors("Ingress")
    _kill(victim)
    status = wait_job(client, job_id, timeout_s=240)
    assert status["status"] == "done", status
    assert status["attempts"] == 2  # interrupted once, resumed by the replacement
    health = client.get("/health").json()
    assert health["jobs_resumed_at_start"] >= 1
    document = client.get(f"/v1/jobs/{job_id}/result").json()
    assert document["video"]["frames_scored"] == 480


def test_metrics_report_models_jobs_and_rejections(client, sweeps):
    # Counters live in the ingress process: make this test's own traffic.
    assert client.post("/v1/jobs", content=b"not a video at all").status_code == 415
    assert wait_job(client, _upload(client, sweeps["benign"]).json()["job_id"])["status"] == "done"
    text = client.get("/metrics").text

    def value(prefix: str) -> float:
        lines = [ln for ln in text.splitlines() if ln.startswith(prefix)]
        assert lines, f"{prefix} missing from /metrics"
        return float(lines[0].rsplit(" ", 1)[1])

    assert value('sonorisk_stage_latency_seconds_count{stage="detector"}') > 0
    assert value('sonorisk_stage_latency_seconds_count{stage="classifier"}') > 0
    assert value('sonorisk_jobs_finished_total{status="done"}') >= 1
    assert value('sonorisk_uploads_rejected_total{status="415"}') >= 1
    assert value('sonorisk_replicas{deployment="Detector"}') == 1
    assert 'sonorisk_queue_depth{queue="jobs"}' in text


# ------------------------------------------------------------------ streams
@needs_rtsp_tools
def test_a_live_stream_gives_boxes_and_risk_and_survives_a_pusher_restart(client, service, sweeps):
    with rtsp_server() as (client_port, source_port):
        pusher = start_pusher(sweeps["malignant"], source_port, "probe")
        url = f"rtsp://127.0.0.1:{client_port}/probe"
        try:
            wait_for_stream(url, pusher)
            reply = client.post("/v1/streams", json={"url": url})
            assert reply.status_code == 201, reply.text
            stream_id = reply.json()["stream_id"]
            assert any("not a clinical result" in n for n in reply.json()["notice"])
            reader = EventReader(service, stream_id)
            reader.wait_for(lambda e: e["event"] == "hello", 10, "hello")
            box = reader.wait_for(boxes_event, 60, "boxes")
            assert box["latency_ms"] > 0 and len(box["boxes"][0]["box"]) == 4
            risk = reader.wait_for(risk_event, 60, "a lesion risk")
            assert 0 <= risk["risk"] <= 1 and risk["clips"] >= 1
            reader.wait_for(lambda e: e["event"] == "clip", 10, "a clip score")

            before = client.get(f"/v1/streams/{stream_id}").json()
            assert before["state"] == "live" and before["segment"] == 1
            assert before["latency"]["box"]["p50_ms"] > 0
            # Streams run the live schedule: every frame tracked, the detector
            # applied to the frames it was free for.
            detection = before["detection"]
            assert detection["schedule"] == "when_free"
            assert 0 < detection["keyframes"] <= detection["frames"]
            assert detection["call_ms"] > 0
            stop_process(pusher)  # the scanner's feed dies ...
            pusher.kill()
            time.sleep(1.0)
            pusher = start_pusher(sweeps["malignant"], source_port, "probe")  # ... and returns
            reader.wait_for(lambda e: e["event"] == "reconnected", 60, "a reconnect")
            mark = len(reader.events)
            deadline = time.monotonic() + 60
            while not any(boxes_event(e) for e in reader.events[mark:]):
                assert time.monotonic() < deadline, "no boxes after the reconnect"
                time.sleep(0.1)
            after = client.get(f"/v1/streams/{stream_id}").json()
            assert after["state"] == "live" and after["reconnects"] >= 1
            assert after["connections"] >= 2
            assert after["segment"] == 1  # a short gap: lesion state kept
            assert after["frames_processed"] > before["frames_processed"]
            final = client.delete(f"/v1/streams/{stream_id}").json()
            assert final["state"] == "stopped"
            # Every frame that came in was scored, dropped (counted) or still waiting.
            assert final["frames_in"] == (
                final["frames_processed"] + final["frames_dropped"] + final["backlog"]
            )
            reader.close()
        finally:
            stop_process(pusher)


@needs_rtsp_tools
def test_four_concurrent_streams(client, service, sweeps):
    names = [f"cam{i}" for i in range(4)]
    with rtsp_server() as (client_port, source_port):
        pushers = [start_pusher(sweeps["malignant"], source_port, n) for n in names]
        readers = []
        try:
            ids = []
            for name, pusher in zip(names, pushers, strict=True):
                url = f"rtsp://127.0.0.1:{client_port}/{name}"
                wait_for_stream(url, pusher)
                reply = client.post("/v1/streams", json={"url": url})
                assert reply.status_code == 201, reply.text
                ids.append(reply.json()["stream_id"])
            readers = [EventReader(service, sid) for sid in ids]
            for reader in readers:
                reader.wait_for(boxes_event, 90, "boxes")
            not_live = client.post("/v1/streams", json={"url": "/data/file.avi"})
            assert not_live.status_code == 422 and "/v1/jobs" in not_live.json()["detail"]
            # The service is not a network tool: no listening, no port probing.
            for url in ("tcp://127.0.0.1:18799?listen=1", "udp://10.0.0.1:9"):
                refused = client.post("/v1/streams", json={"url": url})
                assert refused.status_code == 422 and "scheme" in refused.json()["detail"]
            statuses = [client.get(f"/v1/streams/{sid}").json() for sid in ids]
            for status in statuses:
                assert status["state"] == "live" and status["frames_processed"] > 0
                assert status["frames_dropped"] >= 0 and status["latency"]["box"]["n"] > 0
            metrics = client.get("/metrics").text
            assert "sonorisk_stream_frames_in_total" in metrics
            for sid in ids:
                assert client.delete(f"/v1/streams/{sid}").json()["state"] == "stopped"
        finally:
            for reader in readers:
                reader.close()
            for pusher in pushers:
                stop_process(pusher)
