"""Box latency of the incremental scorer alone, one process, no server.

Pushes a phantom sweep frame by frame through ``IncrementalScorer`` (the CPU
profile, detector batch 1 as for live streams) and records, for every frame,
how long after its push its boxes came out, and how many frames later. This
is the floor under the service's stream latency (benchmarks/stream.py).

    python benchmarks/scorer_latency.py [--models NAME|DIR] [--frames 240] [--config FILE]
"""

from __future__ import annotations

import argparse
import collections
import tempfile
import time
from pathlib import Path

# isort: off
import sonorisk  # noqa: F401  (first: sets OMP_WAIT_POLICY before torch loads OpenMP)

# isort: on
import numpy as np
import torch

from sonorisk.config import load_config
from sonorisk.data.synth import synthesize_phantom
from sonorisk.io import open_video
from sonorisk.models import load_models, resolve_models
from sonorisk.pipeline import FrameBoxes, IncrementalScorer, PipelineConfig

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models",
        metavar="NAME|DIR",
        help="model bundle NAME or folder, or a folder with detector.pt and "
        "classifier.pt (default: the default bundle)",
    )
    parser.add_argument("--frames", type=int, default=240)
    parser.add_argument("--config", default=str(REPO / "configs" / "pipeline-cpu.yaml"))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        data = synthesize_phantom(
            1,
            Path(tmp) / "ds",
            seed=3,
            frames=args.frames,
            size=(320, 240),
            proportions={"malignant": 1.0},
        )
        video = next((data / "videos").glob("*.avi"))
        models = load_models(resolve_models(args.models))
        config = load_config(
            PipelineConfig, args.config, {"detector_batch_size": 1, "classifier_batch_size": 1}
        )
        lag_frames: collections.Counter[int] = collections.Counter()
        latency: list[float] = []
        with open_video(video) as source:
            scorer = IncrementalScorer(
                models.detector, models.classifier, config, fps=source.meta.fps
            )
            pushed_at: dict[int, float] = {}
            for frame in source:
                pushed_at[frame.index] = time.perf_counter()
                for event in scorer.push(frame):
                    if isinstance(event, FrameBoxes):
                        lag_frames[frame.index - event.frame_index] += 1
                        latency.append(time.perf_counter() - pushed_at[event.frame_index])
            scorer.finish()
    ms = np.percentile(np.array(latency) * 1000, [50, 90, 99])
    print(
        f"{len(latency)} frames, config {args.config}, keyframe interval "
        f"{config.tracking.keyframe_interval}, {args.threads} thread(s)"
    )
    print(f"box latency after push, ms: p50 {ms[0]:.1f}  p90 {ms[1]:.1f}  p99 {ms[2]:.1f}")
    held = {k: v for k, v in sorted(lag_frames.items()) if k}
    print(
        f"frames whose boxes came out with the frame itself: {lag_frames[0]}; "
        f"later (frames behind -> count): {held}"
    )


if __name__ == "__main__":
    main()
