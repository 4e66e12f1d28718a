"""Load and validate a dataset folder (see docs/dataset-format.md).

``load_dataset`` checks everything it can without decoding video (and, with
``probe=True``, opens each video to compare its real size and frame count), and
raises ``DatasetError`` naming the file and the reason at the first problem.
``validate_dataset`` collects every problem instead, for ``sonorisk dataset
validate``.

The pieces: :mod:`sonorisk.data.parse` reads the files and cells,
:mod:`sonorisk.data.validate` checks them, and this module builds the
:class:`VideoDataset` from what passed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sonorisk.data.format import ANNOTATIONS_FILE, FrameAnnotation, VideoRecord
from sonorisk.data.frames import VideoFrameReader, read_still
from sonorisk.data.parse import load_coco, read_table
from sonorisk.data.validate import (
    BOX_TOLERANCE_PX,
    Problems,
    check_coco,
    check_table,
    probe_files,
    rejected_ids,
)
from sonorisk.errors import DatasetError
from sonorisk.records import Box

__all__ = ["BOX_TOLERANCE_PX", "VideoDataset", "load_dataset", "read_table", "validate_dataset"]


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


def _build(
    root: str | Path, strict: bool, check_files: bool, probe: bool
) -> tuple[VideoDataset | None, list[DatasetError]]:
    problems = Problems(strict)
    root = Path(root)
    if not root.is_dir():
        problems.add(root, "dataset folder not found")
        return None, problems.items
    try:
        table, table_path = read_table(root)
        coco_path = root / ANNOTATIONS_FILE
        coco = load_coco(coco_path)
    except DatasetError as exc:
        if strict:
            raise
        return None, [exc]
    records = check_table(table, table_path, root, problems, check_files)
    if not records and not problems.items:
        problems.add(table_path, "the table lists no videos")
    frames = check_coco(coco, coco_path, records, problems, rejected_ids(table, records))
    if probe:
        probe_files(records, root, problems)
    dataset = VideoDataset(root, table, records, frames, coco)
    return dataset, problems.items


def load_dataset(path: str | Path, check_files: bool = True, probe: bool = False) -> VideoDataset:
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
