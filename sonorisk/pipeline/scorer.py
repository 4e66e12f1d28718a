"""The incremental scorer: frames in one at a time, events out.

Every entry point drives this one object (docs/design.md): ``sonorisk score`` pushes
a file's frames and then calls ``finish``; the server pushes a live stream's
frames as they arrive. The reader study does not drive it: it replays the JSON
documents scoring stored, so the AI answer is frozen before reads start.

Per frame, in order:

0. With ``crop: auto`` the first ``crop_sample`` frames are held until the
   scan region (the ultrasound image inside a screen capture) is found; from
   then on the detector sees only that region. Its boxes are mapped back, so
   the tracker, clips and reports work in source-frame pixels.
1. Keyframes (every ``tracking.keyframe_interval``-th frame) are queued until
   ``detector_batch_size`` of them are waiting, then detected in one batch
   (with ``overlap``, in a background thread while the batch before is
   tracked).
2. The queued frames go through the tracker in order (``KeyframeTracker``:
   detector boxes on keyframes, optical-flow boxes in between), which links
   boxes into lesions, back-fills a new lesion's first frames, merges
   fragments and finalises lesions that left the view.
3. Each lesion's boxes feed the clip builder in frame order. A short gap (at
   most ``tracking.max_gap`` frames) is bridged with interpolated boxes, so a
   clip is always 8 adjacent frames; a longer gap starts a new run of the
   lesion, and the frames left over at a run's end are dropped (paper).
4. Clips are scored in batches of ``classifier_batch_size`` (with ``overlap``,
   in a background thread while tracking goes on); each score updates the
   lesion's running risk (the mean of its clips).

A lesion the tracker drops as flicker has its clips withdrawn. A video with no
scored clip reports "no scorable lesion" and no number.
"""

from __future__ import annotations

import itertools
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np

from sonorisk.detector.interface import FrameDetector
from sonorisk.errors import InputError
from sonorisk.io.scan_region import RegionSampler, ScanRegion, crop_region
from sonorisk.pipeline.aggregate import lesion_risk
from sonorisk.pipeline.background import Answer, BackgroundCall
from sonorisk.pipeline.budget import check_memory, frames_held, recent_frames
from sonorisk.pipeline.config import PipelineConfig
from sonorisk.pipeline.events import (
    BoxSource,
    ClipScored,
    Event,
    FrameBoxes,
    LesionBox,
    LesionEnded,
    LesionUpdated,
    VideoEnded,
)
from sonorisk.pipeline.lesions import (
    DETECTED,
    LesionEvidence,
    LesionRules,
    LesionVerdict,
    confidence_of,
    duplicate_groups,
    evidence_of,
    is_candidate,
    video_risk,
)
from sonorisk.records import Box, Clip, ClipScore, Detection, Frame, LesionRisk, LesionStatus
from sonorisk.tracking.keyframe import KeyframeTracker
from sonorisk.tracking.lesion_tracker import LesionTrack, TrackerUpdate
from sonorisk.tracking.postprocess import interpolate_gaps
from sonorisk.video_classifier.clips import ClipBuilder, ClipConfig


class ClipScorer(Protocol):
    """What the pipeline needs of a classifier (``ClipClassifier`` and the Serve
    adapter ``RemoteClassifier`` satisfy it): scores of clips, and how the clips
    it scores must be cut."""

    @property
    def clip_config(self) -> ClipConfig: ...

    def predict(
        self, clips: Sequence[Clip], heatmaps: bool = ..., batch_size: int = ...
    ) -> list[ClipScore]: ...


@dataclass
class StageTiming:
    """Wall seconds spent per stage, and counts, for one video or stream."""

    frames: int = 0
    keyframes: int = 0
    clips: int = 0
    # Live schedule: clips left unscored because the classifier had fallen
    # behind (the newest clips of each lesion are scored first).
    clips_skipped: int = 0
    detector_s: float = 0.0
    tracking_s: float = 0.0
    clips_s: float = 0.0
    classifier_s: float = 0.0

    def as_dict(self) -> dict[str, float | int]:
        return dict(self.__dict__)


@dataclass
class LesionRecord:
    """Everything the pipeline knows about one lesion: boxes, clips, scores."""

    lesion_id: int
    boxes: dict[int, LesionBox] = field(default_factory=dict)
    scores: list[ClipScore] = field(default_factory=list)
    clips_made: int = 0
    # The crops of each scored clip, kept only when heatmaps are asked for (to draw them).
    crops: dict[int, np.ndarray] = field(default_factory=dict)
    ended: bool = False
    # Live: the tracker has finished it, and it ends once its clips are scored.
    closing: bool = False
    dropped: bool = False
    # Set by the lesion rules (sonorisk.pipeline.lesions) as evidence arrives.
    evidence: LesionEvidence | None = None
    confidence: float | None = None
    candidate: bool = False  # not confidently a lesion: never scored
    merged_ids: tuple[int, ...] = ()  # duplicate tracks folded into this lesion

    @property
    def first_frame(self) -> int:
        return min(self.boxes)

    @property
    def last_frame(self) -> int:
        return max(self.boxes)

    def judge(self, rules: LesionRules) -> None:
        """(Re)compute the lesion's evidence, confidence and candidate flag."""
        self.evidence = evidence_of(
            {i: (b.score, b.source) for i, b in self.boxes.items()}, self.scores
        )
        self.confidence = confidence_of(self.evidence, rules.confidence)
        self.candidate = is_candidate(self.evidence, self.confidence, rules)

    def risk(self) -> LesionRisk:
        if self.candidate:
            return LesionRisk(self.lesion_id, None, 0, LesionStatus.CANDIDATE, self.confidence)
        return replace(lesion_risk(self.lesion_id, self.scores), confidence=self.confidence)


def merge_records(records: Sequence[LesionRecord], rules: LesionRules) -> list[LesionRecord]:
    """Concurrent duplicate tracks folded into one lesion each (judged afresh).

    The track with the most detector frames keeps its id and boxes; the others
    add their boxes where it has none and all their clips (re-numbered).
    """
    by_id = {r.lesion_id: r for r in records}
    groups = duplicate_groups(
        {r.lesion_id: {i: b.box for i, b in r.boxes.items()} for r in records}, rules
    )
    out: list[LesionRecord] = []
    for group in groups:
        members = sorted(
            (by_id[i] for i in group),
            key=lambda r: (-sum(b.source in DETECTED for b in r.boxes.values()), r.lesion_id),
        )
        main = members[0]
        if len(members) == 1:
            merged = replace(main)
        else:
            boxes = dict(main.boxes)
            scores: list[ClipScore] = []
            crops: dict[int, np.ndarray] = {}
            for member in members:
                for i, b in member.boxes.items():
                    boxes.setdefault(i, replace(b, lesion_id=main.lesion_id))
                for score in member.scores:
                    k = len(scores)
                    scores.append(replace(score, track_id=main.lesion_id, clip_index=k))
                    if score.clip_index in member.crops:
                        crops[k] = member.crops[score.clip_index]
            merged = replace(
                main,
                boxes=dict(sorted(boxes.items())),
                scores=scores,
                crops=crops,
                clips_made=len(scores),
                merged_ids=tuple(sorted(m.lesion_id for m in members[1:])),
            )
        merged.judge(rules)
        out.append(merged)
    return sorted(out, key=lambda r: r.lesion_id)


@dataclass(frozen=True)
class VideoResult:
    """The final answer for one video (or a stream so far)."""

    frames: int
    status: LesionStatus
    risk: float | None  # by ``risk_rule`` from the scored lesions; None: not scorable
    clips: int  # clips the risk rests on
    lesions: tuple[LesionRecord, ...]  # duplicates merged; candidates included
    timing: StageTiming
    scan_region: ScanRegion | None = None  # None: the detector saw whole frames
    risk_rule: str = "most_confident_lesion"
    reason: str | None = None  # why there is no risk (None when there is one)


@dataclass
class _Seen:
    frame: Frame
    pushed_at: float
    keyframe: bool


class IncrementalScorer:
    """Frames in (``push``), events out; ``finish`` at the end; ``result`` any time."""

    def __init__(
        self,
        detector: FrameDetector,
        classifier: ClipScorer,
        config: PipelineConfig | None = None,
        *,
        clip_config: ClipConfig | None = None,
        fps: float | None = None,
    ) -> None:
        self.config = config or PipelineConfig()
        self.config.validate()
        tracking = self.config.tracking
        if fps is not None and fps > 0:
            tracking = replace(tracking, frame_rate=float(fps))
        self.tracking = tracking
        self.detector = detector
        self.classifier = classifier
        self.tracker = KeyframeTracker(detector, tracking)
        if clip_config is None:
            clip_config = classifier.clip_config
        if self.config.clip_stride is not None:
            clip_config = replace(clip_config, stride=self.config.clip_stride)
        self.builder = ClipBuilder(clip_config, fps)
        self.lesions: dict[int, LesionRecord] = {}
        self.timing = StageTiming()
        self._queued: list[_Seen] = []
        # Recent frames, for boxes the tracker hands back late (back-filled
        # first frames of a lesion, bridged gaps).
        self._recent: OrderedDict[int, _Seen] = OrderedDict()
        self._keep = recent_frames(self.config)
        self._clip_queue: list[tuple[Clip, float]] = []
        self._segment: dict[int, int] = {}  # lesion id -> clip-builder key of its current run
        self._last_pushed: dict[int, int] = {}
        self._next_key = 0
        self._last_index: int | None = None
        self._frame_shape: tuple[int, ...] | None = None
        self._finished = False
        self.scan_region: ScanRegion | None = None
        self._region_pending = self.config.crop == "auto"
        # The same frames `sonorisk info --crop` samples, so both report one region.
        self._region_sample = RegionSampler(self.config.crop_sample)
        # Model calls in the background: the live schedule (``schedule:
        # when_free``), and ``in_order`` with ``overlap``. A detector call's tag:
        # the views it detects and the scan region they were cropped with.
        self._live = self.config.schedule == "when_free"
        self._detecting: BackgroundCall[tuple[list[Frame], ScanRegion | None]] = BackgroundCall(
            "sonorisk-detector"
        )
        self._classifying: BackgroundCall[list[tuple[Clip, float]]] = BackgroundCall(
            "sonorisk-classifier"
        )
        self._last_submitted: int | None = None
        # in_order with overlap: the frames whose keyframes are being detected.
        self._in_flight: list[_Seen] | None = None

    # ------------------------------------------------------------------ input
    def push(self, frame: Frame) -> list[Event]:
        """Add the next frame; returns the events it (or the batch it completes) caused."""
        if self._finished:
            raise RuntimeError("push() after finish(): make a new scorer per video or stream")
        if self._last_index is not None and frame.index <= self._last_index:
            raise InputError(
                f"frame {frame.index}",
                f"frames must arrive in increasing order (last was {self._last_index})",
            )
        self._last_index = frame.index
        shape = frame.image.shape[:2]
        if self._frame_shape is None:
            check_memory(
                shape[1],
                shape[0],
                self.config.memory_budget_mb,
                f"frame {frame.index}",
                frames_held(self.config),
            )
            self._frame_shape = shape
        elif shape != self._frame_shape:
            # Boxes, tracks and the scan region are in the first frames' pixels:
            # scoring on would report boxes outside the frame size.
            (h0, w0), (h, w) = self._frame_shape, shape
            raise InputError(
                f"frame {frame.index}",
                f"frame size changed from {w0}x{h0} to {w}x{h} within the "
                "video; score each part as its own video",
            )
        # Live: which frames are keyframes is decided as they are tracked.
        keyframe = not self._live and self.timing.frames % self.tracking.keyframe_interval == 0
        self._queued.append(_Seen(frame, time.perf_counter(), keyframe))
        self.timing.frames += 1
        if self._region_pending:
            if self._region_sample.add(frame.image):
                self._find_region()
            elif self.config.crop_wait:
                return []
        if self._live:
            return self._drain_live()
        waiting = sum(1 for s in self._queued if s.keyframe)
        if waiting >= self.config.detector_batch_size:
            return self._drain(everything=False)
        if waiting == 0 and self._in_flight is None:
            # Only frames after an already tracked keyframe: optical flow from
            # the frame before needs nothing more, so their boxes go out now
            # instead of waiting for the next keyframe (live latency).
            return self._drain(everything=True)
        return []

    def finish(self) -> list[Event]:
        """End of the video or stream: run what is queued, finalise every lesion."""
        if self._finished:
            return []
        if self._region_pending and self._region_sample.frames:
            self._find_region()
        events = self._drain_live() if self._live else self._drain()
        answer = self._detecting.wait()
        if answer is not None:  # its frame has been tracked already: timed, not applied
            self.timing.detector_s += answer.seconds
        t0 = time.perf_counter()
        finished = self.tracker.finish()
        self.timing.tracking_s += time.perf_counter() - t0
        events += self._end_lesions(finished)
        if self._live:
            events += self._score_clips(force=True)
            events += self._close_scored()
        for lesion_id, record in sorted(self.lesions.items()):
            if not record.ended:
                events += self._drop(lesion_id)
        events += self._score_clips(force=True)
        self.close()
        self._finished = True
        self._recent.clear()
        # A copy: the fold of the events must not see timing that changes later.
        events.append(VideoEnded(self.timing.frames, replace(self.timing), self.scan_region))
        return events

    def result(self) -> VideoResult:
        """The answer so far (final after ``finish``; the same as the fold of the
        events, ``sonorisk.pipeline.fold``)."""
        kept = [r for _, r in sorted(self.lesions.items()) if not r.dropped]
        return video_result(kept, self.config.lesions, self.timing, self.scan_region)

    # ---------------------------------------------------------------- stages
    def _find_region(self) -> None:
        self._region_pending = False
        t0 = time.perf_counter()
        region = self._region_sample.estimate()
        self.timing.detector_s += time.perf_counter() - t0
        self.scan_region = crop_region(region)  # (nearly) the whole frame: no crop

    def _detector_view(self, frame: Frame) -> np.ndarray:
        if self.scan_region is None:
            return frame.image
        return self.scan_region.crop(frame.image)

    def _to_source(self, detections: list[Detection], region: ScanRegion | None) -> list[Detection]:
        """Boxes found in the detector's view of a frame, in source-frame pixels."""
        if region is None:
            return detections
        return [replace(d, box=region.to_frame_coords(d.box)) for d in detections]

    def _drain(self, everything: bool = True) -> list[Event]:
        """Detect queued keyframes in batches of ``detector_batch_size`` and track
        the queued frames; ``everything=False`` leaves an incomplete batch queued.

        With ``overlap`` a batch's detection is started in the background and
        the batch before it is tracked meanwhile: one batch is in flight at a
        time, and batches are tracked in the order they were queued."""
        events: list[Event] = []
        try:
            while True:
                chunk = self._next_chunk(everything)
                if self._in_flight is not None:
                    if chunk is None and not everything:
                        break  # keep it in flight: the next batch is not complete
                    ready, found = self._in_flight, self._detected()
                    self._in_flight = None
                    if chunk is not None:
                        self._start_detecting(chunk)  # works while `ready` is tracked
                    events += self._track(ready, found)
                elif chunk is not None:
                    if self.config.overlap:
                        self._start_detecting(chunk)
                    else:
                        events += self._track(chunk, self._detect(chunk))
                else:
                    break
            events += self._score_clips(force=False)
        except BaseException:
            self.close()  # a model error ends the scorer: no thread outlives it
            raise
        return events

    def _next_chunk(self, everything: bool) -> list[_Seen] | None:
        """The queued frames up to (not including) the first keyframe of the next
        batch; None when no batch is complete (and ``everything`` is False)."""
        batch = self.config.detector_batch_size
        if not self._queued:
            return None
        keys = [i for i, s in enumerate(self._queued) if s.keyframe]
        if len(keys) < batch and not everything:
            return None
        cut = keys[batch] if len(keys) > batch else len(self._queued)
        chunk, self._queued = self._queued[:cut], self._queued[cut:]
        return chunk

    def _keyframe_views(self, chunk: list[_Seen]) -> list[Frame]:
        return [replace(s.frame, image=self._detector_view(s.frame)) for s in chunk if s.keyframe]

    def _detect(self, chunk: list[_Seen]) -> dict[int, list[Detection]]:
        """The chunk's keyframes detected now: their boxes in source pixels."""
        views = self._keyframe_views(chunk)
        if not views:
            return {}
        t0 = time.perf_counter()
        found = self.detector.predict(views)
        return self._found_boxes(views, found, self.scan_region, time.perf_counter() - t0)

    def _start_detecting(self, chunk: list[_Seen]) -> None:
        views = self._keyframe_views(chunk)
        if views:
            self._detecting.submit((views, self.scan_region), self.detector.predict, views)
        self._in_flight = chunk

    def _detected(self) -> dict[int, list[Detection]]:
        """The boxes of the batch in flight, waiting for them ({} when it had no keyframe)."""
        answer = self._detecting.wait()
        if answer is None:
            return {}
        views, region = answer.tag
        return self._found_boxes(views, answer.result, region, answer.seconds)

    def _found_boxes(
        self,
        views: list[Frame],
        found: list[list[Detection]],
        region: ScanRegion | None,
        seconds: float,
    ) -> dict[int, list[Detection]]:
        self.timing.detector_s += seconds
        self.timing.keyframes += len(views)
        return {
            view.index: self._to_source(d, region) for view, d in zip(views, found, strict=True)
        }

    def _track(self, chunk: list[_Seen], detections: dict[int, list[Detection]]) -> list[Event]:
        events: list[Event] = []
        for seen in chunk:
            self._remember(seen)
            t0 = time.perf_counter()
            update = self.tracker.process(seen.frame, detections=detections.get(seen.frame.index))
            self.timing.tracking_s += time.perf_counter() - t0
            events += self._apply(update, seen)
        return events

    # ----------------------------------------------------- the live schedule
    def _drain_live(self) -> list[Event]:
        """Track every queued frame at once; collect and start background calls."""
        events: list[Event] = []
        queued, self._queued = self._queued, []
        try:
            for seen in queued:
                events += self._track_live(seen)
                events += self._poll_clips()
        except BaseException:
            self.close()  # a model error ends the scorer: no thread outlives it
            raise
        return events

    def close(self) -> None:
        """End the background model threads (``finish`` does; call it when a
        scorer is abandoned unfinished)."""
        self._detecting.close()
        self._classifying.close()

    def _track_live(self, seen: _Seen) -> list[Event]:
        frame = seen.frame
        answer = self._detecting.poll()
        arrived = self._arrived(answer) if answer is not None else None
        interval = max(1, self.tracking.keyframe_interval)
        if not self._detecting.busy and (
            self._last_submitted is None or frame.index - self._last_submitted >= interval
        ):
            # Started before this frame is tracked, so the detector works meanwhile.
            self._last_submitted = frame.index
            view = replace(frame, image=self._detector_view(frame))
            self._detecting.submit(([view], self.scan_region), self.detector.predict, [view])
        self._remember(seen)
        t0 = time.perf_counter()
        applied_before = self.tracker.stats.detector_frames
        update = self.tracker.process_live(frame, arrived)
        self.timing.tracking_s += time.perf_counter() - t0
        seen.keyframe = self.tracker.stats.detector_frames > applied_before
        return self._apply(update, seen)

    def _arrived(
        self, answer: Answer[tuple[list[Frame], ScanRegion | None]]
    ) -> tuple[int, list[Detection]]:
        """A background detection: the frame it was found on and its boxes in
        source pixels (by the scan region that frame was cropped with)."""
        views, region = answer.tag
        ((index, boxes),) = self._found_boxes(views, answer.result, region, answer.seconds).items()
        return index, boxes

    def _poll_clips(self) -> list[Event]:
        """Collect the clip batch scored in the background; start the next."""
        events = self._clip_answer(self._classifying.poll())
        if not self._classifying.busy and self._clip_queue:
            self._start_scoring(self._take_clips(self.config.classifier_batch_size))
        return events + self._close_scored()

    def _start_scoring(self, batch: list[tuple[Clip, float]]) -> None:
        """Score ``batch`` in the background (collected by ``_clip_answer``)."""
        self._classifying.submit(
            batch,
            self.classifier.predict,
            [c for c, _ in batch],
            heatmaps=self.config.heatmaps,
            batch_size=self.config.classifier_batch_size,
        )

    def _take_clips(self, size: int) -> list[tuple[Clip, float]]:
        """Live: the next clips to score, emptying the queue. When more wait than
        one call takes, the classifier has fallen behind: the newest clip of
        each lesion is taken in turn, and the older ones are skipped (counted),
        so scores stay current and every lesion in view keeps being scored."""
        queue, self._clip_queue = self._clip_queue, []
        if len(queue) <= size:
            return queue
        newest_first: dict[int, list[int]] = {}  # lesion id -> queue positions
        for i in reversed(range(len(queue))):
            newest_first.setdefault(queue[i][0].track_id, []).append(i)
        # Round by round, one clip of each lesion: its newest not yet taken.
        rounds = itertools.zip_longest(*newest_first.values())
        chosen = [i for row in rounds for i in row if i is not None][:size]
        self.timing.clips_skipped += len(queue) - len(chosen)
        return [queue[i] for i in sorted(chosen)]

    def _settle_clips(self) -> list[Event]:
        """Wait for the clip batch in flight, if any, and record its scores."""
        return self._clip_answer(self._classifying.wait())

    def _clip_answer(self, answer: Answer[list[tuple[Clip, float]]] | None) -> list[Event]:
        """Record the scores of a clip batch scored in the background (None: none yet)."""
        if answer is None:
            return []
        self.timing.classifier_s += answer.seconds
        return self._record_scores(answer.tag, answer.result, time.perf_counter())

    # --------------------------------------------------------------- helpers
    def _remember(self, seen: _Seen) -> None:
        self._recent[seen.frame.index] = seen
        while len(self._recent) > self._keep:
            self._recent.popitem(last=False)

    def _apply(self, update: TrackerUpdate, seen: _Seen) -> list[Event]:
        t0 = time.perf_counter()
        live_source: BoxSource = "detector" if seen.keyframe else "propagated"
        late: list[tuple[int, Detection, BoxSource]] = [
            (lid, det, "backfilled") for lid, det in update.backfilled
        ]
        now = [(lid, det, live_source) for lid, det in update.active]
        for lesion_id, det, source in sorted(late + now, key=lambda x: x[1].frame_index):
            self._add_box(lesion_id, det, source)
        self.timing.clips_s += time.perf_counter() - t0
        boxes = tuple(self.lesions[lid].boxes[seen.frame.index] for lid, _ in update.active)
        events: list[Event] = [
            FrameBoxes(
                seen.frame.index,
                seen.frame.timestamp_s,
                boxes,
                seen.keyframe,
                time.perf_counter() - seen.pushed_at,
            )
        ]
        events += self._end_lesions(update.finished)
        still_open = set(self.tracker.tracker.open_lesions)
        for lesion_id, record in sorted(self.lesions.items()):
            if not record.ended and not record.closing and lesion_id not in still_open:
                events += self._drop(lesion_id)  # finalised as flicker
        return events

    def _add_box(self, lesion_id: int, det: Detection, source: BoxSource) -> None:
        record = self.lesions.setdefault(lesion_id, LesionRecord(lesion_id))
        index = det.frame_index
        last = self._last_pushed.get(lesion_id)
        if last is not None and index <= last:
            return  # already have this frame of the lesion
        if last is not None and index - last > 1:
            gap = range(last + 1, index)
            previous = record.boxes[last]
            bridgeable = len(gap) <= self.tracking.max_gap and all(i in self._recent for i in gap)
            if bridgeable:
                before = Detection(last, previous.box, previous.score)
                filled, _ = interpolate_gaps([before, det], self.tracking.max_gap)
                for item in filled[1:-1]:
                    record.boxes[item.frame_index] = LesionBox(
                        lesion_id, item.box, item.score, "interpolated"
                    )
                    self._to_clip(record, item.frame_index, item.box)
            else:
                self._end_segment(lesion_id)  # a clip is made of adjacent frames only
        record.boxes[index] = LesionBox(lesion_id, det.box, det.score, source)
        self._to_clip(record, index, det.box)

    def _to_clip(self, record: LesionRecord, frame_index: int, box: Box) -> None:
        seen = self._recent.get(frame_index)
        self._last_pushed[record.lesion_id] = frame_index
        if seen is None:  # too old to crop: start a fresh run after it
            self._end_segment(record.lesion_id)
            return
        key = self._segment.get(record.lesion_id)
        if key is None:
            key = self._segment[record.lesion_id] = self._next_key
            self._next_key += 1
        clip = self.builder.push(key, frame_index, seen.frame.image, box)
        if clip is not None:
            clip = replace(clip, track_id=record.lesion_id, clip_index=record.clips_made)
            record.clips_made += 1
            self.timing.clips += 1
            self._clip_queue.append((clip, seen.pushed_at))

    def _end_segment(self, lesion_id: int) -> None:
        key = self._segment.pop(lesion_id, None)
        if key is not None:
            self.builder.end_track(key)

    def _score_clips(self, force: bool) -> list[Event]:
        """Score the queued clips: now, however few (``force``), or a full batch
        (in the background with ``overlap``: its scores are recorded when the
        next batch starts, or when a lesion or the video ends)."""
        size = self.config.classifier_batch_size
        if not force and self._classifying.busy and len(self._clip_queue) < size:
            return self._clip_answer(self._classifying.poll())  # never waits
        events = self._settle_clips()
        if not self._clip_queue:
            return events
        if not force and len(self._clip_queue) < size:
            return events
        queue, self._clip_queue = self._clip_queue, []
        if not force and self.config.overlap and not self._live:
            self._start_scoring(queue)
            return events
        t0 = time.perf_counter()
        scores = self.classifier.predict(
            [c for c, _ in queue], heatmaps=self.config.heatmaps, batch_size=size
        )
        done = time.perf_counter()
        self.timing.classifier_s += done - t0
        return events + self._record_scores(queue, scores, done)

    def _record_scores(
        self, queue: list[tuple[Clip, float]], scores: list[ClipScore], done: float
    ) -> list[Event]:
        events: list[Event] = []
        for (clip, last_pushed_at), score in zip(queue, scores, strict=True):
            record = self.lesions[clip.track_id]
            if record.dropped:
                continue  # withdrawn as flicker while its clip was scored (live)
            record.scores.append(score)
            record.judge(self.config.lesions)
            if self.config.heatmaps:
                record.crops[clip.clip_index] = clip.crops
            events.append(
                ClipScored(
                    score,
                    done - last_pushed_at,
                    record.candidate,
                    clip.crops if self.config.heatmaps else None,
                )
            )
            events.append(LesionUpdated(record.risk()))
        return events

    def _clips_pending(self, lesion_id: int) -> bool:
        """Whether clips of the lesion wait for a score (queued or in flight)."""
        pending = self._clip_queue + (self._classifying.tag or [])
        return any(c.track_id == lesion_id for c, _ in pending)

    def _end_lesions(self, finished: list[LesionTrack]) -> list[Event]:
        events: list[Event] = []
        for lesion in finished:
            record = self.lesions.setdefault(lesion.track_id, LesionRecord(lesion.track_id))
            self._end_segment(lesion.track_id)
            if self._clips_pending(lesion.track_id):
                if self._live:
                    # Its risk must be complete when it ends, but no frame waits
                    # for the classifier: it ends when its last clip is scored.
                    record.closing = True
                    continue
                events += self._score_clips(force=True)
            events += self._close(record)
        return events

    def _close_scored(self) -> list[Event]:
        """Live: end the finished lesions whose clips are all scored now."""
        events: list[Event] = []
        for _, record in sorted(self.lesions.items()):
            if record.closing and not self._clips_pending(record.lesion_id):
                events += self._close(record)
        return events

    def _close(self, record: LesionRecord) -> list[Event]:
        record.ended, record.closing = True, False
        record.judge(self.config.lesions)
        frames = tuple(sorted(record.boxes))
        return [
            LesionEnded(
                record.lesion_id,
                frames[0] if frames else -1,
                frames[-1] if frames else -1,
                False,
                record.risk(),
                frames,
                dict(record.boxes),
            )
        ]

    def _drop(self, lesion_id: int) -> list[Event]:
        record = self.lesions[lesion_id]
        self._end_segment(lesion_id)
        self._clip_queue = [(c, t) for c, t in self._clip_queue if c.track_id != lesion_id]
        record.ended = record.dropped = True
        record.scores.clear()
        record.crops.clear()
        frames = tuple(sorted(record.boxes))
        return [
            LesionEnded(
                lesion_id,
                frames[0] if frames else -1,
                frames[-1] if frames else -1,
                True,
                None,
                frames,
            )
        ]


def video_result(
    kept: Sequence[LesionRecord],
    rules: LesionRules,
    timing: StageTiming,
    scan_region: ScanRegion | None,
) -> VideoResult:
    """The answer from the lesions kept (not dropped as flicker), in lesion-id order:
    duplicates merged, each judged, the video risk by ``rules.risk_rule``."""
    lesions = tuple(merge_records(kept, rules))
    verdicts = [
        LesionVerdict(r.lesion_id, r.confidence or 0.0, not r.candidate, r.risk().risk, r.scores)
        for r in lesions
    ]
    risk, n_clips = video_risk(verdicts, rules.risk_rule)
    status = LesionStatus.SCORED if risk is not None else LesionStatus.NO_SCORABLE_LESION
    return VideoResult(
        timing.frames,
        status,
        risk,
        n_clips,
        lesions,
        timing,
        scan_region,
        rules.risk_rule,
        None if risk is not None else no_risk_reason(lesions),
    )


def no_risk_reason(lesions: Sequence[LesionRecord]) -> str:
    """Why a video has no number, in words a report can show."""
    if not lesions:
        return "no lesion found: the detector tracked nothing long enough to be a lesion"
    if any(r.candidate for r in lesions):
        return (
            "no confident lesion: the tracks found were judged unlikely to be lesions "
            "(lesion confidence below the threshold) or too short for a clip"
        )
    return "no lesion stayed in view for one full clip"
