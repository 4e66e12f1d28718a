"""Upload jobs: the runner that scores them (the store: ``jobstore.py``).

Nothing accepted is lost: an upload is on disk and its job row committed
before the client hears its job id. A job that was queued or running when the
ingress died is picked up again when the replacement starts (``recover``);
after ``jobs.max_attempts`` interruptions it is failed with that reason. A
model replica that dies mid-job is handled below the job (the adapters retry
the call); if the model stays unavailable the job is retried, then failed
with the reason. Every job ends ``done`` or ``failed``, never silently.

With several ingress replicas (PostgreSQL), each runner holds leases on its
jobs and renews them; a runner adopts the jobs of a replica whose leases ran
out (it died) and never those of a live one (``jobstore.py`` says how).
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from sonorisk.errors import InputError
from sonorisk.serving.jobstore import Job, JobStore  # noqa: F401 (the job API in one place)
from sonorisk.serving.states import JobState

# The states by name (JobState members compare equal to the strings the store keeps).
QUEUED, RUNNING, DONE, FAILED = JobState.QUEUED, JobState.RUNNING, JobState.DONE, JobState.FAILED
FINAL = (DONE, FAILED)

log = logging.getLogger(__name__)

# A scoring function: (job, attempt) -> (document, serving info). Raises
# InputError for the video's own faults (no retry) and anything else for
# faults of the service (retried up to max_attempts).
ScoreFn = Callable[[Job], tuple[dict[str, Any], dict[str, Any]]]


class JobRunner:
    """Scores queued jobs on a few worker threads.

    ``exclusive``: this runner is the only one on its store (one ingress replica),
    so at start every unfinished job is a leftover of a dead ingress and is taken
    at once. Otherwise (several replicas) only jobs whose lease expired are taken,
    at start and by the sweep that runs with each lease renewal."""

    def __init__(
        self,
        store: JobStore,
        results_dir: Path,
        score: ScoreFn,
        *,
        workers: int,
        max_attempts: int,
        on_final: Callable[[str], None] | None = None,
        exclusive: bool = True,
        heartbeat: bool = True,
        redact: Callable[[Job, str], str] | None = None,
    ) -> None:
        self.store = store
        # Error reasons reach clients: this takes the server's paths out of them.
        self.redact = redact or (lambda _job, text: text)
        self.results_dir = Path(results_dir)
        self.score = score
        self.max_attempts = max_attempts
        self.on_final = on_final
        self.exclusive = exclusive
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="job")
        self._pending = 0
        self._workers = workers
        self._started: dict[str, float] = {}  # job id -> monotonic start, while it runs
        self.adopted = 0  # jobs taken over from dead replicas after the start
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None
        if heartbeat:
            self._beat = threading.Thread(target=self._heartbeat, name="job-leases", daemon=True)
            self._beat.start()

    @property
    def pending(self) -> int:
        with self._lock:
            return self._pending

    def running(self) -> dict[str, float]:
        """Seconds each job on a worker has been running, by job id."""
        now = time.monotonic()
        with self._lock:
            return {job_id: now - t for job_id, t in self._started.items()}

    def workers_report(self, timeout_s: float | None, grace_s: float = 60.0) -> dict[str, Any]:
        """Workers busy, and those stuck: still on a job ``grace_s`` past ``timeout_s``
        (the job's own deadline would have stopped it between frames: the worker is
        blocked in a call)."""
        running = self.running()
        stuck = sorted(
            j for j, s in running.items() if timeout_s is not None and s > timeout_s + grace_s
        )
        return {
            "total": self._workers,
            "busy": len(running),
            "stuck": stuck,
            "longest_s": round(max(running.values(), default=0.0), 1),
        }

    def submit(self, job_id: str) -> None:
        with self._lock:
            self._pending += 1
        self.pool.submit(self._run, job_id)

    def recover(self) -> list[str]:
        """Requeue what a previous ingress left unfinished (or fail it, with the reason)."""
        leftovers = self.store.unfinished() if self.exclusive else self.store.expired()
        resumed = self._adopt(leftovers, expired_only=not self.exclusive)
        if resumed:
            log.warning("resuming %d unfinished job(s): %s", len(resumed), resumed)
        return resumed

    def sweep(self) -> list[str]:
        """Adopt the jobs of replicas whose leases ran out (they died); their ids."""
        adopted = self._adopt(self.store.expired(), expired_only=True)
        if adopted:
            with self._lock:
                self.adopted += len(adopted)
            log.warning(
                "adopted %d job(s) of a replica that stopped renewing its leases: %s",
                len(adopted),
                adopted,
            )
        return adopted

    def _adopt(self, leftovers: list[Job], *, expired_only: bool) -> list[str]:
        taken = []
        for job in leftovers:
            status = self.store.adopt(
                job, expired_only=expired_only, max_attempts=self.max_attempts
            )
            if status == QUEUED:  # None: another replica took it first; FAILED: gave up
                taken.append(job.job_id)
                self.submit(job.job_id)
        return taken

    def _heartbeat(self) -> None:
        # Renewing at a third of the lease leaves two renewals of slack before
        # another replica may take this runner's jobs.
        interval = max(0.05, self.store.lease_s / 3)
        while not self._stop.wait(interval):
            try:
                self.store.renew()
                self.sweep()
            except Exception as exc:  # noqa: BLE001 (the database may be down a while)
                log.warning("job leases: %s: %s", type(exc).__name__, exc)

    def _run(self, job_id: str) -> None:
        final = False
        with self._lock:
            self._started[job_id] = time.monotonic()
        try:
            final = self._run_once(job_id)
        except Exception:  # the runner itself must never die silently
            log.exception("job %s: unexpected error in the runner", job_id)
            final = self.store.fail(
                job_id, "internal error: " + traceback.format_exc(limit=3)[-500:], "InternalError"
            )
        finally:
            with self._lock:
                self._pending -= 1
                self._started.pop(job_id, None)
            job = self.store.get(job_id) if final else None
            if job is not None and job.status in FINAL and self.on_final is not None:
                self.on_final(job.status)

    def _run_once(self, job_id: str) -> bool:
        """Run a job to its end; True when this runner wrote its final state."""
        from sonorisk.pipeline.document import ScoreDocument
        from sonorisk.pipeline.report import write_report

        while True:
            job = self.store.get(job_id)
            if job is None or job.status in FINAL:
                return False
            attempt = self.store.claim(job_id)
            if attempt is None:  # another runner holds it
                return False
            job = self.store.get(job_id) or job
            try:
                document, serving = self.score(job)
            except InputError as exc:  # the video's own fault: retrying cannot help
                return self.store.fail(
                    job_id, self.redact(job, str(exc.reason)), type(exc).__name__
                )
            except Exception as exc:  # a fault of the service: retry, then fail with it
                reason = self.redact(job, f"{type(exc).__name__}: {str(exc)[:500]}")
                if attempt >= self.max_attempts:
                    return self.store.fail(
                        job_id, f"failed {attempt} times; last error: {reason}", type(exc).__name__
                    )
                log.warning("job %s attempt %d failed (%s); retrying", job_id, attempt, reason)
                if not self.store.requeue(job_id, reason):
                    return False  # lost the lease: the new owner runs it
                continue
            path = write_report(document, self.results_dir / f"{job_id}.json")
            summary = ScoreDocument.from_json(document).summary().as_dict()
            return self.store.finish(job_id, path, summary, serving)

    def shutdown(self) -> None:
        self._stop.set()
        self.pool.shutdown(wait=False, cancel_futures=True)
