"""Verbs of sonorisk.pipeline: ``score`` (files) and ``demo`` (the README's main job)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from sonorisk.cli_args import positive_int

log = logging.getLogger(__name__)


def pipeline_flags(p: argparse.ArgumentParser) -> None:
    """``--config`` and the pipeline keys it holds (``score`` and ``batch``)."""
    p.add_argument(
        "--config",
        help="a YAML of this verb's config keys: a pipeline YAML "
        "(configs/pipeline*.yaml), optionally with a models "
        "section, or a profile shipped with sonorisk: cpu, gpu, live-replay "
        "(docs/pipeline.md); the flags below override it",
    )
    p.add_argument(
        "--keyframe-interval",
        dest="tracking.keyframe_interval",
        type=positive_int,
        metavar="K",
        help="run the detector every k-th frame (1: every frame, as the paper)",
    )
    p.add_argument(
        "--detector-batch",
        dest="detector_batch_size",
        type=positive_int,
        metavar="N",
        help="keyframes detected per batch",
    )
    p.add_argument(
        "--classifier-batch",
        dest="classifier_batch_size",
        type=positive_int,
        metavar="N",
        help="clips scored per batch",
    )


# The flags that set pipeline keys (the models flags set ``models.*``).
PIPELINE_KEYS = (
    "tracking.keyframe_interval",
    "detector_batch_size",
    "classifier_batch_size",
    "heatmaps",
)


def model_flags(p: argparse.ArgumentParser) -> None:
    """The ``models`` section (``ModelsConfig``): the same flags for score, batch, serve."""
    from sonorisk.runtime import RUNTIMES

    p.add_argument(
        "--models",
        dest="models.bundle",
        metavar="NAME|DIR",
        help="a model bundle: NAME[@VERSION] (see `sonorisk models list`) or its "
        "folder, or a folder holding detector.pt and classifier.pt (e.g. "
        "sonorisk-demo/models); default: the config's models.bundle, else "
        "the default bundle",
    )
    p.add_argument(
        "--detector",
        dest="models.detector",
        metavar="FILE",
        help="detector checkpoint (.pt or .safetensors; overrides --models)",
    )
    p.add_argument(
        "--classifier",
        dest="models.classifier",
        metavar="FILE",
        help="classifier checkpoint (.pt or .safetensors; overrides --models)",
    )
    p.add_argument(
        "--device",
        dest="models.device",
        metavar="DEVICE",
        help="cpu|cuda|auto: where the models run (default cpu)",
    )
    p.add_argument(
        "--runtime",
        dest="models.runtime",
        choices=RUNTIMES,
        help="run the models in torch (default) or ONNX Runtime (CPU; exported "
        "once and cached; needs the onnx extra; onnx-int8: the detector in 8-bit "
        "integers, fastest on a CPU; docs/runtime.md)",
    )
    p.add_argument(
        "--detector-min-size",
        dest="models.detector_min_size",
        type=positive_int,
        metavar="PX",
        help="detector input short side (px) at inference; smaller is faster",
    )
    p.add_argument(
        "--detector-tta",
        dest="models.detector_tta",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="test-time augmentation: the detector also sees each frame mirrored "
        "and fuses both views' boxes (twice the detector time; default: the "
        "detector file's setting)",
    )


def flag_overrides(args: argparse.Namespace, keys: tuple[str, ...] = ()) -> dict[str, Any]:
    """The config keys the flags set: ``models.*`` and ``keys`` (unset flags left out)."""
    return {
        k: v
        for k, v in vars(args).items()
        if v is not None and (k.startswith("models.") or k in keys)
    }


def models_given_way(config: Any, overrides: dict[str, Any]) -> Any:
    """``--models`` names the pair: the config's checkpoint files give way, unless
    a flag names one of them too (one rule for score, batch and serve)."""
    if overrides.get("models.bundle"):
        for role in ("detector", "classifier"):
            if overrides.get(f"models.{role}") is None:
                setattr(config.models, role, None)
    return config


def register(groups: dict[str, argparse._SubParsersAction]) -> None:
    score = groups["root"].add_parser(
        "score",
        help="score videos and still images: lesion boxes, lesion and overall risk",
        description="Score each VIDEO with a detector and a clip classifier, and each still "
        "IMAGE (PNG, JPEG, TIFF, BMP, single-frame DICOM) with the detector and "
        "the bundle's still classifier; writes one JSON per input "
        "(docs/score-schema.md, docs/stills.md), optionally an overlay (a video, "
        "or a PNG for a still) and heatmap images. Research software: the output "
        "is not a clinical result.",
    )
    score.add_argument(
        "videos",
        nargs="+",
        metavar="VIDEO|IMAGE",
        help="video files (or DICOM cine) and still images",
    )
    score.add_argument("--out", default="sonorisk-scores", help="output folder")
    score.add_argument(
        "--overlay",
        action="store_true",
        help="also write an overlay with boxes and probabilities (a video; a "
        "PNG for a still image)",
    )
    score.add_argument(
        "--heatmaps",
        dest="heatmaps",
        action="store_const",
        const=True,
        help="also write a heatmap strip per clip (red = malignant evidence)",
    )
    score.add_argument("--no-progress", action="store_true")
    pipeline_flags(score)
    model_flags(score)
    score.set_defaults(func=_score)

    demo = groups["root"].add_parser(
        "demo",
        help="the main job: released models on example sweeps, with a report",
        description="Synthesize a sweep video from each example BUSI still (examples/busi, "
        "held out from training), score them with the released models (the "
        "default bundle, or --models), and write REPORT.md, one JSON per video, "
        "overlay videos and heatmap strips. --train instead trains small "
        "demonstration models on phantom sweeps from nothing (minutes). Nothing "
        "downloads. No output is a clinical result.",
    )
    demo.add_argument("--out", default="sonorisk-demo", help="output folder")
    demo.add_argument(
        "--models",
        help="bundle NAME[@VERSION] or folder (default: the "
        "default bundle; `sonorisk models list`)",
    )
    demo.add_argument(
        "--examples",
        help="BUSI-layout folder of stills to make sweeps from "
        "(default: the repository's examples/busi)",
    )
    demo.add_argument("--frames", type=positive_int, default=60, help="frames per example sweep")
    demo.add_argument(
        "--train",
        action="store_true",
        help="train demonstration models on phantom sweeps instead (minutes)",
    )
    demo.add_argument("--seed", type=int, default=0, help="--train: phantom seed")
    demo.add_argument(
        "--quick",
        action="store_true",
        help="--train: smaller and faster (what the tests run); the models learn less",
    )
    demo.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        help="torch CPU threads (default 2; use 1 on a machine busy with "
        "other work, where extra threads spin and slow everything)",
    )
    demo.add_argument("--no-progress", action="store_true")
    demo.set_defaults(func=_demo)


def resolve_model_flags(models: Any) -> Any:
    """A ``ModelsConfig`` -> ``sonorisk.models.ResolvedModels``."""
    from sonorisk.models.resolve import resolve_models

    return resolve_models(models.bundle, models.detector, models.classifier)


def score_config(args: argparse.Namespace) -> Any:
    """``--config`` (a pipeline YAML, optionally with ``models``), then the flags."""
    from sonorisk.config import load_config
    from sonorisk.pipeline.config import ScoreConfig, pipeline_yaml

    overrides = flag_overrides(args, PIPELINE_KEYS)
    path = pipeline_yaml(args.config) if args.config else None
    return models_given_way(load_config(ScoreConfig, path, overrides), overrides)


def _score(args: argparse.Namespace) -> int:
    from sonorisk.errors import InputError
    from sonorisk.pipeline.output_names import output_stems
    from sonorisk.pipeline.score_file import load_models, score_path, summary_line

    config = score_config(args)
    resolved = resolve_model_flags(config.models)
    # Before any work: an --out that cannot be a folder fails now, not after scoring.
    Path(args.out).mkdir(parents=True, exist_ok=True)
    models = load_models(
        resolved,
        device=config.models.device,
        detector_overrides=config.models.detector_overrides(),
        runtime=config.models.runtime,
    )
    print(f"models: {resolved.label()}", file=sys.stderr)
    pipeline = config.pipeline()
    failures = 0
    stems = output_stems([Path(v) for v in args.videos])  # never two results on one name
    for video in args.videos:
        try:
            document = score_path(
                video,
                models,
                pipeline,
                args.out,
                overlay=args.overlay,
                heatmaps=pipeline.heatmaps,
                progress=not args.no_progress,
                stem=stems[Path(video)],
            )
        except InputError as exc:  # one bad file does not stop the others
            failures += 1
            print(f"sonorisk: error: {exc}", file=sys.stderr)
            continue
        print(summary_line(document))
    if resolved.bundle is not None:
        about = resolved.bundle.notice
    else:
        about = "Classifier training data: " + json.dumps(
            models.cards["classifier"].get("training_data", {}).get("description", "")
        )
    print(f"outputs in {args.out}/ — research output, not a clinical result. {about}")
    return 1 if failures else 0


def _demo(args: argparse.Namespace) -> int:
    from sonorisk.pipeline.demo import DemoSettings, run_demo, run_training_demo

    if args.quick and not args.train:
        raise SystemExit("sonorisk demo: --quick goes with --train")
    if args.train:
        settings = DemoSettings.quick() if args.quick else DemoSettings()
        if args.threads:
            settings.threads = args.threads
        run_training_demo(args.out, settings, seed=args.seed, progress=not args.no_progress)
        return 0
    run_demo(
        args.out,
        models=args.models,
        examples=args.examples,
        frames=args.frames,
        threads=args.threads or 2,
        progress=not args.no_progress,
    )
    return 0
