"""Upload jobs: a SQLite-backed store and the runner that scores them.

Nothing accepted is lost: an upload is on disk and its job row committed
before the client hears its job id. A job that was queued or running when the
ingress died is picked up again when the replacement starts (``recover``);
after ``jobs.max_attempts`` interruptions it is failed with that reason. A
model replica that dies mid-job is handled below the job (the adapters retry
the call); if the model stays unavailable the job is retried, then failed
with the reason. Every job ends ``done`` or ``failed``, never silently.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import sqlite3
import threading
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sonorisk.errors import InputError

log = logging.getLogger(__name__)

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
FINAL = (DONE, FAILED)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    filename TEXT NOT NULL,
    path TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    error_type TEXT,
    result_path TEXT,
    summary TEXT,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    serving TEXT
)
"""


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Job:
    job_id: str
    filename: str
    path: str
    size_bytes: int
    status: str
    attempts: int
    error: str | None
    error_type: str | None
    result_path: str | None
    summary: dict[str, Any] | None
    created_at: str
    started_at: str | None
    finished_at: str | None
    serving: dict[str, Any] | None

    def public(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k not in ("path", "result_path")}
        out["result"] = f"/v1/jobs/{self.job_id}/result" if self.status == DONE else None
        return out


class JobStore:
    """Jobs in one SQLite file (WAL mode: readers never wait on the runner)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30,
                                   isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _exec(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def create(self, job_id: str, filename: str, path: Path, size: int) -> Job:
        self._exec("INSERT INTO jobs (job_id, filename, path, size_bytes, status, created_at) "
                   "VALUES (?, ?, ?, ?, ?, ?)", (job_id, filename, str(path), size, QUEUED,
                                                 _now()))
        return self.get(job_id)  # type: ignore[return-value]

    def get(self, job_id: str) -> Job | None:
        rows = self._exec("SELECT * FROM jobs WHERE job_id = ?", (job_id,))
        return _job(rows[0]) if rows else None

    def list(self, status: str | None = None, limit: int = 100) -> list[Job]:
        if status:
            rows = self._exec("SELECT * FROM jobs WHERE status = ? ORDER BY created_at DESC "
                              "LIMIT ?", (status, limit))
        else:
            rows = self._exec("SELECT * FROM jobs ORDER BY created_at DESC LIMIT ?", (limit,))
        return [_job(r) for r in rows]

    def counts(self) -> dict[str, int]:
        rows = self._exec("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status")
        return {r["status"]: int(r["n"]) for r in rows}

    def start(self, job_id: str) -> int:
        """Mark running; returns the attempt number (1 for the first run)."""
        self._exec("UPDATE jobs SET status = ?, attempts = attempts + 1, started_at = ? "
                   "WHERE job_id = ?", (RUNNING, _now(), job_id))
        job = self.get(job_id)
        return job.attempts if job else 0

    def set_serving(self, job_id: str, serving: dict[str, Any]) -> None:
        self._exec("UPDATE jobs SET serving = ? WHERE job_id = ?", (json.dumps(serving), job_id))

    def requeue(self, job_id: str, reason: str) -> None:
        self._exec("UPDATE jobs SET status = ?, error = ? WHERE job_id = ?",
                   (QUEUED, f"retrying: {reason}", job_id))

    def finish(self, job_id: str, result_path: Path, summary: dict[str, Any],
               serving: dict[str, Any]) -> None:
        self._exec("UPDATE jobs SET status = ?, result_path = ?, summary = ?, serving = ?, "
                   "error = NULL, error_type = NULL, finished_at = ? WHERE job_id = ?",
                   (DONE, str(result_path), json.dumps(summary), json.dumps(serving), _now(),
                    job_id))

    def fail(self, job_id: str, error: str, error_type: str,
             serving: dict[str, Any] | None = None) -> None:
        self._exec("UPDATE jobs SET status = ?, error = ?, error_type = ?, finished_at = ?, "
                   "serving = COALESCE(?, serving) WHERE job_id = ?",
                   (FAILED, error, error_type, _now(),
                    json.dumps(serving) if serving is not None else None, job_id))

    def unfinished(self) -> list[Job]:
        rows = self._exec("SELECT * FROM jobs WHERE status IN (?, ?) ORDER BY created_at",
                          (QUEUED, RUNNING))
        return [_job(r) for r in rows]


def _job(row: sqlite3.Row) -> Job:
    data = dict(row)
    for key in ("summary", "serving"):
        data[key] = json.loads(data[key]) if data[key] else None
    return Job(**data)


# A scoring function: (job, attempt) -> (document, serving info). Raises
# InputError for the video's own faults (no retry) and anything else for
# faults of the service (retried up to max_attempts).
ScoreFn = Callable[[Job], tuple[dict[str, Any], dict[str, Any]]]


class JobRunner:
    """Scores queued jobs on a few worker threads."""

    def __init__(self, store: JobStore, results_dir: Path, score: ScoreFn, *, workers: int,
                 max_attempts: int, on_final: Callable[[str], None] | None = None) -> None:
        self.store = store
        self.results_dir = Path(results_dir)
        self.score = score
        self.max_attempts = max_attempts
        self.on_final = on_final
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="job")
        self._pending = 0
        self._lock = threading.Lock()

    @property
    def pending(self) -> int:
        with self._lock:
            return self._pending

    def submit(self, job_id: str) -> None:
        with self._lock:
            self._pending += 1
        self.pool.submit(self._run, job_id)

    def recover(self) -> list[str]:
        """Requeue what a previous ingress left unfinished (or fail it, with the reason)."""
        resumed = []
        for job in self.store.unfinished():
            if job.status == RUNNING and job.attempts >= self.max_attempts:
                self.store.fail(job.job_id, f"interrupted {job.attempts} times (the server or "
                                "a model replica died while scoring it); giving up",
                                "Interrupted")
                continue
            if job.status == RUNNING:
                self.store.requeue(job.job_id, f"the server restarted during attempt "
                                   f"{job.attempts}")
            resumed.append(job.job_id)
            self.submit(job.job_id)
        if resumed:
            log.warning("resuming %d unfinished job(s): %s", len(resumed), resumed)
        return resumed

    def _run(self, job_id: str) -> None:
        try:
            self._run_once(job_id)
        except Exception:  # the runner itself must never die silently
            log.exception("job %s: unexpected error in the runner", job_id)
            self.store.fail(job_id, "internal error: " + traceback.format_exc(limit=3)[-500:],
                            "InternalError")
        finally:
            with self._lock:
                self._pending -= 1
            job = self.store.get(job_id)
            if job is not None and job.status in FINAL and self.on_final is not None:
                self.on_final(job.status)

    def _run_once(self, job_id: str) -> None:
        from sonorisk.pipeline.report import bundle_summary, scored_lesions, write_report

        while True:
            job = self.store.get(job_id)
            if job is None or job.status in FINAL:
                return
            attempt = self.store.start(job_id)
            try:
                document, serving = self.score(job)
            except InputError as exc:  # the video's own fault: retrying cannot help
                self.store.fail(job_id, str(exc.reason), type(exc).__name__)
                return
            except Exception as exc:  # a fault of the service: retry, then fail with it
                reason = f"{type(exc).__name__}: {str(exc)[:500]}"
                if attempt >= self.max_attempts:
                    self.store.fail(job_id, f"failed {attempt} times; last error: {reason}",
                                    type(exc).__name__)
                    return
                log.warning("job %s attempt %d failed (%s); retrying", job_id, attempt, reason)
                self.store.requeue(job_id, reason)
                continue
            path = write_report(document, self.results_dir / f"{job_id}.json")
            summary = {"status": document["status"], "risk": document["risk"],
                       "clips": document["clips"], "lesions": len(document["lesions"]),
                       "scored_lesions": scored_lesions(document),
                       "frames": document["video"]["frames_scored"],
                       "models": bundle_summary(document),
                       "notice": document["notice"]}
            self.store.finish(job_id, path, summary, serving)
            return

    def shutdown(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
