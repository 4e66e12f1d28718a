"""Fixtures for the serving tests: real models, phantom sweeps, a running service.

Models: the serving tests need a detector that finds the phantom lesions, so
boxes and a lesion risk arrive. A Faster R-CNN trained from scratch does not
learn that in a minute on a 2-core CPU (measured: 100-150 iterations at 96-128
px find nothing), so the fixture trains the ``sonorisk demo`` recipe once
(a few minutes) and caches the pair in ``$SONORISK_TEST_CACHE`` (default
``~/.cache/sonorisk-tests``), keyed by the recipe. ``SONORISK_TEST_MODELS=DIR``
(a folder with detector.pt and classifier.pt, e.g. ``sonorisk-demo/models``)
skips the training. Either way the detector is checked once: it must find a
scorable lesion in a phantom sweep it was not trained on.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest

RECIPE_VERSION = 1


@dataclass(frozen=True)
class Models:
    detector: Path
    classifier: Path

    @property
    def folder(self) -> Path:
        return self.detector.parent


def _cache_root() -> Path:
    return Path(
        os.environ.get("SONORISK_TEST_CACHE", Path.home() / ".cache" / "sonorisk-tests")
    ).expanduser()


def _verify(models: Models, video: Path, out: Path) -> dict:
    from sonorisk.pipeline.config import PipelineConfig
    from sonorisk.pipeline.score_file import load_models, score_file

    loaded = load_models(models.detector, models.classifier)
    return score_file(video, loaded, PipelineConfig(), out, progress=False)


@pytest.fixture(scope="session")
def sweeps(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three phantom sweeps (benign, malignant, normal), 80 frames of 256x192 at 30 fps."""
    from sonorisk.data.synth import synthesize_phantom

    out = synthesize_phantom(
        3,
        tmp_path_factory.mktemp("sweeps") / "set",
        seed=1000,
        frames=80,
        size=(256, 192),
        proportions={"benign": 1, "malignant": 1, "normal": 1},
    )
    videos = sorted((out / "videos").glob("*.avi"))
    return {p.stem.rsplit("_", 1)[-1]: p for p in videos}


@pytest.fixture(scope="session")
def serving_models(tmp_path_factory: pytest.TempPathFactory, sweeps: dict[str, Path]) -> Models:
    import torch

    torch.set_num_threads(1)
    given = os.environ.get("SONORISK_TEST_MODELS")
    if given:
        models = Models(Path(given) / "detector.pt", Path(given) / "classifier.pt")
    else:
        from sonorisk.pipeline.demo import DemoSettings

        # CI runs the suite alone on the machine: both cores train (about 1.6x
        # faster); beside other work, two OpenMP threads stall each other.
        settings = DemoSettings(threads=2 if os.environ.get("CI") else 1)
        key = hashlib.sha256(
            json.dumps([RECIPE_VERSION, asdict(settings)], sort_keys=True).encode()
        ).hexdigest()[:12]
        folder = _cache_root() / f"serving-models-{key}"
        models = Models(folder / "detector.pt", folder / "classifier.pt")
        if not (models.detector.is_file() and models.classifier.is_file()):
            _train(folder, settings)
            torch.set_num_threads(1)
    marker = models.folder / "verified.json"
    if not marker.is_file():
        document = _verify(models, sweeps["malignant"], tmp_path_factory.mktemp("verify"))
        assert document["status"] == "scored" and document["lesions"], (
            f"the test detector {models.detector} finds no scorable lesion in a phantom sweep; "
            "delete it to retrain"
        )
        if not given:
            marker.write_text(json.dumps({"risk": document["risk"], "at": time.time()}))
    return models


def _train(folder: Path, settings) -> None:
    import shutil

    from sonorisk.data.synth import synthesize_phantom
    from sonorisk.pipeline.demo import train_demo_models

    work = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(work, ignore_errors=True)
    train = synthesize_phantom(
        settings.train_videos, work / "train", seed=0, frames=settings.frames, size=settings.size
    )
    detector, classifier = train_demo_models(train, work / "models", settings, progress=False)
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(detector, folder / "detector.pt")
    shutil.copy(classifier, folder / "classifier.pt")
    shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="session")
def torch_one_thread() -> Iterator[None]:
    import torch

    torch.set_num_threads(1)
    yield


# ------------------------------------------------------------------- stills
def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A valid PNG signature and header declaring ``width`` x ``height`` pixels over a
    few bytes of data: a decompression bomb, refused from its header."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(bytes(1024)))
        + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="session")
def stills(tmp_path_factory: pytest.TempPathFactory, sweeps: dict[str, Path]) -> dict[str, Path]:
    """Still images cut from the malignant phantom sweep (a frame with its lesion) as
    PNG, JPEG, TIFF and BMP, and broken ones: a PNG cut short inside its pixel data,
    a decompression bomb."""
    from PIL import Image

    from sonorisk.io import open_video

    with open_video(sweeps["malignant"], color="rgb") as source:
        frame = next(f.image for f in source if f.index == 40)
    out = tmp_path_factory.mktemp("stills")
    paths = {}
    for fmt, name in (
        ("PNG", "lesion.png"),
        ("JPEG", "lesion.jpg"),
        ("TIFF", "lesion.tif"),
        ("BMP", "lesion.bmp"),
    ):
        paths[fmt.lower()] = out / name
        Image.fromarray(frame).save(paths[fmt.lower()], fmt)
    data = paths["png"].read_bytes()
    paths["corrupt"] = out / "corrupt.png"
    paths["corrupt"].write_bytes(data[: len(data) // 2])
    paths["bomb"] = out / "bomb.png"
    paths["bomb"].write_bytes(png_bomb())
    return paths


@pytest.fixture(scope="session")
def still_bundle(tmp_path_factory: pytest.TempPathFactory, serving_models: Models) -> Path:
    """The serving test models as a bundle (float32, as the checkpoint files hold
    them) with an untrained still classifier."""
    from ..still_helpers import random_still_bundle  # noqa: TID252

    return random_still_bundle(
        serving_models.detector,
        serving_models.classifier,
        tmp_path_factory.mktemp("still-bundle"),
        name="serving-test",
        notice="DEMONSTRATION models for tests: not a clinical result",
    )


# ------------------------------------------------------------------ service
TOKEN = "test-token-0123456789abcdef"  # the single token: user "default"
USERS = {"alice": "alice-token-0123456789abcdef", "bob": "bob-token-0123456789abcdefgh"}


@dataclass
class Service:
    config: object
    base_url: str

    def client(self, token: str | None = TOKEN, timeout: float = 60.0):
        import httpx

        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)


def ray_start(**kwargs) -> bool:
    """Start a small local Ray (unless one runs); True if this call started it."""
    import ray

    if ray.is_initialized():
        return False
    ray.init(
        num_cpus=kwargs.pop("num_cpus", 4),
        object_store_memory=300 * 1024**2,
        include_dashboard=False,
        namespace="sonorisk",
        log_to_driver=False,
        **kwargs,
    )
    return True


@contextlib.contextmanager
def running_service(config) -> Iterator[Service]:
    """The application deployed on a local Ray (started unless one runs), torn
    down afterwards (the Ray too, when this started it)."""
    import ray

    from sonorisk.serving.server import start_service, stop_service

    started = ray_start()
    start_service(config)
    try:
        yield Service(config, f"http://127.0.0.1:{config.port}")
    finally:
        stop_service(config)
        if started:
            ray.shutdown()


def service_config(models: Models, data_dir: Path, *, bundle: Path | None = None, **streams):
    from sonorisk.serving.config import ServeConfig

    from ..rtsp_helpers import free_port  # noqa: TID252

    repo = Path(__file__).resolve().parents[2]
    config = ServeConfig(
        host="127.0.0.1",
        port=free_port(),
        data_dir=str(data_dir),
        pipeline=str(repo / "configs" / "pipeline-cpu.yaml"),
    )
    if bundle is not None:  # the same models as a bundle, with a still classifier
        config.models.bundle = str(bundle)
    else:
        config.models.detector = str(models.detector)
        config.models.classifier = str(models.classifier)
    config.auth.enabled = "on"
    config.auth.token = TOKEN
    config.auth.users = dict(USERS)
    config.upload.max_bytes = 5 * 1024 * 1024
    config.jobs.model_retry_s = 90
    config.streams.rtsp_transport = "udp"  # rtsp-server-perl serves clients over UDP only
    for key, value in streams.items():
        setattr(config.streams, key, value)
    return config


def scored_document() -> dict:
    """The smallest score document a job runner stores (for store and runner tests)."""
    return {
        "status": "scored",
        "risk": 0.5,
        "clips": 1,
        "lesions": [],
        "video": {"frames_scored": 8},
        "notice": ["research"],
    }


def wait_stored(store, job_id: str, timeout_s: float) -> object:
    """The job once its stored status is final (done or failed)."""
    from sonorisk.serving.jobs import DONE, FAILED

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = store.get(job_id)
        if job.status in (DONE, FAILED):
            return job
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} still {store.get(job_id).status}")


def wait_job(client, job_id: str, timeout_s: float = 180.0) -> dict:
    import httpx

    deadline = time.monotonic() + timeout_s
    status: dict = {}
    while time.monotonic() < deadline:
        try:
            reply = client.get(f"/v1/jobs/{job_id}")
        except httpx.TransportError:  # the ingress is being replaced
            time.sleep(0.5)
            continue
        if reply.status_code == 200:
            status = reply.json()
            if status["status"] in ("done", "failed"):
                return status
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} not finished after {timeout_s} s: {status}")


def long_sweep(sweep: Path, out: Path, repeats: int) -> Path:
    """The sweep played forth and back ``repeats`` times (a longer real video),
    at MJPEG quantiser 10 so that it stays under the test service's upload limit."""
    from sonorisk.io import open_video
    from sonorisk.io.writer import write_video

    with open_video(sweep) as source:
        frames = [f.image for f in source]
        fps = source.meta.fps or 30.0
    sequence = []
    for k in range(repeats):
        sequence += frames if k % 2 == 0 else frames[::-1]
    write_video(out, sequence, fps, "mjpeg", qscale=10)
    return out


class EventReader:
    """Reads a stream's Server-Sent Events in a thread into a list."""

    def __init__(self, service: Service, stream_id: str) -> None:
        import threading

        self.events: list[dict] = []
        self._stop = threading.Event()
        self._client = service.client(timeout=None)
        self._thread = threading.Thread(target=self._run, args=(stream_id,), daemon=True)
        self._thread.start()

    def _run(self, stream_id: str) -> None:
        import httpx

        try:
            with self._client.stream("GET", f"/v1/streams/{stream_id}/events") as reply:
                assert reply.headers["content-type"].startswith("text/event-stream")
                for line in reply.iter_lines():
                    if line.startswith("data: "):
                        self.events.append(json.loads(line[6:]))
                    if self._stop.is_set():
                        return
        except httpx.HTTPError:
            return

    def wait_for(self, predicate, timeout_s: float, what: str) -> dict:
        deadline = time.monotonic() + timeout_s
        seen = 0
        while time.monotonic() < deadline:
            for event in self.events[seen:]:
                if predicate(event):
                    return event
            seen = len(self.events)
            time.sleep(0.05)
        kinds = sorted({e["event"] for e in self.events})
        raise AssertionError(
            f"no {what} within {timeout_s} s (saw {len(self.events)} events: {kinds})"
        )

    def close(self) -> None:
        self._stop.set()
        self._client.close()


def boxes_event(event: dict) -> bool:
    return event["event"] == "boxes" and bool(event["boxes"])


def risk_event(event: dict) -> bool:
    return event["event"] == "lesion" and event["risk"] is not None
