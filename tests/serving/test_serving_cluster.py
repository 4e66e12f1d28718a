"""The same application on a multi-node Ray cluster simulated on this machine
(``ray.cluster_utils.Cluster``): work spreads over nodes and survives the loss of
one; ``sonorisk batch --ray ADDRESS`` runs its files as Ray tasks there."""

from __future__ import annotations

import csv
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from .conftest import Service, service_config, wait_job  # noqa: TID252

STORE = 150 * 1024**2


@pytest.fixture(scope="module")
def cluster() -> Iterator[object]:
    import ray
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 1,
            "resources": {"head": 1},
            "object_store_memory": STORE,
            "include_dashboard": False,
        },
    )
    # Room for a detector and the classifier on each worker, plus a replacement.
    workers = [
        cluster.add_node(num_cpus=3, resources={"worker": 3}, object_store_memory=STORE)
        for _ in range(2)
    ]
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, namespace="sonorisk", log_to_driver=False)
    cluster.workers = workers  # type: ignore[attr-defined]
    try:
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


@pytest.fixture(scope="module")
def service(cluster, serving_models, tmp_path_factory) -> Iterator[Service]:
    from sonorisk.serving.server import start_service, stop_service

    config = service_config(serving_models, tmp_path_factory.mktemp("cluster") / "data")
    # The ingress (jobs database, HTTP) stays on the head; models go to workers.
    config.ingress.ray_actor_options = {"num_cpus": 0, "resources": {"head": 0.1}}
    config.detector.num_replicas = 2
    config.detector.ray_actor_options = {"num_cpus": 1, "resources": {"worker": 1}}
    config.classifier.ray_actor_options = {"num_cpus": 0.5, "resources": {"worker": 0.5}}
    config.streams.replicas = 3  # stream hosts: spread over the three nodes
    start_service(config)
    try:
        yield Service(config, f"http://127.0.0.1:{config.port}")
    finally:
        stop_service(config)


def _upload(client, path):
    reply = client.post("/v1/jobs", content=path.read_bytes(), params={"filename": path.name})
    assert reply.status_code == 202, reply.text
    return reply.json()["job_id"]


def _detector_nodes() -> set[str]:
    import ray

    nodes = []
    for actor in ray.util.list_named_actors(all_namespaces=True):
        if actor["namespace"] == "serve" and "#Detector#" in actor["name"]:
            try:
                handle = ray.get_actor(actor["name"], namespace="serve")
                nodes.append(
                    ray.get(
                        handle.__ray_call__.remote(
                            lambda self: __import__("ray").get_runtime_context().get_node_id()
                        ),
                        timeout=10,
                    )
                )
            except (ray.exceptions.RayError, ValueError):
                continue  # a replica that is gone (its node was removed)
    return nodes


def test_work_spreads_over_nodes_and_survives_losing_one(cluster, service, sweeps):
    worker_ids = {w.node_id for w in cluster.workers}
    with service.client() as client:
        assert sorted(_detector_nodes()) == sorted(worker_ids)  # one per worker node
        hosts = client.get("/health").json()["stream_hosts"]
        assert len({h["node"] for h in hosts}) == 3, hosts  # one stream host per node
        with ThreadPoolExecutor(4) as pool:
            ids = list(pool.map(lambda _: _upload(client, sweeps["malignant"]), range(4)))
        finals = [wait_job(client, job_id) for job_id in ids]
        assert all(f["status"] == "done" for f in finals), finals
        used = set()
        for final in finals:
            used |= set(final["serving"]["detector"]["nodes"])
        assert used == worker_ids, "detector calls did not reach both worker nodes"
        risk = finals[0]["summary"]["risk"]

        lost = cluster.workers[1]
        cluster.remove_node(lost)  # a machine leaves the cluster
        job_id = _upload(client, sweeps["malignant"])
        final = wait_job(client, job_id, timeout_s=240)
        assert final["status"] == "done", final
        assert final["summary"]["risk"] == pytest.approx(risk)
        assert lost.node_id not in final["serving"]["detector"]["nodes"]
        # Serve replaces the lost replica on the node that is left.
        deadline = time.monotonic() + 180
        while _detector_nodes() != [cluster.workers[0].node_id] * 2:
            assert time.monotonic() < deadline, "lost detector replica never replaced"
            time.sleep(1)
        assert client.get("/health").json()["status"] == "ok"


def test_batch_runs_as_ray_tasks_on_the_cluster(cluster, service, serving_models, sweeps, tmp_path):
    from sonorisk.serving.batch import BatchSettings, run_batch

    settings = BatchSettings(str(serving_models.detector), str(serving_models.classifier))
    out = tmp_path / "results.csv"
    summary = run_batch(
        [str(sweeps["malignant"]), str(sweeps["normal"])],
        settings,
        out,
        ray_address=cluster.address,
        progress=False,
    )
    assert summary.failed == 0 and summary.total == 2
    rows = list(csv.DictReader(out.open()))
    assert {r["video"] for r in rows} == {sweeps["malignant"].name, sweeps["normal"].name}
    assert all(r["node"] for r in rows)  # ran as Ray tasks, each on a cluster node
    assert out.with_suffix(".parquet").is_file()
