"""``sonorisk batch``: score an archive of videos, one row per video.

Outputs: a CSV (written row by row as files finish, so a stopped batch keeps
what it did), a Parquet copy at the end, and the scoring JSON of every video
in ``--json-dir``. A rerun skips the videos already finished (same path, size
and modification time, JSON present) and retries the failed ones. A failing
video gets a row with status ``failed`` and the reason; the batch goes on.

Embedded (default): local worker processes, no cluster. ``--ray ADDRESS``:
the same work as Ray tasks on a cluster (models, videos and output folders
must be at the same paths on every node, e.g. a shared filesystem). Every row
names the model bundle, its version and sha256; a video finished with another
bundle is scored again.
"""

from __future__ import annotations

import csv
import datetime as _dt
import glob
import io
import json
import logging
import os
import stat as stat_module
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sonorisk.csv_safe import read_frame, read_row, safe_frame, safe_row
from sonorisk.errors import InputError

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = {".avi", ".mp4", ".mov", ".m4v", ".mkv", ".webm", ".mpg", ".mpeg", ".ts",
                    ".wmv", ".flv", ".dcm"}
COLUMNS = ["video", "path", "status", "risk", "lesions", "scored_lesions", "clips", "frames", "fps",
           "duration_s", "error_type", "error", "wall_s", "realtime_factor", "json",
           "size_bytes", "mtime", "finished_at", "worker", "node", "model_bundle",
           "model_version", "model_sha256"]
FINISHED = ("scored", "no scorable lesion")


@dataclass
class BatchSettings:
    # Checkpoint files; or ``models`` (sonorisk.models.ResolvedModels, e.g. a bundle),
    # which run_batch fills from these when it is not given.
    detector: str = ""
    classifier: str = ""
    device: str = "cpu"
    pipeline: str | None = None  # configs/pipeline*.yaml
    threads: int = 1  # torch threads per worker
    detector_min_size: int | None = None
    models: Any = None
    runtime: str = "torch"  # torch | onnx (sonorisk.runtime)


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


def expand_inputs(specs: Iterable[str]) -> list[Path]:
    """Folders (recursively, video extensions), globs and files -> sorted unique paths."""
    found: dict[str, Path] = {}
    for spec in specs:
        path = Path(spec)
        if path.is_dir():
            # Not only regular files: a FIFO, device or dangling link with a video
            # name gets a failed row saying so, never silence.
            matches = [p for p in path.rglob("*") if not p.is_dir()
                       and p.suffix.lower() in VIDEO_EXTENSIONS]
            if not matches:
                raise InputError(spec, "folder holds no video files "
                                 f"({', '.join(sorted(VIDEO_EXTENSIONS))})")
        elif path.is_file():
            matches = [path]
        else:
            matches = [Path(p) for p in glob.glob(spec, recursive=True) if Path(p).is_file()]
            if not matches:
                raise InputError(spec, "no such file or folder, and no file matches it as a "
                                       "glob pattern")
        for m in matches:
            found[str(m.resolve())] = m.resolve()
    return [found[k] for k in sorted(found)]


def read_rows(csv_path: Path) -> dict[str, dict[str, str]]:
    """The latest row per video path of an existing results CSV."""
    if not csv_path.is_file():
        return {}
    with csv_path.open(newline="") as fh:
        rows = (read_row(row) for row in csv.DictReader(fh))
        return {row["path"]: row for row in rows if row.get("path")}


def _is_done(row: dict[str, str] | None, path: Path, json_dir: Path,
             model_sha256: str | None = None, json_name: str | None = None) -> bool:
    if row is None or row.get("status") not in FINISHED:
        return False
    if json_name is not None and row.get("json") != json_name:
        return False  # its result is under another name (maybe another input's): score again
    if row.get("model_sha256") and row["model_sha256"] != (model_sha256 or ""):
        return False  # scored by another bundle: score again with this one
    if _not_a_file(path):
        return False
    stat = path.stat()
    return (row.get("size_bytes") == str(stat.st_size)
            and row.get("mtime") == repr(stat.st_mtime)
            and (json_dir / row.get("json", "")).is_file())


# ----------------------------------------------------------------- workers
_MODELS: dict[tuple[Any, ...], Any] = {}


def _models(settings: BatchSettings) -> Any:
    from sonorisk.models.load import load_models
    from sonorisk.threads import set_torch_threads

    resolved = settings.models
    key = (str(resolved.detector), str(resolved.classifier), settings.device,
           settings.detector_min_size, settings.runtime)
    if key not in _MODELS:
        set_torch_threads(settings.threads)
        overrides = ({"min_size": settings.detector_min_size} if settings.detector_min_size
                     else None)
        _MODELS[key] = load_models(resolved, device=settings.device,
                                   detector_overrides=overrides,
                                   runtime=settings.runtime)  # type: ignore[arg-type]
    return _MODELS[key]


def _not_a_file(path: Path) -> str | None:
    """Why ``path`` cannot be scored without reading it (None: a regular file)."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc}; a dangling link?)"
    if not stat_module.S_ISREG(mode):
        return "not a regular file (a FIFO, device or socket): not read"
    return None


def score_one(path: str, settings: BatchSettings) -> dict[str, Any]:
    """Score one video (in a worker); returns ``{"row": ..., "document": ...}``."""
    from sonorisk.config import load_config
    from sonorisk.pipeline.config import PipelineConfig
    from sonorisk.pipeline.report import scored_lesions
    from sonorisk.pipeline.score_file import score_file

    started = time.perf_counter()
    worker = f"{os.uname().nodename}:{os.getpid()}"
    unreadable = _not_a_file(Path(path))
    if unreadable:
        return {"row": {"video": Path(path).name, "path": path, "worker": worker,
                        "status": "failed", "error_type": "NotAVideoError",
                        "error": unreadable, "wall_s": 0.0}, "document": None}
    stat = Path(path).stat()
    base = {"video": Path(path).name, "path": path, "size_bytes": stat.st_size,
            "mtime": repr(stat.st_mtime), "worker": worker, "node": _ray_node(),
            **model_columns(settings.models)}
    try:
        models = _models(settings)
        config = load_config(PipelineConfig, settings.pipeline)
        with tempfile.TemporaryDirectory() as tmp:
            document = score_file(path, models, config, tmp, progress=False)
    except InputError as exc:
        return {"row": {**base, "status": "failed", "error_type": type(exc).__name__,
                        "error": exc.reason, "wall_s": round(time.perf_counter() - started, 3)},
                "document": None}
    except Exception as exc:  # noqa: BLE001 (one file's failure must not stop the batch)
        log.exception("%s: unexpected error", path)
        return {"row": {**base, "status": "failed", "error_type": type(exc).__name__,
                        "error": str(exc)[:500],
                        "wall_s": round(time.perf_counter() - started, 3)},
                "document": None}
    video = document["video"]
    timing = document["timing"]
    row = {**base, "status": document["status"], "risk": document["risk"],
           "lesions": len(document["lesions"]),
           "scored_lesions": scored_lesions(document), "clips": document["clips"],
           "frames": video["frames_scored"], "fps": video.get("fps"),
           "duration_s": video.get("duration_s"),
           "wall_s": round(time.perf_counter() - started, 3),
           "realtime_factor": (round(timing["realtime_factor"], 3)
                               if timing.get("realtime_factor") else None)}
    decode_error = video.get("decode", {}).get("error")
    if decode_error:  # scored what could be decoded; say what was wrong
        row["error_type"] = video["decode"].get("error_type")
        row["error"] = decode_error
    return {"row": row, "document": document}


def model_columns(resolved: Any) -> dict[str, Any]:
    """The bundle every row names (empty for loose checkpoint files)."""
    bundle = resolved.bundle if resolved is not None else None
    return {"model_bundle": bundle.name if bundle else None,
            "model_version": bundle.version if bundle else None,
            "model_sha256": bundle.sha256 if bundle else None}


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


def run_batch(inputs: list[str], settings: BatchSettings, out_csv: str | Path, *,
              json_dir: str | Path | None = None, workers: int = 1,
              ray_address: str | None = None, progress: bool = True) -> BatchSummary:
    from tqdm import tqdm

    from sonorisk.pipeline.output_names import output_stems
    from sonorisk.pipeline.report import write_report

    started = time.perf_counter()
    out_csv = Path(out_csv).resolve()
    json_dir = Path(json_dir).resolve() if json_dir else out_csv.with_suffix("").with_name(
        out_csv.stem + ".json")
    if settings.models is None:
        from sonorisk.models.resolve import resolve_models

        settings.models = resolve_models(None, settings.detector or None,
                                         settings.classifier or None)
    settings.detector = str(settings.models.detector)  # absolute: workers may run elsewhere
    settings.classifier = str(settings.models.classifier)
    if settings.pipeline:
        settings.pipeline = str(Path(settings.pipeline).resolve())
    paths = expand_inputs(inputs)
    roots = {Path(s).resolve() for s in inputs if Path(s).is_dir()}
    root = next(iter(roots)) if len(roots) == 1 else None
    json_names = {p: f"{stem}.json" for p, stem in output_stems(paths, root).items()}
    previous = read_rows(out_csv)
    sha = model_columns(settings.models)["model_sha256"]
    todo = [p for p in paths
            if not _is_done(previous.get(str(p)), p, json_dir, sha, json_names[p])]
    summary = BatchSummary(total=len(paths), skipped=len(paths) - len(todo), csv=str(out_csv))
    writer = _Writer(out_csv)
    bar = tqdm(total=len(todo), unit="video", desc="batch", disable=not progress,
               dynamic_ncols=True)
    try:
        results = (_run_ray(todo, settings, ray_address) if ray_address
                   else _run_local(todo, settings, workers))
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
                summary.failures.append((str(path), f"{row.get('error_type')}: "
                                                    f"{row.get('error')}"))
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
        bar.close()
        writer.close()
    summary.parquet = str(_finalise(out_csv, paths))
    summary.wall_s = time.perf_counter() - started
    return summary


def _lost(path: Path, exc: BaseException, what: str) -> dict[str, Any]:
    """The row of a video whose worker (process, Ray task or node) was lost."""
    try:
        stat = path.stat()
        size, mtime = stat.st_size, repr(stat.st_mtime)
    except OSError:
        size, mtime = None, None
    return {"row": {"video": path.name, "path": str(path), "status": "failed",
                    "error_type": type(exc).__name__, "error": f"{what}: {str(exc)[:300]}",
                    "size_bytes": size, "mtime": mtime},
            "document": None}


def _run_local(todo: list[Path], settings: BatchSettings,
               workers: int) -> Iterator[tuple[Path, dict[str, Any]]]:
    if not todo:
        return
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # torch and threads: never fork
    with ProcessPoolExecutor(max_workers=max(1, min(workers, len(todo))), mp_context=context,
                             initializer=_init_worker, initargs=(settings.threads,)) as pool:
        pending: dict[Future[dict[str, Any]], Path] = {}
        queue = list(todo)
        limit = max(1, workers) * 2
        while queue or pending:
            while queue and len(pending) < limit:
                path = queue.pop(0)
                pending[pool.submit(score_one, str(path), settings)] = path
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                path = pending.pop(future)
                try:
                    outcome = future.result()
                except Exception as exc:  # noqa: BLE001 (a worker died: record it, go on)
                    outcome = _lost(path, exc, "worker process failed")
                yield path, outcome


def _run_ray(todo: list[Path], settings: BatchSettings,
             address: str) -> Iterator[tuple[Path, dict[str, Any]]]:
    if not todo:
        return
    import ray

    started_here = not ray.is_initialized()
    if started_here:  # a cluster's workers do not inherit our environment (threads.py)
        from sonorisk.threads import child_env

        ray.init(address=address, namespace="sonorisk-batch", log_to_driver=False,
                 runtime_env={"env_vars": child_env(settings.threads)})
    try:
        # Reserve as many CPUs as the task runs threads, so Ray never packs more
        # threads than cores onto a node.
        task = ray.remote(num_cpus=max(1, settings.threads), max_retries=2,
                          retry_exceptions=False)(score_one)
        refs = {task.remote(str(p), settings): p for p in todo}
        while refs:
            done, _ = ray.wait(list(refs), num_returns=1)
            for ref in done:
                path = refs.pop(ref)
                try:
                    outcome = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 (node or worker lost: recorded)
                    outcome = _lost(path, exc, "Ray task failed")
                yield path, outcome
    finally:
        if started_here:
            ray.shutdown()


def summary_text(summary: BatchSummary) -> str:
    return json.dumps({k: v for k, v in summary.__dict__.items() if k != "failures"})
