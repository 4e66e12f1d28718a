"""The job store's contract on SQLite and on a real PostgreSQL server: one claim
wins, a live replica's jobs are never taken, a dead one's are adopted once its
lease ran out, interrupted jobs fail after max_attempts, old SQLite files open."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from sonorisk.errors import ConfigError
from sonorisk.serving.config import ServeConfig
from sonorisk.serving.jobs import DONE, FAILED, QUEUED, RUNNING, JobRunner, JobStore

from ..pg_helpers import needs_postgres, new_database  # noqa: TID252
from .conftest import scored_document, wait_stored  # noqa: TID252


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=needs_postgres)])
def db_url(request, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'jobs.sqlite'}"
    return new_database(request.getfixturevalue("postgres_url"), "jobs")


def test_submit_read_and_list(db_url: str, tmp_path: Path):
    store = JobStore(db_url, owner="a")
    job = store.create("j1", "v.avi", tmp_path / "v.avi", 10)
    assert job.status == QUEUED and job.attempts == 0 and job.owner == "a"
    assert "owner" not in job.public() and job.public()["result"] is None
    store.create("j2", "w.avi", tmp_path / "w.avi", 20)
    assert store.claim("j1") == 1
    assert store.counts() == {QUEUED: 1, RUNNING: 1}
    assert [j.job_id for j in store.list(RUNNING)] == ["j1"]
    assert {j.job_id for j in store.unfinished()} == {"j1", "j2"}
    assert store.finish("j1", tmp_path / "r.json", {"risk": 0.5}, {"detector": {}})
    done = store.get("j1")
    assert done.status == DONE and done.summary == {"risk": 0.5}
    assert done.public()["result"] == "/v1/jobs/j1/result"
    store.close()
    again = JobStore(db_url, owner="b")  # committed: a reopen sees everything
    assert again.get("j1").status == DONE and again.get("j2").size_bytes == 20
    again.close()


def test_each_job_is_claimed_by_exactly_one_of_two_stores(db_url: str, tmp_path: Path):
    # Jobs of a dead replica (lease long gone): both live stores may claim them.
    dead = JobStore(db_url, owner="dead", lease_s=0.001)
    ids = [f"j{i:02d}" for i in range(24)]
    for job_id in ids:
        dead.create(job_id, "v.avi", tmp_path / "v.avi", 1)
    time.sleep(0.05)
    stores = [JobStore(db_url, owner=name) for name in ("a", "b")]
    won: dict[str, list[str]] = {"a": [], "b": []}
    barrier = threading.Barrier(4)

    def claimer(store: JobStore, order: list[str]) -> None:
        barrier.wait()
        for job_id in order:
            if store.claim(job_id) is not None:
                won[store.owner].append(job_id)

    threads = [
        threading.Thread(target=claimer, args=(s, o)) for s in stores for o in (ids, ids[::-1])
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(won["a"] + won["b"]) == ids  # every job once, none twice
    for job_id in ids:
        job = stores[0].get(job_id)
        assert job.status == RUNNING and job.attempts == 1
        assert job_id in won[job.owner]
    for store in (dead, *stores):
        store.close()


def test_a_live_replicas_jobs_are_never_taken(db_url: str, tmp_path: Path):
    a = JobStore(db_url, owner="a", lease_s=0.6)
    b = JobStore(db_url, owner="b", lease_s=0.6)
    a.create("q", "v.avi", tmp_path / "v.avi", 1)
    a.create("r", "v.avi", tmp_path / "v.avi", 1)
    assert a.claim("r") == 1
    deadline = time.monotonic() + 1.5  # more than two leases, while a renews
    while time.monotonic() < deadline:
        assert a.renew() == 2
        assert b.claim("q") is None and b.expired() == []
        time.sleep(0.1)
    assert not b.finish("r", tmp_path / "x.json", {}, {})  # fenced: not b's job
    assert a.get("r").status == RUNNING
    for store in (a, b):
        store.close()


def test_a_dead_replicas_jobs_are_adopted_once_its_lease_expired(db_url: str, tmp_path: Path):
    a = JobStore(db_url, owner="a", lease_s=0.6)
    release = threading.Event()
    started = threading.Event()

    def stuck(job):  # replica a hangs mid-job, then "dies" (stops renewing)
        started.set()
        release.wait(30)
        return scored_document(), {"by": "a"}

    runner_a = JobRunner(a, tmp_path / "ra", stuck, workers=1, max_attempts=3)
    a.create("j", "v.avi", tmp_path / "v.avi", 1)
    a.create("k", "v.avi", tmp_path / "v.avi", 1)  # queued behind j
    runner_a.submit("j")
    assert started.wait(10)

    b = JobStore(db_url, owner="b", lease_s=0.6)
    runner_b = JobRunner(
        b,
        tmp_path / "rb",
        lambda job: (scored_document(), {"by": "b"}),
        workers=1,
        max_attempts=3,
        exclusive=False,
        heartbeat=False,
    )
    assert runner_b.recover() == []  # a is alive: its leases are fresh
    time.sleep(1.0)
    assert runner_b.sweep() == []

    runner_a.shutdown()  # no more renewals: a is dead for the others
    time.sleep(1.0)
    assert sorted(runner_b.sweep()) == ["j", "k"]
    for job_id in ("j", "k"):
        job = wait_stored(b, job_id, 15.0)
        assert job.status == DONE and job.owner == "b" and job.serving == {"by": "b"}
    assert b.get("j").attempts == 2 and b.get("k").attempts == 1
    release.set()  # a wakes up: its late result must not overwrite b's
    time.sleep(0.5)
    assert b.get("j").serving == {"by": "b"}
    assert runner_b.sweep() == []
    for store in (a, b):
        store.close()


def test_interrupted_jobs_fail_after_max_attempts(db_url: str, tmp_path: Path):
    a = JobStore(db_url, owner="a", lease_s=0.2)
    a.create("hopeless", "v.avi", tmp_path / "v.avi", 1)
    a.create("once", "v.avi", tmp_path / "v.avi", 1)
    for _ in range(3):
        a.start("hopeless")
    a.start("once")
    time.sleep(0.4)
    b = JobStore(db_url, owner="b", lease_s=5)
    runner = JobRunner(
        b,
        tmp_path / "r",
        lambda job: (scored_document(), {}),
        workers=1,
        max_attempts=3,
        exclusive=False,
        heartbeat=False,
    )
    assert runner.recover() == ["once"]
    hopeless = b.get("hopeless")
    assert hopeless.status == FAILED and "interrupted 3 times" in hopeless.error
    assert wait_stored(b, "once", 15.0).attempts == 2

    def broken(job):
        raise RuntimeError("model unavailable")

    runner = JobRunner(b, tmp_path / "r", broken, workers=1, max_attempts=2, heartbeat=False)
    b.create("bad", "v.avi", tmp_path / "v.avi", 1)
    runner.submit("bad")
    job = wait_stored(b, "bad", 15.0)
    assert job.status == FAILED and job.attempts == 2 and "2 times" in job.error
    for store in (a, b):
        store.close()


def test_history_lists_one_users_jobs_newest_first_in_pages(db_url: str, tmp_path: Path):
    store = JobStore(db_url, owner="a")
    for i in range(5):
        store.create(f"a{i}", f"a{i}.png", tmp_path / f"a{i}.png", 1, user="alice", kind="still")
        store.create(f"b{i}", f"b{i}.avi", tmp_path / f"b{i}.avi", 1, user="bob")
        time.sleep(0.002)  # distinct creation times (ms), as uploads have
    store.create("d0", "d.avi", tmp_path / "d.avi", 1)  # the single token's user
    assert store.get("d0").username == "default" and store.get("b0").kind == "video"
    first = store.history("alice", limit=2)
    assert [j.job_id for j in first] == ["a4", "a3"]
    rest = store.history("alice", limit=10, before=first[-1])
    assert [j.job_id for j in rest] == ["a2", "a1", "a0"]
    assert {j.job_id for j in store.history("bob", 100)} == {f"b{i}" for i in range(5)}
    assert [j.job_id for j in store.list(user="default")] == ["d0"]
    assert len(store.list()) == 11  # no user given: everybody's (the runner's own reads)
    assert store.claim("a4") == 1
    assert store.finish(
        "a4",
        tmp_path / "r.json",
        {
            "status": "scored",
            "risk": 0.7,
            "risk_rule": "max",
            "lesions": [],
            "scored_lesions": 1,
            "clips": 0,
            "frames": 1,
        },
        {},
    )
    entry = store.get("a4").history_entry()
    assert entry["summary"] == {
        "kind": "still",
        "status": "scored",
        "risk": 0.7,
        "risk_rule": "max",
        "reason": None,
        "lesions": [],
        "scored_lesions": 1,
    }
    assert entry["links"]["result"] == "/v1/jobs/a4/result" and entry["kind"] == "still"
    assert store.get("a4").public()["user"] == "alice"
    assert store.get("a3").history_entry()["summary"] is None  # not scored yet
    store.close()


def test_a_store_of_the_previous_version_gets_the_user_and_kind_columns(
    db_url: str, tmp_path: Path
):
    """The table as the release before users made it (owner and lease, no user, no
    kind), on SQLite and PostgreSQL: it opens, its jobs are user "default"'s videos,
    so a single-token server sees all of them as before."""
    from sqlalchemy import text

    from sonorisk import db

    engine = db.make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(
            text("""CREATE TABLE jobs (job_id VARCHAR(64) PRIMARY KEY,
            filename TEXT NOT NULL, path TEXT NOT NULL, size_bytes BIGINT NOT NULL,
            status VARCHAR(16) NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, error TEXT,
            error_type TEXT, result_path TEXT, summary TEXT, created_at TEXT NOT NULL,
            started_at TEXT, finished_at TEXT, serving TEXT, owner TEXT,
            lease_until FLOAT)""")
        )
        conn.execute(
            text(
                "INSERT INTO jobs (job_id, filename, path, size_bytes, status, "
                "attempts, created_at) VALUES ('old', 'v.avi', '/x', 1, 'done', 1, "
                "'2026-01-01')"
            )
        )
    engine.dispose()
    store = JobStore(db_url, owner="a")
    old = store.get("old")
    assert (old.username, old.kind) == ("default", "video")
    store.create("new", "n.png", tmp_path / "n.png", 1, user="alice", kind="still")
    assert [j.job_id for j in store.history("default")] == ["old"]
    assert [j.job_id for j in store.history("alice")] == ["new"]
    store.close()
    JobStore(db_url, owner="b").close()  # a second start finds the columns and index


def test_a_sqlite_file_of_the_previous_version_opens_and_upgrades(tmp_path: Path):
    path = tmp_path / "jobs.sqlite"
    with sqlite3.connect(path) as conn:  # the table as sonorisk 0.x created it
        conn.execute("""CREATE TABLE jobs (job_id TEXT PRIMARY KEY, filename TEXT NOT NULL,
            path TEXT NOT NULL, size_bytes INTEGER NOT NULL, status TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0, error TEXT, error_type TEXT,
            result_path TEXT, summary TEXT, created_at TEXT NOT NULL, started_at TEXT,
            finished_at TEXT, serving TEXT)""")
        conn.execute(
            "INSERT INTO jobs (job_id, filename, path, size_bytes, status, attempts, "
            "created_at) VALUES ('old', 'v.avi', '/x', 1, 'running', 1, '2026')"
        )
    store = JobStore(path)
    runner = JobRunner(
        store,
        tmp_path / "r",
        lambda job: (scored_document(), {}),
        workers=1,
        max_attempts=3,
        heartbeat=False,
    )
    assert runner.recover() == ["old"]
    assert wait_stored(store, "old", 15.0).attempts == 2
    store.close()


def test_several_ingress_replicas_need_postgresql():
    config = ServeConfig()
    config.ingress.num_replicas = 2
    with pytest.raises(ConfigError) as info:
        config.validate()
    assert "ingress.num_replicas" in str(info.value) and "jobs.database_url" in str(info.value)
    config.jobs.database_url = "sqlite:////tmp/jobs.sqlite"
    with pytest.raises(ConfigError, match="jobs.database_url"):
        config.validate()
    config.jobs.database_url = "postgresql://sonorisk@db.example/jobs"
    config.validate()
    config.jobs.database_url = "mysql://x@y/z"
    with pytest.raises(ConfigError, match="jobs.database_url"):
        config.validate()
    one = ServeConfig()
    one.validate()  # the default: SQLite in data_dir, one replica
    assert one.jobs_database.endswith("jobs.sqlite")
