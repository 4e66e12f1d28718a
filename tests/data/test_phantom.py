"""The procedural phantom: valid datasets, BI-RADS-like metadata, boxes on the lesion pixels."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from sonorisk.data import load_dataset, validate_dataset
from sonorisk.data.phantom import LesionSpec, make_phantom, sample_lesion_spec
from sonorisk.data.sweep import SweepParams, SweepRenderer
from sonorisk.data.synth import load_masks, synthesize_phantom

SMALL = (240, 180)  # as tests/data/conftest.py


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - ix * iy
    return ix * iy / union


def test_phantom_dataset_is_valid_with_metadata(phantom_sweeps):
    assert validate_dataset(phantom_sweeps, probe=True) == []
    dataset = load_dataset(phantom_sweeps)
    table = dataset.table
    assert set(table["pathology"]) == {"benign", "malignant", "normal"}
    lesion_rows = table[table["pathology"] != "normal"]
    assert lesion_rows["subtype"].notna().all() and lesion_rows["birads"].notna().all()
    assert lesion_rows["lesion_size_mm"].between(4, 40).all()
    assert {"shape", "orientation", "margin", "posterior"} <= set(table.columns)
    assert table["synthetic"].all()
    for record in dataset.videos:
        boxes = sum(len(f.boxes) for f in dataset.frames(record.video_id))
        assert (boxes == 0) == (record.pathology == "normal")


def test_phantom_boxes_match_saved_masks(phantom_sweeps):
    dataset = load_dataset(phantom_sweeps)
    for record in dataset.videos:
        masks = load_masks(phantom_sweeps / "masks" / f"{record.video_id}.npz")
        for frame in dataset.frames(record.video_id):
            for box in frame.boxes:
                ys, xs = np.nonzero(masks[frame.frame_index, 0])
                assert _iou(box, (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)) >= 0.95


def test_descriptors_follow_pathology():
    rng = np.random.default_rng(0)
    benign = [sample_lesion_spec("benign", rng, "fibroadenoma") for _ in range(20)]
    idc = [sample_lesion_spec("malignant", rng, "IDC") for _ in range(20)]
    assert all(s.orientation == "parallel" and s.shape == "oval" for s in benign)
    assert all(s.posterior == "enhancement" for s in benign)
    assert all(s.shape == "irregular" and s.posterior == "shadowing" and s.halo_db > 0 for s in idc)
    assert sum(s.aspect < 1 for s in idc) > 10  # mostly taller than wide
    with pytest.raises(ValueError, match="unknown benign subtype"):
        sample_lesion_spec("benign", rng, "IDC")


def test_shadow_and_enhancement_are_behind_the_lesion():
    rng = np.random.default_rng(1)
    for subtype, sign in (("IDC", -1), ("cyst", 1)):
        case = make_phantom("malignant" if subtype == "IDC" else "benign", rng, subtype=subtype)
        slab, mask = case.slab, case.slab.lesions[0].mask
        ys, xs = np.nonzero(mask)
        below = slice(ys.max() + 3, min(slab.height, ys.max() + 3 + (ys.max() - ys.min()) // 2))
        cols = slice(int(np.percentile(xs, 30)), int(np.percentile(xs, 70)))
        change = slab.image[below, cols].mean() - slab.background[below, cols].mean()
        assert sign * change > 0.03, (subtype, change)


def test_box_is_where_a_known_intensity_lesion_is():
    """An anechoic lesion (known: near black) in bright tissue: the dark blob found
    in each rendered frame, without the mask, has the ground-truth box."""
    spec = LesionSpec(
        "benign",
        "cyst",
        size_mm=12.0,
        aspect=1.4,
        angle_deg=0.0,
        margin="circumscribed",
        shape="oval",
        echo_db=-60.0,
        heterogeneity_db=0.0,
        posterior_db=0.0,
    )
    rng = np.random.default_rng(3)
    case = make_phantom("benign", rng, size=(360, 200), spec=spec)
    frames = list(SweepRenderer(case.slab, 20, SMALL, rng, SweepParams()))
    checked = 0
    for frame in frames:
        if not frame.boxes or frame.masks[0].sum() < 100:
            continue
        dark = (frame.image < 40).astype(np.uint8)
        dark = cv2.morphologyEx(dark, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        _, labels, stats, _ = cv2.connectedComponentsWithStats(dark)
        x1, y1, x2, y2 = frame.boxes[0]
        centre = labels[int((y1 + y2) / 2), int((x1 + x2) / 2)]
        assert centre > 0, "box centre is not on the dark lesion"
        x, y, w, h, _ = stats[centre]
        assert _iou(frame.boxes[0], (x, y, x + w, y + h)) >= 0.8
        checked += 1
    assert checked >= 5


def test_phantom_deterministic(tmp_path):
    a = synthesize_phantom(2, tmp_path / "a", seed=9, frames=4, size=(96, 72))
    b = synthesize_phantom(2, tmp_path / "b", seed=9, frames=4, size=(96, 72))
    for name in ("annotations.json", "videos.csv"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    for video in sorted((a / "videos").iterdir()):
        assert video.read_bytes() == (b / "videos" / video.name).read_bytes()
