"""The live schedule (``schedule: when_free``): no frame waits for a model.

The detector and classifier doubles here are the real pipeline code's
contract with a deliberate delay per call (what a busy CPU looks like), so
the tests can tell whether frames waited for them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from sonorisk.pipeline import (
    ClipScored,
    FrameBoxes,
    IncrementalScorer,
    LesionEnded,
    PipelineConfig,
)
from sonorisk.records import Clip, ClipScore, LesionStatus

from .conftest import BoxDetector, blob_video


@dataclass
class SlowBoxDetector(BoxDetector):
    delay_s: float = 0.05

    def predict(self, frames: Sequence[Any], frame_indices: Sequence[int] | None = None):  # noqa: ANN201
        time.sleep(self.delay_s)
        return super().predict(frames, frame_indices)


@dataclass
class SlowClassifier:
    """The tiny I3D, ``delay_s`` slower per call; records what each call scored."""

    model: Any
    delay_s: float = 0.0
    calls: list[list[tuple[int, int]]] = field(default_factory=list)

    @property
    def clip_config(self):  # noqa: ANN201
        return self.model.clip_config

    def predict(
        self, clips: Sequence[Clip], heatmaps: bool = False, batch_size: int = 8
    ) -> list[ClipScore]:
        self.calls.append([(c.track_id, c.clip_index) for c in clips])
        time.sleep(self.delay_s)
        return self.model.predict(clips, heatmaps=heatmaps, batch_size=batch_size)


def live_config(**overrides: Any) -> PipelineConfig:
    return PipelineConfig(
        schedule="when_free",
        crop="none",
        detector_batch_size=1,
        classifier_batch_size=4,
        **overrides,
    )


def scorer_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("sonorisk-")]


def test_every_frame_gets_its_boxes_on_its_own_push(tiny_i3d) -> None:
    frames, boxes = blob_video(60, range(0, 60))
    detector = SlowBoxDetector(boxes, delay_s=0.06)
    scorer = IncrementalScorer(detector, tiny_i3d, live_config(), fps=30.0)
    waits, own = [], []
    for frame in frames:
        started = time.perf_counter()
        events = scorer.push(frame)
        waits.append(time.perf_counter() - started)
        own.append([e.frame_index for e in events if isinstance(e, FrameBoxes)] == [frame.index])
        time.sleep(1 / 30)  # frames arrive at 30 fps
    events = scorer.finish()
    assert all(own)  # each push answers for its own frame: nothing is held back
    # No push waited for a 60 ms detector call (a median far below one call).
    assert sorted(waits)[len(waits) // 2] < 0.03
    result = scorer.result()
    # The detector ran on some frames only, as it came free, and found the lesion.
    assert 5 <= scorer.timing.keyframes < 60
    assert len(detector.calls) < 60
    assert result.status is LesionStatus.SCORED and len(result.lesions) == 1
    lesion = result.lesions[0]
    assert {b.source for b in lesion.boxes.values()} >= {"detector", "propagated"}
    assert not scorer_threads()  # finish() ended the background threads


def test_a_lesion_ends_only_once_its_clips_are_scored(tiny_i3d) -> None:
    frames, boxes = blob_video(90, range(0, 40))  # in view 40 frames, then gone
    classifier = SlowClassifier(tiny_i3d, delay_s=0.05)
    scorer = IncrementalScorer(SlowBoxDetector(boxes, delay_s=0.01), classifier, live_config())
    events = []
    for frame in frames:
        events += scorer.push(frame)
        time.sleep(0.005)
    events += scorer.finish()
    ended = [i for i, e in enumerate(events) if isinstance(e, LesionEnded)]
    scored = [i for i, e in enumerate(events) if isinstance(e, ClipScored)]
    assert len(ended) == 1 and scored
    assert max(scored) < ended[0]  # every clip's score came before the lesion's end
    end = events[ended[0]]
    assert isinstance(end, LesionEnded)
    assert end.risk is not None and end.risk.clips_used == len(scored)
    result = scorer.result()
    assert result.risk == pytest.approx(
        sum(events[i].score.probability for i in scored) / len(scored)  # type: ignore[attr-defined]
    )


def test_a_classifier_that_falls_behind_scores_the_newest_clips(tiny_i3d) -> None:
    # Two lesions in view for 120 frames: 30 clips; the classifier is slow.
    frames, boxes = blob_video(120, range(0, 120), size=128)
    for i in boxes:
        boxes[i].append((90.0, 90.0, 115.0, 115.0))
    classifier = SlowClassifier(tiny_i3d, delay_s=0.4)
    config = live_config()
    config.classifier_batch_size = 2
    scorer = IncrementalScorer(SlowBoxDetector(boxes, delay_s=0.0), classifier, config)
    for frame in frames:
        scorer.push(frame)
        time.sleep(0.01)
    scorer.finish()
    timing = scorer.timing
    assert timing.clips_skipped > 0
    scored = sum(len(c) for c in classifier.calls)
    assert scored + timing.clips_skipped == timing.clips
    # While behind, each call took one clip of each lesion, the newest of each.
    busy = [c for c in classifier.calls if len(c) == 2]
    assert busy and all(len({lesion for lesion, _ in call}) == 2 for call in busy)
    result = scorer.result()
    assert sum(len(r.scores) for r in result.lesions) == scored


def test_a_model_error_in_the_background_reaches_the_caller(tiny_i3d) -> None:
    class Broken(BoxDetector):
        def predict(self, frames, frame_indices=None):  # noqa: ANN001, ANN201
            raise RuntimeError("detector replica lost")

    frames, _ = blob_video(10, [])
    scorer = IncrementalScorer(Broken({}), tiny_i3d, live_config())
    with pytest.raises(RuntimeError, match="replica lost"):
        for frame in frames:
            scorer.push(frame)
            time.sleep(0.01)
        scorer.finish()
    assert not scorer_threads()  # the failed scorer left no thread behind


def test_in_order_without_overlap_runs_no_threads(tiny_i3d) -> None:
    frames, boxes = blob_video(30, range(0, 30))
    config = PipelineConfig(crop="none", overlap=False)
    scorer = IncrementalScorer(BoxDetector(boxes), tiny_i3d, config)
    for frame in frames:
        scorer.push(frame)
        assert not scorer_threads()
    scorer.finish()


def test_in_order_with_overlap_leaves_no_thread_behind(tiny_i3d) -> None:
    frames, boxes = blob_video(40, range(0, 40))
    detector = SlowBoxDetector(boxes, delay_s=0.02)
    scorer = IncrementalScorer(detector, tiny_i3d, PipelineConfig(crop="none"))  # overlap
    seen = set()
    for frame in frames:
        scorer.push(frame)
        seen.update(scorer_threads())
    scorer.finish()
    assert any(name.startswith("sonorisk-detector") for name in seen)  # it did overlap
    assert not scorer_threads()
    # Dropped unfinished with a call in flight: the call's thread ends with the call.
    abandoned = IncrementalScorer(detector, tiny_i3d, PipelineConfig(crop="none"))
    for frame in frames[:8]:
        abandoned.push(frame)
    time.sleep(0.2)
    assert not scorer_threads()


def test_pace_feeds_a_file_at_its_frame_rate(tmp_path, tiny_i3d) -> None:
    import numpy as np

    from sonorisk.io.writer import write_video
    from sonorisk.pipeline.score_file import score_file

    frames, boxes = blob_video(15, range(15))
    video = tmp_path / "v.avi"
    write_video(video, [np.dstack([f.image] * 3) for f in frames], fps=30.0)

    @dataclass
    class Models:
        detector: Any
        classifier: Any
        cards: dict[str, Any] = field(default_factory=dict)

    models = Models(BoxDetector(boxes), tiny_i3d)
    for pace, at_least in ((None, 0.0), (1.0, 14 / 30), (2.0, 14 / 60)):
        started = time.perf_counter()
        doc = score_file(
            video, models, PipelineConfig(crop="none", pace=pace), tmp_path, progress=False
        )  # type: ignore[arg-type]
        assert time.perf_counter() - started >= at_least
        assert doc["video"]["frames_scored"] == 15


def test_pace_must_be_positive() -> None:
    from sonorisk.errors import ConfigError

    with pytest.raises(ConfigError, match="pipeline.pace"):
        PipelineConfig(pace=0).validate()


def test_an_error_mid_file_ends_the_model_call_in_flight_first(tmp_path, tiny_i3d) -> None:
    # A file whose frame size changes: the error comes up while a detector batch
    # is still in flight (overlap). It must be over before the error reaches the
    # caller; a call left running when the process exits aborts it (SIGABRT).
    import numpy as np

    from sonorisk.errors import InputError
    from sonorisk.io.writer import write_video
    from sonorisk.pipeline.score_file import score_file

    frames, boxes = blob_video(20, range(20))
    video = tmp_path / "two_sizes.ts"  # MPEG-TS parts concatenate into one stream
    parts = []
    for i, images in enumerate(
        ([np.dstack([f.image] * 3) for f in frames], [np.full((64, 64, 3), 40, np.uint8)] * 10)
    ):
        part = tmp_path / f"part{i}.ts"
        write_video(part, images, fps=30.0, codec="mpeg2video")
        parts.append(part.read_bytes())
    video.write_bytes(b"".join(parts))

    @dataclass
    class Models:
        detector: Any
        classifier: Any
        cards: dict[str, Any] = field(default_factory=dict)

    models = Models(SlowBoxDetector(boxes, delay_s=0.5), tiny_i3d)
    with pytest.raises(InputError, match="frame size changed"):
        score_file(video, models, PipelineConfig(crop="none"), tmp_path, progress=False)  # type: ignore[arg-type]
    assert not scorer_threads()  # no call outlived the error
