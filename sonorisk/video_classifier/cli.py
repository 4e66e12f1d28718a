"""Verbs of sonorisk.video_classifier: ``train classifier``."""

from __future__ import annotations

import argparse
import json
from typing import Any

from sonorisk.cli_args import finite_float, positive_int
from sonorisk.threads import set_torch_threads
from sonorisk.video_classifier.config import classifier_kinds


def _csv(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def register(groups: dict[str, argparse._SubParsersAction]) -> None:
    p = groups["train"].add_parser(
        "classifier",
        help=f"train a clip classifier ({', '.join(classifier_kinds())})",
        description="Train a video classifier on 8-frame lesion clips cut from a sonorisk "
        "dataset's ground-truth boxes; each clip carries its video's label. Writes "
        "OUT/last.pt every epoch and OUT/best.pt at the best validation AUC. "
        "Research use only: a model trained on synthetic or tiny data says so in its "
        "checkpoint.",
    )
    p.add_argument("--data", required=True, help="dataset folder (videos.csv + annotations.json)")
    p.add_argument(
        "--model",
        dest="model.kind",
        choices=classifier_kinds(),
        help="classifier family (default: the config's, else i3d)",
    )
    p.add_argument("--config", help="YAML config (configs/classifier*.yaml)")
    p.add_argument("--out", default=None, help="output folder (default runs/classifier-KIND)")
    p.add_argument("--resume", help="checkpoint to continue from (e.g. OUT/last.pt)")
    p.add_argument(
        "--split-file",
        help="splits CSV from `sonorisk dataset split` "
        "(default: a patient-level split with --val-fraction)",
    )
    p.add_argument(
        "--label-field",
        default="auto",
        choices=["auto", "pathology", "subtype"],
        help="which table column is the label (auto: pathology for "
        "benign/malignant classes, else subtype)",
    )
    # model
    p.add_argument(
        "--classes",
        dest="model.classes",
        type=_csv,
        help="comma-separated class names (default benign,malignant)",
    )
    p.add_argument(
        "--malignant-classes",
        dest="model.malignant_classes",
        type=_csv,
        help="comma-separated classes that count as cancer",
    )
    p.add_argument(
        "--weights",
        dest="model.weights",
        help="local pretrained weights (ImageNet 2D state dict, pytorchvideo "
        "Kinetics I3D, or a saved TimeSformer); default random init",
    )
    p.add_argument(
        "--weights-description",
        dest="model.weights_description",
        help="what the weights are (recorded in the checkpoint)",
    )
    p.add_argument(
        "--backbone",
        help="2D backbone for static2d/pca-svm: resnet18|resnet50|"
        "densenet121|mobilenet_v2|googlenet",
    )
    p.add_argument("--i3d-width", dest="model.i3d.width", type=int)
    # clips
    p.add_argument("--crop-size", dest="clips.crop_size", type=int)
    p.add_argument("--clip-length", dest="clips.length", type=int)
    p.add_argument("--clip-stride", dest="clips.stride", type=int)
    p.add_argument("--temporal-step", dest="clips.temporal_step", type=int)
    p.add_argument("--target-fps", dest="clips.target_fps", type=finite_float)
    p.add_argument("--margin", dest="clips.margin", type=finite_float)
    # training
    p.add_argument("--epochs", dest="train.epochs", type=int)
    p.add_argument("--batch-size", dest="train.batch_size", type=int)
    p.add_argument("--lr", dest="train.lr", type=finite_float)
    p.add_argument(
        "--class-balance", dest="train.class_balance", choices=["loss", "sampler", "none"]
    )
    p.add_argument("--val-fraction", dest="train.val_fraction", type=finite_float)
    p.add_argument("--max-clips-per-video", dest="train.max_clips_per_video", type=int)
    p.add_argument("--max-steps-per-epoch", dest="train.max_steps_per_epoch", type=int)
    p.add_argument("--seed", dest="train.seed", type=int)
    p.add_argument("--device", dest="train.device", help="auto|cpu|cuda|cuda:N")
    p.add_argument("--threads", dest="train.num_threads", type=int, help="torch CPU threads")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    for action in p._actions:  # readable metavars for the dotted config destinations
        if "." in action.dest and action.metavar is None and action.choices is None:
            action.metavar = action.dest.rsplit(".", 1)[-1].upper()
    p.set_defaults(func=_train)

    ev = groups["eval"].add_parser(
        "classifier",
        help="video-level scores and AUC of a classifier checkpoint on a dataset (split)",
        description="Cut clips from each video's ground-truth boxes, score them, and write one "
        "row per video (id, model, truth, score = mean clip P(malignant), n_clips). The CSV "
        "feeds `sonorisk eval report` (several models side by side: AUC with CIs, DeLong).",
    )
    ev.add_argument("--data", required=True, help="dataset folder (videos.csv + annotations.json)")
    ev.add_argument(
        "--checkpoint",
        required=True,
        help="classifier checkpoint (.pt or .safetensors), or a model bundle "
        "NAME[@VERSION] or folder (its classifier)",
    )
    ev.add_argument("--split-file", help="splits CSV (`sonorisk dataset split`)")
    ev.add_argument("--split", default="test", help="side of --split-file to score (default test)")
    ev.add_argument("--name", help="model name in the table (default: checkpoint folder name)")
    ev.add_argument("--label-field", default="auto", choices=["auto", "pathology", "subtype"])
    ev.add_argument(
        "--pattern",
        choices=["key_frame", "two_key_frames", "all_frames"],
        help="static2d only: the paper's input patterns (default: mean of clips)",
    )
    ev.add_argument("--batch-size", type=positive_int, default=16)
    ev.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads")
    ev.add_argument(
        "--out",
        required=True,
        help="per-video CSV to write (appends other models' "
        "rows kept: rows of the same model name are replaced)",
    )
    ev.set_defaults(func=_eval)


def _eval(args: argparse.Namespace) -> int:
    from pathlib import Path

    import pandas as pd

    from sonorisk.atomic import atomic_write_text
    from sonorisk.data.splits import read_split_ids
    from sonorisk.models.resolve import resolve_model_file
    from sonorisk.video_classifier.evaluate import evaluate_checkpoint

    if args.threads:
        set_torch_threads(args.threads)
    args.checkpoint = str(resolve_model_file(args.checkpoint, "classifier"))
    ids = read_split_ids(args.split_file, args.split) if args.split_file else None
    table, summary = evaluate_checkpoint(
        args.checkpoint, args.data, ids, args.name, args.label_field, args.batch_size, args.pattern
    )
    out = Path(args.out)
    if out.is_file():  # one table for all models: replace this model's rows, keep the rest
        old = pd.read_csv(out, dtype={"id": str, "model": str})
        table = pd.concat([old[old["model"] != summary["model"]], table], ignore_index=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(table.to_csv(index=False), out)
    summary["skipped"] = len(summary["skipped"])
    print(json.dumps(summary, indent=2, default=str))
    return 0


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    out = {k: v for k, v in vars(args).items() if "." in k and v is not None}
    if args.backbone is not None:
        out["model.static2d.backbone"] = args.backbone
        out["model.pca_svm.backbone"] = args.backbone
    return out


def _train(args: argparse.Namespace) -> int:
    from sonorisk.config import load_config
    from sonorisk.video_classifier.config import ClassifierConfig
    from sonorisk.video_classifier.train import train_from_dataset

    cfg = load_config(ClassifierConfig, args.config, _overrides(args))
    out = args.out or f"runs/classifier-{cfg.model.kind}"
    result = train_from_dataset(
        args.data,
        cfg,
        out,
        resume=args.resume,
        split_file=args.split_file,
        label_field=args.label_field,
        progress=not args.no_progress,
    )
    last = result.history[-1] if result.history else {}
    summary = {
        "kind": result.model.kind,
        "last_checkpoint": str(result.last_checkpoint),
        "best_checkpoint": str(result.best_checkpoint),
        "epochs": len(result.history),
        "val": last.get("val"),
        "weights": result.model.provenance.get("init"),
    }
    print(json.dumps(summary, indent=2, default=str))
    return 0
