"""Still-image sets laid out like BUSI: reading, sampling, importing.

Layout (../shared/data/busi): ``{benign,malignant,normal}/<id>.png`` with
``<id>_mask.png``, ``<id>_mask_1.png``, ... (one mask per lesion), and
``manifest.csv`` with columns id, label, width, height, n_lesions, boxes
(``x1 y1 x2 y2`` per lesion, ``;`` between lesions; x2/y2 exclusive) and group
(near-duplicate group). The importer turns each still into a one-frame item of
the dataset format, with ``patient_id`` = group so patient-level splits keep
near-duplicates together.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from sonorisk.data.format import PATHOLOGIES, DatasetWriter
from sonorisk.errors import DatasetError
from sonorisk.records import Box

MANIFEST = "manifest.csv"
MANIFEST_COLUMNS = ("id", "label", "width", "height", "n_lesions", "boxes", "group")
BUSI_VENDOR = "GE LOGIQ E9 (BUSI)"
BUSI_SITE = "Baheya Hospital, Cairo (BUSI)"


@dataclass(frozen=True)
class Still:
    """One still image of a BUSI-like set."""

    still_id: str
    label: str
    width: int
    height: int
    boxes: tuple[Box, ...]
    group: str
    image_path: Path
    mask_paths: tuple[Path, ...]

    def read_gray(self) -> np.ndarray:
        image = cv2.imread(str(self.image_path), cv2.IMREAD_GRAYSCALE)
        if image is None:
            raise DatasetError(self.image_path, "not a readable image")
        return image

    def read_masks(self) -> list[np.ndarray]:
        """One boolean HxW mask per lesion, in lesion order (mask, mask_1, ...)."""
        masks = []
        for path in self.mask_paths:
            mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            if mask is None:
                raise DatasetError(path, "not a readable mask image")
            if mask.shape != (self.height, self.width):
                raise DatasetError(
                    path,
                    f"mask is {mask.shape[1]}x{mask.shape[0]}, image is {self.width}x{self.height}",
                )
            masks.append(mask > 127)
        return masks


def _parse_boxes(text: object, where: str) -> tuple[Box, ...]:
    if not isinstance(text, str) or not text.strip():
        return ()
    boxes = []
    for part in text.split(";"):
        values = part.split()
        if len(values) != 4:
            raise DatasetError(where, f"box {part!r} is not 'x1 y1 x2 y2'")
        x1, y1, x2, y2 = (float(v) for v in values)
        boxes.append((x1, y1, x2, y2))
    return tuple(boxes)


def _mask_order(path: Path) -> int:
    match = re.search(r"_mask(?:_(\d+))?\.png$", path.name)
    return int(match.group(1)) if match and match.group(1) else 0


def read_manifest(source_dir: str | Path) -> list[Still]:
    """All stills of a BUSI-like folder, checked against the files on disk."""
    source_dir = Path(source_dir)
    manifest_path = source_dir / MANIFEST
    if not manifest_path.is_file():
        raise DatasetError(manifest_path, "manifest missing (expected a BUSI-like folder)")
    table = pd.read_csv(manifest_path, dtype={"id": str, "group": str, "boxes": str})
    missing = [c for c in MANIFEST_COLUMNS if c not in table.columns]
    if missing:
        raise DatasetError(manifest_path, f"missing column(s) {missing}")
    listing: dict[str, list[str]] = {}
    stills = []
    for position, row in enumerate(table.to_dict("records")):
        where = f"{manifest_path} row {position + 2}"
        still_id, label = str(row["id"]), str(row["label"]).strip().lower()
        if label not in PATHOLOGIES:
            raise DatasetError(where, f"unknown label {row['label']!r}")
        image_path = source_dir / label / f"{still_id}.png"
        if not image_path.is_file():
            raise DatasetError(image_path, f"missing file (still {still_id!r} of the manifest)")
        if label not in listing:
            listing[label] = sorted(p.name for p in image_path.parent.iterdir())
        pattern = re.compile(re.escape(still_id) + r"_mask(?:_\d+)?\.png$")
        masks = sorted(
            (image_path.parent / name for name in listing[label] if pattern.match(name)),
            key=_mask_order,
        )
        boxes = _parse_boxes(row["boxes"], where)
        if len(masks) != int(row["n_lesions"]) or len(boxes) != int(row["n_lesions"]):
            raise DatasetError(
                where,
                f"n_lesions={row['n_lesions']} but {len(masks)} mask file(s) "
                f"and {len(boxes)} box(es)",
            )
        group = row["group"] if isinstance(row["group"], str) and row["group"] else still_id
        stills.append(
            Still(
                still_id,
                label,
                int(row["width"]),
                int(row["height"]),
                boxes,
                group,
                image_path,
                tuple(masks),
            )
        )
    if not stills:
        raise DatasetError(manifest_path, "manifest lists no stills")
    return stills


def manifest_table(stills: Sequence[Still]) -> pd.DataFrame:
    """The stills as a table (id, label, group, n_lesions) for splitting."""
    return pd.DataFrame(
        {
            "id": [s.still_id for s in stills],
            "label": [s.label for s in stills],
            "group": [s.group for s in stills],
            "n_lesions": [len(s.boxes) for s in stills],
        }
    )


def sample_stratified(
    stills: Sequence[Still],
    n: int,
    rng: np.random.Generator,
    labels: Sequence[str] | None = None,
    balanced: bool = False,
) -> list[Still]:
    """``n`` stills stratified by label.

    Each label gets a share proportional to its count in ``stills`` (or an equal
    share when ``balanced``), rounded by largest remainder. Within a label,
    stills are drawn without replacement, cycling through a fresh permutation
    when more are needed than exist. The result is ordered by label, then draw.
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    by_label: dict[str, list[Still]] = {}
    for still in stills:
        if labels is None or still.label in labels:
            by_label.setdefault(still.label, []).append(still)
    if not by_label:
        raise DatasetError("stills", f"no stills with labels {list(labels or [])}")
    names = sorted(by_label)
    weights = np.array([1.0 if balanced else len(by_label[k]) for k in names])
    exact = n * weights / weights.sum()
    counts = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - counts), kind="stable")[: n - counts.sum()]:
        counts[i] += 1
    chosen: list[Still] = []
    for name, count in zip(names, counts, strict=True):
        pool = sorted(by_label[name], key=lambda s: s.still_id)
        drawn: list[Still] = []
        while len(drawn) < count:
            drawn.extend(pool[i] for i in rng.permutation(len(pool)))
        chosen.extend(drawn[:count])
    return chosen


def import_stills(
    source_dir: str | Path,
    out: str | Path,
    ids: Sequence[str] | None = None,
    copy_masks: bool = True,
) -> Path:
    """Write a BUSI-like still set as a dataset folder of one-frame items."""
    stills = read_manifest(source_dir)
    if ids is not None:
        wanted = set(ids)
        unknown = wanted - {s.still_id for s in stills}
        if unknown:
            raise DatasetError(source_dir, f"unknown still id(s) {sorted(unknown)[:5]}")
        stills = [s for s in stills if s.still_id in wanted]
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    writer = DatasetWriter(out, description=f"still images imported from {source_dir}")
    for still in stills:
        file = f"images/{still.still_id}.png"
        shutil.copyfile(still.image_path, out / file)
        if copy_masks and still.mask_paths:
            (out / "masks").mkdir(exist_ok=True)
            for mask_path in still.mask_paths:
                shutil.copyfile(mask_path, out / "masks" / mask_path.name)
        lesion_ids = [writer.new_lesion_id() for _ in still.boxes]
        row = {
            "video_id": still.still_id,
            "file": file,
            "pathology": still.label,
            "patient_id": still.group,
            "n_frames": 1,
            "fps": None,
            "site": BUSI_SITE,
            "vendor": BUSI_VENDOR,
            "source_id": still.still_id,
            "synthetic": False,
            "generator": "import-stills",
            "group": still.group,
        }
        writer.add_video(row, [(list(still.boxes), lesion_ids)], still.width, still.height)
    return writer.write()
