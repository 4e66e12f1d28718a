"""The upload-job table: SQLite on one node, PostgreSQL when several ingress
replicas share it (``jobs.database_url``).

Every job row names its **owner** (the ingress replica that holds it: the one
that accepted it, or adopted it later) and a **lease** (``lease_until``, a time
on the database's clock). A live owner renews the leases of all its unfinished
jobs every few seconds. This is what makes several replicas safe:

* a job is run by exactly one runner: ``claim`` is one conditional UPDATE
  (``status = 'queued'`` and held by the caller) whose row count says who won;
  the database serializes two claims of the same row (PostgreSQL re-checks the
  WHERE clause of the second UPDATE against the row the first one committed);
* after a replica dies, another one ``adopt``s its jobs only once their lease has
  expired, again by a conditional UPDATE against the row as it was read, so two
  replicas sweeping at once cannot both take it, and a replica never takes a job
  that a live replica is still running;
* the writes of a running job (``finish``, ``fail``, ``requeue``) are fenced on
  the owner: a replica that lost its lease (the database was unreachable for a
  whole lease) cannot overwrite what the new owner did.

Leases use the database's clock on PostgreSQL (replicas on different nodes need
not agree on the time) and this process's clock on SQLite (one node).
"""

from __future__ import annotations

import builtins
import datetime as _dt
import json
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    func,
    inspect,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection, Engine

from sonorisk import db
from sonorisk.serving.states import JobState

log = logging.getLogger(__name__)

QUEUED, RUNNING, DONE, FAILED = JobState.QUEUED, JobState.RUNNING, JobState.DONE, JobState.FAILED
FINAL = (DONE, FAILED)
UNFINISHED = (QUEUED, RUNNING)
_PG_LOCK_KEY = 7_202_519  # the advisory lock under which replicas create the table

metadata = MetaData()
jobs = Table(
    "jobs",
    metadata,
    Column("job_id", String(64), primary_key=True),
    Column("filename", Text, nullable=False),
    Column("path", Text, nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("error", Text),
    Column("error_type", Text),
    Column("result_path", Text),
    Column("summary", Text),  # JSON
    Column("created_at", Text, nullable=False),
    Column("started_at", Text),
    Column("finished_at", Text),
    Column("serving", Text),  # JSON
    Column("owner", Text),  # the ingress replica holding the job
    Column("lease_until", Float),  # seconds since the epoch, database clock
    Column("username", Text),  # the user who made it (sonorisk.serving.auth)
    Column("kind", Text),  # what was uploaded: video or still
    Index("ix_jobs_status", "status"),
    Index("ix_jobs_user_created", "username", "created_at"),
)
# Added after the first release (files and databases of older versions lack them),
# with the value their existing rows get: every job of a single-token server (or
# one without auth) was the user "default"'s, and every upload was a video.
_ADDED_COLUMNS = {
    "owner": ("TEXT", None),
    "lease_until": ("FLOAT", None),
    "username": ("TEXT", "default"),
    "kind": ("TEXT", "video"),
}
DEFAULT_USER = "default"


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds")


def default_owner() -> str:
    """A name unique to this process and this store: host, pid and a random tag."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class Job:
    job_id: str
    filename: str
    path: str
    size_bytes: int
    status: JobState
    attempts: int
    error: str | None
    error_type: str | None
    result_path: str | None
    summary: dict[str, Any] | None
    created_at: str
    started_at: str | None
    finished_at: str | None
    serving: dict[str, Any] | None
    owner: str | None = None
    lease_until: float | None = None
    username: str | None = None
    kind: str | None = None

    def public(self) -> dict[str, Any]:
        hidden = ("path", "result_path", "owner", "lease_until", "username")
        out = {k: v for k, v in self.__dict__.items() if k not in hidden}
        out["user"] = self.username
        out["result"] = f"/v1/jobs/{self.job_id}/result" if self.status == DONE else None
        return out

    def history_entry(self) -> dict[str, Any]:
        """What ``/v1/history`` lists for the job: its state and the result in brief
        (kind, status, risk, lesions), with its links."""
        summary = None
        if self.summary is not None:
            keep = ("status", "risk", "risk_rule", "reason", "lesions", "scored_lesions")
            summary = {"kind": self.kind, **{k: self.summary.get(k) for k in keep}}
        links = {
            "status": f"/v1/jobs/{self.job_id}",
            "result": f"/v1/jobs/{self.job_id}/result" if self.status == DONE else None,
        }
        return {
            "job_id": self.job_id,
            "filename": self.filename,
            "kind": self.kind,
            "status": self.status,
            "created_at": self.created_at,
            "finished_at": self.finished_at,
            "error": self.error,
            "summary": summary,
            "links": links,
        }


def _job(row: Any) -> Job:
    data = dict(row._mapping)
    for key in ("summary", "serving"):
        data[key] = json.loads(data[key]) if data[key] else None
    data["status"] = JobState(data["status"])
    return Job(**data)


def _create_schema(engine: Engine) -> None:
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":  # two replicas starting at once
            conn.execute(text(f"SELECT pg_advisory_xact_lock({_PG_LOCK_KEY})"))
        metadata.create_all(conn)
        have = {c["name"] for c in inspect(conn).get_columns("jobs")}
        for name, (sql_type, existing) in _ADDED_COLUMNS.items():
            if name not in have:
                conn.execute(text(f"ALTER TABLE jobs ADD COLUMN {name} {sql_type}"))
                if existing is not None:
                    conn.execute(update(jobs).values({name: existing}))
        for index in jobs.indexes:  # create_all makes them only with the table
            index.create(conn, checkfirst=True)


class JobStore:
    """Jobs in a SQLite file (``JobStore(path)``) or any database URL
    (``JobStore("postgresql://...")``); ``owner`` names this holder of leases."""

    def __init__(
        self, target: str | Path, *, owner: str | None = None, lease_s: float = 30.0
    ) -> None:
        target = str(target)
        if "://" not in target:  # a file path: SQLite
            path = Path(target)
            path.parent.mkdir(parents=True, exist_ok=True)
            target = f"sqlite:///{path.resolve()}"
        self.url = target
        self.source = db.safe_url(target)
        self.owner = owner or default_owner()
        self.lease_s = float(lease_s)
        self.engine = db.make_engine(target)
        self.shared = self.engine.dialect.name != "sqlite"  # reachable from other nodes
        _create_schema(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    # ----------------------------------------------------------------- helpers
    def _clock(self, conn: Connection) -> float:
        """Now, in seconds since the epoch, on the clock every replica shares."""
        if conn.dialect.name == "postgresql":
            return float(
                conn.execute(text("SELECT EXTRACT(EPOCH FROM clock_timestamp())")).scalar_one()
            )
        return time.time()

    def _update(self, job_id: str, values: dict[str, Any], *conditions: Any) -> bool:
        with self.engine.begin() as conn:
            result = conn.execute(
                update(jobs).where(jobs.c.job_id == job_id, *conditions).values(**values)
            )
            return result.rowcount == 1

    def _mine(self) -> Any:
        return jobs.c.owner == self.owner

    # ------------------------------------------------------------------ reads
    def get(self, job_id: str) -> Job | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(jobs).where(jobs.c.job_id == job_id)).first()
        return _job(row) if row is not None else None

    def list(
        self, status: JobState | str | None = None, limit: int = 100, user: str | None = None
    ) -> list[Job]:
        """The newest jobs (of ``user`` only, when given)."""
        query = select(jobs).order_by(jobs.c.created_at.desc(), jobs.c.job_id.desc()).limit(limit)
        if status:
            query = query.where(jobs.c.status == status)
        if user is not None:
            query = query.where(jobs.c.username == user)
        with self.engine.connect() as conn:
            return [_job(r) for r in conn.execute(query)]

    def history(
        self, user: str, limit: int = 50, before: Job | None = None
    ) -> builtins.list[Job]:  # self.list shadows list
        """``user``'s jobs, newest first; ``before``: the page after that job (one of
        the user's, as the previous page ended)."""
        query = (
            select(jobs)
            .where(jobs.c.username == user)
            .order_by(jobs.c.created_at.desc(), jobs.c.job_id.desc())
            .limit(limit)
        )
        if before is not None:
            query = query.where(
                or_(
                    jobs.c.created_at < before.created_at,
                    and_(jobs.c.created_at == before.created_at, jobs.c.job_id < before.job_id),
                )
            )
        with self.engine.connect() as conn:
            return [_job(r) for r in conn.execute(query)]

    def counts(self) -> dict[str, int]:
        query = select(jobs.c.status, func.count()).group_by(jobs.c.status)
        with self.engine.connect() as conn:
            return {status: int(n) for status, n in conn.execute(query)}

    def unfinished(self) -> builtins.list[Job]:  # list: the method above
        query = select(jobs).where(jobs.c.status.in_(UNFINISHED)).order_by(jobs.c.created_at)
        with self.engine.connect() as conn:
            return [_job(r) for r in conn.execute(query)]

    # ----------------------------------------------------------------- writes
    def create(
        self,
        job_id: str,
        filename: str,
        path: Path,
        size: int,
        *,
        user: str = DEFAULT_USER,
        kind: str = "video",
    ) -> Job:
        """A queued job of ``user`` held by this owner (committed before the client
        hears its id)."""
        with self.engine.begin() as conn:
            conn.execute(
                jobs.insert().values(
                    job_id=job_id,
                    filename=filename,
                    path=str(path),
                    size_bytes=size,
                    status=QUEUED,
                    attempts=0,
                    created_at=_now(),
                    owner=self.owner,
                    lease_until=self._clock(conn) + self.lease_s,
                    username=user,
                    kind=kind,
                )
            )
        job = self.get(job_id)
        assert job is not None  # committed above
        return job

    def claim(self, job_id: str) -> int | None:
        """Mark a queued job running for this owner; the attempt number (1 for the
        first run), or None when it is not queued or another live owner holds it."""
        with self.engine.begin() as conn:
            now = self._clock(conn)
            free = or_(
                jobs.c.owner == self.owner,
                jobs.c.owner.is_(None),
                jobs.c.lease_until.is_(None),
                jobs.c.lease_until < now,
            )
            result = conn.execute(
                update(jobs)
                .where(jobs.c.job_id == job_id, jobs.c.status == QUEUED, free)
                .values(
                    status=RUNNING,
                    attempts=jobs.c.attempts + 1,
                    started_at=_now(),
                    owner=self.owner,
                    lease_until=now + self.lease_s,
                )
            )
            if result.rowcount != 1:
                return None
            return int(
                conn.execute(select(jobs.c.attempts).where(jobs.c.job_id == job_id)).scalar_one()
            )

    def start(self, job_id: str) -> int:
        """Mark running whatever its state (no claim check); returns the attempt number.
        Kept for tools and tests that simulate interrupted runs; the runner claims."""
        with self.engine.begin() as conn:
            now = self._clock(conn)
            conn.execute(
                update(jobs)
                .where(jobs.c.job_id == job_id)
                .values(
                    status=RUNNING,
                    attempts=jobs.c.attempts + 1,
                    started_at=_now(),
                    owner=self.owner,
                    lease_until=now + self.lease_s,
                )
            )
        job = self.get(job_id)
        return job.attempts if job else 0

    def renew(self) -> int:
        """Extend the lease of every unfinished job this owner holds; how many."""
        with self.engine.begin() as conn:
            now = self._clock(conn)
            result = conn.execute(
                update(jobs)
                .where(self._mine(), jobs.c.status.in_(UNFINISHED))
                .values(lease_until=now + self.lease_s)
            )
            return int(result.rowcount)

    def requeue(self, job_id: str, reason: str) -> bool:
        """Back to queued (still held by this owner) after a service fault."""
        return self._update(
            job_id, {"status": QUEUED, "error": f"retrying: {reason}"}, self._mine()
        )

    def finish(
        self, job_id: str, result_path: Path, summary: dict[str, Any], serving: dict[str, Any]
    ) -> bool:
        done = self._update(
            job_id,
            {
                "status": DONE,
                "result_path": str(result_path),
                "summary": json.dumps(summary),
                "serving": json.dumps(serving),
                "error": None,
                "error_type": None,
                "finished_at": _now(),
            },
            self._mine(),
        )
        if not done:
            log.warning(
                "job %s: finished here, but another replica holds it now; its result stands", job_id
            )
        return done

    def fail(
        self, job_id: str, error: str, error_type: str, serving: dict[str, Any] | None = None
    ) -> bool:
        values: dict[str, Any] = {
            "status": FAILED,
            "error": error,
            "error_type": error_type,
            "finished_at": _now(),
        }
        if serving is not None:
            values["serving"] = json.dumps(serving)
        return self._update(job_id, values, self._mine())

    def adopt(self, job: Job, *, expired_only: bool, max_attempts: int) -> str | None:
        """Take over an unfinished job another owner held, as it was read (``job``).

        ``expired_only``: only once its lease has expired (other replicas may be
        alive). A running job goes back to the queue, or fails when it was
        interrupted ``max_attempts`` times. Returns the job's new status, or None
        when it changed meanwhile (someone else adopted, claimed or finished it)."""
        with self.engine.begin() as conn:
            now = self._clock(conn)
            same = [
                jobs.c.job_id == job.job_id,
                jobs.c.status == job.status,
                jobs.c.attempts == job.attempts,
                jobs.c.owner.is_(None) if job.owner is None else jobs.c.owner == job.owner,
            ]
            if expired_only:
                same.append(or_(jobs.c.lease_until.is_(None), jobs.c.lease_until < now))
            values: dict[str, Any] = {"owner": self.owner, "lease_until": now + self.lease_s}
            status = job.status
            if job.status == RUNNING and job.attempts >= max_attempts:
                status = FAILED
                values.update(
                    status=FAILED,
                    error_type="Interrupted",
                    finished_at=_now(),
                    error=f"interrupted {job.attempts} times (the server or a "
                    "model replica died while scoring it); giving up",
                )
            elif job.status == RUNNING:
                status = QUEUED
                values.update(
                    status=QUEUED,
                    error=f"retrying: the server restarted during attempt {job.attempts}",
                )
            result = conn.execute(update(jobs).where(and_(*same)).values(**values))
            return status if result.rowcount == 1 else None

    def expired(self) -> builtins.list[Job]:
        """Unfinished jobs of other owners whose lease has run out."""
        with self.engine.connect() as conn:
            now = self._clock(conn)
            query = (
                select(jobs)
                .where(
                    jobs.c.status.in_(UNFINISHED),
                    or_(jobs.c.owner.is_(None), jobs.c.owner != self.owner),
                    or_(jobs.c.lease_until.is_(None), jobs.c.lease_until < now),
                )
                .order_by(jobs.c.created_at)
            )
            return [_job(r) for r in conn.execute(query)]
