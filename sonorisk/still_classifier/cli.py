"""Verbs of sonorisk.still_classifier: ``train still-classifier`` and
``eval still-classifier``."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from sonorisk.cli_args import finite_float, positive_int
from sonorisk.detector.cli import _overrides  # the dotted config keys of the flags set

BUSI_DESCRIPTION = (
    "BUSI (Baheya Hospital, Cairo; GE LOGIQ E9), the project's development "
    "copy: lesion crops (boxes of manifest.csv) of the benign and malignant "
    "stills of the training groups (held-out groups never read)"
)
PHANTOM_DESCRIPTION = (
    "procedural breast phantom stills (sonorisk.data.phantom) with "
    "subtypes: simulated data for testing the subtype head, not patients"
)


def register(groups: dict[str, argparse._SubParsersAction]) -> None:
    train = groups["train"].add_parser(
        "still-classifier",
        help="train the 2D still classifier (lesion crops of stills)",
        description="Train the 2D still classifier on lesion crops of BUSI stills of the "
        "training groups (or phantom stills, for the subtype head). Research use "
        "only.",
    )
    src = train.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", help="BUSI-style folder (manifest.csv with boxes and groups)")
    src.add_argument(
        "--phantom",
        type=positive_int,
        metavar="N",
        help="N phantom stills with subtypes instead (simulated; tests, demos)",
    )
    train.add_argument(
        "--config", help="still-classifier YAML (configs/release/still-classifier.yaml)"
    )
    train.add_argument(
        "--detector",
        help="the detector whose trunk it builds on: a checkpoint "
        "file, or a bundle NAME|DIR (default: the default "
        "bundle's)",
    )
    train.add_argument("--out", dest="train.out_dir", help="output folder")
    train.add_argument(
        "--heldout-groups",
        dest="train.heldout_groups",
        help="groups never trained on (a file, one id a line)",
    )
    train.add_argument(
        "--backbone",
        dest="model.backbone",
        help="detector (the detector's frozen trunk), package (ImageNet) or random",
    )
    train.add_argument("--epochs", dest="train.epochs", type=positive_int)
    train.add_argument("--lr", dest="train.lr", type=finite_float)
    train.add_argument("--threads", dest="train.num_threads", type=positive_int)
    train.set_defaults(func=_train)

    ev = groups["eval"].add_parser(
        "still-classifier",
        help="lesion-level AUC (DeLong CI) of the still classifier",
        description="Score the lesion crops (ground-truth boxes) of a BUSI-style folder's "
        "benign and malignant stills with a still classifier.",
    )
    ev.add_argument(
        "--checkpoint",
        required=True,
        help="still_classifier.safetensors, or a bundle NAME[@VERSION] or folder",
    )
    src = ev.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", help="BUSI-style folder")
    src.add_argument(
        "--phantom",
        type=positive_int,
        metavar="N",
        help="N phantom stills with subtypes (simulated; --seed: other than training's)",
    )
    ev.add_argument("--seed", type=int, default=1, help="phantom seed (training uses 0)")
    ev.add_argument(
        "--groups",
        help="only these groups (a file, one id a line; e.g. configs/release/heldout_groups.txt)",
    )
    ev.add_argument("--detector", help="the detector it builds on (default: beside the file)")
    ev.add_argument("--json", help="also write the results (and every prediction) here")
    ev.add_argument("--threads", type=positive_int, default=1, help="torch CPU threads")
    ev.set_defaults(func=_eval)


def _train(args: argparse.Namespace) -> int:
    from sonorisk.config import load_config
    from sonorisk.data.splits import read_id_lines
    from sonorisk.models.resolve import resolve_model_file, resolve_models
    from sonorisk.still_classifier.config import StillClassifierConfig
    from sonorisk.still_classifier.data import busi_crops, phantom_crops
    from sonorisk.still_classifier.train import train_still_classifier

    cfg = load_config(StillClassifierConfig, args.config, _overrides(args))
    detector = None
    if cfg.model.backbone == "detector":  # a file, a bundle, or the default bundle's
        detector = (
            resolve_model_file(args.detector, "detector")
            if args.detector
            else resolve_models(None).detector
        )
    if args.phantom:
        if not cfg.model.subtypes:  # every subtype the phantom draws
            from sonorisk.data.phantom import BENIGN_SUBTYPES, MALIGNANT_SUBTYPES

            cfg.model.subtypes = [*BENIGN_SUBTYPES, *MALIGNANT_SUBTYPES]
        crops = phantom_crops(args.phantom, seed=cfg.train.seed)
        data = {"description": PHANTOM_DESCRIPTION, "demonstration": True, "n_stills": args.phantom}
    else:
        held = read_id_lines(cfg.train.heldout_groups)
        crops = busi_crops(args.data, held, "train")
        data = {
            "description": BUSI_DESCRIPTION,
            "source": args.data,
            "heldout_groups": cfg.train.heldout_groups,
            "licence": "CC0 1.0",
        }
    command = "sonorisk " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    report = train_still_classifier(
        cfg,
        crops,
        detector,
        cfg.train.out_dir,
        data,
        progress=lambda m: print(m, file=sys.stderr),
        command=command,
    )
    print(json.dumps(report, indent=2, default=str))
    return 0


def _eval(args: argparse.Namespace) -> int:
    from sonorisk.data.splits import read_id_lines
    from sonorisk.models.resolve import resolve_model_file
    from sonorisk.still_classifier import load_still_classifier
    from sonorisk.still_classifier.data import busi_crops
    from sonorisk.still_classifier.train import evaluate_still
    from sonorisk.threads import set_torch_threads

    set_torch_threads(args.threads)
    path = resolve_model_file(args.checkpoint, "still_classifier")
    classifier = load_still_classifier(path, detector=args.detector)
    if args.phantom:
        from sonorisk.still_classifier.data import phantom_crops

        crops = phantom_crops(args.phantom, seed=args.seed)
    elif args.groups:
        crops = busi_crops(args.data, read_id_lines(args.groups), "heldout")
    else:
        crops = busi_crops(args.data, [], "train")  # no group left out: every lesion
    result = evaluate_still(classifier, crops)
    result = {"checkpoint": str(path), "data": args.data, "groups": args.groups, **result}
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    shown = {k: v for k, v in result.items() if k != "predictions"}
    print(json.dumps(shown, indent=2))
    return 0
