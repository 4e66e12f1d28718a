"""``sonorisk demo``: the whole job on a fresh machine, in minutes, on a CPU.

1. Synthesize a small phantom training set (benign-like, malignant-like and
   lesion-free sweeps) and three demo videos from another seed.
2. Train a small detector and a small I3D on the training set (minutes, CPU).
   Both checkpoints are marked as demonstration models trained on synthetic
   data; every report they make says so.
3. Score the demo videos with the incremental pipeline: JSON per video,
   overlay videos, heatmap strips, and a Markdown summary.

Nothing downloads. The numbers mean nothing about real patients.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sonorisk.pipeline.config import PipelineConfig
from sonorisk.pipeline.report import RESEARCH_NOTICE

log = logging.getLogger(__name__)

DEMO_NOTE = ("DEMONSTRATION model: trained in minutes on synthetic phantom sweeps made by "
             "`sonorisk synth --phantom`; its outputs mean nothing about real patients.")


@dataclass
class DemoSettings:
    """Sizes of the demo; ``quick`` is what the test suite runs."""

    train_videos: int = 24
    demo_videos: int = 3
    frames: int = 64
    size: tuple[int, int] = (256, 192)
    detector_epochs: int = 13
    detector_iters_per_epoch: int = 25
    detector_min_size: int = 128
    detector_backbone: str = "mobilenet_v3_large"
    classifier_epochs: int = 10
    crop_size: int = 48
    threads: int = 2

    @classmethod
    def quick(cls) -> DemoSettings:
        return cls(train_videos=10, demo_videos=3, frames=40, detector_epochs=2,
                   detector_iters_per_epoch=8, classifier_epochs=2, crop_size=32)


def mark_demonstration(path: Path) -> None:
    """Stamp a checkpoint (detector or classifier) as a synthetic-data demonstration."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("training", "training_data"):
        if key in payload:
            payload[key] = {**(payload[key] or {}), "demonstration": True, "synthetic": True,
                            "description": DEMO_NOTE}
    torch.save(payload, path)


def train_demo_models(train_dir: Path, models_dir: Path, s: DemoSettings,
                      progress: bool) -> tuple[Path, Path]:
    from sonorisk.detector.config import DetectorConfig
    from sonorisk.detector.train import train_detector
    from sonorisk.video_classifier.config import ClassifierConfig
    from sonorisk.video_classifier.train import train_from_dataset

    det = DetectorConfig()
    det.model.backbone = s.detector_backbone  # type: ignore[assignment]
    det.model.min_size = s.detector_min_size
    det.model.max_size = round(s.detector_min_size * 4 / 3)
    det.model.rpn_batch_size_per_image = 64
    det.model.box_batch_size_per_image = 64
    det.model.rpn_pre_nms_top_n_test = 200
    det.model.rpn_post_nms_top_n_test = 50
    det.train.epochs = s.detector_epochs
    det.train.max_iters_per_epoch = s.detector_iters_per_epoch
    det.train.video_frame_stride = 4
    det.train.num_threads = s.threads
    det.train.warmup_iters = 20
    det.train.max_val_images = 40
    det.inference.score_thresh = 0.5
    det.inference.device = "cpu"
    det_dir = models_dir / "detector-run"
    train_detector([train_dir], det, det_dir, progress=progress)
    detector = models_dir / "detector.pt"
    best = det_dir / "best.pt" if (det_dir / "best.pt").is_file() else det_dir / "last.pt"
    detector.write_bytes(best.read_bytes())
    mark_demonstration(detector)

    cls = ClassifierConfig()
    cls.clips.crop_size = s.crop_size
    cls.model.i3d.width = 8
    cls.train.epochs = s.classifier_epochs
    cls.train.batch_size = 8
    cls.train.lr = 1e-3
    cls.train.num_threads = s.threads
    cls.train.val_fraction = 0.25
    cls.train.max_clips_per_video = 12
    cls_dir = models_dir / "classifier-run"
    result = train_from_dataset(train_dir, cls, cls_dir, progress=progress)
    classifier = models_dir / "classifier.pt"
    # The last epoch, not the "best": the demo's validation side is a handful of
    # videos, where the first epoch that reaches AUC 1.0 is kept as best forever.
    classifier.write_bytes(Path(result.last_checkpoint).read_bytes())
    mark_demonstration(classifier)
    return detector, classifier


def run_demo(out: str | Path, settings: DemoSettings | None = None, seed: int = 0,
             progress: bool = True) -> dict[str, Any]:
    from sonorisk.data import load_dataset
    from sonorisk.data.synth import synthesize_phantom
    from sonorisk.pipeline.score_file import load_models, score_file, summary_line

    s = settings or DemoSettings()
    out = Path(out)
    started = time.perf_counter()
    torch.set_num_threads(s.threads)
    say = print if progress else (lambda *a, **k: None)

    say(f"[1/3] synthesizing {s.train_videos} phantom training sweeps and "
        f"{s.demo_videos} demo videos ...", flush=True)
    train_dir = synthesize_phantom(s.train_videos, out / "train", seed=seed, frames=s.frames,
                                   size=s.size)
    videos_dir = synthesize_phantom(s.demo_videos, out / "videos", seed=seed + 1000,
                                    frames=s.frames * 2, size=s.size,
                                    proportions={"benign": 1, "malignant": 1, "normal": 1},
                                    contact_sheet=True)

    say("[2/3] training a demonstration detector and I3D classifier (CPU) ...", flush=True)
    models_dir = out / "models"
    detector, classifier = train_demo_models(train_dir, models_dir, s, progress)

    say("[3/3] scoring the demo videos ...", flush=True)
    models = load_models(detector, classifier)
    config = PipelineConfig()
    demo_set = load_dataset(videos_dir)
    rows = []
    for record in demo_set.videos:
        document = score_file(videos_dir / record.file, models, config, out / "scores",
                              overlay=True, heatmaps=True, progress=False)
        rows.append((record, document))
        say("   " + summary_line(document), flush=True)
    demo_set.close()
    summary = write_summary(out / "REPORT.md", rows, time.perf_counter() - started)
    say(f"done in {time.perf_counter() - started:.0f} s: {summary}")
    return {"report": str(summary), "documents": [d for _, d in rows],
            "models": {"detector": str(detector), "classifier": str(classifier)}}


def write_summary(path: Path, rows: list[tuple[Any, dict[str, Any]]], seconds: float) -> Path:
    lines = [
        "# sonorisk demo",
        "",
        f"> {RESEARCH_NOTICE}",
        f"> {DEMO_NOTE}",
        "",
        "| video | synthetic truth | status | video risk | lesions | clips | overlay |",
        "|---|---|---|---|---|---|---|",
    ]
    for record, doc in rows:
        risk = "n/a" if doc["risk"] is None else f"{doc['risk']:.3f}"
        lines.append(f"| {record.video_id} | {record.pathology} | {doc['status']} | {risk} | "
                     f"{len(doc['lesions'])} | {doc['clips']} | "
                     f"scores/{doc['outputs'].get('overlay', '')} |")
    lines += [
        "",
        "Per-video JSON documents (schema: docs/score-schema.md), overlay videos and heatmap "
        "strips are in `scores/`; the training and demo sweeps in `train/` and `videos/`; the "
        "checkpoints in `models/`.",
        f"Made in {seconds:.0f} s.",
    ]
    path.write_text("\n".join(lines) + "\n")
    return path
