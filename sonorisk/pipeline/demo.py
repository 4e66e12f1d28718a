"""``sonorisk demo``: the README's main job, on a fresh machine, on a CPU.

Default: the released models (the default bundle, ``sonorisk models show``) on
example sweeps.

1. Synthesize one freehand sweep video from each example still
   (``examples/busi``: BUSI stills of the release's held-out groups).
2. Score them with the bundle: JSON per video, overlay videos, heatmap strips.
3. Write REPORT.md: risks, per-lesion results, the bundle (name, version,
   sha256), its held-out figures and its notice.

``--train`` (:func:`run_training_demo`): the whole job from nothing, in minutes:
1. Synthesize a small phantom training set (benign-like, malignant-like and
   lesion-free sweeps) and three demo videos from another seed.
2. Train a small detector and a small I3D on the training set (minutes, CPU).
   Both checkpoints are marked as demonstration models trained on synthetic
   data; every report they make says so.
3. Score the demo videos as above.

Nothing downloads. No output is a clinical result.
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
from sonorisk.threads import set_torch_threads

log = logging.getLogger(__name__)

DEMO_NOTE = (
    "DEMONSTRATION model: trained in minutes on synthetic phantom sweeps made by "
    "`sonorisk synth --phantom`; its outputs mean nothing about real patients."
)


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
        return cls(
            train_videos=10,
            demo_videos=3,
            frames=40,
            detector_epochs=2,
            detector_iters_per_epoch=8,
            classifier_epochs=2,
            crop_size=32,
        )


def mark_demonstration(path: Path) -> None:
    """Stamp a checkpoint (detector or classifier) as a synthetic-data demonstration."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("training", "training_data"):
        if key in payload:
            payload[key] = {
                **(payload[key] or {}),
                "demonstration": True,
                "synthetic": True,
                "description": DEMO_NOTE,
            }
    torch.save(payload, path)


def train_demo_models(
    train_dir: Path, models_dir: Path, s: DemoSettings, progress: bool
) -> tuple[Path, Path]:
    from sonorisk.detector.config import DetectorConfig
    from sonorisk.detector.train import train_detector
    from sonorisk.video_classifier.config import ClassifierConfig
    from sonorisk.video_classifier.train import train_from_dataset

    det = DetectorConfig()
    det.model.backbone = s.detector_backbone
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


def default_examples() -> Path:
    """``$SONORISK_EXAMPLES``, else ``examples/busi`` of the source tree (the README's
    setup installs sonorisk editable; the Docker image sets the variable)."""
    import os

    if os.environ.get("SONORISK_EXAMPLES"):
        return Path(os.environ["SONORISK_EXAMPLES"])
    return Path(__file__).resolve().parents[2] / "examples" / "busi"


def run_demo(
    out: str | Path,
    models: str | None = None,
    examples: str | Path | None = None,
    frames: int = 60,
    threads: int = 2,
    progress: bool = True,
) -> dict[str, Any]:
    """Score one synthetic sweep of each example still with the released models."""
    from sonorisk.data.busi import read_manifest
    from sonorisk.data.synth import synthesize_from_stills
    from sonorisk.errors import InputError
    from sonorisk.models.load import load_models
    from sonorisk.models.resolve import resolve_models

    out = Path(out)
    examples = Path(examples) if examples else default_examples()
    if not (examples / "manifest.csv").is_file():
        raise InputError(
            examples,
            "no example stills here (a BUSI-layout folder with manifest.csv); pass --examples DIR",
        )
    started = time.perf_counter()
    set_torch_threads(threads)
    say = print if progress else (lambda *a, **k: None)
    resolved = resolve_models(models)
    scoring = load_models(resolved)
    bundle = resolved.bundle
    name = f"{bundle.name} {bundle.version}" if bundle else "the given model files"
    say(f"[1/3] models: {name} ({resolved.where})", flush=True)

    n_stills = len(read_manifest(examples))
    say(f"[2/3] synthesizing {n_stills} sweep videos from the stills in {examples} ...", flush=True)
    videos_dir = synthesize_from_stills(
        examples, n_stills, out / "videos", seed=0, frames=frames, contact_sheet=True
    )

    say("[3/3] scoring them ...", flush=True)
    # Every 3rd frame through the detector, boxes carried by optical flow between
    # (what configs/pipeline-cpu.yaml did until it went to every 6th frame and
    # every other clip, which the demo's short sweeps cannot spare); heatmaps on
    # for the report.
    config = PipelineConfig(heatmaps=True)
    config.tracking.keyframe_interval = 3
    config.tracking.propagation = "flow"
    rows = score_videos(videos_dir, scoring, config, out / "scores", say)
    seconds = time.perf_counter() - started
    report = write_release_report(out / "REPORT.md", rows, resolved, seconds)
    say(f"done in {seconds:.0f} s: {report}")
    return {
        "report": str(report),
        "documents": [d for _, d in rows],
        "models": {"detector": str(resolved.detector), "classifier": str(resolved.classifier)},
    }


def score_videos(
    videos_dir: Path, models: Any, config: PipelineConfig, out: Path, say: Any
) -> list[tuple[Any, dict[str, Any]]]:
    """Score every video of a dataset folder with overlays and heatmaps: (record, document)."""
    from sonorisk.data import load_dataset
    from sonorisk.pipeline.score_file import score_file, summary_line

    dataset = load_dataset(videos_dir)
    rows = []
    try:
        for record in dataset.videos:
            document = score_file(
                videos_dir / record.file,
                models,
                config,
                out,
                overlay=True,
                heatmaps=True,
                progress=False,
            )
            rows.append((record, document))
            say("   " + summary_line(document), flush=True)
    finally:
        dataset.close()
    return rows


def video_table(rows: list[tuple[Any, dict[str, Any]]], truth: str) -> list[str]:
    """The per-video table of a demo report; ``truth`` heads the label column."""
    lines = [
        f"| video | {truth} | status | video risk | lesions | clips | overlay |",
        "|---|---|---|---|---|---|---|",
    ]
    for record, doc in rows:
        lines.append(
            f"| {record.video_id} | {record.pathology} | {doc['status']} | "
            f"{_risk(doc['risk'])} | {len(doc['lesions'])} | {doc['clips']} | "
            f"scores/{doc['outputs'].get('overlay', '')} |"
        )
    return lines


def _risk(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def write_release_report(
    path: Path, rows: list[tuple[Any, dict[str, Any]]], resolved: Any, seconds: float
) -> Path:
    """REPORT.md of the main job: what scored what, per video and per lesion."""
    bundle = resolved.bundle
    notices = list(dict.fromkeys(line for _, doc in rows for line in doc["notice"]))
    lines = ["# sonorisk demo: released models on example sweeps", ""]
    lines += [f"> {line}" for line in notices] + [""]
    if bundle is not None:
        lines += [
            f"Models: **{bundle.name} {bundle.version}** (sha256 of its metadata "
            f"`{bundle.sha256}`), {resolved.where} at `{bundle.path}`; model card: "
            f"`{bundle.card}` (`sonorisk models show {bundle.name}`).",
            "",
        ]
        figures = bundle.metrics
        if figures:
            lines += ["Held-out figures from the model card (95% CIs):", ""]
            for key, fig in figures.items():
                ci = f" ({fig['ci_low']}-{fig['ci_high']})" if fig.get("ci_low") is not None else ""
                lines.append(f"- {key}: {fig['value']}{ci}, n={fig.get('n')}: {fig.get('note')}")
            lines.append("")
    else:
        lines += [f"Models: `{resolved.detector}` and `{resolved.classifier}`.", ""]
    lines += [
        "Each video is a synthetic freehand sweep made from one BUSI still of the release's "
        "held-out groups (`examples/busi`); the still's label is the truth. Five videos say "
        "nothing about accuracy: the figures above do.",
        "",
        *video_table(rows, "still's label"),
    ]
    lines += [
        "",
        "## Lesions",
        "",
        "| video | lesion | frames | frames with a box | confidence | clips | lesion risk "
        "| heatmaps |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for record, doc in rows:
        if not doc["lesions"]:
            lines.append(f"| {record.video_id} | none found | | | | | n/a | |")
        for lesion in doc["lesions"]:
            strips = [c["heatmap"] for c in lesion["clips"] if c.get("heatmap")]
            shown = (
                f"scores/{strips[0]}" + (f" (+{len(strips) - 1})" if len(strips) > 1 else "")
                if strips
                else ""
            )
            risk = (
                "candidate, not scored"
                if lesion["status"] == "candidate"
                else _risk(lesion["risk"])
            )
            lines.append(
                f"| {record.video_id} | {lesion['lesion_id']} | "
                f"{lesion['first_frame']}-{lesion['last_frame']} | "
                f"{lesion['frames_with_box']} | {_risk(lesion.get('confidence'))} | "
                f"{lesion['clips_used']} | {risk} | {shown} |"
            )
    lines += [
        "",
        f"Video risk rule: {rows[0][1]['risk_rule']['text'] if rows else ''}.",
        "",
        "Per-video JSON documents (schema: docs/score-schema.md), overlay videos and heatmap "
        "strips (red: malignant evidence, blue: benign) are in `scores/`; the sweeps and their "
        "contact sheets in `videos/`.",
        f"Made in {seconds:.0f} s.",
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def run_training_demo(
    out: str | Path, settings: DemoSettings | None = None, seed: int = 0, progress: bool = True
) -> dict[str, Any]:
    from sonorisk.data.synth import synthesize_phantom
    from sonorisk.pipeline.score_file import load_models

    s = settings or DemoSettings()
    out = Path(out)
    started = time.perf_counter()
    set_torch_threads(s.threads)
    say = print if progress else (lambda *a, **k: None)

    say(
        f"[1/3] synthesizing {s.train_videos} phantom training sweeps and "
        f"{s.demo_videos} demo videos ...",
        flush=True,
    )
    train_dir = synthesize_phantom(
        s.train_videos, out / "train", seed=seed, frames=s.frames, size=s.size
    )
    videos_dir = synthesize_phantom(
        s.demo_videos,
        out / "videos",
        seed=seed + 1000,
        frames=s.frames * 2,
        size=s.size,
        proportions={"benign": 1, "malignant": 1, "normal": 1},
        contact_sheet=True,
    )

    say("[2/3] training a demonstration detector and I3D classifier (CPU) ...", flush=True)
    models_dir = out / "models"
    detector, classifier = train_demo_models(train_dir, models_dir, s, progress)

    say("[3/3] scoring the demo videos ...", flush=True)
    models = load_models(detector, classifier)
    rows = score_videos(videos_dir, models, PipelineConfig(), out / "scores", say)
    summary = write_summary(out / "REPORT.md", rows, time.perf_counter() - started)
    say(f"done in {time.perf_counter() - started:.0f} s: {summary}")
    return {
        "report": str(summary),
        "documents": [d for _, d in rows],
        "models": {"detector": str(detector), "classifier": str(classifier)},
    }


def write_summary(path: Path, rows: list[tuple[Any, dict[str, Any]]], seconds: float) -> Path:
    lines = [
        "# sonorisk demo",
        "",
        f"> {RESEARCH_NOTICE}",
        f"> {DEMO_NOTE}",
        "",
        *video_table(rows, "synthetic truth"),
    ]
    lines += [
        "",
        "Per-video JSON documents (schema: docs/score-schema.md), overlay videos and heatmap "
        "strips are in `scores/`; the training and demo sweeps in `train/` and `videos/`; the "
        "checkpoints in `models/`.",
        f"Made in {seconds:.0f} s.",
    ]
    path.write_text("\n".join(lines) + "\n")
    return path
