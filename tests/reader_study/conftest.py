"""Fixtures of the reader-study tests: a small phantom dataset made by the project's own
generator, one `sonorisk score` document per video (valid against the schema, one of
them "no scorable lesion"), an overlay video and heatmap strips, a reader list."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from sonorisk.models.resolve import unrecorded_section
from sonorisk.reader_study.create import StudyConfig, create_study, read_links

from ..pg_helpers import needs_postgres, new_database  # noqa: F401, TID252 (re-exported)

N_VIDEOS = 5
FRAMES = 12
SIZE = (96, 72)
# risks of the phantom videos in item order; None: "no scorable lesion"
RISKS = (0.81, 0.35, None, 0.12, 0.66)
NOTICE = [
    "Research software, not a medical device: this is not a clinical result and must not "
    "be used for diagnosis.",
    "The classifier is a DEMONSTRATION model trained in minutes on synthetic phantom videos; "
    "its numbers mean nothing about real patients.",
]
CHROMIUM = "/usr/bin/chromium"
ON_CI = bool(os.environ.get("CI"))


def score_document(
    video: Path,
    risk: float | None,
    n_frames: int,
    fps: float,
    size: tuple[int, int],
    overlay: str | None = None,
    heatmap: str | None = None,
) -> dict:
    """A `sonorisk score` document as the pipeline writes it (schema version 1)."""
    width, height = size
    lesions = []
    if risk is not None:
        frames = list(range(0, 8))
        lesions.append(
            {
                "lesion_id": 1,
                "status": "scored",
                "risk": risk,
                "confidence": 0.9,
                "clips_used": 1,
                "first_frame": 0,
                "last_frame": n_frames - 1,
                "frames_with_box": n_frames,
                "box_sources": {"detector": n_frames},
                "clips": [
                    {
                        "clip_index": 0,
                        "frame_indices": frames,
                        "frame_range": [0, 7],
                        "time_range_s": [0.0, 8 / fps],
                        "probability": risk,
                        "class_probabilities": {"benign": 1 - risk, "malignant": risk},
                        "heatmap": heatmap,
                    }
                ],
                "boxes": [
                    {
                        "frame": i,
                        "box": [20.0, 15.0, 60.0, 50.0],
                        "score": 0.9,
                        "source": "detector",
                    }
                    for i in range(n_frames)
                ],
            }
        )
    return {
        "schema": "sonorisk.score",
        "schema_version": 1,
        "sonorisk_version": "0.1.0",
        "created_at": "2025-01-01T00:00:00+00:00",
        "notice": NOTICE,
        "video": {
            "source": str(video),
            "width": width,
            "height": height,
            "fps": fps,
            "frame_count": n_frames,
            "duration_s": n_frames / fps,
            "codec": "mjpeg",
            "frames_scored": n_frames,
            "decode": {},
            "scan_region": None,
        },
        "status": "scored" if risk is not None else "no scorable lesion",
        "risk": risk,
        "clips": 1 if risk is not None else 0,
        "risk_rule": {
            "name": "most_confident_lesion",
            "text": "risk of the most confident lesion",
            "min_confidence": 0.55,
        },
        "reason": None if risk is not None else "no lesion found",
        "lesions": lesions,
        "models": {
            "detector": {"demonstration": True},
            "classifier": {"demonstration": True},
            "bundle": unrecorded_section(),
        },
        "pipeline": {},
        "timing": {"stages": {}},
        "outputs": {"overlay": overlay} if overlay else {},
    }


@pytest.fixture(scope="session")
def study_inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Dataset (phantom), AI documents with overlays and heatmaps, reader lists."""
    from sonorisk.data.synth import synthesize_phantom
    from sonorisk.io.writer import write_video
    from sonorisk.pipeline.report import load_schema

    root = tmp_path_factory.mktemp("study_inputs")
    dataset = synthesize_phantom(
        N_VIDEOS,
        root / "dataset",
        seed=3,
        size=SIZE,
        frames=FRAMES,
        proportions={"benign": 0.5, "malignant": 0.5},
    )
    from sonorisk.data import load_dataset

    ds = load_dataset(dataset)
    schema = load_schema()
    ai = root / "ai"
    ai.mkdir()
    rng = np.random.default_rng(0)
    for rec, risk in zip(ds.videos, RISKS, strict=True):
        stem = Path(rec.file).stem
        overlay = f"{stem}.overlay.mp4"
        write_video(
            ai / overlay,
            (rng.integers(0, 255, (SIZE[1], SIZE[0], 3), np.uint8) for _ in range(FRAMES)),
            30.0,
            codec="h264",
        )
        heatmap = None
        if risk is not None:
            import cv2

            heatmap = f"{stem}.heatmaps/lesion1_clip0.png"
            (ai / heatmap).parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(ai / heatmap), rng.integers(0, 255, (32, 128, 3), np.uint8))
        doc = score_document(ds.root / rec.file, risk, FRAMES, 30.0, SIZE, overlay, heatmap)
        jsonschema.validate(doc, schema)
        (ai / f"{stem}.json").write_text(json.dumps(doc))
    readers = root / "readers.csv"
    readers.write_text("reader_id,name,password\nR1,Reader One,\nR2,Reader Two,secret-pass-2\n")
    return {"dataset": dataset, "ai": ai, "readers": readers, "root": root}


def make_study(
    study_inputs: dict[str, Path], out: Path, db_url: str | None = None, **config: object
) -> Path:
    create_study(
        study_inputs["dataset"],
        study_inputs["ai"],
        study_inputs["readers"],
        out,
        db_url=db_url,
        config=StudyConfig(**config),
    )
    return out


@pytest.fixture(scope="session")
def study_template(study_inputs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A created study (SQLite, overlays shown); copy it before writing to it."""
    return make_study(
        study_inputs,
        tmp_path_factory.mktemp("template") / "study",
        show_overlay=True,
        title="Test study",
    )


@pytest.fixture
def study(study_template: Path, tmp_path: Path) -> Path:
    out = tmp_path / "study"
    shutil.copytree(study_template, out)
    return out


def links(study_dir: Path) -> dict[str, str]:
    return read_links(study_dir / "links.txt")


# --- the web app in-process ------------------------------------------------------------
@pytest.fixture
def app_store(study: Path):
    """The web app on the study's SQLite database, and its store."""
    from sonorisk.reader_study.store import StudyStore, default_db_url
    from sonorisk.reader_study.web import create_app

    store = StudyStore.open(default_db_url(study))
    yield create_app(study, store=store), store
    store.close()


def client_for(app, link: str | None):
    """A TestClient (no redirects followed), signed in by ``link`` when given."""
    from fastapi.testclient import TestClient

    client = TestClient(app, follow_redirects=False)
    if link:
        r = client.get(link)
        assert r.status_code == 303, r.text
    return client


def page_token(html: str) -> str:
    """The anti-forgery token a page hands its forms and scripts."""
    match = re.search(r'<meta name="csrf-token" content="([0-9a-f]{64})">', html)
    assert match, "page without an anti-forgery token"
    return match.group(1)


def form_token(client, url: str = "/login") -> str:
    """This client's token, read from a page as a browser would."""
    return page_token(client.get(url).text)


# --- a real server process ---------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`sonorisk reader-study serve` as a subprocess on a free loopback port."""

    def __init__(
        self,
        study_dir: Path,
        db_url: str | None = None,
        log: Path | None = None,
        port: int | None = None,
    ) -> None:
        self.study_dir = study_dir
        self.db_url = db_url
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = log or study_dir.parent / f"server-{self.port}.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> Server:
        env = dict(os.environ)
        if self.db_url:
            env["SONORISK_STUDY_DB"] = self.db_url
        self._log = open(self.log, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sonorisk.cli",
                "reader-study",
                "serve",
                str(self.study_dir),
                "--port",
                str(self.port),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"server exited ({self.proc.returncode}): {self.log.read_text()[-2000:]}"
                )
            try:
                with urllib.request.urlopen(self.base + "/healthz", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server did not start: {self.log.read_text()[-2000:]}")

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=10)
        self._log.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if not self._log.closed:
            self._log.close()


@pytest.fixture
def server_factory() -> Iterator:
    started: list[Server] = []

    def make(study_dir: Path, db_url: str | None = None, port: int | None = None) -> Server:
        server = Server(study_dir, db_url, port=port).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


# --- chromium; PostgreSQL: tests/pg_helpers.py, ``postgres_url`` in tests/conftest.py
needs_chromium = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None and not ON_CI, reason="Debian chromium not installed"
)


@pytest.fixture
def pg_db(postgres_url: str) -> str:
    """A fresh, empty database on the session's PostgreSQL server."""
    return new_database(postgres_url, "study")
