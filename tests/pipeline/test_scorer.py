"""The incremental scorer: clip rules, aggregation, batching, no invented risks."""

from __future__ import annotations

import math

import pytest

from sonorisk.errors import InputError
from sonorisk.pipeline import ClipScored, FrameBoxes, IncrementalScorer, LesionEnded, PipelineConfig
from sonorisk.pipeline.lesions import LesionRules
from sonorisk.records import LesionStatus

from .conftest import BoxDetector, blob_video


def run(frames, detector, classifier, **overrides):
    config = PipelineConfig(**{k: v for k, v in overrides.items() if k != "tracking"})
    for key, value in overrides.get("tracking", {}).items():
        setattr(config.tracking, key, value)
    scorer = IncrementalScorer(detector, classifier, config, fps=30.0)
    events = []
    for frame in frames:
        events += scorer.push(frame)
    events += scorer.finish()
    return scorer.result(), events


@pytest.mark.parametrize(("visible", "clips"), [(7, 0), (8, 1), (15, 1), (16, 2), (24, 3)])
def test_paper_clip_rule_on_track_length(tiny_i3d, visible: int, clips: int) -> None:
    frames, boxes = blob_video(visible + 10, range(5, 5 + visible))
    result, events = run(frames, BoxDetector(boxes), tiny_i3d)
    assert result.clips == clips
    scored = [e.score for e in events if isinstance(e, ClipScored)]
    assert len(scored) == clips
    for score in scored:  # 8 adjacent frames, in order, inside the visible run
        assert list(score.frame_indices) == list(
            range(score.frame_indices[0], score.frame_indices[0] + 8)
        )
        assert score.frame_indices[0] >= 5 and score.frame_indices[-1] < 5 + visible
    if clips == 0:
        assert result.status is LesionStatus.NO_SCORABLE_LESION
        assert result.risk is None
        assert all(r.risk().risk is None for r in result.lesions)
    else:
        assert result.status is LesionStatus.SCORED
        assert result.risk == pytest.approx(sum(s.probability for s in scored) / clips)


def test_no_lesion_video_gets_no_number(tiny_i3d) -> None:
    frames, _ = blob_video(40, [])
    result, events = run(frames, BoxDetector({}), tiny_i3d)
    assert result.status is LesionStatus.NO_SCORABLE_LESION
    assert result.risk is None and result.clips == 0 and result.lesions == ()
    boxes = [e for e in events if isinstance(e, FrameBoxes)]
    assert [e.frame_index for e in boxes] == list(range(40))
    assert all(e.boxes == () for e in boxes)


def test_lesion_and_video_risk_are_means_of_clips_by_the_paper_rule(tiny_i3d) -> None:
    # Two lesions: one visible 0-31 (4 clips), another 40-55 (2 clips).
    frames, boxes = blob_video(70, list(range(0, 32)) + list(range(40, 56)))
    far = {i: [(60.0, 5.0, 80.0, 25.0)] for i in range(40, 56)}
    for i, extra in far.items():
        boxes[i] = extra
    paper = LesionRules(risk_rule="mean_of_clips")  # the paper's video rule
    result, events = run(frames, BoxDetector(boxes), tiny_i3d, lesions=paper)
    assert [len(r.scores) for r in result.lesions] == [4, 2]
    for record in result.lesions:
        expected = math.fsum(s.probability for s in record.scores) / len(record.scores)
        assert record.risk().risk == pytest.approx(expected)
    every = [s.probability for r in result.lesions for s in r.scores]
    assert result.risk == pytest.approx(math.fsum(every) / 6)
    ended = [e for e in events if isinstance(e, LesionEnded)]
    assert sorted(e.lesion_id for e in ended) == [r.lesion_id for r in result.lesions]
    assert not any(e.dropped for e in ended)


def test_batch_sizes_do_not_change_the_answer(tiny_i3d) -> None:
    frames, boxes = blob_video(40, range(3, 35))
    one, _ = run(
        frames, BoxDetector(boxes), tiny_i3d, detector_batch_size=1, classifier_batch_size=1
    )
    many, _ = run(
        frames, BoxDetector(boxes), tiny_i3d, detector_batch_size=6, classifier_batch_size=8
    )
    assert one.clips == many.clips == 4
    assert one.risk == pytest.approx(many.risk, abs=1e-5)
    assert [s.frame_indices for s in one.lesions[0].scores] == [
        s.frame_indices for s in many.lesions[0].scores
    ]


def test_detector_batches_keyframes(tiny_i3d) -> None:
    frames, boxes = blob_video(24, range(24))
    detector = BoxDetector(boxes)
    run(frames, detector, tiny_i3d, detector_batch_size=4, tracking={"keyframe_interval": 3})
    called = [i for batch in detector.calls for i in batch]
    assert called == list(range(0, 24, 3))  # only keyframes reach the detector
    assert all(len(batch) <= 4 for batch in detector.calls)


def test_frames_after_a_tracked_keyframe_get_their_boxes_at_once(tiny_i3d) -> None:
    # Live latency: a frame between keyframes needs only optical flow from the
    # frame before, so its boxes come out when it is pushed, not at the next
    # keyframe. Only frames behind a keyframe still waiting for its batch wait.
    frames, boxes = blob_video(12, range(12))

    def emitted(batch: int) -> list[list[int]]:
        # overlap off: one thing at a time, the lowest box latency (with it on,
        # a batch's boxes come one batch later: test_overlap_* below).
        config = PipelineConfig(detector_batch_size=batch, crop="none", overlap=False)
        config.tracking.keyframe_interval = 3
        scorer = IncrementalScorer(BoxDetector(boxes), tiny_i3d, config, fps=30.0)
        return [
            [e.frame_index for e in scorer.push(f) if isinstance(e, FrameBoxes)] for f in frames
        ]

    assert emitted(1) == [[i] for i in range(12)]
    # Batches of 2 keyframes (0 and 3, 6 and 9): frames behind a keyframe wait
    # for its batch, then go out together; frames after it go out at once.
    assert emitted(2) == [[], [], [], [0, 1, 2, 3], [4], [5], [], [], [], [6, 7, 8, 9], [10], [11]]


def _same_answer(a, b) -> None:
    assert a.status is b.status and a.clips == b.clips
    assert a.risk == b.risk  # the same calls on the same inputs: exactly equal
    assert [r.lesion_id for r in a.lesions] == [r.lesion_id for r in b.lesions]
    for x, y in zip(a.lesions, b.lesions, strict=True):
        assert x.boxes == y.boxes
        assert [s.frame_indices for s in x.scores] == [s.frame_indices for s in y.scores]
        assert [s.probability for s in x.scores] == [s.probability for s in y.scores]


def test_overlap_gives_the_answer_of_one_thing_at_a_time(tiny_i3d) -> None:
    import threading

    # Two lesions, keyframes every 3rd frame in batches of 2, clips in batches of 2.
    frames, boxes = blob_video(80, list(range(2, 40)) + list(range(48, 75)))
    for i in range(48, 75):
        boxes[i] = [(60.0, 5.0, 80.0, 25.0)]
    answers, threads = {}, {}
    for overlap in (False, True):
        detector = BoxDetector(boxes)
        seen_in: set[str] = set()
        original = detector.predict

        def predict(frames, frame_indices=None, original=original, seen_in=seen_in):  # noqa: ANN001, ANN202
            seen_in.add(threading.current_thread().name)
            return original(frames, frame_indices)

        detector.predict = predict  # type: ignore[method-assign]
        answers[overlap], events = run(
            frames,
            detector,
            tiny_i3d,
            overlap=overlap,
            detector_batch_size=2,
            classifier_batch_size=2,
            crop="none",
            tracking={"keyframe_interval": 3},
        )
        threads[overlap] = seen_in
        # Every frame's boxes come out once, in frame order, whatever the schedule.
        got = [e.frame_index for e in events if isinstance(e, FrameBoxes)]
        assert got == list(range(80))
    _same_answer(answers[True], answers[False])
    assert len(answers[True].lesions) == 2
    assert sum(len(r.scores) for r in answers[True].lesions) >= 6
    assert threads[False] == {"MainThread"}
    assert all(name.startswith("sonorisk-detector") for name in threads[True])
    assert not [t for t in threading.enumerate() if t.name.startswith("sonorisk-")]  # all ended


def test_overlap_holds_a_batch_in_flight_until_the_next_is_complete(tiny_i3d) -> None:
    frames, boxes = blob_video(12, range(12))
    config = PipelineConfig(detector_batch_size=2, crop="none")  # overlap: the default
    config.tracking.keyframe_interval = 3
    scorer = IncrementalScorer(BoxDetector(boxes), tiny_i3d, config, fps=30.0)
    emitted = [[e.frame_index for e in scorer.push(f) if isinstance(e, FrameBoxes)] for f in frames]
    # Keyframes 0 and 3 are detected in the background from frame 3 on; frames
    # 0-3 are tracked when the next batch (frames 4-9, keyframes 6 and 9) is
    # complete and starts; the rest when the video ends.
    assert emitted == [[], [], [], [], [], [], [], [], [], [0, 1, 2, 3], [], []]
    tail = [e.frame_index for e in scorer.finish() if isinstance(e, FrameBoxes)]
    assert tail == [4, 5, 6, 7, 8, 9, 10, 11]


def test_a_detector_error_in_the_background_reaches_the_caller(tiny_i3d) -> None:
    import threading

    class Broken(BoxDetector):
        def predict(self, frames, frame_indices=None):  # noqa: ANN001, ANN201
            raise RuntimeError("detector replica died")

    frames, _ = blob_video(30, range(30))
    scorer = IncrementalScorer(Broken({}), tiny_i3d, PipelineConfig(crop="none"), fps=30.0)
    with pytest.raises(RuntimeError, match="detector replica died"):
        for frame in frames:
            scorer.push(frame)
        scorer.finish()
    assert not [t for t in threading.enumerate() if t.name.startswith("sonorisk-")]


def test_clip_stride_scores_every_other_clip(tiny_i3d) -> None:
    frames, boxes = blob_video(50, range(5, 45))  # 40 frames: 5 clips at the paper's stride
    paper, _ = run(frames, BoxDetector(boxes), tiny_i3d)
    half, events = run(frames, BoxDetector(boxes), tiny_i3d, clip_stride=16)
    assert paper.clips == 5 and half.clips == 3
    starts = [s.frame_indices[0] for s in half.lesions[0].scores]
    assert starts == [5, 21, 37]  # 8 adjacent frames every 16
    assert all(
        list(s.frame_indices) == list(range(s.frame_indices[0], s.frame_indices[0] + 8))
        for s in half.lesions[0].scores
    )
    # The same clips as the paper's 1st, 3rd and 5th: the same scores.
    by_start = {s.frame_indices[0]: s.probability for s in paper.lesions[0].scores}
    assert [s.probability for s in half.lesions[0].scores] == pytest.approx(
        [by_start[i] for i in starts], abs=1e-6
    )


def test_clip_stride_is_validated() -> None:
    from sonorisk.errors import ConfigError

    with pytest.raises(ConfigError, match="clip_stride"):
        PipelineConfig(clip_stride=0).validate()


def test_keyframe_mode_still_scores_the_lesion(tiny_i3d) -> None:
    frames, boxes = blob_video(40, range(40))
    result, events = run(frames, BoxDetector(boxes), tiny_i3d, tracking={"keyframe_interval": 4})
    assert result.clips == 5
    sources = {b.source for e in events if isinstance(e, FrameBoxes) for b in e.boxes}
    assert sources == {"detector", "propagated"}


def test_short_gap_is_bridged_by_interpolation(tiny_i3d) -> None:
    visible = [i for i in range(32) if i not in (12, 13, 14)]
    frames, boxes = blob_video(40, visible)
    result, _ = run(frames, BoxDetector(boxes), tiny_i3d)
    (lesion,) = result.lesions
    assert {lesion.boxes[i].source for i in (12, 13, 14)} == {"interpolated"}
    assert len(lesion.scores) == 4  # 32 adjacent frames once the gap is filled


def test_one_frame_flicker_is_not_a_lesion(tiny_i3d) -> None:
    frames, boxes = blob_video(30, [])
    boxes = {10: [(10.0, 10.0, 30.0, 30.0)], 20: [(50.0, 50.0, 70.0, 70.0)]}
    result, events = run(frames, BoxDetector(boxes), tiny_i3d)
    assert result.lesions == () and result.risk is None
    assert not any(isinstance(e, ClipScored) for e in events)


def test_frames_must_arrive_in_order(tiny_i3d) -> None:
    frames, boxes = blob_video(5, range(5))
    scorer = IncrementalScorer(BoxDetector(boxes), tiny_i3d, PipelineConfig())
    scorer.push(frames[3])
    with pytest.raises(InputError, match="increasing order"):
        scorer.push(frames[2])


def test_push_after_finish_is_refused(tiny_i3d) -> None:
    frames, boxes = blob_video(3, range(3))
    scorer = IncrementalScorer(BoxDetector(boxes), tiny_i3d)
    scorer.push(frames[0])
    scorer.finish()
    with pytest.raises(RuntimeError, match="after finish"):
        scorer.push(frames[1])


def test_screen_capture_is_cropped_and_boxes_come_back_in_source_pixels(tiny_i3d) -> None:
    import numpy as np

    from sonorisk.data.screen_capture import make_layout, render
    from sonorisk.records import Frame

    from .conftest import BrightBlobDetector

    # A moving lesion inside a scanner screen (interface text, ruler, ...).
    raw, truth = blob_video(40, range(40), size=320, seed=3)
    layout = make_layout(
        raw[0].image.shape,
        np.random.default_rng(1),
        shape="linear",
        calipers=False,
        color_bar=False,
    )
    frames = [Frame(f.index, f.timestamp_s, render(f.image, layout)) for f in raw]
    detector = BrightBlobDetector()
    result, _ = run(frames, detector, tiny_i3d, crop="auto")

    assert result.scan_region is not None
    x1, y1, x2, y2 = result.scan_region.box
    assert (x2 - x1) * (y2 - y1) < 0.5 * 1920 * 1080  # the detector saw less than the screen
    assert all(shape == (y2 - y1, x2 - x1) for shape in detector.seen_shapes)
    (lesion,) = result.lesions
    for index, box in lesion.boxes.items():
        expected = layout.map_box(truth[index][0])
        assert np.allclose(box.box, expected, atol=3 * layout.scale + 1), (index, box.box)
    assert result.clips == 5


def test_live_mode_detects_on_the_whole_frame_until_the_region_is_known(tiny_i3d) -> None:
    import numpy as np

    from sonorisk.data.screen_capture import make_layout, render
    from sonorisk.records import Frame

    from .conftest import BrightBlobDetector

    raw, truth = blob_video(40, range(40), size=320, seed=3)
    layout = make_layout(
        raw[0].image.shape,
        np.random.default_rng(1),
        shape="linear",
        calipers=False,
        color_bar=False,
    )
    frames = [Frame(f.index, f.timestamp_s, render(f.image, layout)) for f in raw]

    def first_boxes(crop_wait: bool) -> tuple[int, BrightBlobDetector, IncrementalScorer]:
        detector = BrightBlobDetector()
        config = PipelineConfig(
            crop="auto", crop_sample=16, crop_wait=crop_wait, detector_batch_size=1
        )
        scorer = IncrementalScorer(detector, tiny_i3d, config, fps=30.0)
        for frame in frames:
            if any(isinstance(e, FrameBoxes) and e.boxes for e in scorer.push(frame)):
                return frame.index, detector, scorer
        raise AssertionError("no box before the end")

    # Files: the first boxes wait for the region estimate (16 frames).
    held_at, held, _ = first_boxes(crop_wait=True)
    assert held_at == 15
    # Live: boxes from the first frames, found on the whole frame, in source pixels.
    live_at, live, scorer = first_boxes(crop_wait=False)
    assert live_at < 3
    assert live.seen_shapes[0] == (1080, 1920)
    # Once 16 frames are in, the detector sees the scan region only.
    for frame in frames[live_at + 1 :]:
        scorer.push(frame)
    scorer.finish()
    result = scorer.result()
    x1, y1, x2, y2 = result.scan_region.box
    assert live.seen_shapes[-1] == (y2 - y1, x2 - x1)
    # (The whole frame also shows the interface's bright text to this blob
    # detector: short tracks of it may exist; the lesion is the long track.)
    lesion = max(result.lesions, key=lambda r: len(r.boxes))
    assert len(lesion.boxes) >= 38
    for index, box in lesion.boxes.items():
        expected = layout.map_box(truth[index][0])
        assert np.allclose(box.box, expected, atol=3 * layout.scale + 1), (index, box.box)


def test_a_frame_size_change_after_the_first_frames_is_refused(tiny_i3d) -> None:
    """It used to be scored on, with boxes outside the reported frame size."""
    import numpy as np

    from sonorisk.records import Frame

    frames, boxes = blob_video(30, range(30), size=96)
    bigger = Frame(30, 1.0, np.zeros((120, 160), np.uint8))
    scorer = IncrementalScorer(BoxDetector(boxes), tiny_i3d, PipelineConfig(crop="auto"))
    for frame in frames:
        scorer.push(frame)
    with pytest.raises(InputError) as info:
        scorer.push(bigger)
    assert "96x96 to 160x120" in info.value.reason and info.value.source == "frame 30"
