"""Serving parts that need no Ray: config, auth, upload checks, the job store and
runner, live ingest (reconnect, drops) and stream segments on real video files."""

from __future__ import annotations

import random
import stat
import threading
import time
from pathlib import Path

import pytest

from sonorisk.errors import ConfigError, InputError
from sonorisk.pipeline.config import PROFILE_DIR
from sonorisk.serving.auth import (
    auth_enabled,
    resolve_token,
    resolve_users,
    token_matches,
    user_for,
)
from sonorisk.serving.config import ServeConfig, StreamsConfig, load_serve_config
from sonorisk.serving.jobs import DONE, FAILED, QUEUED, RUNNING, JobRunner, JobStore
from sonorisk.serving.server import resolve_paths
from sonorisk.serving.uploads import UploadRejected, check_upload, sniff_magic

from .conftest import scored_document, wait_stored  # noqa: TID252

REPO = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------- config/auth
def test_shipped_config_loads_and_validates():
    config = load_serve_config(REPO / "configs" / "serve.yaml")
    assert config.host == "127.0.0.1" and config.detector.max_batch_size >= 1
    assert config.ray.address is None  # one machine, no cluster, by default
    # It keeps the code's safe defaults: dead streams give up, no frame waits
    # for a model, the models yield the cores to tracking.
    defaults = ServeConfig()
    assert config.streams.give_up_after_s == defaults.streams.give_up_after_s == 300
    assert config.streams.schedule == defaults.streams.schedule == "when_free"
    assert config.detector.niceness == config.classifier.niceness == 19
    # Its streams run the CPU profile, named so that it resolves from any folder.
    assert config.pipeline == "cpu"
    assert resolve_paths(config).pipeline == str((PROFILE_DIR / "cpu.yaml").resolve())


def test_bad_config_values_are_named(tmp_path: Path):
    bad = tmp_path / "serve.yaml"
    bad.write_text("detector:\n  num_replicas: 0\n")
    with pytest.raises(ConfigError, match="detector.num_replicas"):
        load_serve_config(bad)
    bad.write_text("detector:\n  ray_actor_options: {num_gpus: -1}\n")
    with pytest.raises(ConfigError, match="num_gpus"):
        load_serve_config(bad)
    bad.write_text("bogus: 1\n")
    with pytest.raises(ConfigError, match="bogus"):
        load_serve_config(bad)
    bad.write_text("classifier:\n  niceness: -5\n")  # more priority than Ray's workers
    with pytest.raises(ConfigError, match="classifier.niceness"):
        load_serve_config(bad)
    bad.write_text("streams:\n  schedule: sometimes\n")
    with pytest.raises(ConfigError, match="schedule"):
        load_serve_config(bad)


def test_auth_is_on_by_default_beyond_loopback(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("SONORISK_TOKEN", raising=False)
    assert not auth_enabled(ServeConfig(host="127.0.0.1"))
    assert not auth_enabled(ServeConfig(host="::1"))
    public = ServeConfig(host="0.0.0.0", data_dir=str(tmp_path))
    assert auth_enabled(public)
    token = resolve_token(public)  # generated once, stored private, reused
    path = tmp_path / "token"
    assert token and path.read_text().strip() == token
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert resolve_token(public) == token
    assert token_matches(token, f"Bearer {token}")
    assert not token_matches(token, "Bearer wrong-token-wrong-token")
    assert not token_matches(token, None) and not token_matches(token, token)
    assert resolve_token(ServeConfig(host="127.0.0.1")) is None


def test_short_tokens_are_refused():
    config = ServeConfig(host="0.0.0.0")
    config.auth.token = "short"
    with pytest.raises(ConfigError, match="16 characters"):
        resolve_token(config)


# -------------------------------------------------------------------- uploads
@pytest.mark.parametrize(
    "head,status,words",
    [
        (b"hello, this is a text file\n" * 10, 415, "text"),
        (b"GIF89a" + bytes(200), 415, "GIF"),
        (b"BM, said the patient notes, and went on for a while\n" * 10, 415, "text"),
        (b"RIFF\x00\x00\x00\x00WAVEfmt " + bytes(200), 415, "WAV"),
        (bytes(range(256)) * 2, 415, "unknown content"),
    ],
)
def test_magic_bytes_refuse_what_is_not_a_video(head: bytes, status: int, words: str):
    with pytest.raises(UploadRejected) as info:
        sniff_magic(head)
    assert info.value.status == status and words in info.value.reason


@pytest.mark.parametrize(
    "head,name",
    [
        (b"\x89PNG\r\n\x1a\n", "png"),
        (b"\xff\xd8\xff\xe0", "jpeg"),
        (b"II*\x00", "tiff"),
        (b"MM\x00*", "tiff"),
        (b"BM" + bytes(12) + (40).to_bytes(4, "little"), "bmp"),
    ],
)
def test_magic_bytes_name_still_images(head: bytes, name: str):
    assert sniff_magic(head + bytes(100)) == name


def test_stills_pass_the_checks_and_broken_ones_are_422(stills):
    for fmt in ("png", "jpeg", "tiff", "bmp"):
        info = check_upload(stills[fmt])
        assert (info.kind, info.width, info.height, info.frame_count) == ("still", 256, 192, 1)
        assert info.container == fmt
    for broken, words in (("corrupt", "PNG"), ("bomb", "bomb")):
        with pytest.raises(UploadRejected) as info:
            check_upload(stills[broken])
        assert info.value.status == 422 and words in info.value.reason, info.value.reason


def test_a_single_frame_dicom_is_checked_as_a_still(tmp_path: Path):
    import numpy as np

    from ..io.test_io_dicom import _dataset, _save  # noqa: TID252

    def dicom(name: str, rows: int, columns: int) -> Path:
        gray = np.full((rows, columns), 90, np.uint8)
        return _save(
            _dataset(gray.tobytes(), "MONOCHROME2", 1, n_frames=1, Rows=rows, Columns=columns),
            tmp_path / name,
        )

    info = check_upload(dicom("one.dcm", 40, 48))
    assert (info.container, info.kind, info.width, info.height) == ("dicom", "still", 48, 40)
    with pytest.raises(UploadRejected) as refused:  # read as a still: the reader's limits
        check_upload(dicom("tiny.dcm", 24, 32))
    assert refused.value.status == 422 and "too small" in refused.value.reason


def test_named_users_sign_in_by_token_and_the_single_token_is_default(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("SONORISK_TOKEN", raising=False)
    config = ServeConfig(host="0.0.0.0", data_dir=str(tmp_path / "data"))
    config.auth.users = {"alice": "a" * 20}
    users_file = tmp_path / "users"
    users_file.write_text("# name token\nbob " + "b" * 20 + "\n\ncarol " + "c" * 20 + "\n")
    users_file.chmod(0o640)
    config.auth.users_file = str(users_file)
    with pytest.raises(ConfigError, match="chmod 600"):  # the tokens are passwords
        resolve_users(config)
    users_file.chmod(0o600)
    users = resolve_users(config)
    assert users == {"alice": "a" * 20, "bob": "b" * 20, "carol": "c" * 20}
    # Named users only: no single token is generated for a user nobody asked for.
    assert resolve_token(config) is None and not (tmp_path / "data" / "token").exists()
    assert user_for(users, "Bearer " + "b" * 20) == "bob"
    assert user_for(users, "Bearer " + "d" * 20) is None and user_for(users, None) is None
    config.auth.token = "t" * 20  # the single token of earlier versions: user "default"
    users = resolve_users(config)
    assert users["default"] == "t" * 20 and user_for(users, "Bearer " + "t" * 20) == "default"
    assert user_for(resolve_users(ServeConfig(host="127.0.0.1")), None) == "default"  # no auth
    config.auth.users = {"alice": "b" * 20}
    with pytest.raises(ConfigError, match="same token"):
        resolve_users(config)
    config.auth.users = {"al ice": "x" * 20}
    with pytest.raises(ConfigError, match="user name"):
        resolve_users(config)
    config.auth.users = {"alice": "short"}
    with pytest.raises(ConfigError, match="16 characters"):
        resolve_users(config)
    users_file.write_text("dave\n")
    config.auth.users = {}
    with pytest.raises(ConfigError, match="NAME TOKEN"):
        resolve_users(config)


def test_a_good_sweep_passes_the_checks(sweeps):
    info = check_upload(sweeps["benign"])
    assert (info.container, info.width, info.height, info.frame_count) == ("avi", 256, 192, 80)


def test_truncated_and_corrupt_files_are_422(sweeps, tmp_path: Path):
    data = sweeps["benign"].read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(UploadRejected) as info:
        check_upload(cut)
    assert info.value.status == 422 and "truncated" in info.value.reason
    junk = tmp_path / "junk.avi"  # a RIFF/AVI header over (seeded) random bytes
    junk.write_bytes(data[:12] + random.Random(0).randbytes(20000))
    with pytest.raises(UploadRejected) as info:
        check_upload(junk)
    # The container opens but holds no stream: unsupported, not a damaged video.
    assert info.value.status == 415
    assert "no video stream" in info.value.reason


# ----------------------------------------------------------------------- jobs
def test_job_store_survives_a_reopen(tmp_path: Path):
    store = JobStore(tmp_path / "jobs.sqlite")
    store.create("a1", "v.avi", tmp_path / "v.avi", 10)
    assert store.start("a1") == 1
    store.close()
    again = JobStore(tmp_path / "jobs.sqlite")
    job = again.get("a1")
    assert job is not None and job.status == RUNNING and job.attempts == 1
    assert [j.job_id for j in again.unfinished()] == ["a1"]


def test_runner_retries_service_faults_then_fails_with_the_reason(tmp_path: Path):
    store = JobStore(tmp_path / "jobs.sqlite")
    calls: list[int] = []

    def flaky(job):
        calls.append(1)
        if len(calls) < 2:
            raise RuntimeError("replica died")
        return scored_document(), {"detector": {}}

    runner = JobRunner(store, tmp_path / "results", flaky, workers=1, max_attempts=3)
    store.create("ok", "v.avi", tmp_path / "v.avi", 1)
    runner.submit("ok")
    job = wait_stored(store, "ok", 10.0)
    assert job.status == DONE and job.attempts == 2 and job.summary["risk"] == 0.5
    assert Path(job.result_path).is_file()

    def broken(job):
        raise RuntimeError("model unavailable")

    runner = JobRunner(store, tmp_path / "results", broken, workers=1, max_attempts=2)
    store.create("bad", "v.avi", tmp_path / "v.avi", 1)
    runner.submit("bad")
    job = wait_stored(store, "bad", 10.0)
    assert job.status == FAILED and job.attempts == 2
    assert "model unavailable" in job.error and "2 times" in job.error


def test_runner_does_not_retry_the_videos_own_fault(tmp_path: Path):
    store = JobStore(tmp_path / "jobs.sqlite")
    calls: list[int] = []

    def bad_video(job):
        calls.append(1)
        raise InputError(job.filename, "no decodable frame: nothing to score")

    runner = JobRunner(store, tmp_path / "results", bad_video, workers=1, max_attempts=3)
    store.create("v", "v.avi", tmp_path / "v.avi", 1)
    runner.submit("v")
    job = wait_stored(store, "v", 10.0)
    assert job.status == FAILED and len(calls) == 1 and "no decodable frame" in job.error


def test_recover_requeues_interrupted_jobs_and_gives_up_after_max_attempts(tmp_path: Path):
    store = JobStore(tmp_path / "jobs.sqlite")
    for job_id in ("queued", "interrupted", "hopeless"):
        store.create(job_id, "v.avi", tmp_path / "v.avi", 1)
    store.start("interrupted")
    for _ in range(3):
        store.start("hopeless")
    done = threading.Event()

    def score(job):
        return scored_document(), {}

    runner = JobRunner(
        store,
        tmp_path / "results",
        score,
        workers=1,
        max_attempts=3,
        on_final=lambda status: done.set(),
    )
    resumed = runner.recover()
    assert sorted(resumed) == ["interrupted", "queued"]
    assert wait_stored(store, "queued", 10.0).status == DONE
    assert wait_stored(store, "interrupted", 10.0).status == DONE
    hopeless = store.get("hopeless")
    assert hopeless.status == FAILED and "interrupted 3 times" in hopeless.error
    assert store.get("queued").status != QUEUED


# ------------------------------------------------------------- live ingest
def _file_opener(path: Path, opened: list[float]):
    from sonorisk.io import open_video

    def open_source(url, **kwargs):  # the "stream" is a real file: it ends, and reopens
        opened.append(time.perf_counter())
        return open_video(path)

    return open_source


def test_ingest_never_blocks_counts_drops_and_reconnects(sweeps):
    opened: list[float] = []
    cfg = StreamsConfig(
        max_backlog=24,
        catchup_threshold=24,
        catchup_window=12,
        reconnect_initial_s=0.2,
        reconnect_max_s=0.8,
    )
    from sonorisk.serving.streams import LiveIngest

    ingest = LiveIngest("file-as-stream", cfg, _file_opener(sweeps["benign"], opened))
    ingest.start()
    # Nobody takes frames: the reader keeps reading (a third connection means two
    # whole passes over the file), the backlog stays bounded. The deadline only
    # ends a hung reader; no speed is asserted (timing belongs to benchmarks/).
    deadline = time.monotonic() + 120
    while ingest.connections < 3 and ingest.alive and time.monotonic() < deadline:
        time.sleep(0.05)
    ingest.stop()
    ingest.join(5)
    assert not ingest.alive
    assert ingest.frames_in >= 2 * 80  # it read the file more than once, never blocked
    assert ingest.backlog() <= 24
    assert ingest.dropped_full == ingest.frames_in - ingest.backlog()
    assert ingest.reconnects >= 2 and ingest.connections >= 2


def test_catch_up_keeps_the_newest_contiguous_frames(sweeps):
    from sonorisk.serving.streams import LiveIngest

    cfg = StreamsConfig(
        max_backlog=80,
        catchup_threshold=30,
        catchup_window=10,
        reconnect_initial_s=5,
        reconnect_max_s=5,
    )
    ingest = LiveIngest("file", cfg, _file_opener(sweeps["benign"], []))
    ingest.start()
    deadline = time.monotonic() + 10
    while ingest.frames_in < 80 and time.monotonic() < deadline:
        time.sleep(0.05)
    items = ingest.take(0.1)
    ingest.stop()
    indices = [i.frame.index for i in items]
    assert indices == list(range(70, 80))  # the newest 10, contiguous
    assert ingest.dropped_catchup == 70


class _Clock:
    """Time that passes only when the reader waits: the backoff without wall-clock bounds."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now


def test_reconnects_back_off_and_give_up_after_a_long_outage(monkeypatch):
    from sonorisk.errors import StreamDisconnectedError
    from sonorisk.serving import stream_ingest
    from sonorisk.serving.streams import FAILED as STREAM_FAILED
    from sonorisk.serving.streams import LiveIngest

    clock = _Clock()
    tries: list[float] = []
    waits: list[float] = []

    class Waited(threading.Event):
        def wait(self, timeout=None):
            waits.append(timeout)
            clock.now += timeout
            return self.is_set()

    def refuse(url, **kwargs):
        tries.append(clock.now)
        raise StreamDisconnectedError(url, "could not connect")

    monkeypatch.setattr(stream_ingest, "time", clock)
    cfg = StreamsConfig(reconnect_initial_s=0.05, reconnect_max_s=0.4, give_up_after_s=1.2)
    ingest = LiveIngest("rtsp://127.0.0.1:9/none", cfg, refuse)
    ingest._stop = Waited()
    ingest._run()  # in this thread, on the test's clock
    assert ingest.state == STREAM_FAILED and "gave up" in ingest.last_error
    assert "could not connect" in ingest.last_error
    # Doubling from 0.05 s, capped at 0.4 s, until 1.2 s without frames has passed.
    assert waits == pytest.approx([0.05, 0.1, 0.2, 0.4, 0.4, 0.4])
    assert len(tries) == len(waits) + 1


def _local_session(models, video: Path, cfg: StreamsConfig):
    from sonorisk.config import load_config
    from sonorisk.pipeline.config import PipelineConfig
    from sonorisk.pipeline.score_file import load_models
    from sonorisk.pipeline.scorer import IncrementalScorer
    from sonorisk.serving.streams import StreamSession

    loaded = load_models(models.detector, models.classifier)
    pipeline = load_config(PipelineConfig, REPO / "configs" / "pipeline-cpu.yaml")
    pipeline.detector_batch_size = 1

    def make_scorer(fps):
        return IncrementalScorer(loaded.detector, loaded.classifier, pipeline, fps=fps)

    return StreamSession(
        "s1",
        "file",
        cfg,
        make_scorer,
        notice=["research"],
        models=loaded.cards,
        open_source=_file_opener(video, []),
    )


def _run_until(session, done, timeout_s: float = 60) -> list[dict]:
    """Run a session until ``done()`` (or the timeout), stop it; every event it sent."""
    q = session.subscribe()
    session.start()
    deadline = time.monotonic() + timeout_s
    while not done() and time.monotonic() < deadline:
        time.sleep(0.1)
    session.stop()
    return [q.get_nowait() for _ in range(q.qsize())]


def _events_until(session, q, seconds: float) -> list[dict]:
    events, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            events.append(q.get(timeout=0.1))
        except Exception:  # noqa: BLE001 (queue.Empty)
            continue
    return events


@pytest.fixture(scope="module")
def long_gap_run(serving_models, sweeps, torch_one_thread):
    """A file streamed twice with a gap longer than short_gap_s between: (session, events)."""
    long = StreamsConfig(
        reconnect_initial_s=1.2,
        reconnect_max_s=1.2,
        short_gap_s=0.5,
        max_backlog=200,
        catchup_threshold=150,
        catchup_window=100,
    )
    session = _local_session(serving_models, sweeps["malignant"], long)
    return session, _run_until(session, lambda: session.segment >= 2)


def test_a_short_gap_keeps_the_lesions_a_long_gap_ends_them(
    serving_models, sweeps, torch_one_thread, long_gap_run
):
    # The file ends after 80 frames and "reconnects" 0.3 s later: a short gap.
    short = StreamsConfig(
        reconnect_initial_s=0.3,
        reconnect_max_s=0.3,
        short_gap_s=5.0,
        max_backlog=200,
        catchup_threshold=150,
        catchup_window=100,
    )
    session = _local_session(serving_models, sweeps["malignant"], short)
    events = _run_until(session, lambda: session.frames_processed >= 100)
    kinds = {e["event"] for e in events}
    assert {"boxes", "clip", "lesion", "reconnected"} <= kinds
    assert session.segment == 1  # one segment across the gap: lesion state kept
    frames = [e["frame"] for e in events if e["event"] == "boxes"]
    assert frames == sorted(frames) and len(set(frames)) == len(frames)
    assert max(frames) >= 80  # numbering went on after the reconnect

    # A gap longer than short_gap_s ends every lesion and starts a new segment.
    session, events = long_gap_run
    ended = [e for e in events if e["event"] == "segment_ended"]
    assert ended and ended[0]["segment"] == 1
    assert ended[0]["reason"].startswith(("no frames for", "feed gap of"))
    assert ended[0]["status"] == "scored" and ended[0]["risk"] is not None
    assert any(e["event"] == "lesion_ended" and e["segment"] == 1 for e in events)
    assert session.segment >= 2


def test_a_stream_segment_ends_with_the_versioned_document_a_file_gets(long_gap_run):
    import jsonschema

    from sonorisk.pipeline.document import ScoreDocument
    from sonorisk.pipeline.report import load_schema

    # The file "reconnects" after 1.2 s, past short_gap_s: segment 1 is the whole file.
    session, events = long_gap_run
    (ended, *_) = [e for e in events if e["event"] == "segment_ended"]
    document = ended["document"]
    jsonschema.validate(document, load_schema())
    assert document["schema"] == "sonorisk.score" and document["schema_version"] == 1
    assert document["video"]["source"] == "file" and document["video"]["frames_scored"] == 80
    assert document["models"]["detector"]["architecture"]  # the stream's model cards
    assert any("DEMONSTRATION" in line for line in document["notice"])
    # The event's summary is the document's one summary; the status lists it too.
    summary = ScoreDocument.from_json(document).summary().as_dict()
    assert {k: ended[k] for k in summary if k != "reason"} == {
        k: v for k, v in summary.items() if k != "reason"
    }
    assert ended["risk_reason"] == summary["reason"]
    assert session.status()["ended_segments"][0]["risk"] == document["risk"]
    # The lesions the stream showed live are the document's lesions.
    shown = {
        e["lesion_id"]
        for e in events
        if e["event"] == "lesion_ended" and e["segment"] == 1 and not e["dropped"]
    }
    merged = {i for lz in document["lesions"] for i in [lz["lesion_id"], *lz["merged_ids"]]}
    assert shown == merged and document["lesions"]


# ------------------------------------------------------------------------ CLI
def test_verbs_are_registered_without_importing_ray_or_torch():
    import subprocess
    import sys

    code = (
        "import sys; from sonorisk.cli import build_parser; p = build_parser(); "
        "bad = [m for m in ('ray', 'torch') if m in sys.modules]; "
        "assert not bad, bad; p.parse_args(['serve', '--port', '9000']); "
        "p.parse_args(['batch', 'DIR', '--ray', 'auto'])"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_serve_names_a_missing_checkpoint_before_starting_anything(tmp_path: Path, capsys):
    import sys

    from sonorisk.cli import main

    assert (
        main(["serve", "--models", str(tmp_path / "none"), "--data-dir", str(tmp_path / "d")]) == 2
    )
    err = capsys.readouterr().err
    assert "models.bundle" in err and "not found" in err and "none" in err
    assert "ray" not in sys.modules or not __import__("ray").is_initialized()
