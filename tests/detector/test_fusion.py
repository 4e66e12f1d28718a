from __future__ import annotations

import numpy as np
import pytest

from sonorisk.detector.fusion import hflip_boxes, weighted_box_fusion


def test_hflip_maps_boxes_back_and_is_its_own_inverse():
    boxes = np.array([[10, 5, 30, 25], [0, 0, 100, 50]], np.float32)
    flipped = hflip_boxes(boxes, 100)
    np.testing.assert_array_equal(flipped, [[70, 5, 90, 25], [0, 0, 100, 50]])
    np.testing.assert_array_equal(hflip_boxes(flipped, 100), boxes)


def test_agreeing_views_average_their_boxes_by_score():
    a = (np.array([[0, 0, 10, 10]]), np.array([0.9]))
    b = (np.array([[2, 0, 12, 10]]), np.array([0.3]))
    boxes, scores = weighted_box_fusion([a, b])
    # x1 = (0 * 0.9 + 2 * 0.3) / 1.2 = 0.5; score = mean over the two views.
    np.testing.assert_allclose(boxes, [[0.5, 0, 10.5, 10]], atol=1e-6)
    np.testing.assert_allclose(scores, [0.6], atol=1e-6)


def test_a_box_one_view_alone_found_keeps_half_its_score():
    a = (np.array([[0, 0, 10, 10], [50, 50, 60, 60]]), np.array([0.8, 0.6]))
    b = (np.array([[0, 0, 10, 10]]), np.array([0.8]))
    boxes, scores = weighted_box_fusion([a, b])
    np.testing.assert_allclose(scores, [0.8, 0.3], atol=1e-6)
    np.testing.assert_allclose(boxes[1], [50, 50, 60, 60])


def test_two_boxes_of_one_view_cannot_exceed_the_best_member():
    a = (np.array([[0, 0, 10, 10], [0, 0, 10, 11]]), np.array([0.9, 0.8]))
    boxes, scores = weighted_box_fusion([a])  # sum 1.7 over one view, capped
    assert len(boxes) == 1 and scores[0] == pytest.approx(0.9)


def test_empty_views_and_bad_input():
    boxes, scores = weighted_box_fusion([(np.zeros((0, 4)), np.zeros(0))] * 2)
    assert boxes.shape == (0, 4) and scores.shape == (0,)
    with pytest.raises(ValueError, match="at least one view"):
        weighted_box_fusion([])
    with pytest.raises(ValueError, match="2 boxes but 1 scores"):
        weighted_box_fusion([(np.zeros((2, 4)), np.zeros(1))])
