"""The HTTP API (FastAPI) as the Ray Serve ingress deployment.

Endpoints (all under ``/v1`` except health, metrics and docs):

* ``POST /v1/jobs`` (the bytes of a video or a still image as the body): 202
  with a job id; 413/415/422 with the reason when the upload is refused.
* ``GET /v1/jobs``, ``GET /v1/jobs/{id}``, ``GET /v1/jobs/{id}/result``: the
  signed-in user's jobs only (another user's job is 404).
* ``GET /v1/history?limit=&before=``: the signed-in user's past jobs, newest
  first, each with its result in brief and its links.
* ``POST /v1/streams`` (``{"url": "rtsp://..."}``): 201 with a stream id;
  ``GET /v1/streams/{id}`` (status), ``GET /v1/streams/{id}/events``
  (Server-Sent Events), ``DELETE /v1/streams/{id}``.
* ``GET /health`` (no token needed), ``GET /metrics`` (Prometheus),
  ``GET /docs`` and ``/openapi.json``.

The ingress owns jobs and drives one ``IncrementalScorer`` per job; each live
stream runs in a stream host (``streamhost.py``), reached through
``streampool.py``; the detector and classifier run in their own deployments
(``deployments.py``), reached through the adapters in ``remote.py``.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the handlers'
# annotations at runtime, inside the Serve-wrapped class.
import asyncio
import contextlib
import json
import logging
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from pydantic import BaseModel, Field
from ray import serve

from sonorisk import __version__
from sonorisk.serving.config import ServeConfig
from sonorisk.serving.states import JobState

log = logging.getLogger(__name__)

api = FastAPI(
    title="sonorisk",
    version=__version__,
    description="Lesion-by-lesion breast cancer risk from ultrasound video: upload jobs and "
    "live RTSP streams. Research software, not a medical device: no output is a "
    "clinical result. Send `Authorization: Bearer TOKEN` when auth is on.",
)

_EXTENSIONS = {
    "avi": ".avi",
    "mp4/mov": ".mp4",
    "mov": ".mov",
    "matroska/webm": ".mkv",
    "mpeg-ps": ".mpg",
    "mpeg video": ".m2v",
    "mpeg-ts": ".ts",
    "flv": ".flv",
    "asf/wmv": ".wmv",
    "dicom": ".dcm",
    "png": ".png",
    "jpeg": ".jpg",
    "tiff": ".tif",
    "bmp": ".bmp",
}


class StreamRequest(BaseModel):
    url: str = Field(
        description="live source: rtsp:// or rtsps:// (others only where the "
        "operator allows them: streams.allowed_schemes)"
    )
    rtsp_transport: str | None = Field(default=None, description="udp or tcp (default: config)")


def _remove_stale_parts(uploads: Path, older_than_s: float = 3600.0) -> None:
    """Partial uploads left by a crash. Only old ones: another ingress replica
    sharing the folder may be receiving a fresh one right now."""
    import time

    cutoff = time.time() - older_than_s
    for part in uploads.glob("*.part"):
        with contextlib.suppress(OSError):
            if part.stat().st_mtime < cutoff:
                part.unlink()


def _reject(status: int, reason: str) -> HTTPException:
    return HTTPException(status_code=status, detail=reason)


def _replica_name() -> str:
    """This ingress replica, as the owner of its jobs' leases (unique per start)."""
    import os
    import socket

    try:
        replica = serve.get_replica_context().replica_id.unique_id
    except Exception:  # noqa: BLE001 (outside Serve: a process-unique name)
        replica = uuid.uuid4().hex[:8]
    return f"ingress-{replica}@{socket.gethostname()}:{os.getpid()}"


@serve.deployment(name="Ingress")
@serve.ingress(api)
class Ingress:
    def __init__(
        self, config: ServeConfig, detector: Any, classifier: Any, models: Any = None
    ) -> None:
        from sonorisk.config import load_config
        from sonorisk.pipeline.config import PipelineConfig
        from sonorisk.serving.auth import resolve_users
        from sonorisk.serving.jobs import JobRunner, JobStore
        from sonorisk.serving.metrics import Metrics
        from sonorisk.serving.streampool import StreamPool
        from sonorisk.threads import set_torch_threads

        set_torch_threads(config.ingress.torch_threads)
        self.config = config
        self.models = models  # sonorisk.models.ResolvedModels: the bundle every result names
        self.detector = detector
        self.classifier = classifier
        self.users = resolve_users(config)  # None: auth off, everybody is "default"
        self.pipeline = load_config(PipelineConfig, config.pipeline)
        self.pipeline.validate()
        self.stream_pipeline = replace(
            self.pipeline,
            detector_batch_size=config.streams.detector_batch_size,
            classifier_batch_size=config.streams.classifier_batch_size,
            crop_wait=config.streams.crop_wait,
            schedule=config.streams.schedule,
        )
        data = config.data_path
        self.uploads = data / "uploads"
        self.results = data / "results"
        for folder in (self.uploads, self.results):
            folder.mkdir(parents=True, exist_ok=True)
        _remove_stale_parts(self.uploads)
        self.metrics = Metrics()
        self.metrics.set_replica_source(self._replica_counts)
        self.store = JobStore(
            config.jobs_database, owner=_replica_name(), lease_s=config.jobs.lease_s
        )
        self._model_info: dict[str, Any] | None = None
        self._info_lock = threading.Lock()
        self._running: dict[str, tuple[Any, Any]] = {}
        self._still: list[Any] = []  # the still-image classifier, once loaded (_still_model)
        # One replica: whatever is unfinished at start was left by a dead ingress.
        # Several: only jobs whose lease ran out (jobstore.py).
        self.runner = JobRunner(
            self.store,
            self.results,
            self._score_job,
            workers=config.ingress.job_workers,
            max_attempts=config.jobs.max_attempts,
            on_final=lambda status: self.metrics.jobs.labels(status).inc(),
            exclusive=config.ingress.num_replicas == 1,
            redact=self._redact,
        )
        self.streams = StreamPool(config)
        self.streams.start_all()
        self.started_at = time.time()
        self.resumed = self.runner.recover()
        from sonorisk.serving.heap import freeze

        freeze()  # what start-up made lives as long as the replica (heap.py)

    # ------------------------------------------------------------ helpers
    def _auth(self, request: Request) -> str:
        """The signed-in user (``default`` when auth is off); 401 for a wrong token."""
        from sonorisk.serving.auth import user_for

        user = user_for(self.users, request.headers.get("authorization"))
        if user is None:
            raise HTTPException(
                status_code=401,
                detail="missing or wrong token: send 'Authorization: Bearer TOKEN'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return user

    async def _own_job(self, job_id: str, user: str) -> Any:
        """The job ``job_id`` when ``user`` made it; 404 otherwise (another user's job
        is answered as if it did not exist)."""
        job = await asyncio.to_thread(self.store.get, job_id)
        if job is None or job.username != user:
            raise _reject(404, f"no job {job_id!r}")
        return job

    def _adapters(self) -> tuple[Any, Any]:
        from sonorisk.serving.remote import RemoteClassifier, RemoteDetector

        info = self._models_sync()
        jobs = self.config.jobs
        kwargs = {
            "retry_s": jobs.model_retry_s,
            "call_timeout_s": jobs.model_call_timeout_s,
            "on_latency": self.metrics.observe_stage,
        }
        return (
            RemoteDetector(self.detector, info["detector"], **kwargs),
            RemoteClassifier(self.classifier, info["classifier_config"], **kwargs),
        )

    def _set_info(self, det: dict[str, Any], cls: dict[str, Any]) -> dict[str, Any]:
        from sonorisk.models.load import scoring_cards
        from sonorisk.pipeline.report import honesty_statements

        cards = scoring_cards(det, cls["card"], self.models)
        info = {
            "detector": det,
            "classifier": cls["card"],
            "classifier_config": cls["config"],
            "cards": cards,
            "notice": honesty_statements(cards),
        }
        self._model_info = info
        return info

    def _models_sync(self) -> dict[str, Any]:
        from sonorisk.serving.remote import RemoteClassifier, RemoteDetector

        with self._info_lock:
            if self._model_info is None:
                retry = self.config.jobs.model_retry_s
                det = RemoteDetector(self.detector, {}, retry_s=retry)._call("info")
                cls = RemoteClassifier(self.classifier, None, retry_s=retry)._call("info")
                return self._set_info(det, cls)
            return self._model_info

    async def _models_async(self) -> dict[str, Any]:
        info = self._model_info
        if info is None:
            det = await self.detector.info.remote()
            cls = await self.classifier.info.remote()
            with self._info_lock:
                info = self._model_info
                if info is None:
                    info = self._set_info(det["result"], cls["result"])
        return info

    def _replica_counts(self) -> dict[str, int]:
        status = serve.status().applications.get(self.config.app_name)
        if status is None:
            return {}
        # ReplicaState is a str enum: the text finds its member
        return {
            name: int(d.replica_states.get("RUNNING", 0))  # type: ignore[call-overload]
            for name, d in status.deployments.items()
        }

    def _hidden(self, job: Any) -> dict[str, str]:
        """What a job's texts must not show (sonorisk.serving.redact)."""
        from sonorisk.serving.redact import job_replacements

        return job_replacements(str(job.path), job.filename, str(self.config.data_path))

    def _redact(self, job: Any, text: str) -> str:
        """Error reasons, as the runner stores them for the client."""
        from sonorisk.serving.redact import redact_text

        return redact_text(text, self._hidden(job))

    def _models_label(self) -> str:
        """The served models by name (never a server path)."""
        bundle = getattr(self.models, "bundle", None)
        return f"bundle {bundle.name} {bundle.version}" if bundle else "checkpoint files"

    def _still_model(self) -> Any:
        """The bundle's still-image classifier, loaded once in this process (a small 2D
        model: stills are classified here, not in a model deployment); None when the
        models have none (score_path then fails the job saying so)."""
        with self._info_lock:
            if not self._still:
                from sonorisk.serving.stills import load_still_model

                self._still.append(load_still_model(self.models))
            return self._still[0]

    def _score_job(self, job: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        import tempfile

        from sonorisk.pipeline.score_file import ScoringModels, score_path
        from sonorisk.serving.redact import redact_document

        detector, classifier = self._adapters()
        info = self._models_sync()
        self._running[job.job_id] = (detector, classifier)
        try:
            models = ScoringModels(detector, classifier, dict(info["cards"]))
            if job.kind == "still":
                from sonorisk.serving.stills import attach_still

                attach_still(models, self._still_model())
            timeout = self.config.jobs.timeout_s
            deadline = None if timeout is None else time.monotonic() + timeout
            with tempfile.TemporaryDirectory(dir=self.results) as tmp:
                document = score_path(
                    job.path, models, self.pipeline, tmp, progress=False, deadline=deadline
                )
        finally:  # an error's reason is redacted by the runner (redact=self._redact)
            self._running.pop(job.job_id, None)
        document = redact_document(document, self._hidden(job))
        document["video"]["source"] = job.filename  # a still's too (video.kind: still)
        serving = {
            "detector": detector.usage(),
            "classifier": classifier.usage(),
            "ingress": self.store.owner,
        }
        return document, serving

    # -------------------------------------------------------------- health
    @api.get("/health", summary="liveness and readiness; no token needed")
    async def health(self) -> dict[str, Any]:
        info = None
        try:
            info = await asyncio.wait_for(self._models_async(), timeout=10)
        except Exception as exc:  # noqa: BLE001 (health reports, never raises)
            models: Any = {"error": f"{type(exc).__name__}: {exc}"}
        else:
            models = {
                role: {k: info[role].get(k) for k in ("architecture", "kind", "demonstration")}
                for role in ("detector", "classifier")
            }
            bundle = info["cards"]["bundle"]
            models["bundle"] = {k: bundle.get(k) for k in ("name", "version", "sha256")}
        workers = self.runner.workers_report(self.config.jobs.timeout_s)
        # Every job worker blocked: accepted jobs would wait for ever.
        all_stuck = len(workers["stuck"]) >= workers["total"]
        return {
            "status": "ok" if info and not all_stuck else "degraded",
            "version": __version__,
            "uptime_s": round(time.time() - self.started_at, 1),
            "jobs": await asyncio.to_thread(self.store.counts),
            "job_workers": workers,
            "jobs_resumed_at_start": len(self.resumed),
            "jobs_adopted": self.runner.adopted,
            **await self._stream_counts(),
            "models": models,
            "auth": self.users is not None,
            "notice": info["notice"] if info else None,
        }

    @api.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
    async def prometheus(self, request: Request) -> PlainTextResponse:
        self._auth(request)
        from sonorisk.serving.metrics import merge_exposition

        self.metrics.queue_depth.labels("jobs").set(self.runner.pending)
        loads = await self.streams.loads(timeout_s=10.0)
        self.metrics.queue_depth.labels("stream_backlog").set(sum(h["backlog"] for h in loads))
        self.metrics.streams_active.set(sum(h["active"] for h in loads))
        hosts = await self.streams.metrics_texts()  # stream counters live in the hosts
        own = await asyncio.to_thread(self.metrics.render)
        body = await asyncio.to_thread(merge_exposition, [own, *hosts])
        return PlainTextResponse(body.decode(), media_type="text/plain; version=0.0.4")

    async def _stream_counts(self) -> dict[str, Any]:
        """Streams running, and the stream hosts that answered (of ``streams.replicas``)."""
        try:
            loads = await self.streams.loads(timeout_s=5.0)
        except Exception as exc:  # noqa: BLE001 (health reports, never raises)
            return {"streams": None, "stream_hosts": f"{type(exc).__name__}: {exc}"}
        return {
            "streams": sum(h["active"] for h in loads),
            "stream_hosts": [
                {k: h[k] for k in ("replica", "pid", "node", "active")} for h in loads
            ],
        }

    # ---------------------------------------------------------------- jobs
    @api.post(
        "/v1/jobs",
        status_code=202,
        summary="upload a video or a still image (PNG, JPEG, TIFF, BMP; raw bytes as "
        "the body); returns a job id",
    )
    async def create_job(self, request: Request, filename: str | None = None) -> JSONResponse:
        from sonorisk.serving.stills import has_still_classifier
        from sonorisk.serving.uploads import (
            UploadRejected,
            check_content_type,
            check_declared_size,
            check_upload,
            sniff_magic,
        )

        user = self._auth(request)
        limit = self.config.upload.max_bytes
        job_id = uuid.uuid4().hex[:16]
        part = self.uploads / f"{job_id}.part"
        try:
            check_content_type(
                request.headers.get("content-type"), self.config.upload.allowed_content_types
            )
            check_declared_size(request.headers.get("content-length"), limit)
            size = 0
            head = b""
            with part.open("wb") as fh:
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > limit:
                        raise UploadRejected(413, f"upload exceeds the limit of {limit} bytes")
                    if len(head) < 1024:
                        head += chunk[: 1024 - len(head)]
                    fh.write(chunk)
            if size == 0:
                raise UploadRejected(
                    422, "empty upload (0 bytes): send the file's bytes as the request body"
                )
            container = sniff_magic(head)  # 415 before anything is decoded
            path = self.uploads / f"{job_id}{_EXTENSIONS.get(container, '')}"
            part.rename(path)
            try:
                meta = await asyncio.to_thread(check_upload, path)
                if meta.kind == "still" and not has_still_classifier(self.models):
                    raise UploadRejected(
                        415,
                        "this service scores videos only: its models "
                        f"({self._models_label()}) have no still-image "
                        "classifier",
                    )
            except UploadRejected:
                path.unlink(missing_ok=True)
                raise
        except UploadRejected as exc:
            part.unlink(missing_ok=True)
            self.metrics.uploads_rejected.labels(str(exc.status)).inc()
            from sonorisk.serving.redact import job_replacements, redact_text

            shown = Path(filename).name if filename else "the upload"
            hidden = job_replacements(str(self.uploads / job_id), shown, str(self.config.data_path))
            raise _reject(exc.status, redact_text(exc.reason, hidden)) from None
        except BaseException:  # the client went away mid-upload, or worse: keep no partial file
            part.unlink(missing_ok=True)
            raise
        name = Path(filename).name if filename else path.name
        job = await asyncio.to_thread(
            self.store.create, job_id, name, path, size, user=user, kind=meta.kind
        )
        self.runner.submit(job_id)
        described = {k: v for k, v in meta.__dict__.items() if k not in ("kind", "notes")}
        if meta.kind == "still":
            described["notes"] = list(meta.notes)
        return JSONResponse(
            status_code=202,
            content={
                **job.public(),
                "image" if meta.kind == "still" else "video": described,
                "links": {"status": f"/v1/jobs/{job_id}", "result": f"/v1/jobs/{job_id}/result"},
            },
        )

    @api.get("/v1/jobs", summary="the signed-in user's recent jobs")
    async def list_jobs(
        self, request: Request, status: str | None = None, limit: int = Query(100, ge=1, le=1000)
    ) -> dict[str, Any]:
        user = self._auth(request)
        jobs = await asyncio.to_thread(self.store.list, status, limit, user)
        return {"jobs": [j.public() for j in jobs]}

    @api.get(
        "/v1/history",
        summary="the signed-in user's past jobs, newest first, with "
        "their results in brief (kind, status, risk, lesions)",
    )
    async def history(
        self,
        request: Request,
        limit: int = Query(50, ge=1, le=500),
        before: str | None = Query(
            None, description="a job id: the page after it (the previous page's `next`)"
        ),
    ) -> dict[str, Any]:
        user = self._auth(request)
        after = await self._own_job(before, user) if before else None
        jobs = await asyncio.to_thread(self.store.history, user, limit, after)
        more = f"/v1/history?limit={limit}&before={jobs[-1].job_id}" if len(jobs) == limit else None
        return {"user": user, "jobs": [j.history_entry() for j in jobs], "next": more}

    @api.get("/v1/jobs/{job_id}", summary="a job's status")
    async def job_status(self, job_id: str, request: Request) -> dict[str, Any]:
        job = await self._own_job(job_id, self._auth(request))
        out = job.public()
        running = self._running.get(job_id)
        if running is not None:
            out["serving"] = {"detector": running[0].usage(), "classifier": running[1].usage()}
        return out

    @api.get("/v1/jobs/{job_id}/result", summary="the scoring JSON (docs/score-schema.md)")
    async def job_result(self, job_id: str, request: Request) -> JSONResponse:
        job = await self._own_job(job_id, self._auth(request))
        if job.status == JobState.FAILED:
            raise _reject(409, f"job {job_id} failed: {job.error}")
        if job.status != JobState.DONE or not job.result_path:
            raise _reject(409, f"job {job_id} is {job.status}; poll /v1/jobs/{job_id}")
        text = await asyncio.to_thread(Path(job.result_path).read_text)
        return JSONResponse(json.loads(text))

    # ------------------------------------------------------------- streams
    @api.post("/v1/streams", status_code=201, summary="start scoring a live stream")
    async def create_stream(self, body: StreamRequest, request: Request) -> JSONResponse:
        from sonorisk.serving.stream_policy import StreamRefused, check_stream_url
        from sonorisk.serving.streampool import NoHost, PoolFull

        self._auth(request)
        cfg = self.config.streams
        try:
            check_stream_url(body.url, body.rtsp_transport, cfg.allowed_schemes, cfg.allowed_hosts)
        except StreamRefused as exc:
            raise _reject(422, f"{body.url!r}: {exc}") from None
        try:
            info = await asyncio.wait_for(self._models_async(), timeout=60)
        except Exception as exc:  # noqa: BLE001
            raise _reject(503, f"models not ready: {type(exc).__name__}: {exc}") from None
        if body.rtsp_transport:
            cfg = replace(cfg, rtsp_transport=body.rtsp_transport)
        try:
            stream_id = await self.streams.place(body.url, cfg, self.stream_pipeline, info)
        except PoolFull as exc:
            raise _reject(429, str(exc)) from None
        except NoHost as exc:
            raise _reject(503, f"no stream host available: {exc}") from None
        return JSONResponse(
            status_code=201,
            content={
                "stream_id": stream_id,
                "url": body.url,
                "notice": info["notice"],
                "links": {
                    "status": f"/v1/streams/{stream_id}",
                    "events": f"/v1/streams/{stream_id}/events",
                },
            },
        )

    @api.get("/v1/streams", summary="streams")
    async def list_streams(self, request: Request) -> dict[str, Any]:
        self._auth(request)
        return {"streams": await self.streams.list()}

    @api.get("/v1/streams/{stream_id}", summary="a stream's status, lesions and latencies")
    async def stream_status(self, stream_id: str, request: Request) -> dict[str, Any]:
        from sonorisk.serving.streampool import StreamNotFound

        self._auth(request)
        try:
            return await self.streams.status(stream_id)
        except StreamNotFound:
            raise _reject(404, f"no stream {stream_id!r}") from None

    @api.get(
        "/v1/streams/{stream_id}/events",
        summary="Server-Sent Events: boxes per frame, clip scores, lesion risks, stats",
    )
    async def stream_events(self, stream_id: str, request: Request) -> StreamingResponse:
        from sonorisk.serving.streampool import StreamNotFound, lost_status

        self._auth(request)
        try:
            first = await self.streams.subscribe(stream_id)
        except StreamNotFound:
            raise _reject(404, f"no stream {stream_id!r}") from None

        def sse(event: dict[str, Any]) -> str:
            return f"event: {event['event']}\ndata: {json.dumps(event)}\n\n"

        def lost(reason: str) -> list[str]:
            status = lost_status(stream_id, reason)
            return [
                sse({"event": "error", "error": reason}),
                sse({"event": "stopped", "status": status}),
            ]

        async def generate():  # noqa: ANN202
            if first.get("missing"):
                status = lost_status(stream_id, first["reason"])
                yield sse(
                    {
                        "event": "hello",
                        "stream_id": stream_id,
                        "url": None,
                        "notice": None,
                        "status": status,
                    }
                )
                for text in lost(first["reason"]):
                    yield text
                return
            yield sse(first["hello"])
            after = first["seq"]
            last_beat = time.monotonic()
            while True:
                # A long poll of the stream's host: it answers as soon as events
                # are there, or after a second with none (then a keep-alive).
                batch = await self.streams.events(stream_id, after, 1.0)
                if batch.get("missing"):
                    for text in lost(batch["reason"]):
                        yield text
                    return
                for event in batch["events"]:
                    yield sse(event)
                    if event["event"] == "stopped":
                        return
                after = batch["next"]
                if batch["ended"]:
                    return
                if batch["events"]:
                    last_beat = time.monotonic()
                elif time.monotonic() - last_beat > 10:
                    last_beat = time.monotonic()
                    yield ": keep-alive\n\n"

        return StreamingResponse(
            generate(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @api.delete("/v1/streams/{stream_id}", summary="stop a stream; returns its final status")
    async def stop_stream(self, stream_id: str, request: Request) -> dict[str, Any]:
        from sonorisk.serving.streampool import StreamNotFound

        self._auth(request)
        try:
            return await self.streams.stop(stream_id)
        except StreamNotFound:
            raise _reject(404, f"no stream {stream_id!r}") from None
