"""Sweep synthesis from BUSI stills: valid output, boxes = lesion masks, motion, determinism."""

from __future__ import annotations

import json
from collections import Counter

import cv2
import numpy as np
import pytest

from sonorisk.data import load_dataset, validate_dataset
from sonorisk.data.busi import read_manifest
from sonorisk.data.motion import MotionParams, fold_passes
from sonorisk.data.slab import mask_box, slab_from_still
from sonorisk.data.sweep import SweepParams, SweepRenderer
from sonorisk.data.synth import load_masks, synthesize_from_stills

SMALL = (240, 180)  # as tests/data/conftest.py


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def test_validator_accepts_output(busi_sweeps):
    root, _ = busi_sweeps
    assert validate_dataset(root, probe=True) == []
    dataset = load_dataset(root)
    assert len(dataset) == 4
    record = dataset.videos[0]
    assert record.synthetic and record.n_frames == 24 and record.fps == 30.0
    assert record.generator.startswith("sonorisk.synth.stills") and record.seed == 11
    assert (record.width, record.height) == SMALL
    assert all(v.file.endswith(".avi") for v in dataset.videos)


def test_labels_come_from_the_source_still(busi_sweeps, busi_dir):
    root, _ = busi_sweeps
    stills = {s.still_id: s for s in read_manifest(busi_dir)}
    dataset = load_dataset(root)
    for record in dataset.videos:
        still = stills[record.source_id]
        assert record.pathology == still.label
        assert record.patient_id == still.group
        n_boxes = sum(len(f.boxes) for f in dataset.frames(record.video_id))
        if still.label == "normal":
            assert n_boxes == 0  # normal stills give lesion-free sweeps
        else:
            assert n_boxes > 0
            assert record.n_lesions == len(still.boxes)


def test_boxes_match_the_masks_every_frame(busi_sweeps):
    root, captured = busi_sweeps
    dataset = load_dataset(root)
    checked = 0
    for record in dataset.videos:
        saved = load_masks(root / "masks" / f"{record.video_id}.npz")  # frames x lesions x H x W
        assert saved.shape[0] == record.n_frames
        frames = dataset.frames(record.video_id)
        lesion_order = [
            int(v) for v in np.load(root / "masks" / f"{record.video_id}.npz")["lesion_ids"]
        ]  # the dataset lesion_id of each mask channel
        for frame in frames:
            # The side-output mask and the in-memory mask agree.
            index, lesions, masks, _ = captured[record.video_id][frame.frame_index]
            assert index == frame.frame_index and len(lesions) == len(frame.boxes)
            for box, lesion_id in zip(frame.boxes, frame.lesion_ids, strict=True):
                k = lesion_order.index(lesion_id)
                mask = saved[frame.frame_index, k]
                assert mask.any()
                assert iou(box, mask_box(mask)) >= 0.95
                checked += 1
            # No lesion pixel is left without its box.
            boxed = {lesion_order.index(lid) for lid in frame.lesion_ids}
            for k in range(saved.shape[1]):
                if k not in boxed:
                    assert not saved[frame.frame_index, k].any()
    assert checked > 20


def test_box_region_is_where_the_lesion_is_in_the_video(busi_sweeps):
    """Independent of the masks: BUSI lesions are hypoechoic, so inside the box's
    lesion pixels the decoded video is darker than in a ring just outside."""
    root, captured = busi_sweeps
    dataset = load_dataset(root)
    darker, total = 0, 0
    for record in dataset.videos:
        if record.pathology == "normal":
            continue
        for frame, image in dataset.iter_images(record.video_id, color="gray"):
            _, lesions, masks, _ = captured[record.video_id][frame.frame_index]
            for mask in masks:
                if mask.sum() < 150:
                    continue
                ring = cv2.dilate(mask.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
                ring &= ~mask
                total += 1
                darker += image[mask].mean() < image[ring].mean()
    assert total > 10 and darker / total >= 0.85


def test_lesion_enters_grows_shrinks_and_leaves(busi_dir):
    stills = read_manifest(busi_dir)
    still = next(s for s in stills if s.label == "malignant" and len(s.boxes) == 1)
    rng = np.random.default_rng(5)
    slab = slab_from_still(still.read_gray(), still.read_masks(), rng)
    frames = list(SweepRenderer(slab, 40, SMALL, rng))
    areas = [int(f.masks[0].sum()) if f.masks else 0 for f in frames]
    assert areas[0] == 0 and areas[-1] == 0  # enters and leaves
    visible = [i for i, a in enumerate(areas) if a > 0]
    assert len(visible) >= 10
    peak = int(np.argmax(areas))
    assert visible[0] < peak < visible[-1]
    assert areas[visible[0]] < 0.5 * areas[peak] and areas[visible[-1]] < 0.5 * areas[peak]
    # Speckle decorrelates but consecutive frames stay alike.
    a, b = (frames[20].image.astype(float), frames[21].image.astype(float))
    correlation = np.corrcoef(a.ravel(), b.ravel())[0, 1]
    assert 0.5 < correlation < 0.995


def test_multiple_lesions_get_their_own_ids(busi_dir, tmp_path):
    stills = read_manifest(busi_dir)
    multi = [s.still_id for s in stills if len(s.boxes) == 2][:2]
    root = synthesize_from_stills(
        busi_dir, 2, tmp_path / "multi", seed=2, frames=30, size=SMALL, ids=multi
    )
    dataset = load_dataset(root)
    all_ids = []
    for record in dataset.videos:
        ids = {lid for f in dataset.frames(record.video_id) for lid in f.lesion_ids}
        assert len(ids) == 2
        all_ids.extend(ids)
    assert len(set(all_ids)) == 4  # unique across the dataset too


def test_deterministic_for_a_seed(busi_dir, tmp_path):
    kwargs = dict(seed=21, frames=8, size=(160, 120))
    a = synthesize_from_stills(busi_dir, 3, tmp_path / "a", **kwargs)
    b = synthesize_from_stills(busi_dir, 3, tmp_path / "b", **kwargs)
    c = synthesize_from_stills(busi_dir, 3, tmp_path / "c", **{**kwargs, "seed": 22})
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files_a == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for rel in files_a:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    assert json.loads((a / "annotations.json").read_text()) != json.loads(
        (c / "annotations.json").read_text()
    )


@pytest.mark.parametrize("frames", [1, 5])
def test_very_short_sweeps(busi_dir, tmp_path, frames):
    root = synthesize_from_stills(
        busi_dir,
        2,
        tmp_path / f"short{frames}",
        seed=1,
        frames=frames,
        size=(96, 72),
        labels=["benign"],
    )
    dataset = load_dataset(root, probe=True)
    assert all(v.n_frames == frames for v in dataset.videos)
    assert len(dataset.frames()) == 2 * frames


def test_fps_50_seconds_and_codec(busi_dir, tmp_path):
    root = synthesize_from_stills(
        busi_dir, 1, tmp_path / "fps50", seed=3, fps=50, seconds=0.2, size=(96, 72), codec="mpeg4"
    )
    dataset = load_dataset(root, probe=True)
    record = dataset.videos[0]
    assert record.fps == 50.0 and record.n_frames == 10
    import av

    with av.open(str(root / record.file)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "mpeg4"
        assert float(stream.average_rate) == pytest.approx(50.0)


def test_only_given_stills_are_used(busi_dir, tmp_path):
    stills = read_manifest(busi_dir)
    allowed = [
        s.still_id
        for s in stills
        if s.group in {stills[0].group, stills[5].group, stills[300].group}
    ]
    root = synthesize_from_stills(
        busi_dir, 5, tmp_path / "subset", seed=0, frames=2, size=(96, 72), ids=allowed
    )
    used = Counter(load_dataset(root).table["source_id"])
    assert set(used) <= set(allowed) and sum(used.values()) == 5


def test_contact_sheet_written(busi_sweeps):
    root, _ = busi_sweeps
    sheets = sorted((root / "contact_sheets").glob("*.png"))
    assert len(sheets) == 4
    image = cv2.imread(str(sheets[0]))
    assert image is not None and image.shape[0] > 100 and sheets[0].stat().st_size < 500_000


def test_only_given_groups_are_used(busi_dir, tmp_path):
    stills = read_manifest(busi_dir)
    groups = {stills[0].group, stills[400].group}
    root = synthesize_from_stills(
        busi_dir, 3, tmp_path / "groups", seed=0, frames=2, size=(96, 72), groups=sorted(groups)
    )
    table = load_dataset(root).table
    assert set(table["patient_id"]) <= groups and len(table) == 3


def test_qscale_sets_the_compression_of_every_sweep(busi_dir, tmp_path):
    from sonorisk.data.synth import SynthConfig
    from sonorisk.errors import ConfigError

    kwargs = dict(seed=3, frames=6, size=(96, 72), labels=["benign"])
    fine = synthesize_from_stills(busi_dir, 1, tmp_path / "fine", **kwargs)
    coarse = synthesize_from_stills(busi_dir, 1, tmp_path / "coarse", qscale=20, **kwargs)
    a, b = load_dataset(fine, probe=True), load_dataset(coarse, probe=True)
    assert a.videos[0].n_frames == b.videos[0].n_frames == 6
    size = {name: (root / d.videos[0].file).stat().st_size
            for name, root, d in (("fine", fine, a), ("coarse", coarse, b))}  # fmt: skip
    assert size["coarse"] < 0.7 * size["fine"]
    # The table records each sweep's quantiser: the writer's MJPEG default, or the one asked.
    assert [int(d.table["qscale"].iloc[0]) for d in (a, b)] == [3, 20]
    for bad, match in ((dict(qscale=1), "2 \\(best\\)"), (dict(codec="h264", qscale=5), "h264")):
        with pytest.raises(ConfigError, match=match):
            SynthConfig(**bad).validate()


def test_fold_passes_goes_there_and_back():
    progress = np.linspace(0.0, 1.0, 9)
    assert np.allclose(fold_passes(progress, 1), progress)
    there_and_back = [0, 0.25, 0.5, 0.75, 1.0, 0.75, 0.5, 0.25, 0.0]
    assert np.allclose(fold_passes(progress, 2), there_and_back)
    assert np.allclose(fold_passes(progress, 4)[[0, 2, 4, 6, 8]], [0, 1, 0, 1, 0])
    with pytest.raises(ValueError, match="passes"):
        fold_passes(progress, 0)


def test_a_two_pass_scan_shows_the_lesion_leave_and_come_back(busi_dir):
    stills = read_manifest(busi_dir)
    still = next(s for s in stills if s.label == "malignant" and len(s.boxes) == 1)
    seen = []
    for passes in (1, 2):
        rng = np.random.default_rng(5)
        slab = slab_from_still(still.read_gray(), still.read_masks(), rng)
        params = SweepParams(motion=MotionParams(passes=passes))
        frames = list(SweepRenderer(slab, 80, SMALL, rng, params))
        visible = np.array([bool(f.masks) for f in frames], int)
        seen.append(int(np.sum(np.diff(visible) == 1)) + visible[0])  # times it comes into view
    assert seen == [1, 2]


def test_synth_refuses_zero_passes_before_writing(busi_dir, tmp_path):
    from sonorisk.errors import ConfigError

    with pytest.raises(ConfigError, match="sweep.motion.passes"):
        synthesize_from_stills(
            busi_dir, 1, tmp_path / "p0", frames=4, sweep=SweepParams(motion=MotionParams(passes=0))
        )
    assert not (tmp_path / "p0").exists()
