from __future__ import annotations

import numpy as np
import pytest

from sonorisk.detector.metrics import (
    bootstrap_ap_ci,
    box_iou,
    coco_ap,
    detection_rate,
    false_positive_count,
    false_positives_per_minute,
)

GT = [np.array([[10, 10, 50, 50]], float), np.array([[20, 30, 80, 90]], float), np.zeros((0, 4))]
SIZES = [(100, 100)] * 3


def test_box_iou_matrix():
    iou = box_iou(np.array([[0, 0, 10, 10]]), np.array([[0, 0, 10, 10], [5, 0, 15, 10]]))
    assert iou[0].tolist() == pytest.approx([1.0, 1 / 3])
    assert box_iou(np.zeros((0, 4)), np.zeros((2, 4))).shape == (0, 2)


def test_perfect_predictions_give_ap_one():
    result = coco_ap(GT, GT, [np.ones(len(g)) for g in GT], SIZES)
    assert result.ap == pytest.approx(1.0) and result.ap50 == pytest.approx(1.0)
    assert result.n_boxes == 2 and result.n_images == 3


def test_loose_boxes_pass_ap50_but_not_ap():
    shifted = [g + np.array([4, 4, 4, 4]) for g in GT]  # IoU ~0.67 and ~0.78
    result = coco_ap(GT, shifted, [np.ones(len(g)) for g in GT], SIZES)
    assert result.ap50 == pytest.approx(1.0)
    assert result.ap < 0.7


def test_false_positive_ranked_first_lowers_ap50():
    preds = [GT[0], GT[1], np.array([[0, 0, 20, 20]], float)]
    scores = [np.array([0.5]), np.array([0.4]), np.array([0.9])]  # the FP outranks both hits
    result = coco_ap(GT, preds, scores, SIZES)
    assert 0.4 < result.ap50 < 0.9


def test_no_predictions_and_no_ground_truth():
    assert coco_ap(GT, [np.zeros((0, 4))] * 3, [np.zeros(0)] * 3, SIZES).ap50 == 0.0
    empty = coco_ap([np.zeros((0, 4))], [np.zeros((0, 4))], [np.zeros(0)], [(10, 10)])
    assert empty.ap is None and empty.ap50 is None


def test_rates():
    assert detection_rate(GT, [GT[0], np.zeros((0, 4)), np.zeros((0, 4))]) == 0.5
    assert detection_rate([np.zeros((0, 4))], [np.zeros((0, 4))]) is None
    assert false_positive_count([np.zeros((2, 4)), np.zeros((1, 4))]) == 3
    assert false_positives_per_minute(3, 1800, 30.0) == pytest.approx(3.0)
    with pytest.raises(ValueError):
        false_positives_per_minute(1, 0, 30.0)


def test_bootstrap_interval_of_ap50():
    # 20 images: 12 lesions found, 8 missed (the hit is elsewhere), each with a score.
    rng = np.random.default_rng(1)
    gts, preds, scores = [], [], []
    for i in range(20):
        gts.append(np.array([[10, 10, 40, 40]], float))
        preds.append(np.array([[10, 10, 40, 40]] if i < 12 else [[60, 60, 90, 90]], float))
        scores.append(rng.uniform(0.1, 1.0, 1))
    sizes = [(100, 100)] * 20
    point = coco_ap(gts, preds, scores, sizes)
    ci = bootstrap_ap_ci(gts, preds, scores, sizes, n_boot=200, seed=0)
    low, high = ci["ap50"]
    assert low < point.ap50 < high  # a real interval around the estimate
    assert low >= 0.0 and high <= 1.0 and high - low > 0.1  # 20 images: wide
    # Perfect detections: every resample gives 1.
    assert bootstrap_ap_ci(GT[:2], GT[:2], [np.ones(1)] * 2, SIZES[:2], n_boot=20)["ap50"] == (
        pytest.approx(1.0),
        pytest.approx(1.0),
    )
    with pytest.raises(ValueError):
        bootstrap_ap_ci(gts, preds, scores, sizes, n_boot=0)
