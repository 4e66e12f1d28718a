#!/usr/bin/env python3
"""Rerun harness for issue 15: hostile and malformed inputs through every entry point.

What it does
------------
1. Generates hostile inputs under OUT/in/ (default OUT: a new temp folder):
   broken and lying video files (empty, text/PNG renamed, truncated AVI/MP4 at
   several points, MP4 without its index, an AVI header claiming 4,294,967,295
   frames or 1,000,000 fps or 0x0 / 100000x100000 frames, 1x1, a frame size
   change mid-stream, variable frame rate, zero frames), things that are not
   files (FIFO, socket, dangling and looping symlinks, /dev/zero, a folder
   named x.avi), hostile names (unicode, newline, the spreadsheet formula
   ``=cmd|' -C calc'!A0.avi``), same-stem inputs (c1/v.avi + c2/v.avi,
   good.avi + good.mp4) for the overwrite checks, DICOM cines without pixel
   data or claiming 300 million / 2 billion frames (when pydicom imports),
   malformed dataset folders, malformed prediction/truth tables, a YAML config
   with a Python tag.
2. Runs every input through its entry point as a subprocess with a timeout:
   ``sonorisk info``, ``score``, ``batch``, ``dataset validate``,
   ``eval report``, ``reader-study create|serve|export`` (web requests to a
   real ``reader-study serve``), and HTTP requests to one real ``sonorisk
   serve`` (bad content types, empty and oversized bodies, a lying
   Content-Length, a client that drops mid-upload, tcp:// udp:// file://
   stream URLs, ``?listen=1``, a bad rtsp_transport, limit=-1, unknown ids,
   uploads of the hostile files as jobs). ``/health`` must say "ok" after all
   of it; the service is then stopped with SIGTERM.
3. Classifies each case (one input through one entry point) and writes
   OUT/results.csv, OUT/results.json, OUT/summary.txt (also printed) and one
   log per case under OUT/logs/.

Classes
-------
clear error      non-zero exit (or HTTP 4xx, or a failed job / failed batch row)
                 with a message and no "Traceback"
graceful result  exit 0 (HTTP 2xx, a finished job, a scored batch row) and the
                 case's checks hold
traceback        "Traceback" in the output or the HTTP body, or HTTP 5xx
hang             past the per-case timeout (killed), or a job not finished in time
overwrite        two inputs ended up in one output file (or a rerun took one
                 input's result for another's)
misleading       ran to an end, but a check of the case failed: hostile input
                 accepted, a malformed folder called valid, a required warning
                 missing, a silent skip, a partial upload left behind, ...
crash            killed by a signal (e.g. SIGSEGV, the OOM killer)
memory           otherwise fine but the process peaked above --mem-limit-mb
harness error    the harness itself failed on this case (not counted against
                 sonorisk; listed so it can be fixed)

Run (from the repository root, on a shared machine):

    nice -n 10 env OMP_NUM_THREADS=1 python scripts/hostile_inputs.py --out /tmp/hostile

Options: ``--only info,score,...`` (entry points: info score batch dataset
eval serve reader-study), ``--timeout S`` (per case, default 120),
``--models NAME|DIR`` (passed to score/batch/serve; default: the bundled
default), ``--mem-limit-mb``. A whole run took 7.3-8.4 minutes on 2 busy cores
(about 280 cases); most of it is model loading in ``score`` and ``batch``.
Nothing outside OUT is written (apart from the Ray session logs of `sonorisk
serve` under /tmp/ray, which the harness also scans); the exit status is 0
whatever the findings (read summary.txt).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import random
import re
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CLEAR, GRACEFUL, TRACEBACK, HANG = "clear error", "graceful result", "traceback", "hang"
OVERWRITE, MISLEADING, CRASH, MEMORY = "overwrite", "misleading", "crash", "memory"
HARNESS = "harness error"
CLASSES = [CLEAR, GRACEFUL, TRACEBACK, HANG, OVERWRITE, MISLEADING, CRASH, MEMORY, HARNESS]
BAD = {TRACEBACK, HANG, OVERWRITE, MISLEADING, CRASH, MEMORY, HARNESS}
ENTRIES = ["info", "score", "batch", "dataset", "eval", "serve", "reader-study"]
ENTRY_NAMES = {
    "info": "info",
    "score": "score",
    "batch": "batch",
    "dataset": "dataset validate",
    "eval": "eval report",
    "serve": "serve (HTTP)",
    "reader-study": "reader-study",
}
TOKEN = "hostile-harness-token-0123456789abcdef"
FORMULA_NAME = "=cmd|' -C calc'!A0.avi"
UNICODE_NAME = "ünï—código 病灶 🎥.avi"
NEWLINE_NAME = "two\nlines.avi"
TB = "Traceback (most recent call last)"
# Runs the command as its grandchild and writes "EXIT MAXRSS_KB" to argv[1]: the peak
# RSS of a process forked straight from the (large) harness would include the
# harness's own memory (Linux keeps the high-water mark across fork and exec).
WRAPPER = r"""
import os, signal, sys
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
for s in (signal.SIGTERM, signal.SIGINT):
    signal.signal(s, lambda n, _f: os.kill(pid, n))
_, status, ru = os.wait4(pid, 0)
code = os.waitstatus_to_exitcode(status)
with open(sys.argv[1], "w") as fh:
    fh.write(f"{code} {ru.ru_maxrss}")
sys.exit(code if code >= 0 else 128 - code)
"""


# ---------------------------------------------------------------------- results
@dataclass
class Result:
    entry: str
    case: str
    input: str
    command: str
    outcome: str
    code: str = ""  # exit status, HTTP status, batch row status
    seconds: float = 0.0
    max_rss_mb: float | None = None
    reason: str = ""
    output_head: str = ""


@dataclass
class Run:
    rc: int | None  # None: killed at the timeout
    output: str
    seconds: float
    max_rss_mb: float | None
    command: str
    log: Path | None = None

    @property
    def timed_out(self) -> bool:
        return self.rc is None


def head_of(text: str, n: int = 6, width: int = 220) -> str:
    """The first lines of an output; for a traceback also its last lines."""
    lines = [ln.rstrip()[:width] for ln in text.splitlines() if ln.strip()]
    if TB in text:
        at = next(i for i, ln in enumerate(lines) if TB in ln)
        picked = lines[: min(at, 3)] + lines[at : at + 2]
        rest = lines[at + 2 :]
        if len(rest) > 3:
            picked.append("...")
        picked += rest[-3:]
        return "\n".join(picked)
    return "\n".join(lines[:n])


class Harness:
    def __init__(self, out: Path, timeout: float, models: str | None, mem_limit_mb: float):
        self.out = out
        self.timeout = timeout
        self.models = models
        self.mem_limit_mb = mem_limit_mb
        self.results: list[Result] = []
        self.logs = out / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.lock = threading.Lock()
        self.env = {
            **os.environ,
            "OMP_NUM_THREADS": "1",
            "RAY_ADDRESS": "",
            "PYTHONUNBUFFERED": "1",
            "NO_COLOR": "1",
        }
        exe = shutil.which("sonorisk")
        self.sonorisk = [exe] if exe else [sys.executable, "-m", "sonorisk.cli"]

    # -- running
    def run(
        self, args: list[str], name: str, timeout: float | None = None, cwd: Path | None = None
    ) -> Run:
        """A subprocess in its own session; output to a log; killed (group) at the timeout."""
        timeout = timeout or self.timeout
        log = self.logs / (re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:120] + ".log")
        command = (
            " ".join(shlex.quote(a) for a in ["sonorisk", *args[len(self.sonorisk) :]])
            if args[: len(self.sonorisk)] == self.sonorisk
            else " ".join(map(shlex.quote, args))
        )
        rss_file = log.with_suffix(".rss")
        rss_file.unlink(missing_ok=True)
        started = time.monotonic()
        with log.open("wb") as fh:
            fh.write(f"$ {command}\n".encode())
            fh.flush()
            proc = subprocess.Popen(
                [sys.executable, "-c", WRAPPER, str(rss_file), *args],
                stdout=fh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=cwd or self.out,
                env=self.env,
                start_new_session=True,
            )
            rc = None
            while True:
                pid, status, _ = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    rc = os.waitstatus_to_exitcode(status)
                    break
                if time.monotonic() - started > timeout:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    os.wait4(proc.pid, 0)
                    rc = None
                    break
                time.sleep(0.05)
            proc.returncode = -1  # reaped above; keep Popen from waiting again
            with contextlib.suppress(ProcessLookupError):  # workers left behind
                os.killpg(proc.pid, signal.SIGKILL)
        seconds = time.monotonic() - started
        output = log.read_text(errors="replace").split("\n", 1)[-1]
        rss = None
        if rc is not None and rss_file.is_file():
            code, kb = rss_file.read_text().split()
            rc, rss = int(code), int(kb) / 1024
            rss_file.unlink()
        elif rc is not None and rc == 127:
            output += "\n(harness: the command could not be started)"
        return Run(rc, output, seconds, rss, command, log)

    def sonorisk_run(self, args: list[str], name: str, **kw) -> Run:
        return self.run([*self.sonorisk, *args], name, **kw)

    def record(self, r: Result) -> Result:
        with self.lock:
            self.results.append(r)
        mark = "!!" if r.outcome in BAD else "  "
        print(
            f"{mark} {r.entry:<13} {r.case:<34} {r.outcome:<16} {r.code:<8} {r.seconds:6.1f}s"
            + (f"  {r.reason[:90]}" if r.reason and r.outcome in BAD else ""),
            flush=True,
        )
        return r

    def classify(
        self,
        run: Run,
        expect: str = "any",
        must: tuple[str, ...] = (),
        must_not: tuple[str, ...] = (),
    ) -> tuple[str, str]:
        """(outcome, reason) of a CLI run before case-specific checks."""
        if run.timed_out:
            return HANG, f"no exit within {run.seconds:.0f} s (killed)"
        if run.rc < 0:
            return CRASH, f"killed by signal {-run.rc}"
        if TB in run.output:
            last = [ln for ln in run.output.splitlines() if ln.strip()]
            return TRACEBACK, last[-1][:200] if last else ""
        if run.rc == 0:
            outcome, reason = GRACEFUL, ""
            if expect == "error":
                return MISLEADING, "exit 0 on an input that should be refused"
        else:
            if not run.output.strip():
                return MISLEADING, f"exit {run.rc} with no message"
            outcome, reason = CLEAR, ""
            if expect == "ok":
                return MISLEADING, f"exit {run.rc} on an input that should work"
        low = run.output.lower()
        for word in must:
            if word.lower() not in low:
                return MISLEADING, f"output does not say {word!r}"
        for word in must_not:
            if word.lower() in low:
                return MISLEADING, f"output says {word!r}"
        if run.max_rss_mb and run.max_rss_mb > self.mem_limit_mb:
            return MEMORY, f"peak RSS {run.max_rss_mb:.0f} MB"
        return outcome, reason

    def cli_case(
        self,
        entry: str,
        case: str,
        input_desc: str,
        args: list[str],
        expect: str = "any",
        must: tuple[str, ...] = (),
        must_not: tuple[str, ...] = (),
        check: Callable[[Run], tuple[str, str] | None] | None = None,
        timeout: float | None = None,
    ) -> Result:
        try:
            run = self.sonorisk_run(args, f"{entry}-{case}", timeout=timeout)
            outcome, reason = self.classify(run, expect, must, must_not)
            if check is not None and outcome in (GRACEFUL, CLEAR, MEMORY):
                try:
                    found = check(run)
                except Exception as exc:  # noqa: BLE001
                    found = (HARNESS, f"check failed: {type(exc).__name__}: {exc}")
                if found:
                    outcome, reason = found
            return self.record(
                Result(
                    entry,
                    case,
                    input_desc,
                    run.command,
                    outcome,
                    "timeout" if run.timed_out else str(run.rc),
                    round(run.seconds, 1),
                    round(run.max_rss_mb, 0) if run.max_rss_mb else None,
                    reason,
                    head_of(run.output),
                )
            )
        except Exception as exc:  # noqa: BLE001
            return self.record(
                Result(
                    entry,
                    case,
                    input_desc,
                    " ".join(args),
                    HARNESS,
                    reason=f"{type(exc).__name__}: {exc}",
                )
            )


# ---------------------------------------------------------------- input makers
def moving_frames(n: int, width: int = 160, height: int = 120, seed: int = 0) -> list:
    try:
        from tests.io.conftest import moving_frames as mf  # the test suite's helper

        return mf(n, width, height, seed)
    except Exception:  # noqa: BLE001
        import numpy as np

        rng = np.random.default_rng(seed)
        base = rng.integers(20, 90, (height, width, 3), dtype=np.uint8)
        out = []
        for i in range(n):
            img = base.copy()
            cx = int(15 + (width - 30) * i / max(n - 1, 1))
            img[height // 3 : 2 * height // 3, max(0, cx - 8) : cx + 8] = 210
            out.append(img)
        return out


def write_video(path: Path, frames: object, fps: float = 25.0, codec: str = "mjpeg") -> Path:
    from sonorisk.io.writer import write_video as wv

    path.parent.mkdir(parents=True, exist_ok=True)
    wv(path, frames, fps, codec)
    return path


def mp4_boxes(data: bytes) -> dict[bytes, tuple[int, int]]:
    boxes, offset = {}, 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        if size < 8:
            break
        boxes[kind] = (offset, size)
        offset += size
    return boxes


def make_videos(vid: Path, work: Path) -> dict[str, Path]:
    """The hostile video files (all in ``vid``, which batch scores as one folder)."""
    import av
    import cv2
    import numpy as np

    vid.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    f: dict[str, Path] = {}
    f["good.avi"] = write_video(vid / "good.avi", moving_frames(24), 25.0, "mjpeg")
    f["good.mp4"] = write_video(vid / "good.mp4", moving_frames(24, seed=1), 25.0, "h264")
    # byte-level damage to an MJPEG AVI whose frames have similar sizes
    rng = np.random.default_rng(1)
    noisy = write_video(
        work / "noisy.avi",
        (rng.integers(0, 255, (96, 128, 3), dtype=np.uint8) for _ in range(40)),
        25.0,
        "mjpeg",
    )
    data = noisy.read_bytes()
    for pct in (5, 35, 60, 90):
        p = vid / f"cut_avi_{pct}pct.avi"
        p.write_bytes(data[: int(len(data) * pct / 100)])
        f[p.name] = p
    damaged = bytearray(data)
    mid = len(damaged) // 2
    damaged[mid : mid + 3000] = rng.integers(0, 256, 3000, np.uint8).tobytes()
    f["corrupt_middle.avi"] = vid / "corrupt_middle.avi"
    f["corrupt_middle.avi"].write_bytes(bytes(damaged))
    # MP4: cut in half, cut before its index, faststart cut into the frames
    mp4 = write_video(work / "src.mp4", moving_frames(30, seed=2), 25.0, "h264").read_bytes()
    (vid / "cut_mp4_half.mp4").write_bytes(mp4[: len(mp4) // 2])
    f["cut_mp4_half.mp4"] = vid / "cut_mp4_half.mp4"
    moov_at = mp4_boxes(mp4)[b"moov"][0]
    (vid / "mp4_no_moov.mp4").write_bytes(mp4[:moov_at])
    f["mp4_no_moov.mp4"] = vid / "mp4_no_moov.mp4"
    fast = work / "faststart.mp4"
    subprocess.run(
        [
            "ffmpeg",
            "-y",
            "-loglevel",
            "error",
            "-i",
            str(work / "src.mp4"),
            "-c",
            "copy",
            "-movflags",
            "+faststart",
            str(fast),
        ],
        check=True,
    )
    fdata = fast.read_bytes()
    mdat_at = mp4_boxes(fdata)[b"mdat"][0]
    (vid / "mp4_faststart_cut.mp4").write_bytes(fdata[: mdat_at + 500])
    f["mp4_faststart_cut.mp4"] = vid / "mp4_faststart_cut.mp4"
    # header lies (AVI): frame count, frame rate, dimensions
    five = write_video(work / "five.avi", moving_frames(5), 25.0, "mjpeg").read_bytes()
    d = bytearray(five)
    struct.pack_into("<I", d, d.index(b"avih") + 24, 0xFFFFFFFF)  # dwTotalFrames
    struct.pack_into("<I", d, d.index(b"strh") + 40, 0xFFFFFFFF)  # stream dwLength
    (vid / "claims_4g_frames.avi").write_bytes(bytes(d))
    f["claims_4g_frames.avi"] = vid / "claims_4g_frames.avi"
    ten = write_video(work / "ten.avi", moving_frames(12), 25.0, "mjpeg").read_bytes()
    d = bytearray(ten)
    struct.pack_into("<II", d, d.index(b"strh") + 28, 1, 1_000_000)  # dwScale, dwRate
    (vid / "fps_1e6.avi").write_bytes(bytes(d))
    f["fps_1e6.avi"] = vid / "fps_1e6.avi"
    for name, (w, h) in {"zero_dims.avi": (0, 0), "huge_dims.avi": (100000, 100000)}.items():
        d = bytearray(five)
        struct.pack_into("<ii", d, d.index(b"avih") + 40, w, h)
        struct.pack_into("<ii", d, d.index(b"strf") + 12, w, h)
        (vid / name).write_bytes(bytes(d))
        f[name] = vid / name
    # 1x1 video
    one = vid / "one_by_one.avi"
    try:
        write_video(
            one, (np.full((1, 1, 3), 100 + i, np.uint8) for i in range(12)), 25.0, "rawvideo"
        )
    except Exception:  # noqa: BLE001
        subprocess.run(
            [
                "ffmpeg",
                "-y",
                "-loglevel",
                "error",
                "-f",
                "lavfi",
                "-i",
                "testsrc=size=1x1:rate=25",
                "-frames:v",
                "12",
                "-c:v",
                "rawvideo",
                "-pix_fmt",
                "bgr24",
                str(one),
            ],
            check=True,
        )
    f["one_by_one.avi"] = one
    # frame size changes mid-stream (MPEG-TS: two files joined), after 20 frames
    a = write_video(work / "a.ts", moving_frames(20), 25.0, "mpeg2video")
    b = write_video(work / "b.ts", moving_frames(20, 128, 96, seed=1), 25.0, "mpeg2video")
    (vid / "size_change.ts").write_bytes(a.read_bytes() + b.read_bytes())
    f["size_change.ts"] = vid / "size_change.ts"
    # a container with no frames at all
    zf = vid / "zero_frames.avi"
    c = av.open(str(zf), "w")
    s = c.add_stream("mjpeg", rate=25)
    s.width, s.height, s.pix_fmt = 64, 48, "yuvj420p"
    c.start_encoding()
    c.close()
    f["zero_frames.avi"] = zf
    # a clean variable-frame-rate MP4 (irregular timestamps, nothing missing)
    vfr = vid / "vfr.mp4"
    c = av.open(str(vfr), "w")
    s = c.add_stream("libx264", rate=30)
    s.width, s.height, s.pix_fmt = 160, 120, "yuv420p"
    from fractions import Fraction

    s.codec_context.time_base = Fraction(1, 1000)
    s.time_base = Fraction(1, 1000)
    pts = 0
    for i, img in enumerate(moving_frames(30, seed=3)):
        frame = av.VideoFrame.from_ndarray(img, format="bgr24").reformat(format="yuv420p")
        frame.pts = pts
        frame.time_base = Fraction(1, 1000)
        pts += 20 if i % 3 else 90  # 50 fps bursts and 11 fps gaps
        for packet in s.encode(frame):
            c.mux(packet)
    for packet in s.encode():
        c.mux(packet)
    c.close()
    f["vfr.mp4"] = vfr
    # images and text renamed
    g16 = (np.arange(48 * 64).reshape(48, 64) * 20).astype(np.uint16)
    cv2.imwrite(str(work / "g16.png"), g16)
    shutil.copy(work / "g16.png", vid / "png16bit.avi")
    cv2.imwrite(str(work / "rgba.png"), np.full((48, 64, 4), 200, np.uint8))
    shutil.copy(work / "rgba.png", vid / "png_rgba.mp4")
    from PIL import Image

    Image.fromarray(np.arange(48 * 64).reshape(48, 64).astype(np.uint8) % 16).convert("P").save(
        work / "pal.png"
    )
    shutil.copy(work / "pal.png", vid / "png_palette.avi")
    for name in ("png16bit.avi", "png_rgba.mp4", "png_palette.avi"):
        f[name] = vid / name
    (vid / "empty.avi").write_bytes(b"")
    (vid / "text.avi").write_text("patient notes, not a video\n" * 40)
    (vid / "junk.mp4").write_bytes(
        np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes()
    )
    shutil.copy(f["good.mp4"], vid / "mp4_named.avi")
    for name in ("empty.avi", "text.avi", "junk.mp4", "mp4_named.avi"):
        f[name] = vid / name
    # hostile names (real videos)
    for name in (UNICODE_NAME, FORMULA_NAME):
        shutil.copy(f["good.avi"], vid / name)
        f[name] = vid / name
    shutil.copy(f["zero_frames.avi"], vid / NEWLINE_NAME)
    f[NEWLINE_NAME] = vid / NEWLINE_NAME
    # not regular files
    os.mkfifo(vid / "fifo.avi")
    f["fifo.avi"] = vid / "fifo.avi"
    os.symlink(vid / "nowhere" / "gone.avi", vid / "dangling.avi")
    f["dangling.avi"] = vid / "dangling.avi"
    loop = work / "loop"  # its own folder: batch on a folder holding it is a case of its own
    loop.mkdir()
    os.symlink(loop / "loop_b.avi", loop / "loop_a.avi")
    os.symlink(loop / "loop_a.avi", loop / "loop_b.avi")
    f["loop_a.avi"] = loop / "loop_a.avi"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(vid / "socket.avi"))
    sock.close()  # the inode stays: a socket file nobody listens on
    f["socket.avi"] = vid / "socket.avi"
    (vid / "dir.avi").mkdir()
    f["dir.avi"] = vid / "dir.avi"
    # same stems in different folders
    for sub, seed in (("c1", 4), ("c2", 5)):
        f[f"{sub}/v.avi"] = write_video(
            work / "stems" / sub / "v.avi", moving_frames(24, seed=seed)
        )
    pair = work / "pair"
    pair.mkdir()
    shutil.copy(f["good.avi"], pair / "good.avi")
    shutil.copy(f["good.mp4"], pair / "good.mp4")
    # 8000x8000 (two frames), kept out of the batch folder: scoring it takes gigabytes
    big = work / "big"
    big.mkdir()
    f["big_8000.avi"] = write_video(
        big / "big_8000.avi",
        (np.full((8000, 8000, 3), 60 + 40 * i, np.uint8) for i in range(2)),
        25.0,
        "mjpeg",
    )
    return f


def make_dicoms(vid: Path) -> tuple[dict[str, Path], str | None]:
    """DICOM cines that lie; ({} , why) when pydicom is missing."""
    try:
        import numpy as np
        from pydicom.dataset import Dataset, FileMetaDataset
        from pydicom.uid import (
            ExplicitVRLittleEndian,
            UltrasoundMultiFrameImageStorage,
            generate_uid,
        )
    except ImportError as exc:
        return {}, f"pydicom not importable ({exc}): DICOM cases skipped"

    def ds(n_frames: int, pixels: bytes | None, rows: int = 24, cols: int = 32) -> Dataset:
        d = Dataset()
        d.file_meta = FileMetaDataset()
        d.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        d.file_meta.MediaStorageSOPClassUID = UltrasoundMultiFrameImageStorage
        d.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        d.SOPClassUID = UltrasoundMultiFrameImageStorage
        d.SOPInstanceUID = d.file_meta.MediaStorageSOPInstanceUID
        d.Modality = "US"
        d.Rows, d.Columns = rows, cols
        d.NumberOfFrames = n_frames
        d.SamplesPerPixel = 3
        d.PhotometricInterpretation = "RGB"
        d.PlanarConfiguration = 0
        d.BitsAllocated = d.BitsStored = 8
        d.HighBit = 7
        d.PixelRepresentation = 0
        d.FrameTime = 40.0
        if pixels is not None:
            d.PixelData = pixels
        return d

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (6, 24, 32, 3), dtype=np.uint8).tobytes()
    out: dict[str, Path] = {}
    cases = {
        "dcm_no_pixels.dcm": ds(6, None),
        "dcm_300m_frames.dcm": ds(300_000_000, frames),
        "dcm_2g_frames.dcm": ds(2_000_000_000, frames),
        "dcm_zero_rows.dcm": ds(6, frames, rows=0),
    }
    for name, d in cases.items():
        d.save_as(vid / name, enforce_file_format=True)
        out[name] = vid / name
    good = vid / "dcm_good.dcm"
    ds(6, frames).save_as(good, enforce_file_format=True)
    cut = vid / "dcm_header_cut.dcm"
    cut.write_bytes(good.read_bytes()[:200])
    out["dcm_header_cut.dcm"] = cut
    good.unlink()
    return out, None


# ----------------------------------------------------------------- checks
def score_docs(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


def boxes_inside(doc: dict) -> str | None:
    """A reason when a box of ``doc`` lies outside the reported frame size."""
    w, h = doc.get("video", {}).get("width"), doc.get("video", {}).get("height")
    if not w or not h:
        return None
    for lesion in doc.get("lesions") or []:
        for box in lesion.get("boxes") or []:
            x1, y1, x2, y2 = box["box"]
            if x1 < -1 or y1 < -1 or x2 > w + 1 or y2 > h + 1:
                return (
                    f"box {box['box']} at frame {box.get('frame')} outside the reported "
                    f"{w}x{h} frame"
                )
    return None


def batch_json(csv_path: Path, value: str | None) -> Path | None:
    """The JSON file a batch row names (relative to OUT stem + .json/ unless absolute)."""
    if not value:
        return None
    p = Path(value)
    return p if p.is_absolute() else csv_path.parent / (csv_path.stem + ".json") / p


def unsafe_cells(path: Path) -> list[str]:
    """Cells of a CSV that a spreadsheet would run as a formula (OWASP CSV injection)."""
    bad = []
    with path.open(newline="", errors="replace") as fh:
        for row in csv.reader(fh):
            for cell in row:
                if cell[:1] in ("=", "+", "-", "@", "\t", "\r"):
                    try:
                        float(cell)  # -0.5 is a number, not a formula
                    except ValueError:
                        bad.append(cell[:60])
    return bad


# ---------------------------------------------------------------------- CLI sets
def info_cases(h: Harness, files: dict[str, Path]) -> None:
    """``sonorisk info`` on every file input (fast: no models)."""
    rel = {k: str(v.relative_to(h.out)) for k, v in files.items()}
    # An image under a video's name is read as the still it is (sonorisk.io.still).
    error_inputs = {
        "empty.avi",
        "text.avi",
        "junk.mp4",
        "zero_dims.avi",
        "huge_dims.avi",
        "zero_frames.avi",
        "fifo.avi",
        "dangling.avi",
        "loop_a.avi",
        "socket.avi",
        "dir.avi",
        "mp4_no_moov.mp4",
        NEWLINE_NAME,
        "dcm_no_pixels.dcm",
        "dcm_zero_rows.dcm",
        "dcm_header_cut.dcm",
    }
    words = {
        "fps_1e6.avi": ("implausible",),
        "socket.avi": ("socket",),
        "dir.avi": ("directory",),
        "size_change.ts": ("frame size changed",),
    }

    def vfr_check(run: Run) -> tuple[str, str] | None:
        m = re.search(r"(\d+) dropped", run.output)
        if m and int(m.group(1)) > 0:
            return MISLEADING, f"clean VFR file reported with {m.group(1)} dropped frames"
        return None

    def dicom_claim_check(run: Run) -> tuple[str, str] | None:
        if run.max_rss_mb and run.max_rss_mb > 1500:
            return MEMORY, f"peak RSS {run.max_rss_mb:.0f} MB for a tiny DICOM"
        if "could not open within" in run.output:
            return MISLEADING, "reported as a timeout, not as a false frame count"
        return None

    for name in files:
        if name in ("c1/v.avi", "c2/v.avi"):
            continue
        args = ["info", rel[name]]
        check = None
        if name == "big_8000.avi":
            args += ["--max-frames", "2"]
        if name == "vfr.mp4":
            check = vfr_check
        if name.startswith("dcm_") and "frames" in name:
            check = dicom_claim_check
        h.cli_case(
            "info",
            name.replace("\n", "\\n"),
            rel[name].replace("\n", "\\n"),
            args,
            expect="error" if name in error_inputs else "any",
            must=words.get(name, ()),
            check=check,
            timeout=90,
        )
    h.cli_case(
        "info",
        "/dev/zero",
        "/dev/zero",
        ["info", "/dev/zero"],
        expect="error",
        must=("character device",),
        must_not=("empty (0 bytes)",),
        timeout=90,
    )
    h.cli_case(
        "info", "/dev/urandom", "/dev/urandom", ["info", "/dev/urandom"], expect="error", timeout=90
    )
    h.cli_case(
        "info",
        "missing file",
        "in/videos/nope.avi",
        ["info", "in/videos/nope.avi"],
        expect="error",
        timeout=60,
    )
    h.cli_case(
        "info",
        "size_change --crop",
        rel["size_change.ts"],
        ["info", rel["size_change.ts"], "--crop"],
        timeout=90,
    )
    h.cli_case(
        "info",
        "tcp:// URL",
        "tcp://127.0.0.1:9/x",
        ["info", "tcp://127.0.0.1:9/x", "--timeout", "3"],
        timeout=60,
    )
    h.cli_case(
        "info",
        "rtsp closed port",
        "rtsp://127.0.0.1:9/x",
        ["info", "rtsp://127.0.0.1:9/x", "--timeout", "3"],
        expect="error",
        timeout=60,
    )
    h.cli_case(
        "info",
        "--max-frames -5",
        rel["good.avi"],
        ["info", rel["good.avi"], "--max-frames", "-5"],
        expect="error",
        timeout=60,
    )
    h.cli_case(
        "info",
        "--timeout nan",
        rel["good.avi"],
        ["info", rel["good.avi"], "--timeout", "nan"],
        expect="error",
        timeout=60,
    )


def score_cases(h: Harness, files: dict[str, Path]) -> None:
    rel = {k: str(v.relative_to(h.out)) for k, v in files.items()}
    model = ["--models", h.models] if h.models else []
    outs = h.out / "score-out"

    def doc_check(folder: Path, n: int | None = None) -> Callable[[Run], tuple[str, str] | None]:
        def check(run: Run) -> tuple[str, str] | None:
            if run.rc != 0:
                return None
            docs = score_docs(folder)
            if n is not None and len(docs) < n:
                return OVERWRITE, f"{n} inputs, {len(docs)} JSON documents in {folder.name}/"
            sources = [d.get("video", {}).get("source") for d in docs]
            if n is not None and len(set(sources)) < n:
                return OVERWRITE, f"sources {sources}"
            for d in docs:
                bad = boxes_inside(d)
                if bad:
                    return MISLEADING, bad
            return None

        return check

    single = [
        "empty.avi",
        "text.avi",
        "junk.mp4",
        "cut_avi_35pct.avi",
        "mp4_no_moov.mp4",
        "cut_mp4_half.mp4",
        "mp4_faststart_cut.mp4",
        "claims_4g_frames.avi",
        "fps_1e6.avi",
        "zero_dims.avi",
        "huge_dims.avi",
        "one_by_one.avi",
        "size_change.ts",
        "zero_frames.avi",
        "png_palette.avi",
        "fifo.avi",
        "dangling.avi",
        "loop_a.avi",
        "dir.avi",
        "dcm_300m_frames.dcm",
        "dcm_no_pixels.dcm",
        "big_8000.avi",
        UNICODE_NAME,
    ]
    must_err = {
        "empty.avi",
        "text.avi",
        "junk.mp4",
        "mp4_no_moov.mp4",
        "cut_mp4_half.mp4",
        "mp4_faststart_cut.mp4",
        "zero_dims.avi",
        "huge_dims.avi",
        "zero_frames.avi",
        "fifo.avi",
        "dangling.avi",
        "loop_a.avi",
        "dir.avi",
        "dcm_no_pixels.dcm",
        "big_8000.avi",
    }
    for name in single:
        if name not in files:
            continue
        folder = outs / re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
        h.cli_case(
            "score",
            name,
            rel[name],
            ["score", rel[name], "--out", str(folder.relative_to(h.out)), "--no-progress", *model],
            expect="error" if name in must_err else "any",
            check=doc_check(folder),
            timeout=180,
        )
    h.cli_case(
        "score",
        "/dev/zero",
        "/dev/zero",
        ["score", "/dev/zero", "--out", "score-out/devzero", "--no-progress", *model],
        expect="error",
        must_not=("empty (0 bytes)",),
    )
    h.cli_case(
        "score",
        "missing file",
        "in/videos/nope.avi",
        ["score", "in/videos/nope.avi", "--out", "score-out/missing", "--no-progress", *model],
        expect="error",
    )
    # overwrite: same stem in two folders; good.avi + good.mp4
    folder = outs / "same_stem"
    h.cli_case(
        "score",
        "c1/v.avi + c2/v.avi",
        f"{rel['c1/v.avi']} {rel['c2/v.avi']}",
        [
            "score",
            rel["c1/v.avi"],
            rel["c2/v.avi"],
            "--out",
            str(folder.relative_to(h.out)),
            "--no-progress",
            *model,
        ],
        expect="ok",
        check=doc_check(folder, 2),
        timeout=240,
    )
    folder = outs / "same_stem_ext"
    h.cli_case(
        "score",
        "good.avi + good.mp4",
        "in/work/pair/good.avi in/work/pair/good.mp4",
        [
            "score",
            "in/work/pair/good.avi",
            "in/work/pair/good.mp4",
            "--out",
            str(folder.relative_to(h.out)),
            "--no-progress",
            *model,
        ],
        expect="ok",
        check=doc_check(folder, 2),
        timeout=240,
    )
    # an output folder that is a file; a config with a Python tag; bad models
    h.cli_case(
        "score",
        "--out is a file",
        f"{rel['good.avi']} --out in/a_file.txt",
        ["score", rel["good.avi"], "--out", "in/a_file.txt", "--no-progress", *model],
        expect="error",
    )
    marker = h.out / "in" / "PWNED"
    evil = h.out / "in" / "evil.yaml"
    evil.write_text(f'!!python/object/apply:os.system ["touch {marker}"]\n')

    def no_marker(run: Run) -> tuple[str, str] | None:
        return (MISLEADING, "the YAML tag ran a command") if marker.exists() else None

    h.cli_case(
        "score",
        "--config python tag",
        "in/evil.yaml",
        [
            "score",
            rel["good.avi"],
            "--config",
            "in/evil.yaml",
            "--out",
            "score-out/evil",
            "--no-progress",
            *model,
        ],
        expect="error",
        check=no_marker,
    )
    (h.out / "in" / "list.yaml").write_text("- 1\n- 2\n")
    h.cli_case(
        "score",
        "--config a YAML list",
        "in/list.yaml",
        [
            "score",
            rel["good.avi"],
            "--config",
            "in/list.yaml",
            "--out",
            "score-out/listcfg",
            "--no-progress",
            *model,
        ],
        expect="error",
    )
    h.cli_case(
        "score",
        "--models nonexistent",
        "--models in/no_models",
        [
            "score",
            rel["good.avi"],
            "--models",
            "in/no_models",
            "--out",
            "score-out/nomodels",
            "--no-progress",
        ],
        expect="error",
    )
    (h.out / "in" / "fake_models").mkdir(exist_ok=True)
    (h.out / "in" / "fake_models" / "detector.pt").write_bytes(b"\x80\x04junk pickle")
    (h.out / "in" / "fake_models" / "classifier.pt").write_text("not a model")
    h.cli_case(
        "score",
        "--models junk .pt files",
        "in/fake_models",
        [
            "score",
            rel["good.avi"],
            "--models",
            "in/fake_models",
            "--out",
            "score-out/fakemodels",
            "--no-progress",
        ],
        expect="error",
    )


def folder_outcome(h: Harness, run: Run) -> tuple[str, str]:
    """A batch over a folder of mostly bad files exits 1 because rows failed: with its
    summary printed that is the expected result, not an error of the run."""
    outcome, reason = h.classify(run)
    if outcome == CLEAR and run.rc == 1 and re.search(r'"failed": [1-9]', run.output):
        return GRACEFUL, "exit 1: failed rows recorded (expected for this folder)"
    return outcome, reason


def batch_cases(h: Harness, files: dict[str, Path], vid: Path) -> None:
    model = ["--models", h.models] if h.models else []
    out = h.out / "batch-out"
    out.mkdir(exist_ok=True)
    csv_path = out / "all.csv"
    args = [
        "batch",
        str(vid.relative_to(h.out)),
        "--out",
        str(csv_path.relative_to(h.out)),
        "--no-progress",
        *model,
    ]
    # the whole hostile folder in one batch: one row per file
    run = h.sonorisk_run(args, "batch-folder", timeout=900)
    outcome, reason = folder_outcome(h, run)
    rows: list[dict[str, str]] = []
    if csv_path.is_file():
        with csv_path.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
    h.record(
        Result(
            "batch",
            "folder run (whole in/videos)",
            str(vid.relative_to(h.out)),
            run.command,
            outcome,
            "timeout" if run.timed_out else str(run.rc),
            round(run.seconds, 1),
            round(run.max_rss_mb or 0),
            reason,
            head_of(run.output),
        )
    )
    by_name: dict[str, dict[str, str]] = {}
    for row in rows:
        for key in (Path(row.get("path", "")).name, row.get("video", "")):
            by_name.setdefault(key, row)
    expected = sorted(
        p for p in os.listdir(vid) if not (vid / p).is_dir() or os.path.islink(vid / p)
    )
    expected = [
        p for p in expected if Path(p).suffix.lower() in {".avi", ".mp4", ".ts", ".dcm", ".mov"}
    ]
    if not rows:  # the folder run itself failed: that is its one case, not one per file
        expected = []
    for name in expected:
        row = by_name.get(name)
        if name == "dangling.avi" and row is None:
            row = by_name.get("gone.avi")
        shown = name.replace("\n", "\\n")
        if run.timed_out:
            o, why, code = HANG, "the folder batch was killed at its timeout", "timeout"
        elif row is None:
            is_dicom = name.endswith(".dcm")
            o = MISLEADING if not is_dicom else MISLEADING
            why, code = "no row in results.csv: silently skipped", "no row"
        else:
            code = row.get("status", "")
            err = f"{row.get('error_type', '')}: {row.get('error', '')}"
            if TB in err:
                o, why = TRACEBACK, err[:200]
            elif code == "failed":
                o, why = (CLEAR, err) if row.get("error") else (MISLEADING, "failed, no reason")
            else:
                o, why = GRACEFUL, ""
                jp = batch_json(csv_path, row.get("json"))
                if jp is not None and jp.is_file():
                    bad = boxes_inside(json.loads(jp.read_text()))
                    if bad:
                        o, why = MISLEADING, bad
        h.record(
            Result(
                "batch",
                shown,
                f"in/videos/{shown}",
                run.command + "  (row)",
                o,
                code,
                0.0,
                None,
                why if o in BAD else why[:160],
                json.dumps({k: row.get(k) for k in ("status", "error_type", "error", "json")})
                if row
                else "",
            )
        )
    # overwrite checks within the folder batch: good.avi vs good.mp4
    jsons = [by_name.get(n, {}).get("json") for n in ("good.avi", "good.mp4")]
    o, why = GRACEFUL, ""
    if None in jsons or "" in jsons:
        o, why = MISLEADING, f"missing rows or json: {jsons}"
    elif jsons[0] == jsons[1]:
        o, why = OVERWRITE, f"good.avi and good.mp4 share {jsons[0]}"
    else:
        srcs = [
            Path(json.loads(batch_json(csv_path, j).read_text())["video"]["source"]).name
            for j in jsons
        ]
        if srcs != ["good.avi", "good.mp4"]:
            o, why = OVERWRITE, f"JSON sources {srcs}"
    h.record(
        Result(
            "batch",
            "good.avi + good.mp4 (folder)",
            "in/videos/good.avi, good.mp4",
            run.command,
            o,
            "",
            0.0,
            None,
            why,
            str(jsons),
        )
    )
    # spreadsheet formula neutralised in results.csv
    o, why = GRACEFUL, ""
    if csv_path.is_file():
        bad = unsafe_cells(csv_path)
        if bad:
            o, why = MISLEADING, f"formula cells in results.csv: {bad[:3]}"
    else:
        o, why = MISLEADING, "no results.csv"
    h.record(
        Result(
            "batch",
            "formula file name in CSV",
            f"in/videos/{FORMULA_NAME}",
            run.command,
            o,
            "",
            0.0,
            None,
            why,
            "",
        )
    )
    # rerun: finished rows skipped, nothing re-attributed
    before = {r["path"]: (r["status"], r.get("json")) for r in rows}

    def rerun_check(r2: Run) -> tuple[str, str] | None:
        outcome, why = folder_outcome(h, r2)
        if outcome not in (GRACEFUL, CLEAR):
            return outcome, why
        with csv_path.open(newline="") as fh:
            latest = {r["path"]: (r["status"], r.get("json")) for r in csv.DictReader(fh)}
        changed = [p for p, v in before.items() if v[0] != "failed" and latest.get(p) != v]
        if changed:
            return OVERWRITE, f"rows changed on rerun: {changed[:3]}"
        if not re.search(r'"skipped": [1-9]', r2.output):
            return MISLEADING, "the rerun skipped no finished video"
        return (outcome, why) if outcome == GRACEFUL else None

    h.cli_case(
        "batch",
        "rerun of the folder",
        str(vid.relative_to(h.out)),
        args,
        check=rerun_check,
        timeout=600,
    )
    # same stem in two folders
    stems = h.out / "in" / "work" / "stems"
    c2 = out / "stems.csv"

    def stems_check(r: Run) -> tuple[str, str] | None:
        with c2.open(newline="") as fh:
            rs = list(csv.DictReader(fh))
        js = [x.get("json") for x in rs]
        if len(rs) != 2 or len(set(js)) != 2:
            return OVERWRITE, f"{len(rs)} rows, json {js}"
        srcs = sorted(
            Path(json.loads(batch_json(c2, j).read_text())["video"]["source"]).parent.name
            for j in js
        )
        if srcs != ["c1", "c2"]:
            return OVERWRITE, f"JSON sources' folders {srcs}"
        return None

    h.cli_case(
        "batch",
        "c1/v.avi + c2/v.avi",
        "in/work/stems",
        [
            "batch",
            str(stems.relative_to(h.out)),
            "--out",
            str(c2.relative_to(h.out)),
            "--no-progress",
            *model,
        ],
        expect="ok",
        check=stems_check,
        timeout=300,
    )
    # the pair folder alone, run twice (second run: both skipped, JSONs distinct)
    c3 = out / "pair.csv"
    pair = "in/work/pair"
    for k in (1, 2):

        def pair_check(r: Run) -> tuple[str, str] | None:
            with c3.open(newline="") as fh:
                rs = {x["path"]: x for x in csv.DictReader(fh)}
            js = [x.get("json") for x in rs.values()]
            if len(rs) != 2 or len(set(js)) != 2:
                return OVERWRITE, f"{len(rs)} rows, json {js}"
            for x in rs.values():
                src = json.loads(batch_json(c3, x["json"]).read_text())["video"]["source"]
                if Path(src).name != Path(x["path"]).name:
                    return OVERWRITE, f"{x['path']} -> JSON of {src}"
            return None

        h.cli_case(
            "batch",
            f"good.avi + good.mp4 run {k}",
            pair,
            ["batch", pair, "--out", str(c3.relative_to(h.out)), "--no-progress", *model],
            expect="ok",
            check=pair_check,
            timeout=300,
        )
    h.cli_case(
        "batch",
        "/dev/zero",
        "/dev/zero",
        ["batch", "/dev/zero", "--out", "batch-out/devzero.csv", "--no-progress", *model],
    )
    (h.out / "in" / "empty_dir").mkdir(exist_ok=True)
    h.cli_case(
        "batch",
        "folder without videos",
        "in/empty_dir",
        ["batch", "in/empty_dir", "--out", "batch-out/empty.csv", "--no-progress", *model],
        expect="error",
    )
    h.cli_case(
        "batch",
        "glob matching nothing",
        "in/videos/*.nomatch",
        ["batch", "in/videos/*.nomatch", "--out", "batch-out/glob.csv", "--no-progress", *model],
        expect="error",
    )
    junk_csv = out / "junk.csv"
    junk_csv.write_bytes(bytes(range(256)) * 8)
    h.cli_case(
        "batch",
        "existing results.csv is junk",
        "batch-out/junk.csv",
        [
            "batch",
            files["zero_frames.avi"].relative_to(h.out).as_posix(),
            "--out",
            "batch-out/junk.csv",
            "--no-progress",
            *model,
        ],
    )
    h.cli_case(
        "batch",
        "--workers -1",
        files["zero_frames.avi"].relative_to(h.out).as_posix(),
        [
            "batch",
            files["zero_frames.avi"].relative_to(h.out).as_posix(),
            "--out",
            "batch-out/w0.csv",
            "--workers",
            "-1",
            "--no-progress",
            *model,
        ],
        expect="error",
        must=("workers",),
    )
    big = files["big_8000.avi"].relative_to(h.out).as_posix()
    h.cli_case(
        "batch",
        "8000x8000 video",
        big,
        ["batch", big, "--out", "batch-out/big.csv", "--no-progress", *model],
        expect="error",
        timeout=300,
    )
    h.cli_case(
        "batch",
        "folder with a symlink loop",
        "in/work/loop",
        ["batch", "in/work/loop", "--out", "batch-out/loop.csv", "--no-progress", *model],
        expect="error",
    )
    h.cli_case(
        "batch",
        "--out under a file",
        "in/a_file.txt/x.csv",
        [
            "batch",
            files["zero_frames.avi"].relative_to(h.out).as_posix(),
            "--out",
            "in/a_file.txt/x.csv",
            "--no-progress",
            *model,
        ],
        expect="error",
    )


def dataset_cases(h: Harness) -> None:
    from sonorisk.data.synth import synthesize_phantom

    base = h.out / "in" / "dataset_base"
    synthesize_phantom(
        2, base, seed=3, size=(96, 72), frames=12, proportions={"benign": 0.5, "malignant": 0.5}
    )
    root = h.out / "in" / "datasets"
    root.mkdir(parents=True, exist_ok=True)

    def variant(name: str, mutate: Callable[[Path], None]) -> str:
        d = root / name
        shutil.copytree(base, d)
        mutate(d)
        return str(d.relative_to(h.out))

    def coco(fn: Callable[[dict], object]) -> Callable[[Path], None]:
        def m(d: Path) -> None:
            data = json.loads((d / "annotations.json").read_text())
            fn(data)  # mutates in place
            (d / "annotations.json").write_text(json.dumps(data))

        return m

    def table(fn: Callable[[list[list[str]]], None]) -> Callable[[Path], None]:
        def m(d: Path) -> None:
            with (d / "videos.csv").open(newline="") as fh:
                rows = list(csv.reader(fh))
            fn(rows)
            with (d / "videos.csv").open("w", newline="") as fh:
                csv.writer(fh).writerows(rows)

        return m

    def setcol(col: str, value: str) -> Callable[[list[list[str]]], None]:
        def f(rows: list[list[str]]) -> None:
            i = rows[0].index(col)
            rows[1][i] = value

        return f

    def ann(key: str, value: object) -> Callable[[dict], None]:
        def f(data: dict) -> None:
            data["annotations"][0][key] = value

        return f

    def img(key: str, value: object) -> Callable[[dict], None]:
        def f(data: dict) -> None:
            data["images"][0][key] = value

        return f

    def fifo_video(d: Path) -> None:
        v = sorted((d / "videos").glob("*.avi"))[0]
        v.unlink()
        os.mkfifo(v)

    def outside(d: Path) -> None:
        """Table and COCO agree on a file outside the dataset folder."""
        target = "../../../../../../../../etc/passwd"
        table(setcol("file", target))(d)
        vid0 = json.loads((d / "annotations.json").read_text())["videos"][0]["file_name"]

        def f(data: dict) -> None:
            for item in data["images"] + data["videos"]:
                if item["file_name"] == vid0:
                    item["file_name"] = target

        coco(f)(d)

    cases: list[tuple[str, Callable[[Path], None], str]] = [
        ("valid", lambda d: None, "ok"),
        ("no annotations.json", lambda d: (d / "annotations.json").unlink(), "error"),
        (
            "annotations not JSON",
            lambda d: (d / "annotations.json").write_text("{not json"),
            "error",
        ),
        (
            "annotations a string",
            lambda d: (d / "annotations.json").write_text('"a string"'),
            "error",
        ),
        ("images are strings", coco(lambda x: x.update(images=["a", "b"])), "error"),
        ("annotations are strings", coco(lambda x: x.update(annotations=["x"])), "error"),
        ("videos is a dict", coco(lambda x: x.update(videos={"a": 1})), "error"),
        ("box of NaN", coco(ann("bbox", [float("nan")] * 4)), "error"),
        ("box of true", coco(ann("bbox", [True, True, True, True])), "error"),
        ("box of strings", coco(ann("bbox", ["1", "2", "3", "4"])), "error"),
        ("box of 2 numbers", coco(ann("bbox", [1, 2])), "error"),
        ("box negative size", coco(ann("bbox", [10, 10, -5, -5])), "error"),
        ("image_id a list", coco(ann("image_id", [1])), "error"),
        ("lesion_id text", coco(ann("lesion_id", "abc")), "error"),
        ("image id a dict", coco(img("id", {"x": 1})), "error"),
        ("frame_index -1", coco(img("frame_index", -1)), "error"),
        ("width 1e308", coco(img("width", 1e308)), "error"),
        ("no categories", coco(lambda x: x.pop("categories")), "error"),
        (
            "JSON nested 100000 deep",
            lambda d: (d / "annotations.json").write_text("[" * 100000 + "]" * 100000),
            "error",
        ),
        ("n_frames text", table(setcol("n_frames", "many")), "error"),
        ("fps text", table(setcol("fps", "fast")), "error"),
        ("age text", table(setcol("age", "old")), "any"),
        ("pathology unknown", table(setcol("pathology", "=1+1")), "error"),
        ("file outside root", table(setcol("file", "../../../../../../etc/passwd")), "error"),
        ("file outside root (both)", outside, "error"),
        ("duplicate video_id", table(lambda rows: rows.append(rows[1])), "error"),
        (
            "table only video_id",
            table(lambda rows: rows.__setitem__(slice(None), [[r[0]] for r in rows])),
            "error",
        ),
        ("videos.csv empty", lambda d: (d / "videos.csv").write_bytes(b""), "error"),
        (
            "videos.csv binary",
            lambda d: (d / "videos.csv").write_bytes(bytes(range(256)) * 20),
            "error",
        ),
        ("video is a FIFO", fifo_video, "error"),
    ]
    for name, mutate, expect in cases:
        path = variant(re.sub(r"[^A-Za-z0-9]+", "_", name), mutate)
        # a FIFO is there: calling it "missing" sends the user looking for the wrong thing
        must_not = ("missing file",) if "FIFO" in name else ()
        h.cli_case(
            "dataset",
            name,
            path,
            ["dataset", "validate", path],
            expect=expect,
            must_not=must_not,
            timeout=90,
        )
    (h.out / "in" / "not_a_folder.txt").write_text("x\n")
    h.cli_case(
        "dataset",
        "path is a file",
        "in/not_a_folder.txt",
        ["dataset", "validate", "in/not_a_folder.txt"],
        expect="error",
    )
    h.cli_case(
        "dataset",
        "path missing",
        "in/no_such_dataset",
        ["dataset", "validate", "in/no_such_dataset"],
        expect="error",
    )


def eval_cases(h: Harness) -> None:
    import numpy as np

    d = h.out / "in" / "eval"
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    n = 40
    truth = rng.integers(0, 2, n)
    truth[:2] = (0, 1)
    scores = np.clip(0.35 * truth + rng.random(n) * 0.65, 0, 1)

    def write(name: str, header: str, rows: list[str]) -> str:
        (d / name).write_text(header + "\n" + "\n".join(rows) + "\n")
        return str((d / name).relative_to(h.out))

    t_ok = write("truth.csv", "id,truth", [f"c{i},{truth[i]}" for i in range(n)])
    p_ok = write("pred.csv", "id,AI", [f"c{i},{scores[i]:.4f}" for i in range(n)])
    p_out = write("pred_outside.csv", "id,AI", [f"c{i},{scores[i] * 7 - 2:.4f}" for i in range(n)])
    t_007 = write("truth_007.csv", "id,truth", [f"{i:03d},{truth[i]}" for i in range(n)])
    p_7 = write("pred_7.csv", "id,AI", [f"{i},{scores[i]:.4f}" for i in range(n)])
    one = np.zeros(n, int)
    one[5] = 1
    t_one = write("truth_one_pos.csv", "id,truth", [f"c{i},{one[i]}" for i in range(n)])
    t_none = write("truth_no_pos.csv", "id,truth", [f"c{i},0" for i in range(n)])
    p_text = write(
        "pred_text.csv", "id,AI", [f"c{i},{'high' if i == 3 else scores[i]}" for i in range(n)]
    )
    p_nan = write(
        "pred_nan.csv", "id,AI", [f"c{i},{'nan' if i == 3 else scores[i]}" for i in range(n)]
    )
    p_inf = write(
        "pred_inf.csv", "id,AI", [f"c{i},{'inf' if i == 3 else scores[i]}" for i in range(n)]
    )
    p_dup = write("pred_dup.csv", "id,AI", [f"c{i},{scores[i]}" for i in range(n)] + ["c3,0.5"])
    (d / "pred_empty.csv").write_bytes(b"")
    (d / "pred_junk.parquet").write_bytes(bytes(range(256)) * 10)
    t_nocol = write("truth_nocol.csv", "id,label", [f"c{i},{truth[i]}" for i in range(n)])
    t_maybe = write(
        "truth_maybe.csv", "id,truth", [f"c{i},{'maybe' if i == 4 else truth[i]}" for i in range(n)]
    )
    t_formula = write("truth_formula.csv", "id,truth", [f"=1+{i},{truth[i]}" for i in range(n)])
    p_formula = write(
        "pred_formula.csv", 'id,=HYPERLINK("x")', [f"=1+{i},{scores[i]:.4f}" for i in range(n)]
    )
    p_long_dup = write(
        "pred_long_dup.csv",
        "id,model,score",
        [f"c{i},AI,{scores[i]:.4f}" for i in range(n)] + ["c1,AI,0.9"],
    )

    def report_says(word: str, out: str) -> Callable[[Run], tuple[str, str] | None]:
        def check(run: Run) -> tuple[str, str] | None:
            text = run.output
            md = h.out / out / "report.md"
            if md.is_file():
                text += md.read_text(errors="replace")
            if word.lower() not in text.lower():
                return MISLEADING, f"neither output nor report.md says {word!r}"
            return None

        return check

    def one_pos_check(run: Run) -> tuple[str, str] | None:
        if run.rc != 0:
            return None
        md = h.out / "eval-out/one_pos/report.md"
        text = md.read_text(errors="replace") if md.is_file() else ""
        if not re.search(r"undefined|\bNA\b|n/a|not defined", text, re.I):
            return (
                MISLEADING,
                "report gives DeLong CI/p with one positive and says nothing undefined",
            )
        return None

    def formula_check(run: Run) -> tuple[str, str] | None:
        if run.rc != 0:
            return None
        bad = []
        for p in (h.out / "eval-out/formula").rglob("*.csv"):
            bad += unsafe_cells(p)
        return (MISLEADING, f"formula cells in report tables: {bad[:3]}") if bad else None

    bs = ["--bootstrap", "200"]
    cases = [
        ("valid", p_ok, t_ok, "ok", None),
        (
            "scores outside [0,1]",
            p_out,
            t_ok,
            "any",
            report_says("not probabilities", "eval-out/outside"),
        ),
        ("ids '007' vs '7'", p_7, t_007, "error", None),
        ("one positive case", p_ok, t_one, "any", one_pos_check),
        ("no positive case", p_ok, t_none, "any", None),
        ("text score", p_text, t_ok, "error", None),
        ("NaN score", p_nan, t_ok, "error", None),
        ("inf score", p_inf, t_ok, "any", None),
        ("duplicate prediction id", p_dup, t_ok, "error", None),
        ("long format duplicate", p_long_dup, t_ok, "error", None),
        ("empty predictions", "in/eval/pred_empty.csv", t_ok, "error", None),
        ("junk parquet", "in/eval/pred_junk.parquet", t_ok, "error", None),
        ("truth without truth col", p_ok, t_nocol, "error", None),
        ("truth label 'maybe'", p_ok, t_maybe, "error", None),
        ("formula ids and model name", p_formula, t_formula, "any", formula_check),
    ]
    for name, p, t, expect, check in cases:
        slug = {
            "valid": "valid",
            "scores outside [0,1]": "outside",
            "one positive case": "one_pos",
            "formula ids and model name": "formula",
        }.get(name, re.sub(r"[^A-Za-z0-9]+", "_", name))
        h.cli_case(
            "eval",
            name,
            f"{p} --truth {t}",
            ["eval", "report", p, "--truth", t, "--out", f"eval-out/{slug}", *bs],
            expect=expect,
            check=check,
            timeout=180,
        )
    h.cli_case(
        "eval",
        "--out is a file",
        f"{p_ok} --out {p_ok}",
        ["eval", "report", p_ok, "--truth", t_ok, "--out", "in/a_file.txt", *bs],
        expect="error",
    )
    h.cli_case(
        "eval",
        "predictions missing",
        "in/eval/nope.csv",
        ["eval", "report", "in/eval/nope.csv", "--truth", t_ok, "--out", "eval-out/missing", *bs],
        expect="error",
    )


# ------------------------------------------------------------------ HTTP service
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Serve:
    """One real ``sonorisk serve`` subprocess."""

    def __init__(self, h: Harness) -> None:
        self.h = h
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data = h.out / "serve-data"
        self.log = h.logs / "serve-process.log"
        self.proc: subprocess.Popen | None = None
        self.ready = threading.Event()
        self.error: str | None = None
        self.started_s = 0.0
        self.rss_mb: list[float] = []  # total RSS of its process tree, sampled every 0.5 s
        self._watching = threading.Event()

    def watch_memory(self) -> None:
        import psutil

        def loop() -> None:
            while not self._watching.is_set():
                try:
                    root = psutil.Process(self.proc.pid)
                    total = sum(
                        p.memory_info().rss for p in [root, *root.children(True)] if p.is_running()
                    )
                    self.rss_mb.append(total / 1024**2)
                except psutil.Error:
                    pass
                time.sleep(0.5)

        threading.Thread(target=loop, daemon=True).start()

    def config(self) -> Path:
        import yaml

        cfg = {
            "host": "127.0.0.1",
            "port": self.port,
            "data_dir": str(self.data),
            "pipeline": str(REPO / "configs" / "pipeline-cpu.yaml"),
            "auth": {"enabled": "on", "token": TOKEN},
            "upload": {"max_bytes": 1024 * 1024},
            "jobs": {"model_retry_s": 90, "timeout_s": 300},
            "ingress": {"job_workers": 2},
            "streams": {
                "give_up_after_s": 10,
                "open_timeout_s": 3,
                "read_timeout_s": 2,
                "reconnect_max_s": 2,
            },
            "ray": {"num_cpus": 2, "object_store_memory": 200 * 1024**2},
        }
        if self.h.models:
            cfg["models"] = {"bundle": self.h.models}
        path = self.h.out / "in" / "serve.yaml"
        path.write_text(yaml.safe_dump(cfg))
        return path

    def start(self) -> None:
        import httpx

        self.wall_start = time.time()
        t0 = time.monotonic()
        self._fh = self.log.open("wb")
        self.proc = subprocess.Popen(
            [*self.h.sonorisk, "serve", "--config", str(self.config())],
            stdout=self._fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self.h.env,
            cwd=self.h.out,
            start_new_session=True,
        )
        deadline = time.monotonic() + 480
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.error = f"sonorisk serve exited early with {self.proc.returncode}"
                break
            try:
                if httpx.get(f"{self.url}/health", timeout=5).json().get("status") == "ok":
                    self.started_s = time.monotonic() - t0
                    break
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(2)
        else:
            self.error = "no healthy /health within 480 s"
        self.ready.set()

    def start_background(self) -> threading.Thread:
        t = threading.Thread(target=self.start, daemon=True)
        t.start()
        return t

    def stop(self) -> tuple[int | None, float, list[str]]:
        import psutil

        self._watching.set()
        if self.proc is None:
            return None, 0.0, []
        try:
            tree = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            tree = []
        t0 = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=180)
        except subprocess.TimeoutExpired:
            rc = None
        seconds = time.monotonic() - t0
        deadline = time.monotonic() + 30
        alive: list[str] = []
        while time.monotonic() < deadline:
            alive = []
            for p in tree:
                with contextlib.suppress(psutil.NoSuchProcess):
                    if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                        alive.append(f"{p.pid} {p.name()}")
            if not alive:
                break
            time.sleep(0.5)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        for p in tree:  # anything that left the group
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        self._fh.close()
        return rc, seconds, alive


def ray_log_tracebacks(
    data_dir: Path, since: float, root: Path = Path(os.environ.get("RAY_TMPDIR", "/tmp")) / "ray"
) -> tuple[list[str], Counter]:
    """Tracebacks through sonorisk code in the worker logs of the Ray session that served
    ``data_dir`` (found by its upload paths in the logs): (files, final exception lines)."""
    found: Counter = Counter()
    files: list[str] = []
    for session in sorted(root.glob("session_2*")):
        if session.is_symlink() or session.stat().st_mtime < since - 5:
            continue
        logs = [
            p
            for p in (session / "logs").glob("*")
            if p.suffix in (".err", ".out", ".log") and p.is_file()
        ]
        texts = {p: p.read_text(errors="replace") for p in logs}
        if not any(str(data_dir) in t for t in texts.values()):
            continue
        for path, text in texts.items():
            lines = text.splitlines()
            for i, line in enumerate(lines):
                if TB not in line:
                    continue
                j = i + 1
                while j < len(lines) and (lines[j].startswith((" ", "\t")) or not lines[j]):
                    j += 1
                block = lines[i:j]
                if j < len(lines) and any("/sonorisk/" in ln for ln in block):
                    found[lines[j].strip()[:200]] += 1
                    if str(path) not in files:
                        files.append(str(path))
    return files, found


def raw_http(
    port: int,
    request: bytes,
    body_chunks: list[bytes] = (),
    close_early: bool = False,
    timeout: float = 30.0,
) -> tuple[int | None, str]:
    """Send raw bytes; (status, text) of the reply (None when the connection just closed)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        for chunk in body_chunks:
            s.sendall(chunk)
        if close_early:
            return None, "closed by the client"
        s.shutdown(socket.SHUT_WR) if not body_chunks else None
        data = b""
        with contextlib.suppress(TimeoutError, ConnectionError):
            while True:
                got = s.recv(65536)
                if not got:
                    break
                data += got
                if b"\r\n\r\n" in data:
                    head, _, rest = data.partition(b"\r\n\r\n")
                    m = re.search(rb"content-length:\s*(\d+)", head, re.I)
                    if m and len(rest) >= int(m.group(1)):
                        break
    text = data.decode(errors="replace")
    m = re.match(r"HTTP/1\.[01] (\d{3})", text)
    return (int(m.group(1)) if m else None), text


def http_cases(h: Harness, srv: Serve, files: dict[str, Path]) -> None:
    import httpx

    entry = "serve"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    client = httpx.Client(base_url=srv.url, headers=auth, timeout=90)
    job_ids: list[tuple[str, str]] = []

    def rec(
        case: str,
        inp: str,
        command: str,
        outcome: str,
        code: str,
        secs: float,
        reason: str,
        body: str,
    ) -> None:
        h.record(
            Result(
                entry,
                case,
                inp,
                command,
                outcome,
                code,
                round(secs, 1),
                None,
                reason,
                head_of(body, 4),
            )
        )

    def classify_reply(status: int | None, body: str, expect: str) -> tuple[str, str]:
        if status is None:
            return CRASH, "no HTTP reply (connection closed)"
        if status >= 500 or TB in body:
            return TRACEBACK, f"HTTP {status}"
        if 400 <= status < 500:
            if expect == "ok":
                return MISLEADING, f"HTTP {status} for a request that should work"
            if not body.strip():
                return MISLEADING, f"HTTP {status} with no message"
            return CLEAR, ""
        if expect == "error":
            return MISLEADING, f"HTTP {status}: hostile request accepted"
        return GRACEFUL, ""

    def req(
        case: str,
        method: str,
        path: str,
        expect: str = "error",
        inp: str = "",
        check: Callable[[httpx.Response], tuple[str, str] | None] | None = None,
        client_: httpx.Client | None = None,
        **kw,
    ) -> httpx.Response | None:
        c = client_ or client
        t0 = time.monotonic()
        shown = f"{method} {path}" + (f" [{kw['headers']}]" if "headers" in kw else "")
        try:
            r = c.request(method, path, **kw)
        except httpx.TimeoutException as exc:
            rec(
                case,
                inp or path,
                shown,
                HANG,
                "timeout",
                time.monotonic() - t0,
                f"{type(exc).__name__}",
                "",
            )
            return None
        except httpx.HTTPError as exc:
            rec(
                case,
                inp or path,
                shown,
                CRASH,
                "no reply",
                time.monotonic() - t0,
                f"{type(exc).__name__}: {exc}",
                "",
            )
            return None
        outcome, reason = classify_reply(r.status_code, r.text, expect)
        if check and outcome in (CLEAR, GRACEFUL):
            found = check(r)
            if found:
                outcome, reason = found
        rec(
            case,
            inp or path,
            shown,
            outcome,
            str(r.status_code),
            time.monotonic() - t0,
            reason,
            r.text,
        )
        return r

    def upload(
        case: str,
        name: str,
        content: bytes | None = None,
        ctype: str = "application/octet-stream",
        expect: str = "any",
        params: dict | None = None,
    ) -> None:
        data = content if content is not None else files[name].read_bytes()
        r = req(
            case,
            "POST",
            "/v1/jobs",
            expect,
            inp=name,
            content=data,
            headers={"content-type": ctype},
            params=params,
        )
        if r is not None and r.status_code == 202:
            job_ids.append((case, r.json()["job_id"]))

    # baseline and auth
    req(
        "health before",
        "GET",
        "/health",
        "ok",
        check=lambda r: None if r.json().get("status") == "ok" else (MISLEADING, r.text[:100]),
    )
    noauth = httpx.Client(base_url=srv.url, timeout=60)
    req(
        "job upload without token",
        "POST",
        "/v1/jobs",
        client_=noauth,
        content=files["good.avi"].read_bytes(),
    )
    req("wrong token", "GET", "/v1/jobs", client_=noauth, headers={"Authorization": "Bearer wrong"})
    req("metrics without token", "GET", "/metrics", client_=noauth)
    # content types and bodies
    upload("content-type text/html", "good.avi", ctype="text/html", expect="error")
    upload(
        "content-type multipart",
        "good.avi",
        ctype="multipart/form-data; boundary=x",
        expect="error",
    )
    upload("content-type garbage", "good.avi", ctype="\x01;;==", expect="error")
    upload("empty body", "empty.avi", content=b"", expect="error")
    upload("text body", "text.avi", expect="error")
    upload("PNG body (scored as a still)", "png_rgba.mp4")
    upload("junk body", "junk.mp4", expect="error")
    upload(
        "oversized 1.5 MB (limit 1 MB)", "oversize", content=os.urandom(1536 * 1024), expect="error"
    )

    def chunks():
        for _ in range(24):
            yield os.urandom(64 * 1024)

    t0 = time.monotonic()
    try:
        r = client.post("/v1/jobs", content=chunks(), headers={"content-type": "video/mp4"})
        o, why = classify_reply(r.status_code, r.text, "error")
        rec(
            "chunked oversize, no length",
            "1.5 MB chunked",
            "POST /v1/jobs (chunked)",
            o,
            str(r.status_code),
            time.monotonic() - t0,
            why,
            r.text,
        )
    except httpx.HTTPError as exc:
        rec(
            "chunked oversize, no length",
            "1.5 MB chunked",
            "POST /v1/jobs (chunked)",
            CLEAR,
            "closed",
            time.monotonic() - t0,
            f"connection closed: {exc}",
            "",
        )
    t0 = time.monotonic()
    status, text = raw_http(
        srv.port,
        (
            "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            + TOKEN
            + "\r\nContent-Type: video/mp4\r\nContent-Length: 10000000000\r\n\r\n"
        ).encode(),
        [b"0" * 1000],
        timeout=20,
    )
    o, why = classify_reply(status, text, "error")
    rec(
        "Content-Length 10 GB declared",
        "raw socket",
        "POST /v1/jobs Content-Length: 1e10",
        o,
        str(status),
        time.monotonic() - t0,
        why,
        text.split("\r\n\r\n", 1)[-1],
    )
    # a client that drops mid-upload: no .part left behind
    t0 = time.monotonic()
    raw_http(
        srv.port,
        (
            "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            + TOKEN
            + "\r\nContent-Type: video/mp4\r\nContent-Length: 900000\r\n\r\n"
        ).encode(),
        [os.urandom(300000)],
        close_early=True,
    )
    time.sleep(8)
    parts = [str(p.relative_to(srv.data)) for p in srv.data.rglob("*.part")]
    rec(
        "client drops mid-upload",
        "300 KB of 900 KB, then close",
        "POST /v1/jobs (dropped)",
        MISLEADING if parts else GRACEFUL,
        "",
        time.monotonic() - t0,
        f"partial upload left: {parts}" if parts else "",
        "",
    )
    # hostile files uploaded as jobs
    for name in (
        "mp4_no_moov.mp4",
        "cut_mp4_half.mp4",
        "mp4_faststart_cut.mp4",
        "zero_dims.avi",
        "huge_dims.avi",
        "zero_frames.avi",
        "claims_4g_frames.avi",
        "fps_1e6.avi",
        "size_change.ts",
        "one_by_one.avi",
        "cut_avi_35pct.avi",
        "dcm_300m_frames.dcm",
        "dcm_2g_frames.dcm",
        "dcm_no_pixels.dcm",
    ):
        if name in files:
            upload(f"upload {name}", name)
    upload("upload good.avi", "good.avi", expect="ok")
    upload("filename=../../etc/passwd", "good.avi", params={"filename": "../../../etc/passwd"})
    upload("filename formula", "good.avi", params={"filename": FORMULA_NAME})
    # job list and ids
    req("limit=-1", "GET", "/v1/jobs", params={"limit": -1})
    req("limit=0", "GET", "/v1/jobs", params={"limit": 0})
    req("limit=10**9", "GET", "/v1/jobs", params={"limit": 10**9})
    req("limit=abc", "GET", "/v1/jobs", params={"limit": "abc"})
    req("status=<script>", "GET", "/v1/jobs", "ok", params={"status": "<script>x</script>"})
    req("unknown job id", "GET", "/v1/jobs/doesnotexist")
    req("unknown job result", "GET", "/v1/jobs/doesnotexist/result")
    req("job id ../..", "GET", "/v1/jobs/..%2F..%2Fetc%2Fpasswd")
    req("job id 20k chars", "GET", "/v1/jobs/" + "a" * 20000)
    # streams
    for case, url, transport in (
        ("tcp:// ?listen=1", "tcp://127.0.0.1:18799?listen=1", None),
        ("tcp:// connect", "tcp://127.0.0.1:22", None),
        ("udp://", "udp://127.0.0.1:18800", None),
        ("file:///etc/passwd", "file:///etc/passwd", None),
        ("rtsp ?listen=1", "rtsp://127.0.0.1:18801/x?listen=1", None),
        ("rtsp_transport=http", "rtsp://127.0.0.1:18802/x", "http"),
        ("rtsp_transport=;rm", "rtsp://127.0.0.1:18802/x", "tcp;rm -rf /"),
        ("no host rtsp:///x", "rtsp:///x", None),
        ("not a URL", "::::not a url::::", None),
        ("URL of 100k chars", "rtsp://127.0.0.1/" + "a" * 100000, "any"),
        ("data: URL", "data:video/mp4;base64,AAAA", None),
        ("http:// URL", "http://169.254.169.254/latest/meta-data", None),
    ):
        expect = "any" if transport == "any" else "error"
        transport = None if transport == "any" else transport
        body = {"url": url} | ({"rtsp_transport": transport} if transport else {})
        r = req(f"stream {case}", "POST", "/v1/streams", expect, inp=url[:80], json=body)
        if r is not None and r.status_code == 201:  # accepted: stop it again
            client.delete(f"/v1/streams/{r.json()['stream_id']}")
    req(
        "stream body not JSON",
        "POST",
        "/v1/streams",
        content=b"{{{",
        headers={"content-type": "application/json"},
    )
    req("stream body a list", "POST", "/v1/streams", json=[1, 2])
    dead = req(
        "stream to a closed port",
        "POST",
        "/v1/streams",
        "ok",
        json={"url": f"rtsp://127.0.0.1:{free_port()}/x"},
    )
    req("unknown stream", "GET", "/v1/streams/nope")
    req("unknown stream events", "GET", "/v1/streams/nope/events")
    req("delete unknown stream", "DELETE", "/v1/streams/nope")
    # jobs: wait for each to finish (a job not final within the timeout is a hang)
    deadline_per_job = h.timeout
    for case, job_id in job_ids:
        t0 = time.monotonic()
        status: dict = {}
        while time.monotonic() - t0 < deadline_per_job:
            try:
                r = client.get(f"/v1/jobs/{job_id}")
                status = r.json()
                if status.get("status") in ("done", "failed"):
                    break
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(1)
        state = status.get("status")
        err = str(status.get("error") or "")
        if state not in ("done", "failed"):
            o, why = HANG, f"job still {state} after {deadline_per_job:.0f} s"
        elif TB in err:
            o, why = TRACEBACK, err[:200]
        elif state == "failed" and re.search(
            r"Unserializable|RayTaskError|RayActorError|"
            r"failed \d+ times",
            err,
        ):
            o, why = MISLEADING, f"an internal error instead of the input's reason: {err[:160]}"
        elif state == "failed":
            o, why = (CLEAR, err[:200]) if err else (MISLEADING, "failed with no reason")
        else:
            o, why = GRACEFUL, ""
            res = client.get(f"/v1/jobs/{job_id}/result")
            if str(srv.data) in res.text or str(srv.data.resolve()) in res.text:
                o, why = MISLEADING, "result reveals the server's data path"
            elif res.status_code == 200:
                bad = boxes_inside(res.json())
                if bad:
                    o, why = MISLEADING, bad
        rec(
            f"job of {case}",
            case.removeprefix("upload "),
            f"GET /v1/jobs/{job_id}",
            o,
            state or "?",
            time.monotonic() - t0,
            why,
            json.dumps(status)[:600],
        )
    listing = client.get("/v1/jobs", params={"limit": 1000}).text
    rec(
        "job list reveals no paths",
        "GET /v1/jobs",
        "GET /v1/jobs?limit=1000",
        MISLEADING if str(srv.data) in listing else GRACEFUL,
        "",
        0.0,
        "server data path in the job list" if str(srv.data) in listing else "",
        "",
    )
    if dead is not None and dead.status_code == 201:
        sid = dead.json()["stream_id"]
        t0 = time.monotonic()
        state = None
        while time.monotonic() - t0 < 60:
            r = client.get(f"/v1/streams/{sid}")
            state = r.json().get("state") if r.status_code == 200 else f"HTTP {r.status_code}"
            if state in ("failed", "stopped") or (isinstance(state, str) and "HTTP" in state):
                break
            time.sleep(2)
        o = GRACEFUL if state in ("failed", "stopped", "HTTP 404") else HANG
        rec(
            "dead stream given up (10 s)",
            "rtsp closed port",
            f"GET /v1/streams/{sid}",
            o,
            str(state),
            time.monotonic() - t0,
            "" if o == GRACEFUL else f"still {state} after 60 s",
            "",
        )
        req("delete the dead stream", "DELETE", f"/v1/streams/{sid}", "any")
    req(
        "health after everything",
        "GET",
        "/health",
        "ok",
        check=lambda r: (
            None
            if r.json().get("status") == "ok"
            else (MISLEADING, f"status {r.json().get('status')}: {r.text[:200]}")
        ),
    )
    client.close()
    noauth.close()


# ------------------------------------------------------------------ reader study
def reader_study_cases(h: Harness) -> None:
    import httpx

    from sonorisk.data import load_dataset
    from sonorisk.data.synth import synthesize_phantom
    from sonorisk.io.writer import write_video as wv

    entry = "reader-study"
    root = h.out / "in" / "study"
    root.mkdir(parents=True, exist_ok=True)
    dataset = synthesize_phantom(
        4,
        root / "dataset",
        seed=3,
        size=(96, 72),
        frames=12,
        proportions={"benign": 0.5, "malignant": 0.5},
    )
    ds = load_dataset(dataset)
    ai = root / "ai"
    ai.mkdir(exist_ok=True)
    try:
        from tests.reader_study.conftest import score_document
    except Exception as exc:  # noqa: BLE001
        h.record(
            Result(
                entry,
                "set-up",
                "tests/reader_study/conftest.py",
                "",
                HARNESS,
                reason=f"cannot import score_document: {exc}",
            )
        )
        return
    import numpy as np

    rng = np.random.default_rng(0)
    for rec_, risk in zip(ds.videos, (0.8, 0.3, None, 0.6), strict=False):
        stem = Path(rec_.file).stem
        wv(
            ai / f"{stem}.overlay.mp4",
            (rng.integers(0, 255, (72, 96, 3), np.uint8) for _ in range(12)),
            30.0,
            codec="h264",
        )
        doc = score_document(
            ds.root / rec_.file, risk, 12, 30.0, (96, 72), f"{stem}.overlay.mp4", None
        )
        (ai / f"{stem}.json").write_text(json.dumps(doc))
    readers = root / "readers.csv"
    readers.write_text(
        "reader_id,name,password\nR1,Reader One,\nR2,\"=cmd|' -C calc'!A0\",secret-pass-2\n"
    )
    rel = lambda p: str(p.relative_to(h.out))  # noqa: E731
    study = root / "study"
    created = h.cli_case(
        entry,
        "create (formula reader/model names)",
        rel(readers),
        [
            "reader-study",
            "create",
            "--dataset",
            rel(dataset),
            "--ai",
            rel(ai),
            "--readers",
            rel(readers),
            "--out",
            rel(study),
            "--show-overlay",
            "--model-name",
            '=HYPERLINK("x")',
        ],
        expect="ok",
        timeout=240,
    )
    # hostile create inputs
    dup = root / "readers_dup.csv"
    dup.write_text("reader_id,name\nR1,a\nR1,b\n")
    empty = root / "readers_empty.csv"
    empty.write_text("")
    for case, args in (
        ("create: duplicate reader ids", ["--readers", rel(dup)]),
        ("create: empty reader list", ["--readers", rel(empty)]),
        ("create: --ai missing", ["--readers", rel(readers), "--ai", "in/nope"]),
        ("create: dataset is a file", ["--readers", rel(readers), "--dataset", "in/a_file.txt"]),
    ):
        base = {"--dataset": rel(dataset), "--ai": rel(ai)}
        for k in range(0, len(args), 2):
            base[args[k]] = args[k + 1]
        full = [
            "reader-study",
            "create",
            "--dataset",
            base["--dataset"],
            "--ai",
            base["--ai"],
            "--readers",
            base["--readers"],
            "--out",
            rel(root / re.sub(r"[^a-z]+", "_", case)),
        ]
        h.cli_case(entry, case, " ".join(args), full, expect="error", timeout=120)
    if created.outcome != GRACEFUL:
        return
    from sonorisk.reader_study.create import read_links

    links = read_links(study / "links.txt")
    port = free_port()
    log = (h.logs / "reader-study-serve.log").open("wb")
    proc = subprocess.Popen(
        [*h.sonorisk, "reader-study", "serve", str(study), "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=h.env,
        cwd=h.out,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            h.record(
                Result(
                    entry,
                    "serve start",
                    str(study),
                    "reader-study serve",
                    HANG,
                    reason="no /healthz within 90 s",
                )
            )
            return

        def token_of(html: str) -> str | None:
            m = re.search(r'name="csrf-token" content="([0-9a-f]+)"', html)
            return m.group(1) if m else None

        def do(
            case: str,
            c: httpx.Client,
            method: str,
            path: str,
            expect: str,
            want: int | None = None,
            **kw,
        ) -> httpx.Response | None:
            t0 = time.monotonic()
            try:
                r = c.request(method, path, **kw)
            except httpx.HTTPError as exc:
                h.record(
                    Result(
                        entry,
                        case,
                        path,
                        f"{method} {path}",
                        HANG if isinstance(exc, httpx.TimeoutException) else CRASH,
                        "no reply",
                        round(time.monotonic() - t0, 1),
                        None,
                        str(exc),
                    )
                )
                return None
            st = r.status_code
            if st >= 500 or TB in r.text:
                o, why = TRACEBACK, f"HTTP {st}"
            elif want is not None and st != want:
                o, why = MISLEADING, f"HTTP {st}, expected {want}"
            elif 400 <= st < 500:
                o, why = (CLEAR, "") if expect != "ok" else (MISLEADING, f"HTTP {st}")
            else:
                o, why = (
                    (GRACEFUL, "")
                    if expect != "error"
                    else (MISLEADING, f"HTTP {st}: hostile request accepted")
                )
            text = re.sub(r"<[^>]+>", " ", r.text)
            text = re.sub(r"\s+", " ", text)[:300]
            h.record(
                Result(
                    entry,
                    case,
                    path,
                    f"{method} {path}",
                    o,
                    str(st),
                    round(time.monotonic() - t0, 1),
                    None,
                    why,
                    text,
                )
            )
            return r

        anon = httpx.Client(base_url=base, follow_redirects=False, timeout=30)
        do(
            "login without CSRF token",
            anon,
            "POST",
            "/login",
            "error",
            403,
            data={"reader_id": "R2", "password": "secret-pass-2"},
        )
        tok = token_of(anon.get("/login").text)
        statuses = []
        for _ in range(12):
            r = anon.post(
                "/login", data={"reader_id": "R2", "password": "wrong", "csrf_token": tok or ""}
            )
            statuses.append(r.status_code)
        o = GRACEFUL if 429 in statuses else MISLEADING
        if any(s >= 500 for s in statuses):
            o = TRACEBACK
        h.record(
            Result(
                entry,
                "12 wrong passwords",
                "POST /login x12",
                "POST /login x12",
                o,
                ",".join(map(str, sorted(set(statuses)))),
                0.0,
                None,
                "" if o == GRACEFUL else f"no lockout: {statuses}",
                "",
            )
        )
        do("bogus sign-in link", anon, "GET", "/r/" + "0" * 40, "error", 404)
        do("admin export without admin", anon, "GET", "/admin/export/reads.csv", "error")
        r1 = httpx.Client(base_url=base, follow_redirects=False, timeout=30)
        do("sign in by link", r1, "GET", links["R1"], "ok", 303)
        step = r1.get("/reader/R1/next").headers.get("location", "/reader/R1/step/0")
        page = r1.get(step)
        tok1 = token_of(page.text)
        do(
            "answer without CSRF token",
            r1,
            "POST",
            step,
            "error",
            403,
            data={"birads": "4A", "confidence": "60"},
        )
        do(
            "answer with another browser's token",
            r1,
            "POST",
            step,
            "error",
            403,
            data={"birads": "4A", "confidence": "60", "csrf_token": tok or "x"},
        )
        do(
            "answer with junk values",
            r1,
            "POST",
            step,
            "error",
            400,
            data={
                "birads": "<script>alert(1)</script>",
                "confidence": "1e309",
                "csrf_token": tok1 or "",
            },
        )
        do(
            "draft with saved_at=abc",
            r1,
            "POST",
            f"{step}/draft",
            "error",
            data={"birads": "3", "confidence": "5", "saved_at": "abc", "csrf_token": tok1 or ""},
            headers={"accept": "application/json"},
        )
        do(
            "draft with 1 MB field",
            r1,
            "POST",
            f"{step}/draft",
            "any",
            data={"birads": "3" * 1_000_000, "confidence": "5", "csrf_token": tok1 or ""},
            headers={"accept": "application/json"},
        )
        do("another reader's page", r1, "GET", "/reader/R2", "error", 403)
        do("step 999999", r1, "GET", "/reader/R1/step/999999", "error")
        do("step -1", r1, "GET", "/reader/R1/step/-1", "error")
        do("step 10**30", r1, "GET", "/reader/R1/step/" + "9" * 30, "error")
        do("heatmap index 10**20", r1, "GET", f"{step}/heatmap/" + "9" * 20 + ".png", "error")
        do("admin export ../", r1, "GET", "/admin/export/..%2F..%2Fstudy.sqlite", "error")
        do(
            "valid answer",
            r1,
            "POST",
            step,
            "ok",
            303,
            data={"birads": "4A", "confidence": "60", "csrf_token": tok1 or ""},
        )
        # the formula-named reader (locked out of password sign-in above) uses the link
        # and answers, so the name can reach the exports
        r2 = httpx.Client(base_url=base, follow_redirects=False, timeout=30)
        do("formula reader signs in by link", r2, "GET", links["R2"], "ok", 303)
        step2 = r2.get("/reader/R2/next").headers.get("location", "/reader/R2/step/0")
        t2 = token_of(r2.get(step2).text)
        do(
            "formula reader answers",
            r2,
            "POST",
            step2,
            "ok",
            303,
            data={"birads": "3", "confidence": "40", "csrf_token": t2 or ""},
        )
        do("healthz after", anon, "GET", "/healthz", "ok", 200)
        for c in (anon, r1, r2):
            c.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
    exp = h.out / "reader-export"

    def export_check(run: Run) -> tuple[str, str] | None:
        bad = []
        for p in exp.rglob("*.csv"):
            bad += [f"{p.name}: {c}" for c in unsafe_cells(p)]
        return (MISLEADING, f"formula cells in exports: {bad[:3]}") if bad else None

    h.cli_case(
        entry,
        "export (formula names)",
        rel(study),
        ["reader-study", "export", rel(study), "--out", "reader-export"],
        expect="ok",
        check=export_check,
        timeout=120,
    )


# -------------------------------------------------------------------- reporting
def write_outputs(h: Harness, notes: list[str], wall_s: float) -> str:
    res = h.results
    with (h.out / "results.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(asdict(res[0]).keys()) if res else ["entry"])
        w.writeheader()
        for r in res:
            w.writerow(asdict(r))
    (h.out / "results.json").write_text(
        json.dumps([asdict(r) for r in res], indent=1, ensure_ascii=False)
    )
    counted = [r for r in res if r.outcome != HARNESS]
    n_inputs = len({r.input for r in counted})
    lines = [
        f"hostile-input rerun: {len(counted)} cases ({n_inputs} distinct input "
        f"descriptions) in {wall_s / 60:.1f} min; out: {h.out}",
        "",
    ]
    per_class = Counter(r.outcome for r in counted)
    lines.append(
        "per class: " + ", ".join(f"{c} {per_class[c]}" for c in CLASSES if per_class.get(c))
    )
    lines.append("")
    entries = [e for e in ENTRIES if any(r.entry == e for r in res)]
    shown = [c for c in CLASSES if any(r.outcome == c for r in res)]
    width = max(len(c) for c in shown) if shown else 10
    lines.append(f"{'entry point':<16}{'total':>6}  " + "  ".join(f"{c:>{width}}" for c in shown))
    table = defaultdict(Counter)
    for r in res:
        table[r.entry][r.outcome] += 1
    for e in entries:
        lines.append(
            f"{ENTRY_NAMES[e]:<16}{sum(table[e].values()):>6}  "
            + "  ".join(f"{table[e][c]:>{width}}" for c in shown)
        )
    lines.append("")
    bad = [r for r in res if r.outcome in BAD]
    lines.append(f"{len(bad)} case(s) neither a clear error nor a graceful result:")
    for r in bad:
        lines += [
            "",
            f"[{r.outcome}] {ENTRY_NAMES.get(r.entry, r.entry)}: {r.case}",
            f"  input:   {r.input}",
            f"  command: {r.command}",
            f"  code {r.code}, {r.seconds} s"
            + (f", peak RSS {r.max_rss_mb:.0f} MB" if r.max_rss_mb else ""),
            f"  why:     {r.reason}",
        ]
        lines += ["  | " + ln for ln in r.output_head.splitlines()[:10]]
    if notes:
        lines += ["", "notes:"] + [f"- {n}" for n in notes]
    text = "\n".join(lines) + "\n"
    (h.out / "summary.txt").write_text(text)
    return text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--out", type=Path, default=None, help="work folder (default: a temp dir)")
    ap.add_argument(
        "--only",
        default=",".join(ENTRIES),
        help=f"comma-separated entry points ({','.join(ENTRIES)})",
    )
    ap.add_argument("--timeout", type=float, default=120.0, help="per case, seconds")
    ap.add_argument("--models", default=None, help="NAME|DIR for score, batch and serve")
    ap.add_argument(
        "--mem-limit-mb",
        type=float,
        default=3000.0,
        help="peak RSS above this is class 'memory' (default 3000)",
    )
    args = ap.parse_args(argv)
    only = {e.strip() for e in args.only.split(",") if e.strip()}
    unknown = only - set(ENTRIES)
    if unknown:
        ap.error(f"unknown entry points {sorted(unknown)}")
    out = (args.out or Path(tempfile.mkdtemp(prefix="sonorisk-hostile-"))).resolve()
    if out.exists() and any(out.iterdir()):
        ap.error(f"{out} is not empty: give a new or empty folder")
    out.mkdir(parents=True, exist_ok=True)
    os.environ["OMP_NUM_THREADS"] = "1"
    random.seed(0)
    h = Harness(out, args.timeout, args.models, args.mem_limit_mb)
    notes: list[str] = []
    t0 = time.monotonic()
    print(f"generating inputs in {out}/in ...", flush=True)
    vid = out / "in" / "videos"
    files = make_videos(vid, out / "in" / "work")
    dicoms, why = make_dicoms(vid)
    files.update(dicoms)
    if why:
        notes.append(why)
    (out / "in" / "a_file.txt").write_text("I am a file, not a folder\n")
    print(f"{len(files)} input files made in {time.monotonic() - t0:.0f} s", flush=True)
    srv = None
    if "serve" in only:  # Ray and the models start while the CLI cases run
        srv = Serve(h)
        srv.start_background()
    try:
        if "info" in only:
            info_cases(h, files)
        if "dataset" in only:
            dataset_cases(h)
        if "eval" in only:
            eval_cases(h)
        if "score" in only:
            score_cases(h, files)
        if "batch" in only:
            batch_cases(h, files, vid)
        if srv is not None:
            srv.ready.wait()
            if srv.error:
                text = srv.log.read_text(errors="replace") if srv.log.exists() else ""
                h.record(
                    Result(
                        "serve",
                        "start",
                        "in/serve.yaml",
                        "sonorisk serve --config in/serve.yaml",
                        TRACEBACK if TB in text else HANG,
                        "",
                        0.0,
                        None,
                        srv.error,
                        head_of(text),
                    )
                )
            else:
                notes.append(f"sonorisk serve became healthy {srv.started_s:.0f} s after start")
                srv.watch_memory()
                time.sleep(1.5)
                idle = max(srv.rss_mb or [0])
                http_cases(h, srv, files)
                notes.append(
                    f"sonorisk serve process tree: {idle:.0f} MB RSS when idle, peak "
                    f"{max(srv.rss_mb or [0]):.0f} MB during the HTTP cases"
                )
        if "reader-study" in only:
            reader_study_cases(h)
    finally:
        if srv is not None:
            rc, secs, alive = srv.stop()
            text = srv.log.read_text(errors="replace") if srv.log.exists() else ""
            if srv.proc is not None and not srv.error:
                o, why = GRACEFUL, ""
                if rc is None:
                    o, why = HANG, "no exit within 180 s of SIGTERM"
                elif rc != 0:
                    o, why = MISLEADING, f"exit {rc} after SIGTERM"
                elif alive:
                    o, why = MISLEADING, f"processes outlived it: {alive}"
                h.record(
                    Result(
                        "serve",
                        "SIGTERM shutdown",
                        "SIGTERM",
                        "kill -TERM <serve>",
                        o,
                        str(rc),
                        round(secs, 1),
                        None,
                        why,
                        head_of(text[-3000:], 4),
                    )
                )
                files_tb, finals = ray_log_tracebacks(srv.data, srv.wall_start)
                n = sum(finals.values())
                h.record(
                    Result(
                        "serve",
                        "Ray worker logs: no sonorisk traceback",
                        "the Ray session's logs/*.err",
                        "sonorisk serve (Ray workers)",
                        TRACEBACK if n else GRACEFUL,
                        "",
                        0.0,
                        None,
                        f"{n} traceback(s) through sonorisk code in the server's Ray "
                        f"worker logs ({len(files_tb)} file(s))"
                        if n
                        else "",
                        "\n".join(f"{k}  (x{v})" for k, v in finals.most_common(6))
                        + ("\n" + "\n".join(files_tb[:3]) if files_tb else ""),
                    )
                )
                n_tb = text.count(TB)
                h.record(
                    Result(
                        "serve",
                        "server log has no traceback",
                        "logs/serve-process.log",
                        "sonorisk serve --config in/serve.yaml",
                        TRACEBACK if n_tb else GRACEFUL,
                        "",
                        0.0,
                        None,
                        f"{n_tb} traceback(s) in the server's output" if n_tb else "",
                        head_of(text[text.find(TB) - 300 :] if n_tb else "", 12),
                    )
                )
    text = write_outputs(h, notes, time.monotonic() - t0)
    print("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
