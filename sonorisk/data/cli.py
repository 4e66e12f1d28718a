"""Verbs of sonorisk.data: ``sonorisk synth``; ``sonorisk dataset WHAT``.

WHAT: validate, import-stills, split, rescale.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sonorisk.cli_args import finite_float


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be WxH (e.g. 480x360), got {text!r}") from None
    return width, height


def register(groups: dict[str, argparse._SubParsersAction]) -> None:
    root = groups["root"]

    synth = root.add_parser(
        "synth",
        help="synthesize freehand sweep videos (from BUSI-like stills or a phantom)",
        description="Write a dataset folder of synthetic freehand sweeps: AVI videos, COCO "
        "boxes (annotations.json) and a per-video table (videos.csv). Synthetic data: "
        "for developing and testing software, not for clinical claims.",
    )
    source = synth.add_mutually_exclusive_group(required=True)
    source.add_argument("--source", type=Path, help="BUSI-like still folder (with manifest.csv)")
    source.add_argument("--phantom", action="store_true", help="procedural phantom, no input")
    synth.add_argument(
        "--config", type=Path, help="YAML of SynthConfig keys (flags given here override it)"
    )
    synth.add_argument("--n", type=int, help="number of videos (default 20)")
    synth.add_argument("--out", type=Path, required=True, help="output dataset folder")
    synth.add_argument("--seed", type=int, help="default 0")
    synth.add_argument("--fps", type=int, choices=(30, 50), help="default 30")
    length = synth.add_mutually_exclusive_group()
    length.add_argument("--frames", type=int, help="frames per video (default: 2-5 s at random)")
    length.add_argument("--seconds", type=finite_float, help="seconds per video")
    synth.add_argument("--size", type=_size, help="image size WxH (default 480x360)")
    synth.add_argument(
        "--passes",
        type=int,
        help="passes through the lesion: 1 (default) one sweep; 2 there and back, as a "
        "radiologist returns to a lesion (it leaves the view at each turn)",
    )
    synth.add_argument(
        "--codec", help="mjpeg (default, AVI as scanners export), mpeg4, h264, rawvideo, mpeg2video"
    )
    synth.add_argument(
        "--qscale",
        type=int,
        help="encoder quantiser, 2 (best) to 31 (worst), MJPEG/MPEG-4/MPEG-2 only "
        "(default: the writer's, MJPEG 3)",
    )
    synth.add_argument(
        "--screen-capture",
        choices=("linear", "convex"),
        help="put each frame into a 1920x1080 scanner-like screen",
    )
    synth.add_argument(
        "--contact-sheet",
        action="store_true",
        help="write contact_sheets/<video_id>.png (every k-th frame with boxes)",
    )
    synth.add_argument(
        "--save-masks",
        action="store_true",
        help="write masks/<video_id>.npz (per-frame lesion masks)",
    )
    synth.add_argument("--labels", help="stills: only these labels, comma-separated")
    synth.add_argument("--balanced", action="store_true", help="stills: equal share per label")
    synth.add_argument(
        "--ids",
        type=Path,
        help="stills: use only these still ids (a text file, one id a line, or a "
        "splits CSV with --split)",
    )
    synth.add_argument("--split", help="with --ids SPLITS.csv: the side to use (e.g. train)")
    synth.add_argument(
        "--groups", type=Path, help="stills: use only these near-duplicate groups (one a line)"
    )
    synth.add_argument("--table-format", choices=("csv", "parquet"))
    synth.set_defaults(func=_synth)

    dataset = root.add_parser("dataset", help="validate, import, split and rescale datasets")
    verbs = dataset.add_subparsers(dest="dataset_what", metavar="WHAT", required=True)

    validate = verbs.add_parser("validate", help="check a dataset folder; list every problem")
    validate.add_argument("path", type=Path)
    validate.add_argument(
        "--no-probe",
        action="store_true",
        help="skip opening each video to check its size and frame count",
    )
    validate.set_defaults(func=_validate)

    importer = verbs.add_parser(
        "import-stills", help="import a BUSI-like still folder as one-frame items"
    )
    importer.add_argument("source", type=Path)
    importer.add_argument("--out", type=Path, required=True)
    importer.add_argument("--no-masks", action="store_true", help="do not copy mask images")
    importer.set_defaults(func=_import_stills)

    uncaliper = verbs.add_parser(
        "uncaliper",
        help="copy a BUSI-like still folder with burned-in calipers removed",
        description="Write a copy of a BUSI-like still folder (manifest.csv, <label>/<id>.png "
        "and masks) with the measurement calipers found on each still ('+' marks, their "
        "digits and dotted lines) inpainted from the tissue around them, so that a model "
        "trained on it sees lesions without calipers, as in cine filmed while scanning. "
        "calipers.csv in the output lists what was found on each still.",
    )
    uncaliper.add_argument("source", type=Path, help="BUSI-like still folder")
    uncaliper.add_argument("--out", type=Path, required=True, help="output still folder")
    uncaliper.add_argument(
        "--overwrite", action="store_true", help="write over a still folder already in --out"
    )
    uncaliper.add_argument("--no-progress", action="store_true")
    uncaliper.set_defaults(func=_uncaliper)

    split = verbs.add_parser("split", help="patient- (or group-) level stratified split")
    split.add_argument("path", type=Path, help="dataset folder (or a BUSI-like still folder)")
    split.add_argument("--by", choices=("patient", "group"), default="patient")
    split.add_argument("--val", type=finite_float, default=0.2)
    split.add_argument("--test", type=finite_float, default=0.2)
    split.add_argument("--seed", type=int, default=0)
    split.add_argument("--out", type=Path, required=True, help="splits CSV to write")
    split.set_defaults(func=_split)

    rescale = verbs.add_parser(
        "rescale",
        help="copy a dataset with every video scaled after rendering (boxes alike)",
        description="Write a copy of a dataset folder with every video decoded, resized and "
        "encoded again, as a clinical export at a lower resolution would be; boxes are scaled "
        "alike. For measuring how models hold up on video scaled down after it was made.",
    )
    rescale.add_argument("--data", type=Path, required=True, help="source dataset folder")
    how = rescale.add_mutually_exclusive_group(required=True)
    how.add_argument("--scale", type=finite_float, help="linear factor, > 0 and <= 4 (e.g. 0.5)")
    how.add_argument("--size", type=_size, help="resize every video to WxH (e.g. 320x240)")
    rescale.add_argument(
        "--interpolation", choices=("bilinear", "area"), default="bilinear", help="default bilinear"
    )
    rescale.add_argument(
        "--codec",
        help="encode every video with this codec (mjpeg, mpeg4, h264, rawvideo, "
        "mpeg2video; default: each video's own, from the table): an export in "
        "another format",
    )
    rescale.add_argument(
        "--qscale",
        type=int,
        help="encoder quantiser, 2 (best) to 31 (worst), MJPEG/MPEG-4/MPEG-2 only "
        "(default: the writer's, MJPEG 3): a more compressed export",
    )
    rescale.add_argument("--out", type=Path, required=True, help="output dataset folder")
    rescale.add_argument(
        "--overwrite", action="store_true", help="write over a dataset already in --out"
    )
    rescale.add_argument("--no-progress", action="store_true")
    rescale.set_defaults(func=_rescale)


def _read_ids(path: Path, split: str | None) -> list[str]:
    from sonorisk.data.splits import read_id_lines, read_split_ids

    if split is not None:
        return read_split_ids(path, split)
    return read_id_lines(path)


def _synth(args: argparse.Namespace) -> int:
    from sonorisk.config import load_config
    from sonorisk.data.synth import SynthConfig, synthesize_from_stills, synthesize_phantom

    overrides = {
        "n": args.n,
        "seed": args.seed,
        "fps": args.fps,
        "frames": args.frames,
        "seconds": args.seconds,
        "size": list(args.size) if args.size else None,
        "codec": args.codec,
        "qscale": args.qscale,
        "sweep.motion.passes": args.passes,
        "screen_capture": args.screen_capture,
        # Store-true flags only override when given.
        "contact_sheet": True if args.contact_sheet else None,
        "save_masks": True if args.save_masks else None,
        "table_format": args.table_format,
    }
    config = load_config(SynthConfig, args.config, overrides)
    if args.phantom:
        out = synthesize_phantom(config.n, args.out, config=config, progress=True)
    else:
        ids = _read_ids(args.ids, args.split) if args.ids else None
        groups = _read_ids(args.groups, None) if args.groups else None
        labels = [v.strip() for v in args.labels.split(",")] if args.labels else None
        out = synthesize_from_stills(
            args.source,
            config.n,
            args.out,
            config=config,
            ids=ids,
            groups=groups,
            labels=labels,
            balanced=args.balanced,
            progress=True,
        )
    print(f"wrote {config.n} synthetic video(s) to {out}")
    return 0


def _validate(args: argparse.Namespace) -> int:
    from sonorisk.data.dataset import load_dataset, validate_dataset

    problems = validate_dataset(args.path, probe=not args.no_probe)
    if problems:
        for problem in problems:
            print(f"invalid: {problem}", file=sys.stderr)
        print(f"{args.path}: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    dataset = load_dataset(args.path)
    frames = dataset.frames()
    n_boxes = sum(len(f.boxes) for f in frames)
    labels = dataset.table["pathology"].value_counts().to_dict()
    print(
        f"{args.path}: valid: {len(dataset)} video(s), {len(frames)} frame(s), "
        f"{n_boxes} box(es), labels {labels}"
    )
    return 0


def _import_stills(args: argparse.Namespace) -> int:
    from sonorisk.data.busi import import_stills

    out = import_stills(args.source, args.out, copy_masks=not args.no_masks)
    print(f"imported stills from {args.source} into {out}")
    return 0


def _uncaliper(args: argparse.Namespace) -> int:
    from sonorisk.data.calipers import REPORT, uncaliper_still_folder

    report = uncaliper_still_folder(
        args.source, args.out, overwrite=args.overwrite, progress=not args.no_progress
    )
    found = report[report.n_marks > 0]
    by_label = found.groupby("label").size().to_dict()
    print(
        f"calipers found on {len(found)} of {len(report)} stills "
        f"({', '.join(f'{k} {v}' for k, v in sorted(by_label.items())) or 'none'}); "
        f"wrote {args.out} (what was found: {args.out / REPORT})"
    )
    return 0


def _split(args: argparse.Namespace) -> int:
    from sonorisk.data.splits import group_split, patient_split

    if (args.path / "manifest.csv").is_file() and not (args.path / "annotations.json").exists():
        from sonorisk.data.busi import manifest_table, read_manifest

        table = manifest_table(read_manifest(args.path))
        result = group_split(table, val=args.val, test=args.test, seed=args.seed)
    else:
        from sonorisk.data.dataset import load_dataset

        dataset = load_dataset(args.path)
        table = dataset.table
        if args.by == "group":
            if "group" not in table.columns:
                from sonorisk.errors import DatasetError

                raise DatasetError(args.path, "--by group needs a 'group' column in the table")
            result = group_split(
                table, "group", "pathology", "video_id", args.val, args.test, args.seed
            )
        else:
            result = patient_split(table, args.val, args.test, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result.to_csv(args.out, index=False)
    counts = result.groupby(["split", result.columns[2]]).size().unstack(fill_value=0)
    print(counts.to_string())
    print(f"wrote {args.out}")
    return 0


def _rescale(args: argparse.Namespace) -> int:
    from sonorisk.data.rescale import rescale_dataset

    out = rescale_dataset(
        args.data,
        args.out,
        scale=args.scale,
        size=args.size,
        interpolation=args.interpolation,
        codec=args.codec,
        qscale=args.qscale,
        overwrite=args.overwrite,
        progress=not args.no_progress,
    )
    print(out)
    return 0
