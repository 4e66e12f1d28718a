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


# Finding and removing calipers, on tissue-like images the tests make and on
# real BUSI stills.


def _tissue(shape=(240, 320), seed=0) -> np.ndarray:
    """Speckle with bright horizontal streaks (fat and ligament highlights) in
    its top quarter, where the tests draw no calipers."""
    import cv2

    rng = np.random.default_rng(seed)
    image = cv2.GaussianBlur(rng.gamma(2.0, 40.0, shape).astype(np.float32), (0, 0), 1.5)
    image = np.clip(image + 40, 0, 255).astype(np.uint8)
    for _ in range(6):
        y, x = int(rng.integers(5, shape[0] // 4)), int(rng.integers(0, shape[1] // 2))
        end = (x + int(rng.integers(30, 120)), y + int(rng.integers(-3, 4)))
        cv2.line(image, (x, y), end, 235, 2)
    return image


def _bold_mark(image: np.ndarray, x: int, y: int, arm: int = 8, width: int = 3) -> None:
    """A "+" as BUSI's scanner burns it: arms ``width`` px wide."""
    import cv2

    cv2.line(image, (x - arm, y), (x + arm, y), 228, width)
    cv2.line(image, (x, y - arm), (x, y + arm), 228, width)


def test_marks_drawn_on_tissue_are_found_where_they_are():
    from sonorisk.data.calipers import find_calipers

    tissue = _tissue()
    assert find_calipers(tissue) == []
    marked = draw_calipers(tissue, (100.0, 80.0, 220.0, 170.0), line=True, arm=7)
    found = sorted((m.x, m.y) for m in find_calipers(marked))
    expected = sorted([(100, 125), (220, 125), (160, 80), (160, 170)])
    assert len(found) == 4
    for (fx, fy), (ex, ey) in zip(found, expected, strict=True):
        assert abs(fx - ex) <= 1 and abs(fy - ey) <= 1


def test_bold_marks_beside_a_digit_are_found_and_in_colour_too():
    import cv2

    from sonorisk.data.calipers import find_calipers

    image = _tissue(seed=1)
    _bold_mark(image, 150, 100)
    cv2.putText(image, "2", (128, 92), cv2.FONT_HERSHEY_SIMPLEX, 0.45, 235, 2)
    marks = find_calipers(image)
    assert [(abs(m.x - 150) <= 1, abs(m.y - 100) <= 1) for m in marks] == [(True, True)]
    assert 7 <= marks[0].reach <= 10
    rgb = np.repeat(image[:, :, None], 3, axis=2)
    assert [(m.x, m.y) for m in find_calipers(rgb)] == [(m.x, m.y) for m in marks]


def test_text_and_crossing_tissue_lines_are_not_marks():
    import cv2

    from sonorisk.data.calipers import find_calipers

    image = _tissue(seed=2)
    for y, word in ((60, "RT AXILLA"), (120, "RIGHT BREAST"), (180, "LT H T X")):
        cv2.putText(image, word, (20, y), cv2.FONT_HERSHEY_SIMPLEX, 0.7, 230, 2)
    cv2.line(image, (200, 150), (310, 150), 235, 2)  # two long highlights crossing
    cv2.line(image, (255, 100), (255, 230), 235, 2)
    assert find_calipers(image) == []


def test_removal_fills_marks_digits_and_dotted_lines_and_leaves_the_rest():
    import cv2

    from sonorisk.data.calipers import remove_calipers

    tissue = _tissue(seed=3)
    marked = draw_calipers(tissue, (90.0, 70.0, 230.0, 180.0), line=True, arm=7)
    cv2.putText(marked, "1", (78, 118), cv2.FONT_HERSHEY_SIMPLEX, 0.4, 235, 1)
    cleaned, marks, mask = remove_calipers(marked)
    assert len(marks) == 4
    touched = marked != tissue
    assert mask[touched].mean() > 0.95  # marks, digit and dots are all in the mask
    assert (cleaned[~mask] == marked[~mask]).all()  # nothing else changes
    # What was burned in is gone: the filled pixels are tissue-like again.
    before = np.abs(marked[touched].astype(int) - tissue[touched]).mean()
    after = np.abs(cleaned[touched].astype(int) - tissue[touched]).mean()
    assert after < 0.35 * before
    assert (cleaned[touched] >= 200).mean() < 0.2
    unmarked, none, empty = remove_calipers(tissue)
    assert none == [] and not empty.any() and (unmarked == tissue).all()


def test_real_busi_calipers_are_found_on_the_lesion_and_not_on_a_still_without(busi_dir):
    import cv2

    from sonorisk.data.busi import read_manifest
    from sonorisk.data.calipers import find_calipers

    stills = {s.still_id: s for s in read_manifest(busi_dir)}
    # benign_214: a cyst measured on two axes and once more (five "+" marks);
    # normal_001: a lesion-free still, no calipers.
    marked = stills["benign_214"]
    marks = find_calipers(marked.read_gray())
    assert len(marks) >= 4
    x1, y1, x2, y2 = marked.boxes[0]
    for m in marks:  # calipers sit on the lesion's edge
        assert x1 - 20 <= m.x <= x2 + 20 and y1 - 20 <= m.y <= y2 + 20
    assert find_calipers(cv2.imread(str(stills["normal_001"].image_path))) == []


def test_uncaliper_writes_a_still_folder_and_a_report(tmp_path, capsys):
    import cv2
    import pandas as pd

    from sonorisk.cli import main
    from sonorisk.data.busi import read_manifest
    from sonorisk.data.calipers import uncaliper_still_folder
    from sonorisk.errors import InputError

    source = tmp_path / "stills"
    (source / "benign").mkdir(parents=True)
    (source / "normal").mkdir()
    marked = draw_calipers(_tissue(seed=4), (90.0, 70.0, 230.0, 180.0), line=True, arm=7)
    cv2.imwrite(str(source / "benign" / "b1.png"), marked)
    mask = np.zeros(marked.shape, np.uint8)
    mask[70:180, 90:230] = 255
    cv2.imwrite(str(source / "benign" / "b1_mask.png"), mask)
    cv2.imwrite(str(source / "normal" / "n1.png"), np.repeat(_tissue(seed=5)[:, :, None], 3, 2))
    pd.DataFrame(
        [
            ("b1", "benign", 320, 240, 1, "90 70 230 180", "g1"),
            ("n1", "normal", 320, 240, 0, "", "g2"),
        ],
        columns=["id", "label", "width", "height", "n_lesions", "boxes", "group"],
    ).to_csv(source / "manifest.csv", index=False)

    out = tmp_path / "clean"
    assert main(["dataset", "uncaliper", str(source), "--out", str(out), "--no-progress"]) == 0
    stills = {s.still_id: s for s in read_manifest(out)}
    assert stills["b1"].boxes == ((90.0, 70.0, 230.0, 180.0),)
    assert (cv2.imread(str(stills["b1"].mask_paths[0]), 0) == mask).all()
    cleaned = stills["b1"].read_gray()
    assert (cleaned >= 250).sum() < 0.1 * (marked >= 250).sum()
    normal = cv2.imread(str(stills["n1"].image_path), cv2.IMREAD_UNCHANGED)
    assert normal.shape == (240, 320, 3)  # colour stays colour
    report = pd.read_csv(out / "calipers.csv").set_index("id")
    assert report.loc["b1", "n_marks"] == 4 and report.loc["b1", "pixels_filled"] > 0
    assert report.loc["n1", "n_marks"] == 0 and report.loc["n1", "pixels_filled"] == 0

    again = ["dataset", "uncaliper", str(source), "--no-progress", "--out"]
    assert main([*again, str(out)]) == 2
    assert "already holds a still folder" in capsys.readouterr().err
    assert main([*again, str(out), "--overwrite"]) == 0
    with pytest.raises(InputError, match="is the source folder"):
        uncaliper_still_folder(source, source)
