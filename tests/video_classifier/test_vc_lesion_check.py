"""The "not a lesion" check: fitted on pooled features, stored in the classifier,
reported per clip (sonorisk.video_classifier.lesion_check)."""

from __future__ import annotations

import numpy as np
import pytest

from sonorisk.data.dataset import load_dataset
from sonorisk.errors import InputError
from sonorisk.tracking.postprocess import box_iou
from sonorisk.video_classifier import lesion_check as lc
from sonorisk.video_classifier.registry import build_classifier, load_classifier, save_checkpoint

from .vc_helpers import blob_clips, tiny_config


def test_background_track_moves_with_the_lesion_and_avoids_it() -> None:
    rng = np.random.default_rng(0)
    lesion = {i: (100.0 + i, 80.0, 160.0 + i, 130.0) for i in range(20)}
    moved = lc.background_boxes(lesion, [], 480, 360, rng)
    assert moved is not None and sorted(moved) == sorted(lesion)
    offsets = {
        (round(moved[i][0] - lesion[i][0], 6), round(moved[i][1] - lesion[i][1], 6)) for i in lesion
    }
    assert len(offsets) == 1  # one shift: the same motion as the lesion
    assert all(box_iou(moved[i], b) < 0.05 for i in moved for b in lesion.values())
    assert all(b[0] >= 0 and b[2] <= 480 and b[1] >= 0 and b[3] <= 360 for b in moved.values())
    # A lesion that fills the frame leaves no place for background.
    assert lc.background_boxes({0: (0.0, 0.0, 470.0, 350.0)}, [], 480, 360, rng) is None


def test_random_track_stays_in_the_frame() -> None:
    rng = np.random.default_rng(1)
    track = lc.random_track(48, 320, 240, rng)
    assert len(track) == 24 and sorted(track) == list(range(min(track), min(track) + 24))
    assert all(0 <= b[0] < b[2] <= 320 and 0 <= b[1] < b[3] <= 240 for b in track.values())


def test_overlaps_truth_counts_frames() -> None:
    truth = {0: [(0.0, 0.0, 10.0, 10.0)], 1: [(0.0, 0.0, 10.0, 10.0)]}
    boxes = {0: (0.0, 0.0, 10.0, 10.0), 1: (50.0, 50.0, 60.0, 60.0)}
    assert lc.overlaps_truth(boxes, truth) == pytest.approx(0.5)
    assert lc.overlaps_truth({}, truth) == 0.0


def test_fitted_check_is_reported_on_every_clip() -> None:
    cfg = tiny_config("i3d")
    model = build_classifier(cfg)
    clips, labels, _ = blob_clips(24, 32, seed=3)
    # Without a check every clip says so (None), never a made-up number.
    assert all(s.lesion_probability is None for s in model.predict(clips, heatmaps=False))
    feats = lc.pooled_features(model, clips)
    weight, bias = lc.fit_check(feats, labels, c=10.0)
    lc.attach_check(model, weight, bias)
    for heatmaps in (False, True):
        scores = model.predict(clips, heatmaps=heatmaps)
        p = np.asarray([s.lesion_probability for s in scores])
        assert np.all((p > 0) & (p < 1))
        assert p[labels == 1].mean() > p[labels == 0].mean() + 0.2
    # The malignancy head is untouched by the check.
    assert model.config.model.lesion_check


def test_check_needs_both_kinds_of_example() -> None:
    with pytest.raises(InputError, match="both"):
        lc.fit_check(np.zeros((4, 3)), np.ones(4, dtype=int))


def test_check_is_fitted_from_a_dataset_and_survives_a_checkpoint(tmp_path, phantom_dir) -> None:
    cfg = tiny_config("i3d")
    model = build_classifier(cfg)
    ckpt = save_checkpoint(tmp_path / "cls.pt", model, training_data={"synthetic": True})
    out = tmp_path / "with_check.pt"
    assert (
        lc.main(
            [
                "--classifier",
                str(ckpt),
                "--lesions",
                str(phantom_dir),
                "--lesion-free",
                str(phantom_dir),
                "--c",
                "10",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    loaded = load_classifier(out)
    assert loaded.lesion_head is not None and loaded.config.model.lesion_check
    info = loaded.checkpoint_info["training_data"]["lesion_check"]
    assert info["tracks"]["lesion"] >= 1 and info["tracks"]["background"] >= 1
    # On what it was fitted on, lesion tracks score above background tracks.
    rng = np.random.default_rng(0)
    samples = lc._dataset_samples(phantom_dir, rng, background=True, lesions=True, groups=None)
    feats, labels, _ = lc.sample_features(loaded, samples)
    assert len(set(labels.tolist())) == 2
    dataset = load_dataset(phantom_dir)
    assert dataset.video_ids  # the samples came from this dataset
    crops = [c for s in samples for c in lc.track_crops(s.video, s.boxes, loaded.config.clips)]
    scores = loaded.predict(np.stack(crops), heatmaps=False)
    p = np.asarray([s.lesion_probability for s in scores])
    assert p[labels == 1].mean() > p[labels == 0].mean()


def test_crops_of_smaller_frames_show_the_same_place_with_less_grain() -> None:
    clips = tiny_config("i3d").clips
    rng = np.random.default_rng(4)
    # Fine speckle (one-pixel noise) on a smooth ramp: what a smaller export loses.
    ramp = np.linspace(40, 200, 160)[None, :, None]
    frames = {
        i: np.clip(ramp + rng.integers(-40, 41, size=(120, 160, 3)), 0, 255).astype(np.uint8)
        for i in range(12)
    }
    boxes = {i: (40.0 + i, 30.0, 72.0 + i, 62.0) for i in range(12)}  # about the crop size
    full = lc.exported_crops(frames, boxes, clips, fps=30.0)
    half = lc.exported_crops(frames, boxes, clips, fps=30.0, export=lc.Export(scale=0.5))
    assert len(full) == len(half) >= 1 and full[0].shape == half[0].shape
    a, b = np.stack(full).astype(float), np.stack(half).astype(float)
    # The same place of the frame (the ramp under the box), with less pixel-scale grain.
    assert abs(a.mean() - b.mean()) < 3
    assert np.abs(np.diff(b, axis=3)).mean() < 0.7 * np.abs(np.diff(a, axis=3)).mean()


def test_a_compressed_export_keeps_the_picture_and_loses_fine_grain() -> None:
    rng = np.random.default_rng(5)
    ramp = np.linspace(40, 200, 160)[None, :, None]
    image = np.clip(ramp + rng.integers(-40, 41, size=(120, 160, 3)), 0, 255).astype(np.uint8)
    image[:, :, 0] = 255 - image[:, :, 0]  # channels differ: their order must survive
    for quality in (30, 95):
        out = lc.Export(quality=quality).apply(image).astype(float)
        assert out.shape == image.shape
        assert np.abs(out.mean(axis=(0, 1)) - image.mean(axis=(0, 1))).max() < 3
    low = lc.Export(quality=30).apply(image).astype(float)
    high = lc.Export(quality=95).apply(image).astype(float)
    assert np.abs(low - image).mean() > np.abs(high - image).mean()
    # random_export draws within its bounds.
    draws = [lc.random_export(rng, 0.5, 30) for _ in range(200)]
    assert all(0.5 <= d.scale <= 1.0 and d.quality is not None and 30 <= d.quality <= 95
               for d in draws)  # fmt: skip


def test_export_copies_are_recorded_and_bad_options_refused(tmp_path, phantom_dir) -> None:
    model = build_classifier(tiny_config("i3d"))
    ckpt = save_checkpoint(tmp_path / "cls.pt", model, training_data={"synthetic": True})
    args = ["--classifier", str(ckpt), "--lesions", str(phantom_dir), "--c", "10"]
    out = tmp_path / "with_check.pt"
    copies = ["--export-copies", "1", "--export-min-scale", "0.6", "--export-min-quality", "40"]
    assert lc.main([*args, *copies, "--out", str(out)]) == 0
    info = load_classifier(out).checkpoint_info["training_data"]["lesion_check"]
    assert info["export_copies"] == {"copies": 1, "min_scale": 0.6, "min_jpeg_quality": 40}
    # Twice the clips of a fit without copies.
    plain = tmp_path / "plain.pt"
    assert lc.main([*args, "--out", str(plain)]) == 0
    plain_info = load_classifier(plain).checkpoint_info["training_data"]["lesion_check"]
    assert sum(info["clips"].values()) == 2 * sum(plain_info["clips"].values())
    bad_options = (
        ["--export-copies", "-1"],
        ["--export-min-scale", "0"],
        ["--export-min-scale", "1.5"],
        ["--export-min-quality", "0"],
        ["--export-min-quality", "96"],
    )
    for bad in bad_options:
        with pytest.raises(SystemExit):
            lc.main([*args, *bad, "--out", str(tmp_path / "x.pt")])
