"""Incremental lesion tracker: detections in frame by frame, lesion tracks out.

ByteTrack (roboflow ``trackers``) does the frame-to-frame association. Around it
this module adds what lesion tracking needs:

* the first frames of a track, which ByteTrack holds back until the track is
  confirmed, are recovered (so coverage starts at the first detection);
* a new ByteTrack id that starts where a recently lost lesion ended is merged
  into that lesion (fragments of one lesion keep one id, live);
* a lesion is finalised once it has been lost for longer than the lost-track
  buffer; then its short gaps are filled by interpolation and, if it had fewer
  than ``min_track_length`` detector frames, it is dropped as flicker.

Frames must arrive in increasing index order. ``finish()`` finalises the rest.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from sonorisk.errors import InputError
from sonorisk.records import Detection, Track
from sonorisk.tracking.config import TrackingConfig
from sonorisk.tracking.postprocess import (
    box_iou,
    center_distance,
    continues,
    drop_spikes,
    interpolate_gaps,
)


@dataclass
class LesionTrack:
    """A finished lesion track with provenance of its frames."""

    track: Track
    observed_frames: list[int]  # frames with a box from the detector or keyframe carry
    interpolated_frames: list[int] = field(default_factory=list)
    dropped_frames: list[int] = field(default_factory=list)  # spikes replaced by interpolation
    propagated_frames: list[int] = field(default_factory=list)
    merged_ids: list[int] = field(default_factory=list)  # ByteTrack ids folded in

    @property
    def track_id(self) -> int:
        return self.track.track_id

    @property
    def first_frame(self) -> int:
        return self.track.detections[0].frame_index

    @property
    def last_frame(self) -> int:
        return self.track.detections[-1].frame_index


@dataclass
class TrackerUpdate:
    """What one frame changed: live boxes, back-filled boxes, finished lesions."""

    frame_index: int
    active: list[tuple[int, Detection]]  # (lesion id, box) seen in this frame
    backfilled: list[tuple[int, Detection]] = field(default_factory=list)
    finished: list[LesionTrack] = field(default_factory=list)


@dataclass
class _State:
    lesion_id: int
    detections: dict[int, Detection] = field(default_factory=dict)
    propagated: set[int] = field(default_factory=set)
    byte_ids: list[int] = field(default_factory=list)
    last_frame: int = -1

    def last(self) -> Detection:
        return self.detections[self.last_frame]

    def recent(self, n: int = 3) -> Detection:
        """The element-wise median of the last ``n`` boxes: one stray box (a
        false positive caught by the track) does not decide a merge."""
        frames = sorted(self.detections)[-n:]
        box = np.median(np.asarray([self.detections[i].box for i in frames]), axis=0)
        last = self.last()
        x1, y1, x2, y2 = (float(v) for v in box)
        return Detection(last.frame_index, (x1, y1, x2, y2), last.score, last.label)


class LesionTracker:
    """Frames in one at a time (``update``), lesion tracks out."""

    def __init__(self, config: TrackingConfig | None = None) -> None:
        from trackers import ByteTrackTracker

        self.config = cfg = config or TrackingConfig()
        if cfg.frame_rate <= 0 or not math.isfinite(cfg.frame_rate):
            raise InputError("tracking.frame_rate", f"must be positive, got {cfg.frame_rate}")
        self._byte = ByteTrackTracker(
            lost_track_buffer=cfg.lost_track_buffer,
            frame_rate=cfg.frame_rate,
            track_activation_threshold=cfg.track_activation_threshold,
            minimum_consecutive_frames=max(1, cfg.minimum_consecutive_frames),
            minimum_iou_threshold=cfg.minimum_iou_threshold,
            high_conf_det_threshold=cfg.high_conf_det_threshold,
        )
        self._lost_frames = max(1, math.ceil(cfg.lost_track_buffer * cfg.frame_rate / 30.0))
        self._states: dict[int, _State] = {}  # by lesion id
        self._byte_to_lesion: dict[int, int] = {}
        self._next_id = 1
        # Unassigned detections of recent frames, for back-filling a new
        # track's start (held back by ByteTrack, or missed while the lesion
        # grew into view faster than IoU association can follow).
        self._pending: deque[tuple[int, list[Detection]]] = deque(
            maxlen=max(1, cfg.minimum_consecutive_frames, cfg.max_gap) + 1
        )
        self._last_index: int | None = None

    # ------------------------------------------------------------------ update
    def update(
        self, frame_index: int, detections: list[Detection], propagated: bool = False
    ) -> TrackerUpdate:
        """Feed one frame's detections (possibly empty); returns what changed."""
        import supervision as sv

        if self._last_index is not None and frame_index <= self._last_index:
            raise InputError(
                f"frame {frame_index}", f"frames must arrive in order (last was {self._last_index})"
            )
        self._last_index = frame_index
        clean = [
            d
            for d in detections
            if np.isfinite(d.box).all()
            and math.isfinite(d.score)
            and d.box[2] > d.box[0]
            and d.box[3] > d.box[1]
        ]
        if clean:
            sv_dets = sv.Detections(
                xyxy=np.asarray([d.box for d in clean], dtype=np.float32),
                confidence=np.asarray([d.score for d in clean], dtype=np.float32),
                class_id=np.zeros(len(clean), dtype=int),
                data={"index": np.arange(len(clean))},
            )
        else:
            sv_dets = sv.Detections.empty()
        result = self._byte.update(sv_dets)
        update = TrackerUpdate(frame_index, [])
        assigned: set[int] = set()
        ids: np.ndarray | list[int] = result.tracker_id if result.tracker_id is not None else []
        indices = result.data.get("index", []) if len(result) else []
        for byte_id, det_index in zip(ids, indices, strict=True):
            if byte_id < 0:
                continue
            det = clean[int(det_index)]
            assigned.add(int(det_index))
            state, is_new = self._state_for(int(byte_id), det)
            if is_new:
                update.backfilled += self._backfill(state, det)
            state.detections[frame_index] = Detection(frame_index, det.box, det.score, det.label)
            if propagated:
                state.propagated.add(frame_index)
            state.last_frame = frame_index
            update.active.append((state.lesion_id, state.detections[frame_index]))
        self._pending.append(
            (frame_index, [d for i, d in enumerate(clean) if i not in assigned and not propagated])
        )
        update.finished = self._finish_lost(frame_index)
        return update

    def _state_for(self, byte_id: int, det: Detection) -> tuple[_State, bool]:
        lesion_id = self._byte_to_lesion.get(byte_id)
        if lesion_id is not None:
            return self._states[lesion_id], False
        cfg = self.config
        # A new ByteTrack id: a fragment of a recently lost lesion?
        best, best_gap = None, None
        for state in self._states.values():
            if state.last_frame >= det.frame_index:
                continue  # seen in this frame already: a different lesion
            if continues(
                state.last(), det, cfg.merge_max_gap, cfg.merge_min_iou, cfg.merge_center_dist
            ) or continues(
                state.recent(), det, cfg.merge_max_gap, cfg.merge_min_iou, cfg.merge_center_dist
            ):
                gap = det.frame_index - state.last_frame
                if best_gap is None or gap < best_gap:
                    best, best_gap = state, gap
        if best is None:
            best = _State(self._next_id)
            self._next_id += 1
            self._states[best.lesion_id] = best
        best.byte_ids.append(byte_id)
        self._byte_to_lesion[byte_id] = best.lesion_id
        return best, True

    def _backfill(self, state: _State, det: Detection) -> list[tuple[int, Detection]]:
        """Recover unassigned detections just before a new track's first box.

        Walks back frame by frame from the new box, taking in each earlier frame
        the unassigned detection that overlaps the current anchor (IoU >= the
        association threshold, or centres within ``merge_center_dist``
        diagonals); frames without one are skipped, at most ``max_gap`` in a row.
        """
        cfg = self.config
        out: list[tuple[int, Detection]] = []
        anchor = det
        skipped = 0
        for frame_index, dets in reversed(self._pending):
            if frame_index in state.detections or frame_index <= state.last_frame:
                break
            best, best_iou = None, -1.0
            for i, cand in enumerate(dets):
                iou = box_iou(anchor.box, cand.box)
                near = center_distance(anchor.box, cand.box) <= cfg.merge_center_dist
                if (iou >= cfg.minimum_iou_threshold or near) and iou > best_iou:
                    best, best_iou = i, iou
            if best is None:
                skipped += 1
                if skipped > cfg.max_gap:
                    break
                continue
            skipped = 0
            found = dets.pop(best)
            state.detections[frame_index] = found
            out.append((state.lesion_id, found))
            anchor = found
        return out

    # ---------------------------------------------------------------- finalise
    def _finish_lost(self, frame_index: int) -> list[LesionTrack]:
        horizon = max(self._lost_frames, self.config.merge_max_gap)
        done = [lid for lid, s in self._states.items() if frame_index - s.last_frame > horizon]
        for lid in done:
            # ByteTrack counts calls, not frame numbers: a live stream that drops
            # frames can outlast the horizon in frames while ByteTrack still holds
            # the id, and hands it back later. Such an id starts a new lesion.
            for byte_id in self._states[lid].byte_ids:
                self._byte_to_lesion.pop(byte_id, None)
        return [t for t in (self._finalise(self._states.pop(lid)) for lid in done) if t]

    def _finalise(self, state: _State) -> LesionTrack | None:
        observed = sorted(state.detections)
        # Flicker test counts detector frames only: boxes carried between
        # keyframes must not make a one-keyframe false positive look long.
        seen = [i for i in observed if i not in state.propagated]
        if len(seen) < max(1, self.config.min_track_length):
            return None  # flicker: too short to be a lesion
        kept, spikes = drop_spikes([state.detections[i] for i in observed], self.config.max_gap)
        detections, filled = interpolate_gaps(kept, self.config.max_gap)
        observed = [i for i in observed if i not in set(spikes)]
        return LesionTrack(
            track=Track(state.lesion_id, detections),
            observed_frames=observed,
            interpolated_frames=filled,
            dropped_frames=spikes,
            propagated_frames=sorted(state.propagated),
            merged_ids=list(state.byte_ids),
        )

    def finish(self) -> list[LesionTrack]:
        """Finalise every open lesion (end of a file or stream)."""
        states = sorted(self._states.values(), key=lambda s: s.lesion_id)
        self._states.clear()
        return [t for t in (self._finalise(s) for s in states) if t]

    @property
    def open_lesions(self) -> list[int]:
        return sorted(self._states)
