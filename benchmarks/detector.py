"""Detector and keyframe-tracking speed on this machine (run by hand, not a test).

    python benchmarks/detector.py [--video FILE] [--frames 60] [--threads 2]
        [--configs fasterrcnn:resnet34:512,fasterrcnn:resnet18:256,...] [--k 5]

Prints, from one run on one video: the decode-only frame rate; for each
architecture/backbone/input size the detector-only and decode+detect rates and
their ratio to decoding; and the keyframe speed-up (detector every k frames,
optical-flow carry between) against running the detector on every frame.
Models are randomly initialised unless --checkpoint is given: speed does not
depend on the weights (proposal counts are fixed by config), accuracy does.
Without --video a phantom sweep is synthesised (480x360, 30 fps).

    python benchmarks/detector.py --track-dataset DATASET_DIR --checkpoint best.pt [--k 5]

instead tracks every video of a sonorisk dataset end to end (trained detector ->
tracker) with k = 1 and k = --k, and prints per video the number of lesion tracks
and the share of lesion-visible frames the best track covers (IoU >= 0.3), with
the frame rate of each mode.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

DEFAULT_CONFIGS = (
    "fasterrcnn:resnet34:512,fasterrcnn:resnet34:320,fasterrcnn:resnet18:320,"
    "fasterrcnn:resnet18:256,fasterrcnn:mobilenet_v3_large:320,"
    "fasterrcnn:mobilenet_v3_large:256,fasterrcnn:efficientnet_lite0:320,"
    "retinanet:resnet18:256"
)


def make_video(tmp: Path, frames: int) -> Path:
    from sonorisk.data.synth import synthesize_phantom

    ds = synthesize_phantom(
        1, tmp / "ds", seed=0, frames=frames, size=(480, 360), proportions={"malignant": 1.0}
    )
    return next((ds / "videos").iterdir())


def decode(path: Path, limit: int) -> tuple[list, float]:
    from sonorisk.io import open_video

    start = time.perf_counter()
    frames = []
    with open_video(path) as source:
        for frame in source:
            frames.append(frame)
            if len(frames) >= limit:
                break
    return frames, len(frames) / (time.perf_counter() - start)


def build(arch: str, backbone: str, size: int, checkpoint: str | None):
    from sonorisk.detector.config import DetectorConfig, InferenceConfig, ModelConfig
    from sonorisk.detector.model import build_model
    from sonorisk.detector.predictor import TorchvisionDetector

    inference = InferenceConfig(batch_size=1, score_thresh=0.3)
    if checkpoint:
        return TorchvisionDetector.from_checkpoint(
            checkpoint, inference, {"min_size": size, "max_size": int(size * 5 / 3)}
        )
    model_cfg = ModelConfig(
        architecture=arch,
        backbone=backbone,
        min_size=size,
        max_size=int(size * 5 / 3),
        rpn_pre_nms_top_n_test=300,
        rpn_post_nms_top_n_test=100,
    )
    model, _ = build_model(model_cfg)
    return TorchvisionDetector(model, DetectorConfig(model=model_cfg, inference=inference))


def detect_rate(detector, frames: list, batch: int) -> float:
    detector.predict([frames[0]])  # warm-up (allocations, lazy init)
    start = time.perf_counter()
    for i in range(0, len(frames), batch):
        detector.predict(frames[i : i + batch])
    return len(frames) / (time.perf_counter() - start)


def keyframe_rate(detector, frames: list, k: int, propagation: str) -> float:
    from sonorisk.tracking import KeyframeTracker, TrackingConfig

    runner = KeyframeTracker(detector, TrackingConfig(keyframe_interval=k, propagation=propagation))
    start = time.perf_counter()
    for frame in frames:
        runner.process(frame)
    runner.finish()
    return len(frames) / (time.perf_counter() - start)


def track_dataset(path: str, checkpoint: str, k: int, max_videos: int | None) -> None:
    import numpy as np

    from sonorisk.data import load_dataset
    from sonorisk.detector.config import InferenceConfig
    from sonorisk.detector.predictor import TorchvisionDetector
    from sonorisk.records import Frame
    from sonorisk.tracking import TrackingConfig, track_video
    from sonorisk.tracking.postprocess import box_iou

    ds = load_dataset(path)
    det = TorchvisionDetector.from_checkpoint(checkpoint, InferenceConfig(batch_size=1))
    print(
        f"dataset {path}: {len(ds)} videos; checkpoint {checkpoint} "
        f"(backbone init {det.info['weights_source'].get('kind')})"
    )
    for interval in (1, k):
        rows, frames_total, seconds = [], 0, 0.0
        for vid in ds.video_ids[:max_videos]:
            gt = ds.boxes_for(vid)
            frames = [
                Frame(a.frame_index, a.frame_index / 30.0, img) for a, img in ds.iter_images(vid)
            ]
            start = time.perf_counter()
            tracks = track_video(frames, det, TrackingConfig(keyframe_interval=interval))
            seconds += time.perf_counter() - start
            frames_total += len(frames)
            visible = [i for i, b in gt.items() if b]
            best = 0.0
            for t in tracks:
                boxes = {d.frame_index: d.box for d in t.track.detections}
                hit = [i for i in visible if i in boxes and box_iou(boxes[i], gt[i][0]) >= 0.3]
                best = max(best, len(hit) / len(visible) if visible else 0.0)
            rows.append((vid, ds.label(vid), len(tracks), len(visible), best))
        print(f"\nk = {interval}: {frames_total / seconds:.2f} frames/s (detect + track)")
        for vid, label, n, n_vis, cov in rows:
            print(
                f"  {vid:40s} {label:9s} tracks {n:2d}  visible {n_vis:3d}  "
                f"best-track coverage {cov:.2f}"
            )
        lesion = [r for r in rows if r[3]]
        if lesion:
            print(
                f"  lesion videos with exactly one track: "
                f"{sum(r[2] == 1 for r in lesion)}/{len(lesion)}; mean coverage "
                f"{np.mean([r[4] for r in lesion]):.3f}; coverage >= 0.95: "
                f"{sum(r[4] >= 0.95 for r in lesion)}/{len(lesion)}"
            )
        free = [r for r in rows if not r[3]]
        if free:
            print(f"  lesion-free videos: {sum(r[2] for r in free)} tracks in {len(free)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--video", help="video file (default: a synthesised phantom sweep)")
    parser.add_argument("--frames", type=int, default=60, help="frames to time")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=1, help="frames per detector call")
    parser.add_argument(
        "--configs", default=DEFAULT_CONFIGS, help="comma-separated arch:backbone:short_side"
    )
    parser.add_argument("--checkpoint", help="time a trained checkpoint instead")
    parser.add_argument("--k", type=int, default=5, help="keyframe interval")
    parser.add_argument("--track-dataset", help="track a dataset end to end (needs --checkpoint)")
    parser.add_argument("--max-videos", type=int, help="with --track-dataset: first N videos")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    if args.track_dataset:
        if not args.checkpoint:
            parser.error("--track-dataset needs --checkpoint")
        track_dataset(args.track_dataset, args.checkpoint, args.k, args.max_videos)
        return
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(args.video) if args.video else make_video(Path(tmp), args.frames)
        frames, decode_fps = decode(video, args.frames)
        h, w = frames[0].height, frames[0].width
        print(
            f"video: {video.name} {w}x{h}, {len(frames)} frames timed; torch threads "
            f"{args.threads}; batch {args.batch}; device cpu"
        )
        print(f"decode only: {decode_fps:8.1f} frames/s")
        print(
            f"{'detector':36s} {'detect f/s':>10s} {'decode+detect f/s':>18s} "
            f"{'detect/decode':>14s}"
        )
        specs = [s.split(":") for s in args.configs.split(",")]
        detectors = {}
        for arch, backbone, size in specs:
            det = build(arch, backbone, int(size), args.checkpoint)
            rate = detect_rate(det, frames, args.batch)
            both = 1.0 / (1.0 / rate + 1.0 / decode_fps)
            name = f"{arch} {backbone} @{size}"
            detectors[name] = det
            print(f"{name:36s} {rate:10.2f} {both:18.2f} {rate / decode_fps:14.4f}")
        name = next(iter(detectors))
        det = detectors[name]
        every = keyframe_rate(det, frames, 1, "hold")
        flow = keyframe_rate(det, frames, args.k, "flow")
        hold = keyframe_rate(det, frames, args.k, "hold")
        print(f"\nkeyframe tracking with {name} (decoded frames in memory):")
        print(f"  detector every frame:        {every:8.2f} frames/s")
        print(
            f"  every {args.k} frames, flow carry: {flow:8.2f} frames/s  "
            f"speed-up x{flow / every:.2f}"
        )
        print(
            f"  every {args.k} frames, hold carry: {hold:8.2f} frames/s  "
            f"speed-up x{hold / every:.2f}"
        )


if __name__ == "__main__":
    main()
