"""``sonorisk batch``: score an archive of videos and still images, one row per file.

Inputs: folders (searched recursively for videos by their extension and still
images: PNG, JPEG, TIFF, BMP, single-frame DICOM, by their first bytes), globs
and files. Each file is scored by ``score_path`` (a still by the still
pipeline, a video by the video pipeline); its row says which (``kind``).
Outputs: a CSV (written row by row as files finish, so a stopped batch keeps
what it did), a Parquet copy at the end, and the scoring JSON of every file
in ``--json-dir``. A rerun skips the files already finished (same path, size
and modification time, JSON present) and retries the failed ones. A failing
file gets a row with status ``failed`` and the reason; the batch goes on.

Embedded (default): local worker processes, no cluster. A video that takes
longer than ``file_timeout_s`` gets a failed row (error type ``timeout``) and
its worker is replaced; a worker that dies is replaced too; workers end when
the batch process dies, however it dies. ``--ray ADDRESS``: the same work as
Ray tasks on a cluster (models, videos and output folders must be at the same
paths on every node, e.g. a shared filesystem). Every row, failed or not,
names the model bundle, its version and sha256; a video finished with another
bundle is scored again.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import glob
import io
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from sonorisk.csv_safe import read_frame, read_row, safe_frame, safe_row
from sonorisk.errors import ConfigError, InputError, SonoriskError
from sonorisk.io.probe import special_file_kind
from sonorisk.pipeline.config import PipelineConfig, detector_overrides, pipeline_yaml
from sonorisk.serving.redact import redact_text

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = {
    ".avi",
    ".mp4",
    ".mov",
    ".m4v",
    ".mkv",
    ".webm",
    ".mpg",
    ".mpeg",
    ".ts",
    ".wmv",
    ".flv",
    ".dcm",
}
# Names of still images (sonorisk.io.still.STILL_SUFFIXES less ".dcm", which cine
# DICOM shares): such a file is listed even when its bytes are no image, so its
# row says so instead of silence.
IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"}
# "video": the file's name (the column kept its name when stills came).
COLUMNS = [
    "video",
    "path",
    "kind",
    "status",
    "risk",
    "lesions",
    "scored_lesions",
    "clips",
    "frames",
    "fps",
    "duration_s",
    "error_type",
    "error",
    "wall_s",
    "realtime_factor",
    "json",
    "size_bytes",
    "mtime",
    "finished_at",
    "worker",
    "node",
    "model_bundle",
    "model_version",
    "model_sha256",
]
FINISHED = ("scored", "no scorable lesion")


@dataclass
class BatchSettings:
    # Checkpoint files; or ``models`` (sonorisk.models.ResolvedModels, e.g. a bundle),
    # which run_batch fills from these when it is not given.
    detector: str = ""
    classifier: str = ""
    device: str = "cpu"
    # A configs/pipeline*.yaml, or the PipelineConfig the command line layered
    # (``BatchConfig.pipeline()``); None: the defaults.
    pipeline: str | PipelineConfig | None = None
    threads: int = 1  # torch threads per worker
    detector_min_size: int | None = None
    detector_tta: bool | None = None  # None: the detector file's setting
    models: Any = None
    runtime: str = "torch"  # torch | onnx (sonorisk.runtime)
    # Seconds one video may take in a local worker (model loading not counted);
    # None or 0: no limit. Generous: a 10-minute 1080p screen capture takes about
    # 20 minutes on 2 CPU cores; a stuck file must not hold a worker for ever.
    file_timeout_s: float | None = 3600.0


@dataclass
class BatchSummary:
    total: int
    skipped: int
    scored: int = 0
    no_lesion: int = 0
    failed: int = 0
    wall_s: float = 0.0
    csv: str = ""
    parquet: str = ""
    failures: list[tuple[str, str]] = field(default_factory=list)


def _listed(path: Path) -> bool:
    """Whether a file found in a folder is scored: a video or image extension, or
    (any name) the first bytes of a still image."""
    from sonorisk.io.still import is_still

    suffix = path.suffix.lower()
    if suffix in VIDEO_EXTENSIONS or suffix in IMAGE_EXTENSIONS:
        return True
    return is_still(path)  # False for a FIFO, device or dangling link: never opened


def file_kind(path: Path) -> str:
    """``still`` or ``video``: what ``score_path`` scores the file as (``still`` by its
    first bytes; a file that cannot be read, by its name)."""
    from sonorisk.io.still import is_still

    if _not_a_file(path) is not None:
        return "still" if path.suffix.lower() in IMAGE_EXTENSIONS else "video"
    try:
        return "still" if is_still(path) else "video"
    except OSError:
        return "still" if path.suffix.lower() in IMAGE_EXTENSIONS else "video"


def expand_inputs(specs: Iterable[str]) -> list[Path]:
    """Folders (recursively: video extensions, still images), globs and files -> sorted
    unique paths."""
    found: dict[str, Path] = {}
    for spec in specs:
        path = Path(spec)
        if path.is_dir():
            # Not only regular files: a FIFO, device or dangling link with a video
            # or image name gets a failed row saying so, never silence.
            matches = [p for p in path.rglob("*") if not p.is_dir() and _listed(p)]
            if not matches:
                raise InputError(
                    spec,
                    "folder holds no video files "
                    f"({', '.join(sorted(VIDEO_EXTENSIONS))}) and no still "
                    "images (PNG, JPEG, TIFF, BMP, DICOM)",
                )
        elif path.is_file():
            matches = [path]
        else:
            matches = [Path(p) for p in glob.glob(spec, recursive=True) if Path(p).is_file()]
            if not matches:
                raise InputError(
                    spec, "no such file or folder, and no file matches it as a glob pattern"
                )
        for m in matches:
            found[str(_resolved(m))] = _resolved(m)
    return [found[k] for k in sorted(found)]


def _resolved(path: Path) -> Path:
    """``path`` made absolute; a symbolic-link loop stays as it is (its row then says
    it cannot be read) instead of stopping the whole batch."""
    try:
        return path.resolve()
    except (RuntimeError, OSError):  # RuntimeError: pathlib's "Symlink loop" before 3.13
        return path.absolute()


def read_rows(csv_path: Path) -> dict[str, dict[str, str]]:
    """The latest row per video path of an existing results CSV."""
    if not csv_path.is_file():
        return {}
    try:
        with csv_path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if reader.fieldnames is not None and "path" not in reader.fieldnames:
                raise InputError(
                    csv_path,
                    "exists but is not a sonorisk batch results table "
                    "(no 'path' column): choose another --out, or move "
                    "it away",
                )
            rows = (read_row(row) for row in reader)
            return {row["path"]: row for row in rows if row.get("path")}
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InputError(
            csv_path,
            f"exists but is not a readable CSV ({exc}): choose another --out, or move it away",
        ) from None


def _is_done(
    row: dict[str, str] | None,
    path: Path,
    json_dir: Path,
    model_sha256: str | None = None,
    json_name: str | None = None,
) -> bool:
    if row is None or row.get("status") not in FINISHED:
        return False
    if json_name is not None and row.get("json") != json_name:
        return False  # its result is under another name (maybe another input's): score again
    if row.get("model_sha256") and row["model_sha256"] != (model_sha256 or ""):
        return False  # scored by another bundle: score again with this one
    if _not_a_file(path):
        return False
    stat = path.stat()
    return (
        row.get("size_bytes") == str(stat.st_size)
        and row.get("mtime") == repr(stat.st_mtime)
        and (json_dir / row.get("json", "")).is_file()
    )


# ----------------------------------------------------------------- workers
_MODELS: dict[tuple[Any, ...], Any] = {}


def _models(settings: BatchSettings) -> Any:
    from sonorisk.models.load import load_models
    from sonorisk.threads import set_torch_threads

    resolved = settings.models
    key = (
        str(resolved.detector),
        str(resolved.classifier),
        settings.device,
        settings.detector_min_size,
        settings.detector_tta,
        settings.runtime,
    )
    if key not in _MODELS:
        set_torch_threads(settings.threads)
        _MODELS[key] = load_models(
            resolved,
            device=settings.device,
            detector_overrides=detector_overrides(
                settings.detector_min_size, settings.detector_tta
            ),
            runtime=settings.runtime,  # type: ignore[arg-type]
        )
    return _MODELS[key]


def _not_a_file(path: Path) -> str | None:
    """Why ``path`` cannot be scored without reading it (None: a regular file)."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc}; a dangling link?)"
    kind = special_file_kind(mode)
    if kind is not None:  # a FIFO may never end, a device is no recording
        return f"is a {kind}, not a regular file: not read"
    return None


def _scratch_prefix(pid: int) -> str:
    """A worker's scratch folders are named by its pid, so the batch can remove
    those of a worker that was killed before it could."""
    return f"sonorisk-batch-{pid}-"


def _worker_name() -> str:
    return f"{os.uname().nodename}:{os.getpid()}"


def _failed_row(
    path: Path, settings: BatchSettings, error_type: str, error: str, **extra: Any
) -> dict[str, Any]:
    """A failed file's row, with the file's identity and the bundle a scored row has."""
    try:
        stat = path.stat()
        size, mtime = stat.st_size, repr(stat.st_mtime)
    except OSError:  # a dangling link
        size, mtime = None, None
    extra.setdefault("kind", file_kind(path))
    return {
        "video": path.name,
        "path": str(path),
        "status": "failed",
        "error_type": error_type,
        "error": error,
        "size_bytes": size,
        "mtime": mtime,
        **model_columns(settings.models),
        **extra,
    }


def score_one(path: str, settings: BatchSettings) -> dict[str, Any]:
    """Score one file, video or still (in a worker); returns ``{"row": ..., "document":
    ...}``."""
    from sonorisk.config import load_config
    from sonorisk.pipeline.config import PipelineConfig
    from sonorisk.pipeline.document import ScoreDocument
    from sonorisk.pipeline.score_file import score_path

    started = time.perf_counter()
    who = {"worker": _worker_name(), "node": _ray_node()}
    unreadable = _not_a_file(Path(path))
    if unreadable:
        return {
            "row": _failed_row(
                Path(path), settings, "NotAVideoError", unreadable, wall_s=0.0, **who
            ),
            "document": None,
        }
    kind = file_kind(Path(path))
    if kind == "video" and Path(path).suffix.lower() in IMAGE_EXTENSIONS:
        # Named like an image, but its bytes are none: say so, not "not a video".
        return {
            "row": _failed_row(
                Path(path),
                settings,
                "InputError",
                "not a still image: its first bytes are no PNG, JPEG, "
                "TIFF or BMP header (a renamed or damaged file?)",
                wall_s=0.0,
                kind="still",
                **who,
            ),
            "document": None,
        }
    stat = Path(path).stat()  # before scoring: a file changed meanwhile is scored on a rerun
    scratch = tempfile.mkdtemp(prefix=_scratch_prefix(os.getpid()))
    try:
        models = _models(settings)
        config = (
            settings.pipeline
            if isinstance(settings.pipeline, PipelineConfig)
            else load_config(PipelineConfig, settings.pipeline)
        )
        document = score_path(path, models, config, scratch, progress=False)
    except Exception as exc:  # noqa: BLE001 (one file's failure must not stop the batch)
        if isinstance(exc, InputError):
            error = exc.reason
        else:
            log.exception("%s: unexpected error", path)
            # The scratch folder is this machine's business, not the reader's.
            error = redact_text(str(exc), {scratch: "<scratch>"})[:500]
        row = _failed_row(
            Path(path),
            settings,
            type(exc).__name__,
            error,
            wall_s=round(time.perf_counter() - started, 3),
            kind=kind,
            **who,
        )
        return {"row": row, "document": None}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    base = {
        "video": Path(path).name,
        "path": path,
        "kind": kind,
        "size_bytes": stat.st_size,
        "mtime": repr(stat.st_mtime),
        **who,
        **model_columns(settings.models),
    }
    typed = ScoreDocument.from_json(document)
    summary, video = typed.summary(), typed.video
    realtime = typed.timing.get("realtime_factor")
    row = {
        **base,
        "status": summary.status.value,
        "risk": summary.risk,
        "lesions": len(summary.lesions),
        "scored_lesions": summary.scored_lesions,
        "clips": summary.clips,
        "frames": summary.frames,
        "fps": video.fps,
        "duration_s": video.duration_s,
        "wall_s": round(time.perf_counter() - started, 3),
        "realtime_factor": round(realtime, 3) if realtime else None,
    }
    decode_error = video.decode.get("error")
    if decode_error:  # scored what could be decoded; say what was wrong
        row["error_type"] = video.decode.get("error_type")
        row["error"] = decode_error
    return {"row": row, "document": document}


def model_columns(resolved: Any) -> dict[str, Any]:
    """The bundle every row names (empty for loose checkpoint files)."""
    bundle = resolved.bundle if resolved is not None else None
    return {
        "model_bundle": bundle.name if bundle else None,
        "model_version": bundle.version if bundle else None,
        "model_sha256": bundle.sha256 if bundle else None,
    }


def _ray_node() -> str | None:
    """The Ray node id when running as a Ray task (None in local processes)."""
    if "ray" not in sys.modules:
        return None
    import ray

    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else None


def _init_worker(threads: int) -> None:
    from sonorisk.threads import set_torch_threads

    set_torch_threads(threads)


# ------------------------------------------------------------------ driver
class _Writer:
    """Appends rows to the CSV as they arrive (flushed and fsynced)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        new = not path.is_file() or path.stat().st_size == 0
        if not new:
            _upgrade_header(path)
        self.fh = path.open("a", newline="")
        self.writer = csv.DictWriter(self.fh, fieldnames=COLUMNS, extrasaction="ignore")
        if new:
            self.writer.writeheader()

    def write(self, row: dict[str, Any]) -> None:
        self.writer.writerow(safe_row(row))
        self.fh.flush()
        os.fsync(self.fh.fileno())

    def close(self) -> None:
        self.fh.close()


def _upgrade_header(path: Path) -> None:
    """A results CSV written with other columns (an older sonorisk) is rewritten
    with today's, so appended rows line up."""
    with path.open(newline="") as fh:
        header = next(csv.reader(fh), [])
    if header == COLUMNS:
        return
    from sonorisk.atomic import atomic_write_text

    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))  # cells stay as written (escaped)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out.getvalue(), path)


def _finalise(csv_path: Path, order: list[Path]) -> Path:
    """Rewrite the CSV with one row per video (the latest), write the Parquet copy."""
    import pandas as pd

    from sonorisk.atomic import atomic_write_text

    rows = read_rows(csv_path)
    ordered = [rows[str(p)] for p in order if str(p) in rows]
    ordered += [r for k, r in rows.items() if k not in {str(p) for p in order}]
    frame = pd.DataFrame(ordered, columns=COLUMNS)
    atomic_write_text(safe_frame(frame).to_csv(index=False), csv_path)
    typed = read_frame(pd.read_csv(csv_path))  # the Parquet copy holds the raw values
    parquet = csv_path.with_suffix(".parquet")
    typed.to_parquet(parquet, index=False)
    return parquet


def run_batch(
    inputs: list[str],
    settings: BatchSettings,
    out_csv: str | Path,
    *,
    json_dir: str | Path | None = None,
    workers: int = 1,
    ray_address: str | None = None,
    progress: bool = True,
) -> BatchSummary:
    from tqdm import tqdm

    from sonorisk.pipeline.output_names import output_stems
    from sonorisk.pipeline.report import write_report

    started = time.perf_counter()
    if settings.file_timeout_s is not None and settings.file_timeout_s < 0:
        raise ConfigError(
            "file_timeout_s",
            f"must be >= 0 seconds (0 or none: no limit), got {settings.file_timeout_s:g}",
        )
    out_csv = Path(out_csv).resolve()
    json_dir = (
        Path(json_dir).resolve()
        if json_dir
        else out_csv.with_suffix("").with_name(out_csv.stem + ".json")
    )
    if settings.models is None:
        from sonorisk.models.resolve import resolve_models

        settings.models = resolve_models(
            None, settings.detector or None, settings.classifier or None
        )
    settings.detector = str(settings.models.detector)  # absolute: workers may run elsewhere
    settings.classifier = str(settings.models.classifier)
    if isinstance(settings.pipeline, str):
        settings.pipeline = str(pipeline_yaml(settings.pipeline).resolve())
    paths = expand_inputs(inputs)
    roots = {Path(s).resolve() for s in inputs if Path(s).is_dir()}
    root = next(iter(roots)) if len(roots) == 1 else None
    json_names = {p: f"{stem}.json" for p, stem in output_stems(paths, root).items()}
    previous = read_rows(out_csv)
    sha = model_columns(settings.models)["model_sha256"]
    todo = [p for p in paths if not _is_done(previous.get(str(p)), p, json_dir, sha, json_names[p])]
    summary = BatchSummary(total=len(paths), skipped=len(paths) - len(todo), csv=str(out_csv))
    writer = _Writer(out_csv)
    bar = tqdm(total=len(todo), unit="file", desc="batch", disable=not progress, dynamic_ncols=True)
    results = (
        _run_ray(todo, settings, ray_address)
        if ray_address
        else _run_local(todo, settings, workers)
    )
    try:
        for path, outcome in results:
            row = dict(outcome["row"])
            row["finished_at"] = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
            document = outcome["document"]
            if document is not None:
                name = json_names[path]
                write_report(document, json_dir / name)
                row["json"] = name
            if row["status"] == "failed":
                summary.failed += 1
                summary.failures.append((str(path), f"{row.get('error_type')}: {row.get('error')}"))
                if progress:
                    bar.write(f"failed: {path.name}: {row.get('error')}", file=sys.stderr)
            elif row["status"] == "scored":
                summary.scored += 1
            else:
                summary.no_lesion += 1
            writer.write(row)
            bar.update(1)
            bar.set_postfix(failed=summary.failed)
    finally:
        results.close()  # now, not when collected: stops the workers even on an error here
        bar.close()
        writer.close()
    summary.parquet = str(_finalise(out_csv, paths))
    summary.wall_s = time.perf_counter() - started
    return summary


def _lost(path: Path, settings: BatchSettings, exc: BaseException, what: str) -> dict[str, Any]:
    """The outcome of a video whose Ray task or node was lost."""
    return {
        "row": _failed_row(path, settings, type(exc).__name__, f"{what}: {str(exc)[:300]}"),
        "document": None,
    }


def _run_local(
    todo: list[Path], settings: BatchSettings, workers: int
) -> Generator[tuple[Path, dict[str, Any]], None, None]:
    if not todo:
        return
    pool = _LocalPool(settings, max(1, min(workers, len(todo))))
    try:
        yield from pool.run(todo)
    finally:
        pool.close()


# ------------------------------------------------------------ local workers
# Our own pool, not a ProcessPoolExecutor: that one cannot stop one worker
# (a file past its timeout) without breaking every pending file, and its
# workers held both ends of their pipes, so a SIGKILLed batch left them
# (about 950 MB each) running for ever.
_PARENT_POLL_S = 0.5  # how often a worker checks that the batch process lives
_EXIT_GRACE_S = 5.0  # a worker whose parent died then has this long to clean up
_STOP_GRACE_S = 2.0  # a worker asked to stop has this long before it is killed
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _worker_main(conn: Connection, settings: BatchSettings, parent_pid: int) -> None:
    """A local worker: load the models, say "ready", then score each path the
    parent sends until it sends None or is gone."""
    _end_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's: it stops us
    _init_worker(settings.threads)
    try:
        _models(settings)  # before "ready": the file timeout counts scoring, not start-up
    except Exception:  # noqa: BLE001 (score_one reports it in every file's row)
        log.exception("loading the models failed")
    try:
        conn.send(("ready", None))
        while (path := conn.recv()) is not None:
            conn.send(("done", score_one(path, settings)))
    except (EOFError, OSError):  # the parent is gone: nobody to score for
        return


def _end_with_parent(parent_pid: int) -> None:
    """End this worker when the batch process dies, however it dies.

    Linux: the kernel sends SIGTERM when the parent dies (PR_SET_PDEATHSIG).
    Everywhere, and for a parent that died before that call: a thread that sees
    the parent's pid change. SIGTERM raises SystemExit, so the scratch folder
    of the file in hand is removed; the thread ends the process outright if
    that takes longer than a few seconds.
    """
    signal.signal(signal.SIGTERM, _on_sigterm)
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    threading.Thread(
        target=_watch_parent, args=(parent_pid,), daemon=True, name="sonorisk-parent-watch"
    ).start()


def _on_sigterm(signum: int, frame: Any) -> None:
    # Once: a second SIGTERM (the kernel's and the watcher's) must not cut the clean-up short.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise SystemExit(128 + signum)


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(_PARENT_POLL_S)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(_EXIT_GRACE_S)
    os._exit(1)


@dataclass
class _Worker:
    process: Any  # multiprocessing (spawn) Process
    conn: Connection  # the parent's end of the worker's pipe
    ready: bool = False  # models loaded, waiting for a path
    path: Path | None = None  # the video it scores now
    started: float = 0.0  # time.monotonic() when it got that video

    @property
    def name(self) -> str:  # as score_one names it in the worker column
        return f"{os.uname().nodename}:{self.process.pid}"


class _LocalPool:
    """Spawned worker processes, one video at a time each. A worker past the
    file timeout is stopped and one that dies is recorded; both are replaced
    while videos remain."""

    def __init__(self, settings: BatchSettings, size: int) -> None:
        import multiprocessing

        self.context = multiprocessing.get_context("spawn")  # torch and threads: never fork
        self.settings = settings
        self.size = size
        self.timeout = settings.file_timeout_s or None
        self.workers: list[_Worker] = []
        self.ending: list[Any] = []  # processes told to end, not yet joined

    def run(self, todo: list[Path]) -> Iterator[tuple[Path, dict[str, Any]]]:
        queue = deque(todo)
        while queue or self._busy():
            while len(self.workers) < min(self.size, len(queue) + self._busy()):
                self.workers.append(self._spawn())
            for worker in self.workers:
                if worker.ready and worker.path is None and queue:
                    self._assign(worker, queue)
            if not queue:  # free the memory of workers with nothing left to do
                for worker in [w for w in self.workers if w.ready and w.path is None]:
                    self._stop(worker, wait=False)
            self._wait()
            for worker in list(self.workers):
                yield from self._collect(worker)

    def close(self) -> None:
        for worker in list(self.workers):
            self._stop(worker, wait=False)
        self._reap()

    def _busy(self) -> int:
        return sum(w.path is not None for w in self.workers)

    def _spawn(self) -> _Worker:
        ours, theirs = self.context.Pipe()
        process = self.context.Process(
            target=_worker_main,
            name="sonorisk-batch-worker",
            args=(theirs, self.settings, os.getpid()),
        )
        process.start()
        theirs.close()  # only the worker holds its end: its reads see EOF when we die
        return _Worker(process, ours)

    def _assign(self, worker: _Worker, queue: deque[Path]) -> None:
        path = queue.popleft()
        try:
            worker.conn.send(str(path))
        except OSError:  # it died just now: _collect notices, the video goes to another
            queue.appendleft(path)
            return
        worker.path, worker.started = path, time.monotonic()

    def _deadline(self, worker: _Worker) -> float | None:
        if self.timeout is None or worker.path is None:
            return None
        return worker.started + self.timeout

    def _wait(self) -> None:
        """Until a worker sends something or exits, or the first deadline passes."""
        from multiprocessing.connection import wait

        deadlines = [d for w in self.workers if (d := self._deadline(w)) is not None]
        timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
        wait([w.conn for w in self.workers] + [w.process.sentinel for w in self.workers], timeout)

    def _collect(self, worker: _Worker) -> list[tuple[Path, dict[str, Any]]]:
        """What ``worker`` finished, and the failed row of a video it cannot finish."""
        results: list[tuple[Path, dict[str, Any]]] = []
        closed = False
        try:
            while worker.conn.poll():
                kind, outcome = worker.conn.recv()
                if kind == "ready":
                    worker.ready = True
                else:
                    assert worker.path is not None  # an outcome answers the video sent
                    results.append((worker.path, outcome))
                    worker.path = None
        except (EOFError, OSError):
            closed = True
        if closed or not worker.process.is_alive():
            return results + self._died(worker)
        deadline = self._deadline(worker)
        if deadline is not None and time.monotonic() >= deadline:
            return results + [self._timed_out(worker)]
        return results

    def _died(self, worker: _Worker) -> list[tuple[Path, dict[str, Any]]]:
        path, name = worker.path, worker.name
        self._stop(worker)
        how = _exit_text(worker.process.exitcode)
        if not worker.ready:  # every worker would fail the same way: stop the batch
            raise SonoriskError(
                f"a batch worker process ended while loading the models "
                f"({how}); its messages are above"
            )
        if path is None:
            return []
        error = f"the worker process died while scoring it ({how})"
        return [
            (
                path,
                {
                    "row": _failed_row(path, self.settings, "crash", error, worker=name),
                    "document": None,
                },
            )
        ]

    def _timed_out(self, worker: _Worker) -> tuple[Path, dict[str, Any]]:
        path, name = worker.path, worker.name
        assert path is not None and self.timeout is not None
        wall = time.monotonic() - worker.started
        self._stop(worker)
        error = (
            f"scoring took longer than the per-file timeout of {self.timeout:g} s "
            "(file_timeout_s); it was stopped and its worker replaced"
        )
        row = _failed_row(path, self.settings, "timeout", error, worker=name, wall_s=round(wall, 3))
        return path, {"row": row, "document": None}

    def _stop(self, worker: _Worker, *, wait: bool = True) -> None:
        """End a worker: an idle one is asked to, a busy one is terminated (its
        SIGTERM handler removes its scratch folder). ``wait=False``: do not wait
        for it to go (close() does)."""
        self.workers.remove(worker)
        if worker.ready and worker.path is None:
            with contextlib.suppress(OSError):
                worker.conn.send(None)
        else:
            worker.process.terminate()
        worker.conn.close()
        self.ending.append(worker.process)
        if wait:
            self._reap()

    def _reap(self) -> None:
        """Join the workers told to end; kill one still there after a grace period,
        and remove the scratch folder a killed one left."""
        for process in self.ending:
            process.join(_STOP_GRACE_S)
            if process.is_alive():
                process.kill()
                process.join()
            for left in Path(tempfile.gettempdir()).glob(f"{_scratch_prefix(process.pid)}*"):
                shutil.rmtree(left, ignore_errors=True)
        self.ending.clear()


def _exit_text(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"killed by {name}" + (", maybe out of memory" if name == "SIGKILL" else "")
    return f"exit code {code}"


def _run_ray(
    todo: list[Path], settings: BatchSettings, address: str
) -> Generator[tuple[Path, dict[str, Any]], None, None]:
    if not todo:
        return
    import ray

    started_here = not ray.is_initialized()
    if started_here:  # a cluster's workers do not inherit our environment (threads.py)
        from sonorisk.threads import child_env

        ray.init(
            address=address,
            namespace="sonorisk-batch",
            log_to_driver=False,
            runtime_env={"env_vars": child_env(settings.threads)},
        )
    try:
        # Reserve as many CPUs as the task runs threads, so Ray never packs more
        # threads than cores onto a node.
        task = ray.remote(num_cpus=max(1, settings.threads), max_retries=2, retry_exceptions=False)(
            score_one
        )
        refs = {task.remote(str(p), settings): p for p in todo}
        while refs:
            done, _ = ray.wait(list(refs), num_returns=1)
            for ref in done:
                path = refs.pop(ref)
                try:
                    outcome = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 (node or worker lost: recorded)
                    outcome = _lost(path, settings, exc, "Ray task failed")
                yield path, outcome
    finally:
        if started_here:
            ray.shutdown()


def summary_text(summary: BatchSummary) -> str:
    return json.dumps({k: v for k, v in summary.__dict__.items() if k != "failures"})
