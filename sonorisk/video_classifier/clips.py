"""Lesion clips: crop each track's box, group consecutive crops into clips.

The paper's rule (WAUVE, Methods): the ROI of every frame of a track is
cropped; every 8 adjacent crops of the track, in order, form one clip; tracks
shorter than 8 frames and the leftover frames at a track's end are dropped.
Here that is the default of :class:`ClipConfig` (``length=8``, ``stride=8``,
``temporal_step=1``); overlap (``stride < length``) and temporal subsampling
for 50 fps sources (``temporal_step`` or ``target_fps``) are options.

:class:`ClipBuilder` is incremental because the live pipeline drives it: push
a track's frames one at a time and it returns a :class:`~sonorisk.records.Clip`
as soon as one is complete. :func:`clips_from_track` is the same builder run
over a finished track, so files and streams share one code path.

Crop geometry: a square window centred on the box centre, side
``max(w, h) * (1 + 2 * margin)``. Where the window leaves the frame it is
padded with ``pad_value`` (ultrasound background is black) and never shifted,
so the lesion stays at the centre of every crop.

This module needs numpy and OpenCV only (no torch), so the pipeline can build
clips without loading a model.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import cv2
import numpy as np

from sonorisk.errors import ConfigError, InputError
from sonorisk.records import Box, Clip, Detection, Track


@dataclass
class ClipConfig:
    """How tracks become clips (``configs/classifier*.yaml``, key ``clips``)."""

    length: int = 8  # frames per clip (paper: 8)
    stride: int = 8  # sampled frames between clip starts; == length: no overlap (paper)
    temporal_step: int = 1  # keep every n-th frame of a track (2 for 50 fps -> 25 fps)
    target_fps: float | None = None  # if set and the source fps is known, overrides temporal_step
    crop_size: int = 112  # output side in pixels (square)
    margin: float = 0.25  # context added on each side, as a fraction of the box's long side
    square: bool = True  # square window (paper crops are resized square)
    pad_value: int = 0  # fill for window parts outside the frame

    def validate(self, source: str = "clips") -> None:
        if self.length < 1:
            raise ConfigError(f"{source}.length", f"must be >= 1, got {self.length}")
        if self.stride < 1:
            raise ConfigError(f"{source}.stride", f"must be >= 1, got {self.stride}")
        if self.temporal_step < 1:
            raise ConfigError(f"{source}.temporal_step", f"must be >= 1, got {self.temporal_step}")
        if self.target_fps is not None and self.target_fps <= 0:
            raise ConfigError(f"{source}.target_fps", f"must be > 0, got {self.target_fps}")
        if self.crop_size < 4:
            raise ConfigError(f"{source}.crop_size", f"must be >= 4, got {self.crop_size}")
        if self.margin < 0:
            raise ConfigError(f"{source}.margin", f"must be >= 0, got {self.margin}")
        if not 0 <= self.pad_value <= 255:
            raise ConfigError(f"{source}.pad_value", f"must be in 0..255, got {self.pad_value}")

    def step_for_fps(self, fps: float | None) -> int:
        """The temporal step to use for a source of ``fps`` frames per second.

        ``target_fps`` wins when both it and ``fps`` are known: a 50 fps source
        with ``target_fps=25`` keeps every 2nd frame, a 30 fps source every frame.
        """
        if self.target_fps is None or fps is None or fps <= 0:
            return self.temporal_step
        return max(1, round(fps / self.target_fps))


def crop_window(box: Box, margin: float, square: bool = True) -> Box:
    """The crop window (x1, y1, x2, y2) for ``box``, in source pixels.

    Centred on the box centre so the lesion never moves within the crop; the
    window may extend past the frame (those pixels are padded).
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    w, h = x2 - x1, y2 - y1
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    if square:
        w = h = max(w, h)
    long_side = max(w, h)
    half_w = w / 2.0 + margin * long_side
    half_h = h / 2.0 + margin * long_side
    return (cx - half_w, cy - half_h, cx + half_w, cy + half_h)


def _integer_window(box: Box, margin: float, square: bool) -> tuple[int, int, int, int]:
    wx1, wy1, wx2, wy2 = crop_window(box, margin, square)
    ix1, iy1 = int(math.floor(wx1)), int(math.floor(wy1))
    ix2, iy2 = int(math.ceil(wx2)), int(math.ceil(wy2))
    return ix1, iy1, max(ix2, ix1 + 1), max(iy2, iy1 + 1)


def paste_into_frame(
    crop_map: np.ndarray,
    box: Box,
    frame_size: tuple[int, int],
    margin: float = 0.25,
    square: bool = True,
    fill: float = float("nan"),
) -> np.ndarray:
    """Put a crop-sized map (``H x W``, e.g. one heatmap frame) back on its frame.

    The inverse of :func:`crop_box`'s geometry: returns a float32 map of
    ``frame_size`` (height, width) holding ``crop_map`` resized to the crop
    window, and ``fill`` outside the window, so a heatmap can be drawn over the
    original frame (the overlay video, the report's heatmap frames).
    """
    if crop_map.ndim != 2:
        raise InputError("heatmap", f"expected an H x W map, got shape {crop_map.shape}")
    _check_box(box, "heatmap box")
    height, width = frame_size
    ix1, iy1, ix2, iy2 = _integer_window(box, margin, square)
    resized = cv2.resize(
        crop_map.astype(np.float32), (ix2 - ix1, iy2 - iy1), interpolation=cv2.INTER_LINEAR
    )
    out = np.full((height, width), fill, dtype=np.float32)
    sx1, sy1, sx2, sy2 = max(ix1, 0), max(iy1, 0), min(ix2, width), min(iy2, height)
    if sx2 > sx1 and sy2 > sy1:
        out[sy1:sy2, sx1:sx2] = resized[sy1 - iy1 : sy2 - iy1, sx1 - ix1 : sx2 - ix1]
    return out


def _as_rgb(image: np.ndarray, source: str) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise InputError(source, f"frame image must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise InputError(source, f"frame image must be uint8, got {image.dtype}")
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim == 3 and image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    if image.ndim == 3 and image.shape[2] == 4:
        return image[:, :, :3]
    raise InputError(source, f"frame image must be HxW or HxWx{{1,3,4}}, got shape {image.shape}")


def _check_box(box: Box, source: str) -> None:
    if len(box) != 4 or not all(math.isfinite(float(v)) for v in box):
        raise InputError(source, f"box must be 4 finite numbers (x1, y1, x2, y2), got {box!r}")
    if box[2] <= box[0] or box[3] <= box[1]:
        raise InputError(source, f"box has no area (need x2 > x1 and y2 > y1), got {box!r}")


def crop_box(
    image: np.ndarray,
    box: Box,
    size: int,
    margin: float = 0.25,
    square: bool = True,
    pad_value: int = 0,
    source: str = "frame",
) -> np.ndarray:
    """Crop ``box`` with context ``margin``, pad outside the frame, resize.

    Returns ``size x size x 3`` uint8 (gray frames are replicated to 3
    channels: every classifier takes RGB, as ImageNet/Kinetics weights do).
    """
    rgb = _as_rgb(image, source)
    _check_box(box, source)
    # Integer window (rounded outward); paste_into_frame uses the same one.
    ix1, iy1, ix2, iy2 = _integer_window(box, margin, square)
    height, width = rgb.shape[:2]
    out = np.full((iy2 - iy1, ix2 - ix1, 3), pad_value, dtype=np.uint8)
    sx1, sy1 = max(ix1, 0), max(iy1, 0)
    sx2, sy2 = min(ix2, width), min(iy2, height)
    if sx2 > sx1 and sy2 > sy1:
        out[sy1 - iy1 : sy2 - iy1, sx1 - ix1 : sx2 - ix1] = rgb[sy1:sy2, sx1:sx2]
    # INTER_AREA when shrinking (anti-aliased), linear when enlarging small lesions.
    shrinking = out.shape[0] > size or out.shape[1] > size
    interp = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(out, (size, size), interpolation=interp)


@dataclass
class _TrackState:
    pushed: int = 0  # frames pushed for this track
    sampled: int = 0  # frames kept after temporal subsampling
    clips: int = 0  # clips emitted
    last_frame: int | None = None

    def __post_init__(self) -> None:
        self.buffer: deque[tuple[int, Box, np.ndarray]] = deque()


class ClipBuilder:
    """Incremental clip builder: push frames of tracks, get clips when complete.

    Several tracks can be open at once (one state per ``track_id``); only the
    last ``length`` crops of each track are held, so memory stays bounded on a
    live stream. A clip is emitted when the ``length``-th sampled frame
    arrives, then every ``stride`` sampled frames after it.
    """

    def __init__(self, config: ClipConfig | None = None, fps: float | None = None) -> None:
        self.config = config or ClipConfig()
        self.config.validate()
        self.step = self.config.step_for_fps(fps)
        self._tracks: dict[int, _TrackState] = {}

    def push(self, track_id: int, frame_index: int, image: np.ndarray, box: Box) -> Clip | None:
        """Add one frame of a track; return the clip it completes, if any."""
        state = self._tracks.setdefault(track_id, _TrackState())
        source = f"track {track_id} frame {frame_index}"
        if state.last_frame is not None and frame_index <= state.last_frame:
            raise InputError(
                source,
                f"frames of a track must arrive in increasing order "
                f"(previous frame {state.last_frame})",
            )
        state.last_frame = frame_index
        position = state.pushed
        state.pushed += 1
        # Temporal subsampling counts positions within the track, so a 50 fps
        # track with step 2 keeps its 1st, 3rd, 5th ... frame.
        if position % self.step:
            return None
        cfg = self.config
        if cfg.stride > cfg.length and state.sampled % cfg.stride >= cfg.length:
            # Between clips (a stride longer than a clip): in no clip, not cropped.
            state.sampled += 1
            return None
        crop = crop_box(image, box, cfg.crop_size, cfg.margin, cfg.square, cfg.pad_value, source)
        x1, y1, x2, y2 = (float(v) for v in box)
        state.buffer.append((frame_index, (x1, y1, x2, y2), crop))
        if len(state.buffer) > cfg.length:
            state.buffer.popleft()
        state.sampled += 1
        first_complete = state.sampled >= cfg.length
        if not first_complete or (state.sampled - cfg.length) % cfg.stride:
            return None
        clip = Clip(
            track_id=track_id,
            clip_index=state.clips,
            frame_indices=tuple(item[0] for item in state.buffer),
            boxes=tuple(item[1] for item in state.buffer),
            crops=np.stack([item[2] for item in state.buffer]),
        )
        state.clips += 1
        return clip

    def end_track(self, track_id: int) -> int:
        """Close a track; its leftover frames are dropped (paper). Returns clips made."""
        state = self._tracks.pop(track_id, None)
        return 0 if state is None else state.clips

    @property
    def open_tracks(self) -> list[int]:
        return sorted(self._tracks)


FrameSource = Mapping[int, np.ndarray] | Callable[[int], np.ndarray]


def clips_from_track(
    track: Track,
    frames: FrameSource,
    config: ClipConfig | None = None,
    fps: float | None = None,
) -> list[Clip]:
    """All clips of a finished track. ``frames`` maps frame index -> image."""
    builder = ClipBuilder(config, fps)
    get = frames if callable(frames) else frames.__getitem__
    clips: list[Clip] = []
    for det in sorted(track.detections, key=lambda d: d.frame_index):
        try:
            image = get(det.frame_index)
        except (KeyError, IndexError) as exc:
            raise InputError(
                f"track {track.track_id}", f"no image for frame {det.frame_index}"
            ) from exc
        clip = builder.push(track.track_id, det.frame_index, image, det.box)
        if clip is not None:
            clips.append(clip)
    builder.end_track(track.track_id)
    return clips


def tracks_from_boxes(
    boxes_by_frame: Mapping[int, Iterable[Box]],
    lesion_ids_by_frame: Mapping[int, Iterable[int]] | None = None,
    max_gap: int = 1,
) -> list[Track]:
    """Ground-truth boxes turned into tracks (score 1.0), one track per lesion.

    With ``lesion_ids_by_frame`` boxes are linked by lesion id; without it a
    frame's k-th box joins track k (datasets with one lesion per video, as the
    paper's, have one box per frame). A track is split where more than
    ``max_gap`` frames pass without its lesion, because a clip must be made of
    adjacent frames.
    """
    per_lesion: dict[int, list[Detection]] = {}
    for frame_index in sorted(boxes_by_frame):
        boxes = list(boxes_by_frame[frame_index])
        ids = (
            list(lesion_ids_by_frame[frame_index])
            if lesion_ids_by_frame is not None and frame_index in lesion_ids_by_frame
            else list(range(len(boxes)))
        )
        if len(ids) != len(boxes):
            raise InputError(
                f"frame {frame_index}", f"{len(boxes)} boxes but {len(ids)} lesion ids"
            )
        for lesion_id, box in zip(ids, boxes, strict=True):
            x1, y1, x2, y2 = box
            det = Detection(frame_index=int(frame_index), box=(x1, y1, x2, y2), score=1.0)
            per_lesion.setdefault(int(lesion_id), []).append(det)
    tracks: list[Track] = []
    for lesion_id in sorted(per_lesion):
        run: list[Detection] = []
        for det in per_lesion[lesion_id]:
            if run and det.frame_index - run[-1].frame_index > max_gap:
                tracks.append(Track(track_id=len(tracks), detections=run))
                run = []
            run.append(det)
        if run:
            tracks.append(Track(track_id=len(tracks), detections=run))
    return tracks
