"""The application scaled out on one machine: two ingress replicas sharing a job
store on a real PostgreSQL server, and live streams spread over two stream hosts
(real RTSP server, ffmpeg pushers). One service for the module."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from ..pg_helpers import needs_postgres, new_database  # noqa: TID252
from ..rtsp_helpers import (  # noqa: TID252
    needs_rtsp_tools,
    rtsp_server,
    start_pusher,
    stop_process,
    wait_for_stream,
)
from .conftest import (  # noqa: TID252
    EventReader,
    Service,
    boxes_event,
    running_service,
    service_config,
    wait_job,
)

pytestmark = needs_postgres


@pytest.fixture(scope="module")
def service(serving_models, postgres_url, tmp_path_factory) -> Iterator[Service]:
    config = service_config(
        serving_models, tmp_path_factory.mktemp("replicas") / "data", replicas=2, max_streams=2
    )
    config.ingress.num_replicas = 2
    config.ingress.job_workers = 1
    config.jobs.database_url = new_database(postgres_url, "serve")
    with running_service(config) as service:
        yield service


@pytest.fixture(scope="module")
def client(service) -> Iterator[httpx.Client]:
    with service.client() as c:
        yield c


def test_two_ingress_replicas_share_one_job_store(client, service, sweeps):
    from ray import serve

    app = serve.status().applications["sonorisk"]
    assert app.deployments["Ingress"].replica_states.get("RUNNING") == 2

    def upload(_):
        video = sweeps["malignant"]
        reply = client.post(
            "/v1/jobs",
            content=video.read_bytes(),
            params={"filename": video.name},
            headers={"content-type": "application/octet-stream"},
        )
        assert reply.status_code == 202, reply.text
        return reply.json()["job_id"]

    with ThreadPoolExecutor(4) as pool:
        ids = list(pool.map(upload, range(4)))
    finals = [wait_job(client, job_id) for job_id in ids]
    assert [f["status"] for f in finals] == ["done"] * 4
    assert all(f["attempts"] == 1 for f in finals)  # each job run once, by one replica
    assert len({round(f["summary"]["risk"], 6) for f in finals}) == 1
    assert all(f["serving"]["ingress"].startswith("ingress-") for f in finals)
    # Whichever replica answers, it sees every job (one store, not one per replica).
    for _ in range(6):
        listed = {j["job_id"] for j in client.get("/v1/jobs").json()["jobs"]}
        assert set(ids) <= listed
        assert client.get(f"/v1/jobs/{ids[0]}/result").status_code == 200
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["jobs"].get("done", 0) >= 4


# ------------------------------------------------------------------ streams
def _frames_in_order(events: list[dict]) -> list[int]:
    frames = [e["frame"] for e in events if e["event"] == "boxes"]
    assert frames, "no boxes event"
    assert all(b > a for a, b in zip(frames, frames[1:], strict=False)), frames
    return frames


def _host(client: httpx.Client, stream_id: str) -> dict:
    status = client.get(f"/v1/streams/{stream_id}")
    assert status.status_code == 200, status.text
    return status.json()


@needs_rtsp_tools
def test_streams_spread_over_hosts_keep_order_and_survive_a_host_dying(client, service, sweeps):
    import ray

    names = ("left", "right", "third")
    with rtsp_server() as (client_port, source_port):
        pushers = [start_pusher(sweeps["malignant"], source_port, n) for n in names]
        readers: list[EventReader] = []
        try:
            urls = [f"rtsp://127.0.0.1:{client_port}/{n}" for n in names]
            for url, pusher in zip(urls, pushers, strict=True):
                wait_for_stream(url, pusher)
            ids = []
            for url in urls[:2]:
                reply = client.post("/v1/streams", json={"url": url})
                assert reply.status_code == 201, reply.text
                ids.append(reply.json()["stream_id"])
            readers = [EventReader(service, sid) for sid in ids]
            for reader in readers:
                reader.wait_for(boxes_event, 90, "boxes")
            # Least loaded placement: one stream on each host, in two processes.
            hosts = [_host(client, sid)["host"] for sid in ids]
            assert {h["replica"] for h in hosts} == {0, 1}
            assert hosts[0]["pid"] != hosts[1]["pid"]
            # Every call reaches the stream's own host, through either ingress replica.
            for _ in range(4):
                for sid, host in zip(ids, hosts, strict=True):
                    status = _host(client, sid)
                    assert status["host"]["pid"] == host["pid"] and status["state"] == "live"
            full = client.post("/v1/streams", json={"url": urls[2]})
            assert full.status_code == 429 and "max_streams" in full.json()["detail"]
            listed = {s["stream_id"] for s in client.get("/v1/streams").json()["streams"]}
            assert set(ids) <= listed
            assert "sonorisk_stream_frames_in_total" in client.get("/metrics").text
            assert client.get("/health").json()["streams"] == 2

            # The host of the first stream dies (Ray restarts the process).
            victim = ray.get_actor(
                f"sonorisk-stream-host-{hosts[0]['replica']}",
                namespace=service.config.ray.namespace,
            )
            before = _host(client, ids[1])["frames_processed"]
            ray.kill(victim, no_restart=False)
            deadline = time.monotonic() + 60
            while (status := _host(client, ids[0]))["state"] != "failed":
                assert time.monotonic() < deadline, status
                time.sleep(0.5)
            assert "stream host" in status["last_error"]
            readers[0].wait_for(lambda e: e["event"] == "stopped", 30, "stopped")
            assert any(e["event"] == "error" for e in readers[0].events)
            # The other stream goes on, its frames in order; the lost slot is free.
            deadline = time.monotonic() + 60
            while _host(client, ids[1])["frames_processed"] <= before:
                assert time.monotonic() < deadline, "the other stream stopped"
                time.sleep(0.5)
            third = client.post("/v1/streams", json={"url": urls[2]})
            assert third.status_code == 201, third.text
            ids.append(third.json()["stream_id"])
            assert client.get("/health").json()["status"] == "ok"
            assert client.get("/v1/streams/nope").status_code == 404
            assert client.delete("/v1/streams/nope").status_code == 404
            assert client.delete(f"/v1/streams/{ids[0]}").json()["state"] == "failed"
            for sid in ids[1:]:
                final = client.delete(f"/v1/streams/{sid}").json()
                assert final["state"] == "stopped", final
            readers[1].wait_for(lambda e: e["event"] == "stopped", 30, "stopped")
            for reader in readers:
                _frames_in_order(reader.events)
        finally:
            for reader in readers:
                reader.close()
            for pusher in pushers:
                stop_process(pusher)
