"""The dataset format: typed records, constants, and a writer for dataset folders.

A dataset folder holds ``videos/<video_id>.<ext>`` (or ``images/<id>.png`` for
imported still sets), ``annotations.json`` (COCO, one image entry per frame)
and a per-video table ``videos.csv`` (or ``videos.parquet``). See
docs/dataset-format.md for the full description.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from sonorisk.records import Box

FORMAT_VERSION = 1
ANNOTATIONS_FILE = "annotations.json"
TABLE_CSV = "videos.csv"
TABLE_PARQUET = "videos.parquet"
PATHOLOGIES = ("benign", "malignant", "normal")
LESION_CATEGORY = {"id": 1, "name": "lesion"}

# Columns of the per-video table, in the order they are written. Columns beyond
# these are kept (e.g. the phantom's BI-RADS descriptors) and reach
# ``VideoRecord.extra``.
TABLE_COLUMNS = (
    "video_id",
    "file",
    "pathology",
    "subtype",
    "birads",
    "age",
    "lesion_size_mm",
    "site",
    "vendor",
    "patient_id",
    "fps",
    "n_frames",
    "width",
    "height",
    "n_lesions",
    "source_id",
    "synthetic",
    "generator",
    "seed",
)
REQUIRED_COLUMNS = ("video_id", "file", "pathology", "patient_id", "n_frames")


@dataclass(frozen=True)
class VideoRecord:
    """One row of the per-video table, typed."""

    video_id: str
    file: str
    pathology: str
    patient_id: str
    n_frames: int
    fps: float | None = None
    width: int | None = None
    height: int | None = None
    subtype: str | None = None
    birads: str | None = None
    age: float | None = None
    lesion_size_mm: float | None = None
    site: str | None = None
    vendor: str | None = None
    n_lesions: int | None = None
    source_id: str | None = None
    synthetic: bool = False
    generator: str | None = None
    seed: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_still(self) -> bool:
        return Path(self.file).suffix.lower() in IMAGE_SUFFIXES


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


@dataclass(frozen=True)
class FrameAnnotation:
    """One frame of one video with its lesion boxes (xyxy, frame pixels)."""

    video_id: str
    frame_index: int
    file: str
    width: int
    height: int
    boxes: list[Box]
    lesion_ids: list[int]
    image_id: int = 0


def box_xywh(box: Box) -> list[float]:
    x1, y1, x2, y2 = box
    return [float(x1), float(y1), float(x2 - x1), float(y2 - y1)]


def _clean(value: Any) -> Any:
    """JSON/CSV-friendly scalar: NaN -> None, numpy scalars -> Python."""
    if value is None:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


class DatasetWriter:
    """Collects videos, frames and boxes, then writes annotations.json + videos.csv.

    Frames without boxes still get an image entry: they are explicit negatives.
    """

    def __init__(self, root: str | Path, description: str = "") -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.description = description
        self._rows: list[dict[str, Any]] = []
        self._videos: list[dict[str, Any]] = []
        self._images: list[dict[str, Any]] = []
        self._annotations: list[dict[str, Any]] = []
        self._next_lesion_id = 1

    def new_lesion_id(self) -> int:
        """A dataset-wide unique lesion id (the ground-truth track id)."""
        lesion_id = self._next_lesion_id
        self._next_lesion_id += 1
        return lesion_id

    def add_video(
        self,
        row: dict[str, Any],
        frames: list[tuple[list[Box], list[int]]],
        width: int,
        height: int,
        areas: list[list[float]] | None = None,
    ) -> None:
        """Add one video (or still: one frame) and its per-frame boxes.

        ``row`` holds the table columns (video_id, file, pathology, ...);
        ``frames[i]`` is (boxes, lesion_ids) of frame i; ``areas`` optionally
        gives each box's lesion pixel count (COCO ``area``), else box area.
        """
        video_id = str(row["video_id"])
        row = dict(row)
        row.setdefault("n_frames", len(frames))
        row.setdefault("width", width)
        row.setdefault("height", height)
        row.setdefault("n_lesions", len({lid for _, lids in frames for lid in lids}))
        self._rows.append(row)
        self._videos.append(
            {
                "id": video_id,
                "file_name": row["file"],
                "n_frames": len(frames),
                "fps": _clean(row.get("fps")),
                "width": width,
                "height": height,
            }
        )
        for index, (boxes, lesion_ids) in enumerate(frames):
            image_id = len(self._images) + 1
            self._images.append(
                {
                    "id": image_id,
                    "file_name": row["file"],
                    "video_id": video_id,
                    "frame_index": index,
                    "width": width,
                    "height": height,
                }
            )
            for j, (box, lesion_id) in enumerate(zip(boxes, lesion_ids, strict=True)):
                xywh = box_xywh(box)
                area = areas[index][j] if areas is not None else xywh[2] * xywh[3]
                self._annotations.append(
                    {
                        "id": len(self._annotations) + 1,
                        "image_id": image_id,
                        "bbox": [round(v, 3) for v in xywh],
                        "category_id": LESION_CATEGORY["id"],
                        "area": float(area),
                        "iscrowd": 0,
                        "lesion_id": int(lesion_id),
                    }
                )

    def write(self, table_format: str = "csv") -> Path:
        """Write annotations.json and the table; returns the dataset root."""
        coco = {
            "info": {
                "description": self.description,
                "format": "sonorisk-video-coco",
                "version": FORMAT_VERSION,
            },
            "images": self._images,
            "annotations": self._annotations,
            "categories": [LESION_CATEGORY],
            "videos": self._videos,
        }
        (self.root / ANNOTATIONS_FILE).write_text(json.dumps(coco, separators=(",", ":")))
        table = rows_to_table(self._rows)
        if table_format == "parquet":
            table.to_parquet(self.root / TABLE_PARQUET, index=False)
        elif table_format == "csv":
            table.to_csv(self.root / TABLE_CSV, index=False)
        else:
            raise ValueError(f"unknown table format {table_format!r} (csv or parquet)")
        return self.root


def rows_to_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The per-video table with the standard columns first, extra columns after."""
    table = pd.DataFrame(rows)
    for column in TABLE_COLUMNS:
        if column not in table.columns:
            table[column] = None
    extra = [c for c in table.columns if c not in TABLE_COLUMNS]
    return table[list(TABLE_COLUMNS) + extra]
