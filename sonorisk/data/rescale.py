"""A copy of a dataset scaled after rendering: ``sonorisk dataset rescale``.

Every video is decoded, each frame resized (OpenCV, bilinear or area) and
encoded again, as a clinical export at a lower resolution would be; every box
is scaled alike. It measures how the models hold up when video is made smaller
after it was made, and (``qscale``) when it is compressed harder: see issue 14
and docs/end-to-end.md.

The box factors are the output size over the source size, so boxes stay on the
pixels they marked when the output size was rounded (to whole pixels, to even
sizes for codecs that need them). ``annotations.json`` is written last: a run
that stops half way leaves a folder that is not a dataset.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from sonorisk.data.format import (
    ANNOTATIONS_FILE,
    TABLE_CSV,
    TABLE_PARQUET,
    DatasetWriter,
    FrameAnnotation,
)
from sonorisk.data.frames import read_still
from sonorisk.data.parse import finite, opt_str
from sonorisk.errors import InputError
from sonorisk.io.source import MAX_SIDE
from sonorisk.io.writer import CODECS, VideoWriter, qscale_problem, quantiser
from sonorisk.records import Box

INTERPOLATIONS = {"bilinear": cv2.INTER_LINEAR, "area": cv2.INTER_AREA}
MAX_SCALE = 4.0
DEFAULT_CODEC = "mjpeg"  # for rows without a codec column: AVI/MJPEG, as scanners export
MIN_SIDE = 2


def output_size(
    width: int, height: int, scale: float | None, size: tuple[int, int] | None, even: bool
) -> tuple[int, int]:
    """The rescaled frame size: ``size`` as given, or each side times ``scale``
    rounded (half up; to the nearest even number when ``even``), at least 2 px."""
    if size is not None:
        return size
    assert scale is not None
    step = 2 if even else 1

    def side(length: int) -> int:
        return max(MIN_SIDE, step * math.floor(length * scale / step + 0.5))

    return side(width), side(height)


def _check_arguments(
    scale: float | None, size: tuple[int, int] | None, interpolation: str, codec: str | None
) -> None:
    if (scale is None) == (size is None):
        raise InputError("rescale", "give exactly one of scale and size")
    if scale is not None and not (math.isfinite(scale) and 0 < scale <= MAX_SCALE):
        raise InputError("scale", f"must be a number > 0 and <= {MAX_SCALE:g}, got {scale!r}")
    if size is not None and not all(MIN_SIDE <= side <= MAX_SIDE for side in size):
        raise InputError(
            "size", f"each side must be {MIN_SIDE} to {MAX_SIDE} px, got {size[0]}x{size[1]}"
        )
    if interpolation not in INTERPOLATIONS:
        raise InputError(
            "interpolation", f"unknown {interpolation!r}; choose from {sorted(INTERPOLATIONS)}"
        )
    if codec is not None and codec not in CODECS:
        raise InputError("codec", f"unknown codec {codec!r}; choose from {sorted(CODECS)}")


def _check_paths(source: Path, out: Path, overwrite: bool) -> None:
    if out.resolve() == source.resolve():
        raise InputError(out, "the output folder is the source dataset; choose another --out")
    if (out / ANNOTATIONS_FILE).exists() and not overwrite:
        raise InputError(out, f"already holds a dataset ({ANNOTATIONS_FILE}); pass overwrite")


@dataclass(frozen=True)
class _Item:
    """One video (or still) of the source and where its copy goes."""

    row: dict[str, Any]
    frames: list[FrameAnnotation]
    areas: list[list[float]]  # COCO area of each box, per frame
    source_file: str
    file: str
    codec: str | None  # None: a still image
    fps: float | None


def _areas_by_image(coco: dict[str, Any]) -> dict[int, list[float]]:
    """COCO ``area`` of each annotation, per image id, in the order the loader keeps boxes."""
    areas: dict[int, list[float]] = {}
    for ann in coco["annotations"]:
        area = finite(ann.get("area"))
        if area is None:
            area = float(ann["bbox"][2] * ann["bbox"][3])
        areas.setdefault(int(ann["image_id"]), []).append(area)
    return areas


def _plan(source: Path, codec: str | None, size: tuple[int, int] | None) -> tuple[list[_Item], str]:
    """Every item of ``source`` with its output file and codec, and the source's description.

    Everything refused is refused here, before anything is written."""
    from sonorisk.data.dataset import load_dataset
    from sonorisk.data.synth import CODEC_SUFFIX

    dataset = load_dataset(source)
    areas = _areas_by_image(dataset.coco)
    rows = {str(row["video_id"]): row for row in dataset.table.to_dict("records")}
    items: list[_Item] = []
    files: dict[str, str] = {}
    for record in dataset.videos:
        frames = dataset.frames(record.video_id)
        if [f.frame_index for f in frames] != list(range(len(frames))):
            raise InputError(
                source / record.file,
                "rescale needs an image entry for every frame from 0 on "
                f"(video {record.video_id!r} has gaps)",
            )
        row = dict(rows[record.video_id])
        if record.is_still:
            item_codec, file = None, record.file
        else:
            item_codec = codec or opt_str(row.get("codec")) or DEFAULT_CODEC
            if item_codec not in CODECS:
                raise InputError(
                    source / record.file,
                    f"unknown codec {item_codec!r} in the table; choose from {sorted(CODECS)}",
                )
            if size is not None and item_codec != "rawvideo" and (size[0] % 2 or size[1] % 2):
                # VideoWriter refuses odd sizes for every codec but rawvideo.
                raise InputError("size", f"{item_codec} needs even sides, got {size[0]}x{size[1]}")
            file = Path(record.file).with_suffix(CODEC_SUFFIX.get(item_codec, ".avi")).as_posix()
        if file in files:
            raise InputError(
                source / record.file, f"would be written to {file}, as {files[file]!r} is"
            )
        files[file] = record.video_id
        items.append(
            _Item(
                row=row,
                frames=frames,
                areas=[areas.get(f.image_id, []) for f in frames],
                source_file=record.file,
                file=file,
                codec=item_codec,
                fps=record.fps,
            )
        )
    info = dataset.coco.get("info")
    description = info.get("description") if isinstance(info, dict) else None
    return items, str(description or "")


def _scaled_frames(
    item: _Item, fx: float, fy: float
) -> tuple[list[tuple[list[Box], list[int]]], list[list[float]]]:
    frames = [
        (
            [(x1 * fx, y1 * fy, x2 * fx, y2 * fy) for x1, y1, x2, y2 in f.boxes],
            list(f.lesion_ids),
        )
        for f in item.frames
    ]
    areas = [[area * fx * fy for area in frame_areas] for frame_areas in item.areas]
    return frames, areas


@dataclass(frozen=True)
class _Scaling:
    """How every frame is scaled: by ``scale`` or to ``size``, with ``interpolation``."""

    scale: float | None
    size: tuple[int, int] | None
    interpolation: str
    qscale: int | None = None  # the encoder's quantiser (None: the writer's default)

    def output_size(self, width: int, height: int, even: bool) -> tuple[int, int]:
        return output_size(width, height, self.scale, self.size, even)

    def resize(self, image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        return cv2.resize(image, size, interpolation=INTERPOLATIONS[self.interpolation])


def _check_frame_size(path: Path, image: np.ndarray, expected: tuple[int, int]) -> None:
    height, width = image.shape[:2]
    if (width, height) != expected:
        raise InputError(
            path, f"frame is {width}x{height}, the annotations say {expected[0]}x{expected[1]}"
        )


def _rescale_still(
    item: _Item, source: Path, out: Path, scaling: _Scaling
) -> tuple[int, int, int, int]:
    path = source / item.source_file
    image = read_still(path, "rgb")
    height, width = image.shape[:2]
    if item.frames:
        _check_frame_size(path, image, (item.frames[0].width, item.frames[0].height))
    new_size = scaling.output_size(width, height, even=False)
    target = out / item.file
    target.parent.mkdir(parents=True, exist_ok=True)
    resized = cv2.cvtColor(scaling.resize(image, new_size), cv2.COLOR_RGB2BGR)
    if not cv2.imwrite(str(target), resized):
        raise InputError(target, "could not write the image")
    return width, height, *new_size


def _rescale_video(
    item: _Item, source: Path, out: Path, scaling: _Scaling
) -> tuple[int, int, int, int]:
    """Decode, resize and encode one video; returns (source w, h, output w, h)."""
    from sonorisk.io import open_video

    assert item.codec is not None
    path = source / item.source_file
    with open_video(path, color="rgb", strict=True) as video:
        width, height = video.meta.width, video.meta.height
        if item.frames:
            width, height = item.frames[0].width, item.frames[0].height
        new_size = scaling.output_size(width, height, even=item.codec != "rawvideo")
        fps = item.fps or video.meta.fps or 30.0
        with VideoWriter(
            out / item.file, fps, *new_size, codec=item.codec, qscale=scaling.qscale
        ) as writer:
            for frame in video:
                _check_frame_size(path, frame.image, (width, height))
                writer.write(scaling.resize(frame.image, new_size))
            written = writer.frames_written
        dropped = video.stats.frames_dropped
    if dropped:
        raise InputError(path, f"{dropped} frame(s) could not be decoded; boxes would misalign")
    if written < len(item.frames):
        raise InputError(path, f"holds {written} frame(s), the annotations list {len(item.frames)}")
    return width, height, *new_size


def rescale_dataset(
    source: str | Path,
    out: str | Path,
    scale: float | None = None,
    size: tuple[int, int] | None = None,
    interpolation: str = "bilinear",
    codec: str | None = None,
    *,
    qscale: int | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> Path:
    """Write a copy of dataset ``source`` into ``out`` with every video scaled after rendering.

    Exactly one of ``scale`` (linear factor, 0 < scale <= 4) and ``size``
    ((width, height) every video is resized to). ``interpolation``:
    ``"bilinear"`` (OpenCV INTER_LINEAR) or ``"area"`` (INTER_AREA). Videos are
    encoded again with ``codec``, else the table's ``codec`` column, else
    MJPEG, at the same frame rate; still images are written as images of the
    same name. Boxes are scaled by the x and y factors, COCO areas by their
    product; lesion ids, frames without boxes and every table column are kept
    (``width``/``height`` updated, ``codec`` set). ``qscale``: the encoder's
    quantiser (2 best to 31 worst; MJPEG, MPEG-4, MPEG-2 only), for an export
    more compressed than the writer's default (MJPEG 3). Masks and contact
    sheets are not copied. Returns ``out``.
    """
    source, out = Path(source), Path(out)
    _check_arguments(scale, size, interpolation, codec)
    _check_paths(source, out, overwrite)
    items, source_description = _plan(source, codec, size)
    if qscale is not None:
        for item_codec in sorted({i.codec for i in items if i.codec}):
            if problem := qscale_problem(item_codec, qscale):
                raise InputError("qscale", problem)
    table_format = "csv" if (source / TABLE_CSV).is_file() else "parquet"
    stale = out / (TABLE_PARQUET if table_format == "csv" else TABLE_CSV)
    if overwrite and stale.is_file():
        stale.unlink()  # the loader reads videos.csv before videos.parquet
    how = f"size {size[0]}x{size[1]}" if size is not None else f"scale {scale:g}"
    if qscale is not None:
        how += f", quantiser {qscale}"
    description = f"{source} rescaled after rendering ({how}, {interpolation})"
    if source_description:
        description += f"; source: {source_description}"
    writer = DatasetWriter(out, description=description)
    scaling = _Scaling(scale, size, interpolation, qscale)
    bar = None
    if progress:
        from sonorisk.data.synth import _progress

        bar = _progress(len(items), "rescale")
    for item in items:
        rescale = _rescale_video if item.codec is not None else _rescale_still
        width, height, new_width, new_height = rescale(item, source, out, scaling)
        frames, areas = _scaled_frames(item, new_width / width, new_height / height)
        row = dict(item.row, file=item.file, width=new_width, height=new_height)
        if item.codec is not None:
            row["codec"] = item.codec
            row["qscale"] = quantiser(item.codec, scaling.qscale)
        writer.add_video(row, frames, new_width, new_height, areas)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return writer.write(table_format)
