"""Checking a dataset folder against the format (docs/dataset-format.md).

Each check reports through :class:`Problems`: at the first problem when
strict (``load_dataset``), or every problem (``validate_dataset``). A table row
with a problem is left out, and its frames in the JSON are not reported again.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Container, Iterator
from pathlib import Path
from typing import Any, cast

import pandas as pd

from sonorisk.data.format import (
    LESION_CATEGORY,
    PATHOLOGIES,
    REQUIRED_COLUMNS,
    FrameAnnotation,
    VideoRecord,
)
from sonorisk.data.frames import VideoFrameReader, read_still
from sonorisk.data.parse import (
    finite,
    id_text,
    is_int,
    none_if_nan,
    opt_int,
    opt_str,
    parse_number,
    record_from_row,
    short,
)
from sonorisk.errors import DatasetError
from sonorisk.records import Box

# Boxes may overhang the frame by this many pixels (rounding of float boxes).
BOX_TOLERANCE_PX = 0.5


class Problems:
    """Collects (file, reason) pairs; raises at the first when ``strict``."""

    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self.items: list[DatasetError] = []

    def add(self, source: str | Path, reason: str) -> None:
        error = DatasetError(source, reason)
        if self.strict:
            raise error
        self.items.append(error)


# Numeric columns of the table: (whole numbers only, what a value must be, the test).
_NUMERIC_COLUMNS: dict[str, tuple[bool, str, Callable[[float], bool]]] = {
    "n_frames": (True, "a positive integer", lambda v: v >= 1),
    "width": (True, "a positive integer", lambda v: v >= 1),
    "height": (True, "a positive integer", lambda v: v >= 1),
    "n_lesions": (True, "an integer >= 0", lambda v: v >= 0),
    "seed": (True, "an integer", lambda v: True),
    "fps": (False, "a positive number", lambda v: v > 0),
    "age": (False, "a number >= 0", lambda v: v >= 0),
    "lesion_size_mm": (False, "a number >= 0", lambda v: v >= 0),
}


def _numeric_problems(row: dict[str, Any]) -> list[str]:
    """One line per numeric cell of ``row`` that is not what its column needs (empty: fine)."""
    found = []
    for column, (integer, expected, valid) in _NUMERIC_COLUMNS.items():
        raw = none_if_nan(row.get(column))
        try:
            number = parse_number(raw, integer)
        except ValueError as exc:
            found.append(f"{column} must be {expected}, got {raw!r} ({exc})")
            continue
        if number is not None and not valid(number):
            found.append(f"{column} must be {expected}, got {raw!r}")
    return found


def check_table(
    table: pd.DataFrame, table_path: Path, root: Path, problems: Problems, check_files: bool
) -> list[VideoRecord]:
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        problems.add(table_path, f"missing column(s) {missing}")
        return []
    duplicated = table["video_id"][table["video_id"].duplicated()].tolist()
    if duplicated:
        problems.add(table_path, f"duplicate video id(s) {sorted(set(duplicated))[:5]}")
    records: list[VideoRecord] = []
    for position, row in enumerate(table.to_dict("records")):
        where = f"{table_path} row {position + 2}"  # header is line 1
        video_id = opt_str(row.get("video_id"))
        if video_id is None:
            problems.add(where, "missing video_id")
            continue
        label = opt_str(row.get("pathology"))
        if label is None:
            problems.add(where, f"missing label (pathology) for video {video_id!r}")
            continue
        if label.lower() not in PATHOLOGIES:
            problems.add(
                where,
                f"unknown label {label!r} for video {video_id!r}; "
                f"expected one of {list(PATHOLOGIES)}",
            )
            continue
        if opt_str(row.get("patient_id")) is None:
            problems.add(where, f"missing patient_id for video {video_id!r}")
            continue
        bad_numbers = _numeric_problems(row)
        for problem in bad_numbers:
            problems.add(where, f"{problem} for video {video_id!r}")
        if bad_numbers:
            continue
        if opt_int(row.get("n_frames")) is None:
            problems.add(
                where, f"n_frames must be a positive integer for video {video_id!r}, got nothing"
            )
            continue
        file = opt_str(row.get("file"))
        if file is None:
            problems.add(where, f"missing file for video {video_id!r}")
            continue
        if check_files and not (root / file).is_file():
            problems.add(
                root / file,
                f"{why_not_a_file(root / file)} (video {video_id!r} in {table_path.name})",
            )
            continue
        records.append(record_from_row(row))
    return records


def _entries(
    coco: dict[str, Any], key: str, coco_path: Path, problems: Problems
) -> Iterator[dict[str, Any]]:
    """The objects in list ``key``; anything else there is a problem line, not a crash."""
    for position, entry in enumerate(coco[key]):
        if isinstance(entry, dict):
            yield entry
        else:
            problems.add(coco_path, f"{key}[{position}] must be an object, got {short(entry)}")


def _unique_id(
    entry: dict[str, Any],
    seen: Container[int],
    names: tuple[str, str],
    coco_path: Path,
    problems: Problems,
) -> int | None:
    """The entry's integer id when it is one not seen before; else a problem line and None.
    ``names``: what the entry is called in the two lines ("image entry", "image")."""
    entry_id = entry.get("id")
    if not is_int(entry_id):
        problems.add(coco_path, f"{names[0]} without an integer id: {short(entry, 120)}")
        return None
    if entry_id in seen:
        problems.add(coco_path, f"duplicate {names[1]} id {entry_id}")
        return None
    return entry_id


def _check_videos_list(
    coco: dict[str, Any],
    coco_path: Path,
    by_video: dict[str, VideoRecord],
    rejected: set[str],
    problems: Problems,
) -> None:
    video_ids_seen: set[str] = set()
    for entry in _entries(coco, "videos", coco_path, problems):
        vid = id_text(entry.get("id"))
        if vid is None:
            problems.add(coco_path, f"'videos' entry without a text id: {short(entry)}")
            continue
        if vid in video_ids_seen:
            problems.add(coco_path, f"duplicate video id {vid!r} in 'videos'")
        video_ids_seen.add(vid)
        if vid not in by_video and vid not in rejected:
            problems.add(coco_path, f"unknown video id {vid!r} in 'videos' (not in the table)")
    for vid in by_video:
        if vid not in video_ids_seen:
            problems.add(coco_path, f"video {vid!r} of the table has no entry in 'videos'")


def _image_problem(
    entry: dict[str, Any], by_video: dict[str, VideoRecord], frame_keys: set[tuple[str, int]]
) -> str | None:
    """What is wrong with one image entry (a frame), or None."""
    vid = id_text(entry.get("video_id"))
    if vid not in by_video:
        return f"unknown video id {short(entry.get('video_id'))}"
    record = by_video[vid]
    index = entry.get("frame_index")
    if not is_int(index) or index < 0:
        return f"bad frame_index {short(index)}"
    if index >= record.n_frames:
        return f"frame index {index} beyond the video {vid!r} ({record.n_frames} frames)"
    if (vid, index) in frame_keys:
        return f"duplicate frame {index} of video {vid!r}"
    if entry.get("file_name") != record.file:
        return (
            f"file_name {short(entry.get('file_name'))} differs from the table's "
            f"file {record.file!r}"
        )
    width, height = entry.get("width"), entry.get("height")
    if not (is_int(width) and is_int(height) and width > 0 and height > 0):
        return f"bad width/height {short(width)}x{short(height)}"
    if (
        record.width is not None
        and record.height is not None
        and ((width, height) != (record.width, record.height))
    ):
        return (
            f"size {width}x{height} differs from the table's "
            f"{record.width}x{record.height} for {vid!r}"
        )
    return None


def _check_images(
    coco: dict[str, Any],
    coco_path: Path,
    by_video: dict[str, VideoRecord],
    rejected: set[str],
    problems: Problems,
) -> tuple[dict[int, dict[str, Any]], set[int]]:
    """image id -> its valid image entry (video id as the table's text); ids of skipped images."""
    images: dict[int, dict[str, Any]] = {}
    skipped: set[int] = set()
    frame_keys: set[tuple[str, int]] = set()
    for entry in _entries(coco, "images", coco_path, problems):
        image_id = _unique_id(entry, images, ("image entry", "image"), coco_path, problems)
        if image_id is None:
            continue
        if id_text(entry.get("video_id")) in rejected:
            skipped.add(image_id)
            continue
        problem = _image_problem(entry, by_video, frame_keys)
        if problem is not None:
            problems.add(coco_path, f"image {image_id}: {problem}")
            continue
        entry = {**entry, "video_id": id_text(entry["video_id"])}
        frame_keys.add((entry["video_id"], entry["frame_index"]))
        images[image_id] = entry
    return images, skipped


def _annotation_box(
    ann: dict[str, Any], images: dict[int, dict[str, Any]]
) -> tuple[int, Box, int] | str:
    """(image id, box xyxy, lesion id) of one annotation, or what is wrong with it."""
    image_id = ann.get("image_id")
    if not is_int(image_id):
        return f"image_id must be an integer, got {short(image_id)}"
    if image_id not in images:
        return f"unknown image id {image_id!r}"
    category = ann.get("category_id")
    if not (is_int(category) and category == LESION_CATEGORY["id"]):
        return f"category_id must be 1 (lesion), got {short(category)}"
    image = images[image_id]
    frame = f"(frame {image['frame_index']} of {image['video_id']!r})"
    bbox = ann.get("bbox")
    # NaN, inf and true/false would pass every comparison below: only finite numbers are a box.
    values = [finite(v) for v in bbox] if isinstance(bbox, list) and len(bbox) == 4 else [None]
    if None in values:
        return f"bbox must be [x, y, w, h] of finite numbers, got {short(bbox)} {frame}"
    x, y, w, h = cast("list[float]", values)  # no None (checked above)
    if w <= 0 or h <= 0:
        return f"empty box {bbox} {frame}"
    tol = BOX_TOLERANCE_PX
    if x < -tol or y < -tol or x + w > image["width"] + tol or y + h > image["height"] + tol:
        return f"box outside frame: {bbox} in a {image['width']}x{image['height']} frame {frame}"
    lesion_id = ann.get("lesion_id", ann["id"])
    if not is_int(lesion_id):
        return f"lesion_id must be an integer, got {short(lesion_id)} {frame}"
    return image_id, (x, y, x + w, y + h), lesion_id


def rejected_ids(table: pd.DataFrame, records: list[VideoRecord]) -> set[str]:
    """Video ids of table rows that had a problem (already said: their frames are not checked)."""
    listed = (opt_str(v) for v in table.get("video_id", pd.Series(dtype=object)))
    return {v for v in listed if v is not None} - {r.video_id for r in records}


def check_coco(
    coco: dict[str, Any],
    coco_path: Path,
    records: list[VideoRecord],
    problems: Problems,
    rejected: set[str] | None = None,
) -> dict[str, list[FrameAnnotation]]:
    """Frame annotations per video; frames of ``rejected`` videos are skipped, not reported."""
    by_video = {r.video_id: r for r in records}
    rejected = rejected or set()
    categories = list(_entries(coco, "categories", coco_path, problems))
    if not any(is_int(c.get("id")) and c["id"] == LESION_CATEGORY["id"] for c in categories):
        problems.add(coco_path, "categories must contain {id: 1, name: 'lesion'}")
    _check_videos_list(coco, coco_path, by_video, rejected, problems)
    images, skipped = _check_images(coco, coco_path, by_video, rejected, problems)

    boxes: dict[int, list[tuple[Box, int]]] = defaultdict(list)
    annotation_ids: set[int] = set()
    for ann in _entries(coco, "annotations", coco_path, problems):
        if is_int(ann.get("image_id")) and ann["image_id"] in skipped:
            continue
        ann_id = _unique_id(ann, annotation_ids, ("annotation", "annotation"), coco_path, problems)
        if ann_id is None:
            continue
        annotation_ids.add(ann_id)
        checked = _annotation_box(ann, images)
        if isinstance(checked, str):
            problems.add(coco_path, f"annotation {ann_id}: {checked}")
            continue
        image_id, box, lesion_id = checked
        boxes[image_id].append((box, lesion_id))

    frames: dict[str, list[FrameAnnotation]] = {r.video_id: [] for r in records}
    for image_id, entry in images.items():
        vid = str(entry["video_id"])
        pairs = boxes.get(image_id, [])
        frames[vid].append(
            FrameAnnotation(
                video_id=vid,
                frame_index=int(entry["frame_index"]),
                file=str(entry["file_name"]),
                width=int(entry["width"]),
                height=int(entry["height"]),
                boxes=[b for b, _ in pairs],
                lesion_ids=[lid for _, lid in pairs],
                image_id=image_id,
            )
        )
    for vid, items in frames.items():
        items.sort(key=lambda f: f.frame_index)
        record = by_video[vid]
        if record.pathology == "normal" and any(f.boxes for f in items):
            problems.add(coco_path, f"video {vid!r} is labelled normal but has lesion boxes")
    return frames


def probe_files(records: list[VideoRecord], root: Path, problems: Problems) -> None:
    """Open every video and compare its real size and frame count with the table."""
    for record in records:
        path = root / record.file
        if record.is_still:
            try:
                image = read_still(path, "gray")
            except DatasetError as exc:
                problems.add(path, exc.reason)
                continue
            real_h, real_w = image.shape[:2]
            real_n = 1
        else:
            try:
                real_w, real_h, real_n = VideoFrameReader.probe(path)
            except DatasetError as exc:
                problems.add(path, exc.reason)
                continue
        if record.width is not None and (real_w, real_h) != (record.width, record.height):
            problems.add(
                path, f"file is {real_w}x{real_h}, table says {record.width}x{record.height}"
            )
        if real_n < record.n_frames:
            problems.add(
                path,
                f"file has {real_n} frames, table says {record.n_frames} "
                f"(frame index beyond the video)",
            )


def why_not_a_file(path: Path) -> str:
    """What a path listed as a video file is instead: missing, a dangling link, a FIFO ..."""
    from sonorisk.io.probe import special_file_kind

    try:
        kind = special_file_kind(path.stat().st_mode)
    except OSError:
        return "a link to a missing file" if path.is_symlink() else "missing file"
    return f"is a {kind}, not a regular file"
