from __future__ import annotations

import pytest

from sonorisk.records import Detection
from sonorisk.tracking.postprocess import box_iou, center_distance, continues, interpolate_gaps


def test_box_iou_values():
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == pytest.approx(1.0)
    assert box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert box_iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0


def test_interpolate_fills_short_gaps_linearly_and_keeps_long_ones():
    dets = [
        Detection(0, (0, 0, 10, 10), 0.9),
        Detection(4, (8, 4, 18, 14), 0.7),
        Detection(30, (8, 4, 18, 14), 0.8),
    ]
    out, filled = interpolate_gaps(dets, max_gap=5)
    assert filled == [1, 2, 3]  # the 25-frame gap is longer than max_gap: left open
    by_frame = {d.frame_index: d for d in out}
    assert by_frame[2].box == pytest.approx((4.0, 2.0, 14.0, 12.0))
    assert by_frame[2].score == pytest.approx(0.7)  # never above its neighbours
    assert [d.frame_index for d in out] == [0, 1, 2, 3, 4, 30]


def test_continues_needs_overlap_and_short_gap():
    last = Detection(10, (0, 0, 20, 20), 0.9)
    assert continues(last, Detection(20, (2, 2, 22, 22), 0.9), 15, 0.2, 0.5)
    assert not continues(last, Detection(40, (2, 2, 22, 22), 0.9), 15, 0.2, 0.5)  # too late
    assert not continues(last, Detection(12, (100, 100, 120, 120), 0.9), 15, 0.2, 0.5)
    assert not continues(last, Detection(10, (0, 0, 20, 20), 0.9), 15, 0.2, 0.5)  # same frame
    assert center_distance((0, 0, 30, 40), (30, 40, 60, 80)) == pytest.approx(1.0, rel=0.05)


def test_drop_spikes_removes_a_stray_box_between_agreeing_neighbours():
    from sonorisk.tracking.postprocess import drop_spikes

    dets = [
        Detection(0, (100, 100, 140, 140), 0.9),
        Detection(3, (10, 10, 30, 30), 0.6),
        Detection(5, (104, 100, 144, 140), 0.9),
        Detection(6, (106, 100, 146, 140), 0.9),
    ]
    kept, dropped = drop_spikes(dets, max_gap=10)
    assert dropped == [3] and [d.frame_index for d in kept] == [0, 5, 6]
    # A real jump (the neighbours move too) is kept.
    moving = [
        Detection(0, (0, 0, 20, 20), 0.9),
        Detection(1, (60, 60, 80, 80), 0.9),
        Detection(2, (62, 60, 82, 80), 0.9),
    ]
    assert drop_spikes(moving, max_gap=10)[1] == []
