"""Scoring speed on a 60 s, 30 fps, 1920x1080 screen-capture sweep, all in one run.

Prints, measured side by side on this machine:
- decode-only rate of the video (frames/s), the ceiling of any pipeline;
- `sonorisk score` with the CPU profile (configs/pipeline-cpu.yaml: scan-region
  crop, keyframes every 3rd frame, batched detector and classifier): its
  real-time factor (video seconds / wall seconds) and its rate as a fraction of
  the decode-only rate;
- a naive pipeline with the same models (every frame detected at full size,
  no crop, batch 1, one clip at a time), timed on the first --naive-frames
  frames, and the speed-up of the CPU profile over it.

    python benchmarks/score.py [--models NAME|DIR] [--seconds 60] [--naive-frames 60]

Without --models it uses the default bundle, or, when none is installed, trains the
demonstration models first (sonorisk demo's).
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from pathlib import Path

import torch

from sonorisk.config import load_config
from sonorisk.data.synth import synthesize_phantom
from sonorisk.io import open_video
from sonorisk.models import load_models, resolve_models
from sonorisk.models.store import default_spec
from sonorisk.pipeline.config import PipelineConfig
from sonorisk.pipeline.score_file import score_file
from sonorisk.pipeline.scorer import IncrementalScorer

REPO = Path(__file__).resolve().parents[1]


def decode_rate(path: Path) -> tuple[float, int]:
    started = time.perf_counter()
    with open_video(path) as source:
        n = sum(1 for _ in source)
    return n / (time.perf_counter() - started), n


def naive_rate(path: Path, resolved, frames: int) -> float:
    # Same models, inference at the full frame size.
    with open_video(path) as source:
        full = max(source.meta.width, source.meta.height)
        short = min(source.meta.width, source.meta.height)
    models = load_models(resolved, detector_overrides={"min_size": short, "max_size": full})
    config = PipelineConfig(detector_batch_size=1, classifier_batch_size=1, crop="none")
    config.tracking.keyframe_interval = 1
    started = time.perf_counter()
    with open_video(path) as source:
        scorer = IncrementalScorer(models.detector, models.classifier, config,
                                   fps=source.meta.fps)
        for frame in itertools.islice(source, frames):
            scorer.push(frame)
        scorer.finish()
    return frames / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", metavar="NAME|DIR",
                        help="model bundle NAME or folder, or a folder with detector.pt and "
                             "classifier.pt (default: the default bundle; without one, the "
                             "demonstration models are trained first)")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--naive-frames", type=int, default=60)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", type=Path, default=None, help="keep files here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = args.work or Path(tempfile.mkdtemp(prefix="sonorisk-bench-"))

    models_dir = args.models
    if models_dir is None and default_spec() is None:
        from sonorisk.pipeline.demo import DemoSettings, train_demo_models

        models_dir = work / "models"
        if not (models_dir / "classifier.pt").is_file():
            print("training the demonstration models ...", flush=True)
            train_dir = synthesize_phantom(24, work / "train", seed=0, frames=64,
                                           size=(256, 192))
            train_demo_models(train_dir, models_dir, DemoSettings(), progress=False)

    videos = work / "sweep"
    if not (videos / "videos.csv").is_file():
        print(f"synthesizing a {args.seconds:.0f} s 1920x1080 screen-capture sweep ...",
              flush=True)
        synthesize_phantom(1, videos, seed=7, seconds=args.seconds, size=(480, 360),
                           screen_capture="linear", proportions={"malignant": 1})
    video = next((videos / "videos").glob("*.avi"))

    dec_fps, n_frames = decode_rate(video)
    with open_video(video) as source:
        fps = source.meta.fps or 30.0
        size = f"{source.meta.width}x{source.meta.height}"
    video_s = n_frames / fps

    cpu = load_config(PipelineConfig, REPO / "configs" / "pipeline-cpu.yaml")
    resolved = resolve_models(models_dir)
    print(f"models: {resolved.label()}", flush=True)
    models = load_models(resolved)
    started = time.perf_counter()
    doc = score_file(video, models, cpu, work / "scores", progress=False)
    wall = time.perf_counter() - started
    profile_fps = n_frames / wall

    naive_fps = naive_rate(video, resolved, args.naive_frames)
    stages = doc["timing"]["stages"]
    print()
    print(f"video: {video.name}, {n_frames} frames, {size}, {fps:g} fps ({video_s:.1f} s)")
    print(f"threads: {torch.get_num_threads()}")
    print(f"{'what':42s} {'frames/s':>10s}")
    print(f"{'decode only':42s} {dec_fps:10.1f}")
    print(f"{'sonorisk score, CPU profile':42s} {profile_fps:10.1f}")
    print(f"{'naive (full size, every frame, batch 1)':42s} {naive_fps:10.2f}")
    print()
    print(f"real-time factor, CPU profile: {video_s / wall:.2f} (target >= 1.0)")
    print(f"CPU profile / decode-only rate: {profile_fps / dec_fps:.2f}")
    print(f"speed-up over naive: {profile_fps / naive_fps:.1f}x")
    print("stage seconds (CPU profile): " + ", ".join(
        f"{k} {v:.1f}" for k, v in stages.items() if k.endswith("_s")))
    print(f"result: {doc['status']}, risk {doc['risk']}, clips {doc['clips']}, "
          f"scan region {doc['video']['scan_region']}")


if __name__ == "__main__":
    main()
