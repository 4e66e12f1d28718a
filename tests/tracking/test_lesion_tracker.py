from __future__ import annotations

import numpy as np
import pytest

from sonorisk.errors import InputError
from sonorisk.records import Detection
from sonorisk.tracking import LesionTracker, TrackingConfig, track_detections
from sonorisk.tracking.postprocess import box_iou

from .conftest import Sweep, corrupt


def coverage(track_boxes: dict[int, tuple], sweep: Sweep, iou: float = 0.3) -> float:
    """Share of the lesion's visible frames where the track has a matching box."""
    hits = [
        i
        for i in sweep.visible
        if i in track_boxes and box_iou(track_boxes[i], sweep.gt[i][0]) >= iou
    ]
    return len(hits) / len(sweep.visible)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_each_lesion_one_track_covering_95_percent(sweeps: list[Sweep], seed: int):
    rng = np.random.default_rng(seed)
    checked = 0
    for sweep in sweeps:
        if len(sweep.visible) < 10:
            continue
        detections = corrupt(sweep, rng)
        tracks = track_detections(detections, sweep.n_frames, TrackingConfig())
        # Exactly one lesion track; the one-frame false positives left no track.
        assert len(tracks) == 1, (sweep.video_id, [(t.track_id, len(t.track)) for t in tracks])
        boxes = {d.frame_index: d.box for d in tracks[0].track.detections}
        assert coverage(boxes, sweep) >= 0.95, sweep.video_id
        assert all(np.isfinite(b).all() for b in boxes.values())
        checked += 1
    assert checked >= 4  # the phantom fixture must really hold lesion sweeps


def test_without_interpolation_coverage_drops(sweeps: list[Sweep]):
    """The gap filling is what lifts coverage (the test above is not vacuous)."""
    rng = np.random.default_rng(0)
    sweep = max(sweeps, key=lambda s: len(s.visible))
    detections = corrupt(sweep, rng, miss_p=0.2)
    cfg = TrackingConfig(max_gap=0)
    tracks = track_detections(detections, sweep.n_frames, cfg)
    boxes = {d.frame_index: d.box for t in tracks for d in t.track.detections}
    assert coverage(boxes, sweep) < 0.9
    filled = track_detections(detections, sweep.n_frames, TrackingConfig())
    boxes = {d.frame_index: d.box for d in filled[0].track.detections}
    assert coverage(boxes, sweep) >= 0.95
    assert filled[0].interpolated_frames  # provenance of the filled frames is kept


def test_one_frame_flicker_is_suppressed():
    per_frame = {i: [] for i in range(60)}
    for i in (5, 17, 30, 44):  # isolated blips, each in another place
        x = 10.0 * i
        per_frame[i] = [Detection(i, (x, 10, x + 20, 30), 0.95)]
    assert track_detections(per_frame, 60) == []


def test_fragments_of_one_lesion_are_merged():
    """A lesion lost for longer than ByteTrack's buffer comes back with a new
    ByteTrack id; the tracker keeps it one lesion."""
    cfg = TrackingConfig(lost_track_buffer=5, max_gap=10, merge_max_gap=40)
    per_frame = {}
    for i in range(100):
        visible = i < 40 or i >= 60  # a 20-frame gap (> buffer 5, > max_gap 10)
        x = 50 + 0.5 * i
        per_frame[i] = [Detection(i, (x, 40, x + 40, 80), 0.9)] if visible else []
    tracks = track_detections(per_frame, 100, cfg)
    assert len(tracks) == 1
    assert len(tracks[0].merged_ids) == 2
    # With merging off (gap allowance below the gap) there are two tracks.
    split = track_detections(
        per_frame, 100, TrackingConfig(lost_track_buffer=5, max_gap=10, merge_max_gap=10)
    )
    assert len(split) == 2


def test_two_lesions_in_one_frame_stay_apart():
    per_frame = {
        i: [
            Detection(i, (10 + i, 10, 50 + i, 50), 0.9),
            Detection(i, (150 - i, 100, 190 - i, 140), 0.8),
        ]
        for i in range(40)
    }
    tracks = track_detections(per_frame, 40)
    assert len(tracks) == 2
    assert all(len(t.track) == 40 for t in tracks)  # first frame back-filled too


def test_incremental_updates_and_finalisation():
    cfg = TrackingConfig(lost_track_buffer=5, merge_max_gap=5)
    tracker = LesionTracker(cfg)
    finished = []
    live_ids = set()
    for i in range(50):
        dets = [Detection(i, (20, 20, 60, 60), 0.9)] if i < 20 else []
        update = tracker.update(i, dets)
        live_ids |= {lid for lid, _ in update.active}
        finished += update.finished
        if i == 19:
            assert tracker.open_lesions  # still open while seen
    # Finalised during the stream (not only at finish) once lost long enough.
    assert len(finished) == 1 and finished[0].track.frame_indices == list(range(20))
    assert live_ids == {finished[0].track_id}
    assert tracker.finish() == []


def test_a_lesion_back_after_a_long_jump_in_frame_numbers_is_a_new_track():
    """A live stream that drops frames: frame numbers jump past the lost horizon
    while ByteTrack, counting calls, still holds the track and hands its id back
    (a stream once failed here with KeyError)."""
    tracker = LesionTracker(TrackingConfig(lost_track_buffer=30, merge_max_gap=5))
    box = (20, 20, 60, 60)
    for i in range(10):
        tracker.update(i, [Detection(i, box, 0.9)])
    # One call later but 190 frames on, with no box: the lesion is finalised ...
    later = tracker.update(200, [])
    assert [t.track.frame_indices for t in later.finished] == [list(range(10))]
    for i in range(201, 206):  # ... and ByteTrack's id for it comes back
        update = tracker.update(i, [Detection(i, box, 0.9)])
    ((new_id, _),) = update.active
    assert new_id != later.finished[0].track_id
    (track,) = tracker.finish()
    assert track.track_id == new_id and track.track.frame_indices[0] >= 200


def test_out_of_order_frames_and_bad_boxes():
    tracker = LesionTracker()
    tracker.update(
        3, [Detection(3, (float("nan"), 0, 10, 10), 0.9), Detection(3, (5, 5, 5, 9), 0.9)]
    )  # NaN and zero-width: ignored
    with pytest.raises(InputError, match="frames must arrive in order"):
        tracker.update(2, [])
    with pytest.raises(InputError, match="frame_rate"):
        LesionTracker(TrackingConfig(frame_rate=0))
