"""Batch throughput: `sonorisk batch` (local worker processes) against the
single-process `sonorisk score` CLI on the same files, in one run.

Both runs start from a cold process (model loading included) and use the same
checkpoints, the same pipeline config and 1 torch/OpenMP thread per process;
the batch uses --workers processes. Prints videos per second of each and the
ratio.

    python benchmarks/batch.py --models DIR [--videos 8] [--frames 80] [--workers 2]
        [--config configs/pipeline-cpu.yaml]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sonorisk.data.synth import synthesize_phantom


def timed(cmd: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    result = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"failed ({result.returncode}): {' '.join(cmd)}\n{result.stderr[-2000:]}")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models",
        required=True,
        metavar="NAME|DIR",
        help="model bundle NAME or folder, or a folder with detector.pt and classifier.pt",
    )
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--frames", type=int, default=80)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--config", default=None, help="pipeline YAML for both runs")
    args = parser.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = synthesize_phantom(
            args.videos, root / "set", seed=7, frames=args.frames, size=(256, 192)
        )
        videos = sorted(str(p) for p in (data / "videos").glob("*.avi"))
        config = ["--config", args.config] if args.config else []
        cli = timed(
            [
                "sonorisk",
                "score",
                *videos,
                "--models",
                args.models,
                "--out",
                str(root / "cli"),
                "--no-progress",
                *config,
            ],
            env,
        )
        batch = timed(
            [
                "sonorisk",
                "batch",
                str(data / "videos"),
                "--models",
                args.models,
                "--out",
                str(root / "batch.csv"),
                "--workers",
                str(args.workers),
                "--threads",
                "1",
                "--no-progress",
                *config,
            ],
            env,
        )
    n = len(videos)
    print(
        f"{n} phantom sweeps of {args.frames} frames (256x192), 1 thread per process, "
        f"{os.cpu_count()} CPUs"
    )
    print(f"sonorisk score (one process):        {cli:7.1f} s  {n / cli:6.3f} videos/s")
    print(
        f"sonorisk batch --workers {args.workers}:          {batch:7.1f} s  "
        f"{n / batch:6.3f} videos/s"
    )
    print(f"throughput ratio batch / score: {cli / batch:.2f}x")


if __name__ == "__main__":
    main()
