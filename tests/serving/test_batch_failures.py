"""``sonorisk batch`` when things go wrong: a killed batch, a file past its
timeout, a worker that dies, inputs that fail. Real worker processes on real
videos; processes are watched through /proc (Linux)."""

from __future__ import annotations

import csv
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sonorisk.cli import main
from sonorisk.serving.batch import FINISHED, BatchSettings, run_batch

pytestmark = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")


# ------------------------------------------------------------------ helpers
def _children() -> dict[int, list[int]]:
    """Parent pid -> its child pids, from /proc."""
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue  # ended meanwhile
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _descendants(pid: int) -> list[int]:
    tree, found, todo = _children(), [], [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's zombie waits for init to reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _has_open(pid: int, path: Path) -> bool:
    try:
        return any(os.readlink(fd) == str(path) for fd in Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False


def _wait_for(condition: Callable[[], object], timeout_s: float, what: str) -> object:
    deadline = time.monotonic() + timeout_s
    while not (result := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
    return result


def _rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _batch_process(log: Path, *args: str, tmpdir: Path | None = None) -> subprocess.Popen:
    """``sonorisk batch ARGS`` as its own process, its output in ``log`` (not a
    pipe: orphaned workers would hold it open); TMPDIR: the workers' scratch."""
    env = {**os.environ, **({"TMPDIR": str(tmpdir)} if tmpdir else {})}
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "sonorisk.cli", "batch", *args, "--no-progress"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )


def _end_all(batch: subprocess.Popen, family: list[int]) -> None:
    """Leave nothing running, whatever the test saw: the batch, then ``family``
    (or, while the batch still runs, its descendants)."""
    if batch.poll() is None:
        family = family + _descendants(batch.pid)
        batch.kill()
    batch.wait(10)
    for pid in family:
        if _running(pid):
            os.kill(pid, signal.SIGKILL)


def _video(path: Path, source: Path, frames: int) -> Path:
    """``frames`` frames of ``source`` (looped): a longer or shorter real video."""
    from itertools import cycle, islice

    from sonorisk.io import open_video
    from sonorisk.io.writer import write_video

    with open_video(source) as src:
        images = [frame.image for frame in src]
    write_video(path, islice(cycle(images), frames), 30.0, "mjpeg")
    return path


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory, serving_models) -> Path:
    """The serving test models as a bundle, so rows carry the model columns."""
    from sonorisk.models.bundle import export_bundle

    info = {
        "task": "batch failure tests",
        "intended_use": "tests only",
        "limitations": ["trained on phantoms"],
        "training_data": {"description": "phantom sweeps", "licence": "none", "citation": "none"},
        "notice": "Test models; not a medical device.",
    }
    return export_bundle(
        serving_models.detector,
        serving_models.classifier,
        tmp_path_factory.mktemp("bundle"),
        "batch-test",
        "1.0.0",
        info,
        dtype=None,
    )


@pytest.fixture(scope="module")
def long_and_short(tmp_path_factory: pytest.TempPathFactory, sweeps) -> tuple[Path, Path]:
    """a_long.avi (1600 frames: a minute or more to score on a 2-core CPU) and
    b_short.avi (24 frames: seconds), in that order in a folder."""
    folder = tmp_path_factory.mktemp("long_and_short")
    return (
        _video(folder / "a_long.avi", sweeps["benign"], 1600),
        _video(folder / "b_short.avi", sweeps["malignant"], 24),
    )


@pytest.fixture
def make_size_change(sweeps) -> Callable[[Path], Path]:
    """A real MPEG-TS whose frame size changes after 20 frames."""

    def make(path: Path) -> Path:
        import cv2

        from sonorisk.io import open_video
        from sonorisk.io.writer import write_video

        with open_video(sweeps["malignant"]) as src:
            images = [frame.image for frame in src][:40]
        parts = []
        for i, size in enumerate(((160, 120), (128, 96))):
            part = path.with_name(f"part{i}.tmp.ts")
            write_video(
                part,
                (cv2.resize(im, size) for im in images[i * 20 : (i + 1) * 20]),
                30.0,
                "mpeg2video",
            )
            parts.append(part.read_bytes())
            part.unlink()
        path.write_bytes(b"".join(parts))
        return path

    return make


def _bundle_columns(row: dict[str, str]) -> tuple[str, str, bool]:
    return row["model_bundle"], row["model_version"], len(row["model_sha256"]) == 64


# -------------------------------------------------------------------- tests
def test_workers_end_when_the_batch_process_is_killed(tmp_path: Path, sweeps, serving_models):
    """SIGKILL of `sonorisk batch` used to leave its workers (about 950 MB each)
    running for ever; they must end within seconds, the rows written kept."""
    folder = tmp_path / "archive"
    folder.mkdir()
    for i in range(6):
        shutil.copy(sweeps["benign" if i % 2 else "malignant"], folder / f"v{i}.avi")
    out = tmp_path / "r.csv"
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    batch = _batch_process(
        tmp_path / "log",
        str(folder),
        "--models",
        str(serving_models.folder),
        "--out",
        str(out),
        "--workers",
        "2",
        tmpdir=scratch,
    )
    family: list[int] = []  # every process the batch started
    try:
        _wait_for(lambda: _rows(out), 300, "the first row")

        def busy_workers() -> list[int]:  # both workers scoring a video of the archive
            workers = [
                p for p in _descendants(batch.pid) if any(_has_open(p, v) for v in folder.iterdir())
            ]
            return workers if len(workers) == 2 else []

        workers = _wait_for(busy_workers, 120, "two busy workers")
        family = _descendants(batch.pid)
        written = _rows(out)
        batch.send_signal(signal.SIGKILL)
        batch.wait(10)
        # Workers and multiprocessing's helper end within seconds.
        deadline = time.monotonic() + 8
        while any(_running(p) for p in family) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = [p for p in family if _running(p)]
    finally:
        _end_all(batch, family)
    assert not left, f"processes still running 8 s after the batch was killed: {left}"
    assert set(workers) <= set(family)
    kept = _rows(out)
    assert len(kept) >= len(written) >= 1 and kept[: len(written)] == written
    assert all(row["status"] in (*FINISHED, "failed") for row in kept)
    # The workers ended by SIGTERM, not SIGKILL: their scratch folders are gone.
    assert not list(scratch.glob("sonorisk-batch-*")), list(scratch.iterdir())


def test_the_portable_parent_watch_ends_an_orphan(tmp_path: Path):
    """Where prctl(PR_SET_PDEATHSIG) is missing (not Linux), a worker's thread
    sees its parent's pid change: here alone, in a child of a killed process."""
    child = (
        "import os, threading, time\n"
        "from sonorisk.serving.batch import _watch_parent\n"
        "threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()\n"
        "print('ready', flush=True)\n"
        "time.sleep(120)\n"
    )
    parent = (
        "import subprocess, sys\n"
        f"p = subprocess.Popen([sys.executable, '-c', {child!r}])\n"
        "print(p.pid, flush=True)\n"
        "p.wait()\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", parent], stdout=subprocess.PIPE, text=True
    ) as proc:
        lines = {proc.stdout.readline().strip() for _ in range(2)}
        (orphan,) = (int(line) for line in lines if line.isdigit())
        assert "ready" in lines
        proc.kill()
        proc.wait()
        try:
            _wait_for(lambda: not _running(orphan), 5, "the orphan to end")
        finally:
            if _running(orphan):
                os.kill(orphan, signal.SIGKILL)


def test_a_file_past_the_timeout_gets_a_timeout_row_and_the_batch_goes_on(
    tmp_path: Path, long_and_short, bundle: Path, monkeypatch
):
    from sonorisk.models.resolve import resolve_models

    long, short = long_and_short
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))  # the workers' scratch folders go here
    settings = BatchSettings(models=resolve_models(str(bundle)), file_timeout_s=10)
    out = tmp_path / "r.csv"
    started = time.monotonic()
    summary = run_batch([str(long.parent)], settings, out, workers=1, progress=False)
    assert time.monotonic() - started < 150  # not the minutes the long video needs
    assert (summary.total, summary.failed) == (2, 1)
    rows = {Path(r["path"]).name: r for r in _rows(out)}
    slow, quick = rows["a_long.avi"], rows["b_short.avi"]
    assert slow["status"] == "failed" and slow["error_type"] == "timeout"
    assert "per-file timeout of 10 s" in slow["error"] and "file_timeout_s" in slow["error"]
    assert 10 <= float(slow["wall_s"]) < 30
    assert _bundle_columns(slow) == ("batch-test", "1.0.0", True)
    assert slow["size_bytes"] == str(long.stat().st_size)
    # The stuck worker was stopped and replaced: another process scored the next file.
    assert quick["status"] in FINISHED, quick
    assert quick["worker"] != slow["worker"]
    assert not _running(int(slow["worker"].rsplit(":", 1)[1]))
    assert [p.name for p in (tmp_path / "r.json").iterdir()] == ["b_short.json"]
    assert not list(scratch.glob("sonorisk-batch-*"))  # the stopped worker cleaned up


def test_a_worker_that_dies_gets_a_failed_row_and_is_replaced(
    tmp_path: Path, long_and_short, bundle: Path
):
    long, short = long_and_short
    out = tmp_path / "r.csv"
    log = tmp_path / "log"
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    batch = _batch_process(
        log,
        str(long.parent),
        "--models",
        str(bundle),
        "--out",
        str(out),
        "--workers",
        "1",
        tmpdir=scratch,
    )
    try:

        def scoring_the_long_video() -> list[int]:
            return [p for p in _descendants(batch.pid) if _has_open(p, long)]

        (worker,) = _wait_for(scoring_the_long_video, 180, "a worker reading a_long.avi")
        os.kill(worker, signal.SIGKILL)  # as the kernel's OOM killer would
        batch.wait(180)
    finally:
        _end_all(batch, [])
    err = log.read_text()
    assert batch.returncode == 1, err
    rows = {Path(r["path"]).name: r for r in _rows(out)}
    dead = rows["a_long.avi"]
    assert dead["status"] == "failed" and dead["error_type"] == "crash"
    assert "died while scoring it (killed by SIGKILL" in dead["error"]
    assert dead["worker"].endswith(f":{worker}")
    assert _bundle_columns(dead) == ("batch-test", "1.0.0", True)
    assert rows["b_short.avi"]["status"] in FINISHED
    assert "a_long.avi: crash: the worker process died" in err
    # The killed worker could not remove its scratch folder; the batch did.
    assert not list(scratch.glob("sonorisk-batch-*")), list(scratch.iterdir())


def test_every_failed_row_names_the_bundle(tmp_path: Path, bundle: Path, make_size_change, capsys):
    """Rows of files never read (a FIFO, a dangling link) and of files that fail
    to decode carry the model columns, as scored rows do."""
    folder = tmp_path / "archive"
    folder.mkdir()
    os.mkfifo(folder / "pipe.avi")
    (folder / "gone.avi").symlink_to(tmp_path / "nowhere.avi")
    (folder / "notes.avi").write_text("not a video")
    make_size_change(folder / "two_sizes.ts")
    out = tmp_path / "r.csv"
    assert (
        main(
            [
                "batch",
                str(folder),
                "--models",
                str(bundle),
                "--out",
                str(out),
                "--workers",
                "1",
                "--no-progress",
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    rows = {Path(r["path"]).name: r for r in _rows(out)}
    assert set(rows) == {"pipe.avi", "nowhere.avi", "notes.avi", "two_sizes.ts"}
    for name, row in rows.items():
        assert row["status"] == "failed", row
        assert _bundle_columns(row) == ("batch-test", "1.0.0", True), name
    assert "FIFO" in rows["pipe.avi"]["error"] and "not a regular file" in rows["pipe.avi"]["error"]
    # The scorer refuses a frame-size change; the error says where, the row and
    # the message name the file.
    sizes = rows["two_sizes.ts"]["error"]
    assert "frame size changed from 160x120 to 128x96" in sizes, sizes
    assert re.search(
        rf"{re.escape(str(folder / 'two_sizes.ts'))}: InputError: frame \d+: "
        "frame size changed",
        err,
    ), err


def test_an_unexpected_error_does_not_show_the_scratch_folder(tmp_path: Path, sweeps, monkeypatch):
    """A worker scores into a scratch folder of its own; an error about it names
    the file the user gave, and the folder only as <scratch>."""
    import sonorisk.pipeline.score_file as score_file_module
    import sonorisk.serving.batch as batch

    seen = []

    def failing(path, models, config, out_dir, **kwargs):
        seen.append(str(out_dir))
        raise OSError(28, "No space left on device", f"{out_dir}/v.json")

    monkeypatch.setattr(batch, "_models", lambda settings: None)
    monkeypatch.setattr(score_file_module, "score_file", failing)
    row = batch.score_one(str(sweeps["benign"]), BatchSettings())["row"]
    assert row["status"] == "failed" and row["error_type"] == "OSError"
    assert "<scratch>/v.json" in row["error"] and seen[0] not in row["error"]
    assert not Path(seen[0]).exists()  # and the scratch folder is gone


def test_a_negative_file_timeout_is_refused(tmp_path: Path, sweeps):
    from sonorisk.errors import ConfigError

    with pytest.raises(ConfigError, match="file_timeout_s.*>= 0"):
        run_batch([str(sweeps["benign"])], BatchSettings(file_timeout_s=-5), tmp_path / "r.csv")


def test_a_symlink_loop_in_the_folder_is_listed_not_fatal(tmp_path: Path):
    from sonorisk.serving.batch import expand_inputs

    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "loop_a.avi").symlink_to(folder / "loop_b.avi")
    (folder / "loop_b.avi").symlink_to(folder / "loop_a.avi")
    (folder / "real.avi").write_bytes(b"RIFF")
    listed = expand_inputs([str(folder)])
    assert sorted(p.name for p in listed) == ["loop_a.avi", "loop_b.avi", "real.avi"]


def test_an_out_csv_that_is_not_a_results_table_is_refused_untouched(tmp_path: Path):
    from sonorisk.errors import InputError
    from sonorisk.serving.batch import read_rows

    junk = tmp_path / "junk.csv"
    junk.write_bytes(b"header\n" + bytes(range(256)))
    other = tmp_path / "other.csv"
    other.write_text("id,score\n1,0.5\n")
    for path in (junk, other):
        before = path.read_bytes()
        with pytest.raises(InputError, match="--out"):
            read_rows(path)
        assert path.read_bytes() == before
