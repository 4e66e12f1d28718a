"""Hard examples for the detector: the frames the pipeline itself got wrong.

A ``sonorisk batch`` run on annotated sweeps (every track scored) shows where
the detector fails as the pipeline uses it:

* ``false_track``: frames carrying a box of a track that overlaps no
  ground-truth box on any frame (a shadow, a lobule, a rib followed as a lesion);
* ``missed``: annotated lesion frames that no reported box overlaps (IoU >= 0.3),
  where the video got no lesion or the wrong one.

The frames are written as a CSV (``dataset,video_id,frame,reason``), and
``train.hard_examples`` draws them beside the ordinary samples with
``train.hard_example_share`` of each epoch, their ground truth as targets:
false tracks teach background, misses teach the lesion.

    python -m sonorisk.detector.hard_examples --run BATCH_JSON_DIR DATASET \\
        [--run ...] [--groups groups.txt] --out hard.csv

Use training groups only: a frame of a held-out group would leak into training.
"""

from __future__ import annotations

import argparse
import csv
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from sonorisk.errors import DatasetError
from sonorisk.tracking.postprocess import box_iou
from sonorisk.video_classifier.lesion_check import overlaps_truth

COLUMNS = ("dataset", "video_id", "frame", "reason")
REASONS = ("false_track", "missed")


@dataclass(frozen=True)
class HardFrame:
    dataset: str  # dataset folder the frame belongs to
    video_id: str
    frame: int
    reason: str  # one of REASONS

    @property
    def key(self) -> str:
        # The key the detector's samples carry (sonorisk.detector.samples).
        return f"{self.video_id}:{self.frame}"


Box = tuple[float, float, float, float]


def hard_frames_of(
    document: dict,
    truth: Mapping[int, Sequence[Box]],
    dataset: str,
    video_id: str,
    min_iou: float = 0.3,
) -> list[HardFrame]:
    """The false-track frames and missed lesion frames of one scored video."""
    found: dict[int, list[Box]] = {}
    false_frames: set[int] = set()
    for lesion in document.get("lesions", []):
        boxes = {int(b["frame"]): tuple(b["box"]) for b in lesion["boxes"]}
        for i, box in boxes.items():
            found.setdefault(i, []).append(box)
        if overlaps_truth(boxes, truth, min_iou) == 0.0:
            false_frames.update(boxes)
    missed = {
        i
        for i, lesions in truth.items()
        if lesions and not any(box_iou(t, b) >= min_iou for t in lesions for b in found.get(i, ()))
    }
    out = [HardFrame(dataset, video_id, i, "false_track") for i in sorted(false_frames)]
    out += [HardFrame(dataset, video_id, i, "missed") for i in sorted(missed - false_frames)]
    return out


def mine(batch_dir: Path, dataset_root: Path, groups: set[str] | None = None) -> list[HardFrame]:
    """Hard frames of every video of ``dataset_root`` that ``batch_dir`` scored."""
    from sonorisk.data import load_dataset

    dataset = load_dataset(dataset_root)
    out: list[HardFrame] = []
    for video_id in dataset.video_ids:
        record = dataset.video(video_id)
        if groups is not None and str(record.patient_id) not in groups:
            continue
        path = batch_dir / f"{video_id}.json"
        if not path.exists():
            continue
        document = json.loads(path.read_text())
        out += hard_frames_of(
            document, dataset.boxes_for(video_id), str(dataset_root), str(video_id)
        )
    return out


def write_csv(frames: Sequence[HardFrame], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for f in frames:
            writer.writerow([f.dataset, f.video_id, f.frame, f.reason])


def read_csv(path: str | Path) -> list[HardFrame]:
    path = Path(path)
    if not path.is_file():
        raise DatasetError(path, "train.hard_examples: file not found")
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if not set(COLUMNS) <= set(reader.fieldnames or []):
            raise DatasetError(path, f"needs columns {list(COLUMNS)}, has {reader.fieldnames}")
        out = []
        for line, row in enumerate(reader, start=2):
            if row["reason"] not in REASONS:
                raise DatasetError(
                    f"{path}:{line}", f"reason {row['reason']!r} is not one of {list(REASONS)}"
                )
            try:
                frame = int(row["frame"])
            except ValueError:
                raise DatasetError(
                    f"{path}:{line}", f"frame {row['frame']!r} is not a number"
                ) from None
            # Dataset folders as written: absolute, or relative to where training runs.
            out.append(HardFrame(row["dataset"], row["video_id"], frame, row["reason"]))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sonorisk.detector.hard_examples", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--run",
        nargs=2,
        action="append",
        required=True,
        metavar=("BATCH_JSON_DIR", "DATASET"),
        help="a batch run's JSON folder and the dataset it scored",
    )
    parser.add_argument("--groups", help="only videos of these groups (one id a line)")
    parser.add_argument("--out", required=True, help="CSV to write")
    args = parser.parse_args(argv)
    groups = None
    if args.groups:
        from sonorisk.data.splits import read_id_lines

        groups = set(read_id_lines(args.groups))
    frames: list[HardFrame] = []
    for batch_dir, dataset in args.run:
        frames += mine(Path(batch_dir), Path(dataset), groups)
    write_csv(frames, Path(args.out))
    counts = {r: sum(f.reason == r for f in frames) for r in REASONS}
    videos = len({(f.dataset, f.video_id) for f in frames})
    print(f"{len(frames)} hard frames from {videos} videos: {counts} -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
