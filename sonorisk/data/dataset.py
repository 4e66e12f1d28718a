"""Load and validate a dataset folder (see docs/dataset-format.md).

``load_dataset`` checks everything it can without decoding video (and, with
``probe=True``, opens each video to compare its real size and frame count), and
raises ``DatasetError`` naming the file and the reason at the first problem.
``validate_dataset`` collects every problem instead, for ``sonorisk dataset
validate``.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeGuard, cast

import numpy as np
import pandas as pd

from sonorisk.data.format import (
    ANNOTATIONS_FILE,
    LESION_CATEGORY,
    PATHOLOGIES,
    REQUIRED_COLUMNS,
    TABLE_COLUMNS,
    TABLE_CSV,
    TABLE_PARQUET,
    FrameAnnotation,
    VideoRecord,
)
from sonorisk.data.frames import VideoFrameReader, read_still
from sonorisk.errors import DatasetError
from sonorisk.records import Box

# Boxes may overhang the frame by this many pixels (rounding of float boxes).
BOX_TOLERANCE_PX = 0.5


class _Problems:
    """Collects (file, reason) pairs; raises at the first when ``strict``."""

    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self.items: list[DatasetError] = []

    def add(self, source: str | Path, reason: str) -> None:
        error = DatasetError(source, reason)
        if self.strict:
            raise error
        self.items.append(error)


def _none_if_nan(value: Any) -> Any:
    """None for every spelling of "missing" (None, NaN, pd.NA, NaT); numpy scalars as Python."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _opt_str(value: Any) -> str | None:
    value = _none_if_nan(value)
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _is_int(value: Any) -> TypeGuard[int]:
    """An integer that is not a bool (JSON ``true`` is an int to Python)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _finite(value: Any) -> float | None:
    """``value`` as a finite float, or None for anything else (text, bool, NaN, inf, 1e400)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer too large for a float
        return None
    return number if math.isfinite(number) else None


def _parse_number(value: Any, integer: bool = False) -> float | int | None:
    """A table cell as a finite number, None when empty; ValueError says what is wrong."""
    value = _none_if_nan(value)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise ValueError("true/false is not a number")
    if integer and _is_int(value):
        return value  # exact, also beyond float precision (seeds)
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError("not a number") from None
    if not math.isfinite(number):
        raise ValueError("not a finite number")
    if integer:
        if number != int(number):
            raise ValueError("not a whole number")
        return int(number)
    return number


def _opt_float(value: Any) -> float | None:
    number = _parse_number(value)
    return None if number is None else float(number)


def _opt_int(value: Any) -> int | None:
    number = _parse_number(value, integer=True)
    return None if number is None else int(number)


def _as_bool(value: Any) -> bool:
    value = _none_if_nan(value)
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value) if value is not None else False


def read_table(root: Path) -> tuple[pd.DataFrame, Path]:
    """The per-video table (videos.csv or videos.parquet) of a dataset folder."""
    csv_path, parquet_path = root / TABLE_CSV, root / TABLE_PARQUET
    if csv_path.is_file():
        try:
            # Ids stay strings ("007" must not become 7).
            table = pd.read_csv(csv_path, dtype={"video_id": str, "patient_id": str,
                                                 "source_id": str, "birads": str})
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError,
                OSError) as exc:
            raise DatasetError(csv_path, f"not a readable CSV table ({exc})") from exc
        return table, csv_path
    if parquet_path.is_file():
        try:
            table = pd.read_parquet(parquet_path)
        except Exception as exc:  # pyarrow raises several unrelated types
            raise DatasetError(parquet_path, f"not a readable Parquet table ({exc})") from exc
        for column in ("video_id", "patient_id"):
            if column in table.columns:
                table[column] = table[column].astype(str)
        return table, parquet_path
    raise DatasetError(root, f"no per-video table: expected {TABLE_CSV} or {TABLE_PARQUET}")


def _record_from_row(row: dict[str, Any]) -> VideoRecord:
    extra = {k: _none_if_nan(v) for k, v in row.items() if k not in TABLE_COLUMNS}
    return VideoRecord(
        video_id=str(row["video_id"]),
        file=str(row["file"]),
        pathology=str(row["pathology"]).strip().lower(),
        patient_id=str(row["patient_id"]),
        n_frames=_opt_int(row["n_frames"]) or 0,  # checked before: a positive integer
        fps=_opt_float(row.get("fps")),
        width=_opt_int(row.get("width")),
        height=_opt_int(row.get("height")),
        subtype=_opt_str(row.get("subtype")),
        birads=_opt_str(row.get("birads")),
        age=_opt_float(row.get("age")),
        lesion_size_mm=_opt_float(row.get("lesion_size_mm")),
        site=_opt_str(row.get("site")),
        vendor=_opt_str(row.get("vendor")),
        n_lesions=_opt_int(row.get("n_lesions")),
        source_id=_opt_str(row.get("source_id")),
        synthetic=_as_bool(row.get("synthetic")),
        generator=_opt_str(row.get("generator")),
        seed=_opt_int(row.get("seed")),
        extra=extra,
    )


class VideoDataset:
    """A validated dataset folder: per-video records, per-frame boxes, frame access."""

    def __init__(
        self,
        root: Path,
        table: pd.DataFrame,
        videos: list[VideoRecord],
        frames_by_video: dict[str, list[FrameAnnotation]],
        coco: dict[str, Any],
    ) -> None:
        self.root = root
        self.table = table
        self.videos = videos
        self.coco = coco
        self._by_id = {v.video_id: v for v in videos}
        self._frames = frames_by_video
        self._reader: VideoFrameReader | None = None

    def __len__(self) -> int:
        return len(self.videos)

    def __repr__(self) -> str:
        n_frames = sum(len(f) for f in self._frames.values())
        return f"VideoDataset({str(self.root)!r}, {len(self.videos)} videos, {n_frames} frames)"

    @property
    def video_ids(self) -> list[str]:
        return [v.video_id for v in self.videos]

    def video(self, video_id: str) -> VideoRecord:
        try:
            return self._by_id[video_id]
        except KeyError:
            raise DatasetError(self.root, f"unknown video id {video_id!r}") from None

    def label(self, video_id: str) -> str:
        """The video's pathology: benign, malignant or normal."""
        return self.video(video_id).pathology

    def frames(self, video_id: str | None = None) -> list[FrameAnnotation]:
        """Frame annotations of one video (in frame order), or of all videos."""
        if video_id is not None:
            self.video(video_id)
            return list(self._frames[video_id])
        return [f for v in self.videos for f in self._frames[v.video_id]]

    def boxes_for(self, video_id: str) -> dict[int, list[Box]]:
        """frame_index -> boxes (xyxy); frames without lesions map to []."""
        return {f.frame_index: list(f.boxes) for f in self.frames(video_id)}

    def subset(self, video_ids: Iterable[str]) -> VideoDataset:
        """The same dataset restricted to ``video_ids`` (e.g. one side of a split)."""
        wanted = list(dict.fromkeys(video_ids))
        for video_id in wanted:
            self.video(video_id)  # unknown ids are an error, not silently dropped
        keep = set(wanted)
        videos = [v for v in self.videos if v.video_id in keep]
        table = self.table[self.table["video_id"].astype(str).isin(keep)].reset_index(drop=True)
        frames = {v.video_id: self._frames[v.video_id] for v in videos}
        return VideoDataset(self.root, table, videos, frames, self.coco)

    def path(self, video_id: str) -> Path:
        return self.root / self.video(video_id).file

    def read_image(self, frame: FrameAnnotation, color: str = "rgb") -> np.ndarray:
        """Decode one frame (HxWx3 RGB uint8, or HxW for ``color="gray"``)."""
        path = self.root / frame.file
        record = self.video(frame.video_id)
        if record.is_still:
            return read_still(path, color)
        if self._reader is None:
            self._reader = VideoFrameReader()
        return self._reader.read(path, frame.frame_index, color)

    def iter_images(
        self, video_id: str, color: str = "rgb"
    ) -> Iterator[tuple[FrameAnnotation, np.ndarray]]:
        """All frames of one video in order (one sequential decode)."""
        record = self.video(video_id)
        annotations = self._frames[video_id]
        if record.is_still:
            image = read_still(self.root / record.file, color)
            for annotation in annotations:
                yield annotation, image
            return
        by_index = {a.frame_index: a for a in annotations}
        for index, image in VideoFrameReader.iterate(self.root / record.file, color):
            if index in by_index:
                yield by_index[index], image

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None


def _load_coco(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DatasetError(path, "annotation file missing")
    try:
        coco = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(path, f"not valid JSON ({exc})") from exc
    except OSError as exc:
        raise DatasetError(path, f"cannot read the file ({exc.strerror or exc})") from exc
    except RecursionError:  # the parser recurses once per level: [[[[...]]]] 100,000 deep
        raise DatasetError(path, "JSON nested too deeply to read (not annotations)") from None
    if not isinstance(coco, dict):
        raise DatasetError(path, "top level must be a JSON object")
    for key in ("images", "annotations", "categories", "videos"):
        if not isinstance(coco.get(key), list):
            raise DatasetError(path, f"missing list {key!r}")
    return coco


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
        raw = _none_if_nan(row.get(column))
        try:
            number = _parse_number(raw, integer)
        except ValueError as exc:
            found.append(f"{column} must be {expected}, got {raw!r} ({exc})")
            continue
        if number is not None and not valid(number):
            found.append(f"{column} must be {expected}, got {raw!r}")
    return found


def _check_table(
    table: pd.DataFrame, table_path: Path, root: Path, problems: _Problems, check_files: bool
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
        video_id = _opt_str(row.get("video_id"))
        if video_id is None:
            problems.add(where, "missing video_id")
            continue
        label = _opt_str(row.get("pathology"))
        if label is None:
            problems.add(where, f"missing label (pathology) for video {video_id!r}")
            continue
        if label.lower() not in PATHOLOGIES:
            problems.add(where, f"unknown label {label!r} for video {video_id!r}; "
                                f"expected one of {list(PATHOLOGIES)}")
            continue
        if _opt_str(row.get("patient_id")) is None:
            problems.add(where, f"missing patient_id for video {video_id!r}")
            continue
        bad_numbers = _numeric_problems(row)
        for problem in bad_numbers:
            problems.add(where, f"{problem} for video {video_id!r}")
        if bad_numbers:
            continue
        if _opt_int(row.get("n_frames")) is None:
            problems.add(where, f"n_frames must be a positive integer for video {video_id!r}, "
                                "got nothing")
            continue
        file = _opt_str(row.get("file"))
        if file is None:
            problems.add(where, f"missing file for video {video_id!r}")
            continue
        if check_files and not (root / file).is_file():
            problems.add(root / file, f"{_why_not_a_file(root / file)} (video {video_id!r} in "
                                      f"{table_path.name})")
            continue
        records.append(_record_from_row(row))
    return records


def _short(value: Any, limit: int = 80) -> str:
    """repr of a value from a user's file, cut to ``limit`` characters for a problem line."""
    try:
        text = repr(value)
    except RecursionError:
        text = f"a deeply nested {type(value).__name__}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _id_text(value: Any) -> str | None:
    """A video id from the JSON as the table's text (7 and "7" both mean "7"); None if neither."""
    if isinstance(value, str):
        return value
    return str(value) if _is_int(value) else None


def _entries(coco: dict[str, Any], key: str, coco_path: Path,
             problems: _Problems) -> Iterator[dict[str, Any]]:
    """The objects in list ``key``; anything else there is a problem line, not a crash."""
    for position, entry in enumerate(coco[key]):
        if isinstance(entry, dict):
            yield entry
        else:
            problems.add(coco_path, f"{key}[{position}] must be an object, got {_short(entry)}")


def _check_videos_list(coco: dict[str, Any], coco_path: Path, by_video: dict[str, VideoRecord],
                       rejected: set[str], problems: _Problems) -> None:
    video_ids_seen: set[str] = set()
    for entry in _entries(coco, "videos", coco_path, problems):
        vid = _id_text(entry.get("id"))
        if vid is None:
            problems.add(coco_path, f"'videos' entry without a text id: {_short(entry)}")
            continue
        if vid in video_ids_seen:
            problems.add(coco_path, f"duplicate video id {vid!r} in 'videos'")
        video_ids_seen.add(vid)
        if vid not in by_video and vid not in rejected:
            problems.add(coco_path, f"unknown video id {vid!r} in 'videos' (not in the table)")
    for vid in by_video:
        if vid not in video_ids_seen:
            problems.add(coco_path, f"video {vid!r} of the table has no entry in 'videos'")


def _image_problem(entry: dict[str, Any], by_video: dict[str, VideoRecord],
                   frame_keys: set[tuple[str, int]]) -> str | None:
    """What is wrong with one image entry (a frame), or None."""
    vid = _id_text(entry.get("video_id"))
    if vid not in by_video:
        return f"unknown video id {_short(entry.get('video_id'))}"
    record = by_video[vid]
    index = entry.get("frame_index")
    if not _is_int(index) or index < 0:
        return f"bad frame_index {_short(index)}"
    if index >= record.n_frames:
        return f"frame index {index} beyond the video {vid!r} ({record.n_frames} frames)"
    if (vid, index) in frame_keys:
        return f"duplicate frame {index} of video {vid!r}"
    if entry.get("file_name") != record.file:
        return (f"file_name {_short(entry.get('file_name'))} differs from the table's "
                f"file {record.file!r}")
    width, height = entry.get("width"), entry.get("height")
    if not (_is_int(width) and _is_int(height) and width > 0 and height > 0):
        return f"bad width/height {_short(width)}x{_short(height)}"
    if record.width is not None and record.height is not None and (
        (width, height) != (record.width, record.height)
    ):
        return (f"size {width}x{height} differs from the table's "
                f"{record.width}x{record.height} for {vid!r}")
    return None


def _check_images(
    coco: dict[str, Any], coco_path: Path, by_video: dict[str, VideoRecord],
    rejected: set[str], problems: _Problems,
) -> tuple[dict[int, dict[str, Any]], set[int]]:
    """image id -> its valid image entry (video id as the table's text); ids of skipped images."""
    images: dict[int, dict[str, Any]] = {}
    skipped: set[int] = set()
    frame_keys: set[tuple[str, int]] = set()
    for entry in _entries(coco, "images", coco_path, problems):
        image_id = entry.get("id")
        if not _is_int(image_id):
            problems.add(coco_path, f"image entry without an integer id: {_short(entry, 120)}")
            continue
        if image_id in images:
            problems.add(coco_path, f"duplicate image id {image_id}")
            continue
        if _id_text(entry.get("video_id")) in rejected:
            skipped.add(image_id)
            continue
        problem = _image_problem(entry, by_video, frame_keys)
        if problem is not None:
            problems.add(coco_path, f"image {image_id}: {problem}")
            continue
        entry = {**entry, "video_id": _id_text(entry["video_id"])}
        frame_keys.add((entry["video_id"], entry["frame_index"]))
        images[image_id] = entry
    return images, skipped


def _annotation_box(ann: dict[str, Any],
                    images: dict[int, dict[str, Any]]) -> tuple[int, Box, int] | str:
    """(image id, box xyxy, lesion id) of one annotation, or what is wrong with it."""
    image_id = ann.get("image_id")
    if not _is_int(image_id):
        return f"image_id must be an integer, got {_short(image_id)}"
    if image_id not in images:
        return f"unknown image id {image_id!r}"
    category = ann.get("category_id")
    if not (_is_int(category) and category == LESION_CATEGORY["id"]):
        return f"category_id must be 1 (lesion), got {_short(category)}"
    image = images[image_id]
    frame = f"(frame {image['frame_index']} of {image['video_id']!r})"
    bbox = ann.get("bbox")
    # NaN, inf and true/false would pass every comparison below: only finite numbers are a box.
    values = [_finite(v) for v in bbox] if isinstance(bbox, list) and len(bbox) == 4 else [None]
    if None in values:
        return f"bbox must be [x, y, w, h] of finite numbers, got {_short(bbox)} {frame}"
    x, y, w, h = cast("list[float]", values)  # no None (checked above)
    if w <= 0 or h <= 0:
        return f"empty box {bbox} {frame}"
    tol = BOX_TOLERANCE_PX
    if x < -tol or y < -tol or x + w > image["width"] + tol or y + h > image["height"] + tol:
        return (f"box outside frame: {bbox} in a {image['width']}x{image['height']} frame "
                f"{frame}")
    lesion_id = ann.get("lesion_id", ann["id"])
    if not _is_int(lesion_id):
        return f"lesion_id must be an integer, got {_short(lesion_id)} {frame}"
    return image_id, (x, y, x + w, y + h), lesion_id


def _rejected_ids(table: pd.DataFrame, records: list[VideoRecord]) -> set[str]:
    """Video ids of table rows that had a problem (already said: their frames are not checked)."""
    listed = (_opt_str(v) for v in table.get("video_id", pd.Series(dtype=object)))
    return {v for v in listed if v is not None} - {r.video_id for r in records}


def _check_coco(
    coco: dict[str, Any],
    coco_path: Path,
    records: list[VideoRecord],
    problems: _Problems,
    rejected: set[str] | None = None,
) -> dict[str, list[FrameAnnotation]]:
    """Frame annotations per video; frames of ``rejected`` videos are skipped, not reported."""
    by_video = {r.video_id: r for r in records}
    rejected = rejected or set()
    categories = list(_entries(coco, "categories", coco_path, problems))
    if not any(_is_int(c.get("id")) and c["id"] == LESION_CATEGORY["id"] for c in categories):
        problems.add(coco_path, "categories must contain {id: 1, name: 'lesion'}")
    _check_videos_list(coco, coco_path, by_video, rejected, problems)
    images, skipped = _check_images(coco, coco_path, by_video, rejected, problems)

    boxes: dict[int, list[tuple[Box, int]]] = defaultdict(list)
    annotation_ids: set[int] = set()
    for ann in _entries(coco, "annotations", coco_path, problems):
        ann_id = ann.get("id")
        if _is_int(ann.get("image_id")) and ann["image_id"] in skipped:
            continue
        if not _is_int(ann_id):
            problems.add(coco_path, f"annotation without an integer id: {_short(ann, 120)}")
            continue
        if ann_id in annotation_ids:
            problems.add(coco_path, f"duplicate annotation id {ann_id}")
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


def _probe(records: list[VideoRecord], root: Path, problems: _Problems) -> None:
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
            problems.add(path, f"file is {real_w}x{real_h}, table says "
                               f"{record.width}x{record.height}")
        if real_n < record.n_frames:
            problems.add(path, f"file has {real_n} frames, table says {record.n_frames} "
                               f"(frame index beyond the video)")


def _build(
    root: str | Path, strict: bool, check_files: bool, probe: bool
) -> tuple[VideoDataset | None, list[DatasetError]]:
    problems = _Problems(strict)
    root = Path(root)
    if not root.is_dir():
        problems.add(root, "dataset folder not found")
        return None, problems.items
    try:
        table, table_path = read_table(root)
        coco_path = root / ANNOTATIONS_FILE
        coco = _load_coco(coco_path)
    except DatasetError as exc:
        if strict:
            raise
        return None, [exc]
    records = _check_table(table, table_path, root, problems, check_files)
    if not records and not problems.items:
        problems.add(table_path, "the table lists no videos")
    frames = _check_coco(coco, coco_path, records, problems, _rejected_ids(table, records))
    if probe:
        _probe(records, root, problems)
    dataset = VideoDataset(root, table, records, frames, coco)
    return dataset, problems.items


def _why_not_a_file(path: Path) -> str:
    """What a path listed as a video file is instead: missing, a dangling link, a FIFO ..."""
    from sonorisk.io.probe import special_file_kind

    try:
        kind = special_file_kind(path.stat().st_mode)
    except OSError:
        return "a link to a missing file" if path.is_symlink() else "missing file"
    return f"is a {kind}, not a regular file"


def load_dataset(
    path: str | Path, check_files: bool = True, probe: bool = False
) -> VideoDataset:
    """Load a dataset folder, raising ``DatasetError`` (file + reason) at the first problem.

    ``check_files``: every video/image file must exist. ``probe``: also open
    each file and compare its size and frame count with the table (slower).
    """
    dataset, _ = _build(path, strict=True, check_files=check_files, probe=probe)
    assert dataset is not None  # strict mode raised otherwise
    return dataset


def validate_dataset(path: str | Path, probe: bool = True) -> list[DatasetError]:
    """Every problem of a dataset folder (empty list: valid)."""
    _, problems = _build(path, strict=False, check_files=True, probe=probe)
    return problems
