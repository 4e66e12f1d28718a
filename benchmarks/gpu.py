"""GPU figures in one table: model throughput (float32 vs mixed precision, ONNX
Runtime's TensorRT or CUDA provider where installed), batch throughput of whole
videos, one-stream latency and streams per GPU.

    python benchmarks/gpu.py [--models NAME|DIR] [--videos 8] [--seconds 10]
    python benchmarks/gpu.py --cpu-check     # the same code paths on the CPU, tiny sizes:
                                             # checks the script, measures nothing for a GPU

Each row says what it measured or why it was not measured (no CUDA, no TensorRT
provider, no RTSP server for the stream rows). The issue's GPU targets: at least
1000 frames/s batch throughput, one 50 fps stream with p99 box latency at most
30 ms, at least 8 streams per GPU.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Row:
    what: str
    value: str
    unit: str = ""
    note: str = ""


def timed(fn: Callable[[], object], repeats: int) -> float:
    """Median seconds of ``fn`` after one warm-up call (CUDA synchronised)."""
    import torch

    fn()
    times = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def model_rows(models_spec: str | None, device: str, batch: int, repeats: int) -> list[Row]:
    from sonorisk.models import load_models
    from sonorisk.records import Clip

    models = load_models(models_spec, device=device)
    detector, classifier = models.detector, models.classifier
    size = detector.config.model.min_size
    rng = np.random.default_rng(0)
    frames = [
        rng.integers(0, 255, (size, int(size * 1.5), 3), dtype=np.uint8) for _ in range(batch)
    ]
    clip_cfg = classifier.config.clips
    t, s = clip_cfg.length, clip_cfg.crop_size
    clips = [
        Clip(
            0,
            k,
            tuple(range(t)),
            ((0.0, 0.0, s, s),) * t,
            rng.integers(0, 255, (t, s, s, 3), dtype=np.uint8),
        )
        for k in range(batch)
    ]
    rows = []
    for amp in (False, True):
        label = "mixed precision (float16)" if amp else "float32"
        if amp and device != "cuda":
            rows.append(Row(f"detector, {label}", "-", note="autocast runs on CUDA only"))
            rows.append(Row(f"classifier, {label}", "-", note="autocast runs on CUDA only"))
            continue
        detector.config.inference.amp = amp
        type(classifier).amp = amp
        sec = timed(lambda: detector.predict(frames), repeats)
        rows.append(
            Row(
                f"detector, {label}, batch {batch}",
                f"{batch / sec:.1f}",
                "frames/s",
                f"{size}x{int(size * 1.5)} input",
            )
        )
        sec = timed(lambda: classifier.predict(clips, heatmaps=False, batch_size=batch), repeats)
        rows.append(
            Row(
                f"classifier, {label}, batch {batch}",
                f"{batch / sec:.1f}",
                "clips/s",
                f"{t}x{s}x{s} clips",
            )
        )
    type(classifier).amp = True
    return rows


def onnx_rows(models_spec: str | None, batch: int, repeats: int) -> list[Row]:
    """The exported classifier graph on ONNX Runtime's GPU providers, where installed."""
    try:
        import onnxruntime as ort
    except ImportError:
        return [Row("classifier, ONNX Runtime GPU", "-", note="onnxruntime not installed")]
    available = ort.get_available_providers()
    wanted = [p for p in ("TensorrtExecutionProvider", "CUDAExecutionProvider") if p in available]
    if not wanted:
        return [
            Row(
                "classifier, ONNX Runtime GPU",
                "-",
                note=f"no TensorRT/CUDA provider (have {', '.join(available)}); "
                "install onnxruntime-gpu",
            )
        ]
    from sonorisk.models import load_models
    from sonorisk.records import Clip
    from sonorisk.runtime.sessions import OrtOptions

    with tempfile.TemporaryDirectory() as cache:
        models = load_models(models_spec, runtime="onnx", ort=OrtOptions(cache_dir=cache))
        graph = str(Path(cache) / models.classifier.runtime_info["graph"])
        clip_cfg = models.classifier.config.clips
        t, s = clip_cfg.length, clip_cfg.crop_size
        rng = np.random.default_rng(0)
        clips = [
            Clip(
                0,
                k,
                tuple(range(t)),
                ((0.0, 0.0, s, s),) * t,
                rng.integers(0, 255, (t, s, s, 3), np.uint8),
            )
            for k in range(batch)
        ]
        x = models.classifier.to_input(np.stack([c.crops for c in clips])).numpy()
        rows = []
        for provider in wanted:
            session = ort.InferenceSession(graph, providers=[provider])
            name = session.get_inputs()[0].name
            sec = timed(lambda s=session, n=name: s.run(None, {n: x}), repeats)
            rows.append(
                Row(
                    f"classifier, ONNX Runtime {provider}",
                    f"{batch / sec:.1f}",
                    "clips/s",
                    f"batch {batch}",
                )
            )
    return rows


def batch_rows(
    models_spec: str | None, device: str, videos: int, seconds: float, workers: int
) -> list[Row]:
    """Whole videos through ``sonorisk batch``: frames scored per wall second."""
    from sonorisk.data.synth import synthesize_phantom
    from sonorisk.models import resolve_models
    from sonorisk.serving.batch import BatchSettings, run_batch

    with tempfile.TemporaryDirectory() as tmp:
        data = synthesize_phantom(
            videos,
            Path(tmp) / "set",
            seed=3,
            seconds=seconds,
            size=(480, 360),
            screen_capture="linear",
            proportions={"malignant": 1, "benign": 1},
        )
        settings = BatchSettings(
            device=device,
            threads=1,
            models=resolve_models(models_spec),
            pipeline=str(REPO / "configs" / "pipeline-gpu.yaml"),
        )
        started = time.perf_counter()
        summary = run_batch(
            [str(data / "videos")], settings, Path(tmp) / "out.csv", workers=workers, progress=False
        )
        wall = time.perf_counter() - started
        import pandas as pd

        table = pd.read_csv(Path(tmp) / "out.csv")
    frames = int(table["frames"].fillna(0).sum())
    clips = int(table["clips"].fillna(0).sum())
    if clips == 0:
        return [
            Row(
                f"batch, {videos} 1080p videos, {workers} workers",
                "refused",
                note="no clip scored: a rate would time an idle classifier",
            )
        ]
    return [
        Row(
            f"batch, {videos} 1080p videos, {workers} workers",
            f"{frames / wall:.1f}",
            "frames/s",
            f"{summary.scored} scored, {clips} clips, {wall:.1f} s wall",
        )
    ]


def stream_rows(models_spec: str | None, seconds: float) -> list[Row]:
    import shutil

    if shutil.which("rtsp-server.pl") is None and not Path("/usr/bin/rtsp-server.pl").exists():
        return [
            Row(
                "streams",
                "-",
                note="rtsp-server-perl not installed (apt-get install "
                "rtsp-server-perl) : stream rows not measured",
            )
        ]
    cmd = [
        sys.executable,
        str(REPO / "benchmarks" / "stream.py"),
        "--gpu",
        "--seconds",
        str(seconds),
    ] + (["--models", models_spec] if models_spec else [])
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    lines = [ln.strip() for ln in out.stdout.splitlines() if ln.strip()]
    return [Row("streams (benchmarks/stream.py --gpu)", "see note", note=ln) for ln in lines] or [
        Row("streams", "-", note=f"stream.py failed: {out.stderr[-300:]}")
    ]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", metavar="NAME|DIR")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each video")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--stream-seconds", type=float, default=20.0)
    parser.add_argument(
        "--cpu-check",
        action="store_true",
        help="run every code path on the CPU with tiny sizes (no GPU figures)",
    )
    args = parser.parse_args()

    import torch

    cuda = torch.cuda.is_available()
    if not cuda and not args.cpu_check:
        print("no CUDA device here: nothing measured (use --cpu-check to test the script)")
        return 1
    device = "cuda" if cuda and not args.cpu_check else "cpu"
    if args.cpu_check:
        args.batch, args.repeats, args.videos, args.seconds, args.workers = 2, 1, 2, 1.0, 1
    rows: list[Row] = []
    sections = [
        ("models", lambda: model_rows(args.models, device, args.batch, args.repeats)),
        ("onnx", lambda: onnx_rows(args.models, args.batch, args.repeats)),
        ("batch", lambda: batch_rows(args.models, device, args.videos, args.seconds, args.workers)),
    ]
    if not args.cpu_check:
        sections.append(("streams", lambda: stream_rows(args.models, args.stream_seconds)))
    for name, section in sections:
        try:
            rows += section()
        except Exception as exc:  # noqa: BLE001 (one failed section must not hide the rest)
            rows.append(Row(name, "failed", note=f"{type(exc).__name__}: {exc}"[:200]))
    title = torch.cuda.get_device_name(0) if device == "cuda" else "CPU check (not GPU figures)"
    print(f"\n{title}; torch {torch.__version__}")
    print(f"{'what':52s} {'value':>10s} {'unit':9s} note")
    for r in rows:
        print(f"{r.what:52s} {r.value:>10s} {r.unit:9s} {r.note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
