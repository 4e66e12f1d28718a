from __future__ import annotations

import numpy as np
import pytest

from sonorisk.data.calipers import LINE, MARK, draw_calipers, random_caliper_box


def test_calipers_mark_both_axes_of_the_box_and_leave_the_input_alone():
    image = np.full((100, 200), 50, np.uint8)
    out = draw_calipers(image, (40.0, 20.0, 120.0, 60.0), line=False, arm=3)
    assert image.max() == 50  # a copy
    # "+" centres at the middle of each side: (40, 40), (120, 40), (80, 20), (80, 60)
    for x, y in ((40, 40), (120, 40), (80, 20), (80, 60)):
        assert out[y, x - 3 : x + 4].tolist() == [MARK] * 7
        assert out[y - 3 : y + 4, x].tolist() == [MARK] * 7
        assert out[y + 1, x + 1] == 50  # a cross, not a square
    assert (out == MARK).sum() == 4 * 13
    assert out[40, 60] == 50  # no line between the marks


def test_dotted_lines_join_each_pair():
    image = np.zeros((100, 200, 3), np.uint8)
    out = draw_calipers(image, (40.0, 20.0, 120.0, 60.0), line=True, arm=3)
    row = out[40, 44:117, 0]
    assert (row == LINE).sum() >= 10 and (row == 0).sum() >= 30  # dotted, not solid
    assert (out[:, :, 0] == out[:, :, 2]).all()  # every channel


def test_marks_off_the_image_are_clipped():
    image = np.zeros((30, 30), np.uint8)
    out = draw_calipers(image, (-2.0, -2.0, 45.0, 45.0), arm=3)  # half the marks off
    assert out.shape == image.shape and out.max() == MARK


def test_calipers_reject_what_is_not_an_image():
    with pytest.raises(ValueError, match="uint8"):
        draw_calipers(np.zeros((10, 10), np.float32), (1.0, 1.0, 5.0, 5.0))


def test_random_boxes_are_lesion_sized_and_inside():
    rng = np.random.default_rng(0)
    for _ in range(200):
        x1, y1, x2, y2 = random_caliper_box(300, 400, rng)
        assert 0 <= x1 < x2 <= 400 and 0 <= y1 < y2 <= 300
        assert 30 - 1e-9 <= x2 - x1 <= 120 and 30 - 1e-9 <= y2 - y1 <= 120
