"""The score document as a fold of the scorer's events.

``ScoreFold`` reads the events of one video (or one stream segment) and, once
``VideoEnded`` has passed, gives the same ``VideoResult`` the scorer's own
``result()`` gives, and from it the versioned document (``report.py``). It is
the document sink: a file and a stream differ only in where the frames come
from and which other sinks read the events (``sinks.py``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from sonorisk.pipeline.events import ClipScored, Event, LesionEnded, VideoEnded
from sonorisk.pipeline.lesions import LesionRules
from sonorisk.pipeline.report import build_report
from sonorisk.pipeline.scorer import LesionRecord, VideoResult, video_result
from sonorisk.records import ClipScore, Frame, VideoMeta


class ScoreFold:
    """Events in; the video's result and document out (after ``VideoEnded``)."""

    def __init__(self, rules: LesionRules) -> None:
        self.rules = rules
        self._scores: dict[int, list[ClipScore]] = {}
        self._crops: dict[int, dict[int, np.ndarray]] = {}
        self._subtypes: dict[int, dict[str, float]] = {}  # a still's lesions: subtype head
        self._ended: dict[int, LesionEnded] = {}  # kept lesions, by id
        self._end: VideoEnded | None = None

    @property
    def ended(self) -> bool:
        return self._end is not None

    def frame(self, frame: Frame) -> None:
        """Frames carry nothing the document needs (it is a sink like the others)."""

    def events(self, events: Iterable[Event]) -> None:
        for event in events:
            if isinstance(event, ClipScored):
                lesion_id = event.score.track_id
                self._scores.setdefault(lesion_id, []).append(event.score)
                if event.crops is not None:
                    self._crops.setdefault(lesion_id, {})[event.score.clip_index] = event.crops
                if event.subtypes is not None:
                    self._subtypes[lesion_id] = dict(event.subtypes)
            elif isinstance(event, LesionEnded):
                if event.dropped:  # flicker: its clips are withdrawn from every risk
                    self._scores.pop(event.lesion_id, None)
                    self._crops.pop(event.lesion_id, None)
                    self._subtypes.pop(event.lesion_id, None)
                    self._ended.pop(event.lesion_id, None)
                else:
                    self._ended[event.lesion_id] = event
            elif isinstance(event, VideoEnded):
                self._end = event

    def result(self) -> VideoResult:
        """The final answer; the same as ``IncrementalScorer.result()`` after ``finish``."""
        if self._end is None:
            raise RuntimeError("the video has not ended: no VideoEnded event yet")
        kept = []  # judged by video_result (merge_records judges every lesion)
        for lesion_id, ended in sorted(self._ended.items()):
            scores = list(self._scores.get(lesion_id, []))
            record = LesionRecord(
                lesion_id,
                boxes=dict(ended.boxes),
                scores=scores,
                clips_made=len(scores),
                crops=dict(self._crops.get(lesion_id, {})),
                ended=True,
            )
            kept.append(record)
        return video_result(kept, self.rules, self._end.timing, self._end.scan_region)

    def document(
        self,
        meta: VideoMeta,
        *,
        models: dict[str, dict[str, Any]],
        pipeline_config: dict[str, Any],
        decode: dict[str, Any] | None = None,
        wall_s: float | None = None,
        heatmaps: dict[tuple[int, int], str] | None = None,
        outputs: dict[str, str] | None = None,
        still: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The versioned score document (score.schema.json) of the folded video.
        ``still``: the still image's description (``Still.describe``) when the
        "video" is one still (``video.kind: "still"``)."""
        return build_report(
            self.result(),
            meta,
            models=models,
            pipeline_config=pipeline_config,
            decode=decode,
            wall_s=wall_s,
            heatmaps=heatmaps,
            outputs=outputs,
            still=still,
            subtypes=self._subtypes,
        )
