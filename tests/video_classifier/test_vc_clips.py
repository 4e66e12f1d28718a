"""Clip building: the paper's 8-frame rule, options, crop geometry, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from sonorisk.errors import ConfigError, InputError
from sonorisk.records import Detection, Track
from sonorisk.video_classifier.clips import (
    ClipBuilder,
    ClipConfig,
    clips_from_track,
    crop_box,
    crop_window,
    tracks_from_boxes,
)


def _frames(n: int, h: int = 48, w: int = 64) -> dict[int, np.ndarray]:
    # Each frame's pixels encode its index so tests can see which frame a crop came from.
    return {i: np.full((h, w), i, dtype=np.uint8) for i in range(n)}


def _track(n: int, box=(20.0, 10.0, 40.0, 30.0), start: int = 0) -> Track:
    return Track(track_id=3, detections=[Detection(start + i, box, 0.9) for i in range(n)])


@pytest.mark.parametrize(("n", "expected"), [(7, 0), (8, 1), (15, 1), (16, 2)])
def test_paper_rule_counts(n: int, expected: int) -> None:
    cfg = ClipConfig(crop_size=16)
    clips = clips_from_track(_track(n), _frames(n), cfg)
    assert len(clips) == expected
    for k, clip in enumerate(clips):
        # In order, adjacent, leftovers at the end dropped.
        assert clip.frame_indices == tuple(range(8 * k, 8 * k + 8))
        assert clip.clip_index == k
        assert clip.track_id == 3
        assert clip.crops.shape == (8, 16, 16, 3)
        assert clip.crops.dtype == np.uint8
        # Crop t really comes from frame t (pixel value == frame index).
        assert [int(c[8, 8, 0]) for c in clip.crops] == list(clip.frame_indices)


def test_stride_overlap() -> None:
    cfg = ClipConfig(length=8, stride=4, crop_size=8)
    clips = clips_from_track(_track(16), _frames(16), cfg)
    assert [c.frame_indices[0] for c in clips] == [0, 4, 8]
    assert clips[1].frame_indices == tuple(range(4, 12))


def test_stride_larger_than_length_skips_frames() -> None:
    cfg = ClipConfig(length=4, stride=6, crop_size=8)
    clips = clips_from_track(_track(16), _frames(16), cfg)
    assert [c.frame_indices for c in clips] == [(0, 1, 2, 3), (6, 7, 8, 9), (12, 13, 14, 15)]


def test_frames_between_clips_are_not_cropped(monkeypatch) -> None:
    import sonorisk.video_classifier.clips as clips_module

    cropped: list[int] = []
    real_crop = clips_module.crop_box

    def counting(image, box, *args, **kwargs):  # noqa: ANN001, ANN202
        cropped.append(int(image[0, 0]))  # the frame index, as _frames encodes it
        return real_crop(image, box, *args, **kwargs)

    monkeypatch.setattr(clips_module, "crop_box", counting)
    cfg = ClipConfig(length=4, stride=6, crop_size=8)
    clips = clips_from_track(_track(16), _frames(16), cfg)
    # The same clips as without skipping, with crops from the right frames ...
    assert [c.frame_indices for c in clips] == [(0, 1, 2, 3), (6, 7, 8, 9), (12, 13, 14, 15)]
    assert [int(c[4, 4, 0]) for clip in clips for c in clip.crops] == [
        i for clip in clips for i in clip.frame_indices
    ]
    # ... and frames 4, 5, 10, 11 (in no clip) never cropped.
    assert cropped == [0, 1, 2, 3, 6, 7, 8, 9, 12, 13, 14, 15]


def test_temporal_subsampling_step_and_fps() -> None:
    cfg = ClipConfig(temporal_step=2, crop_size=8)
    clips = clips_from_track(_track(17), _frames(17), cfg)
    assert len(clips) == 1
    assert clips[0].frame_indices == (0, 2, 4, 6, 8, 10, 12, 14)
    # target_fps: a 50 fps source keeps every 2nd frame, a 30 fps source every frame.
    by_fps = ClipConfig(target_fps=25.0, crop_size=8)
    assert by_fps.step_for_fps(50.0) == 2
    assert by_fps.step_for_fps(30.0) == 1
    assert by_fps.step_for_fps(None) == 1
    clips50 = clips_from_track(_track(16), _frames(16), by_fps, fps=50.0)
    assert len(clips50) == 1 and clips50[0].frame_indices[1] == 2


def test_incremental_emits_as_soon_as_complete() -> None:
    builder = ClipBuilder(ClipConfig(crop_size=8))
    frames = _frames(20)
    emitted_at = []
    for i in range(20):
        # Two interleaved tracks, as a live pipeline would feed them.
        a = builder.push(1, i, frames[i], (5, 5, 20, 20))
        if i < 9:
            b = builder.push(2, i, frames[i], (30, 5, 50, 25))
            assert b is None or i == 7
        if a is not None:
            emitted_at.append(i)
            assert a.frame_indices[-1] == i
    assert emitted_at == [7, 15]
    assert builder.open_tracks == [1, 2]
    assert builder.end_track(2) == 1
    assert builder.open_tracks == [1]


def test_frames_out_of_order_rejected() -> None:
    builder = ClipBuilder(ClipConfig(crop_size=8))
    img = np.zeros((32, 32), np.uint8)
    builder.push(0, 5, img, (1, 1, 10, 10))
    with pytest.raises(InputError, match="increasing order"):
        builder.push(0, 5, img, (1, 1, 10, 10))


def test_crop_keeps_lesion_centred_at_border() -> None:
    # A bright lesion touching the top-left corner: the crop must pad, not shift.
    img = np.zeros((100, 120), np.uint8)
    img[0:20, 0:20] = 255
    crop = crop_box(img, (0, 0, 20, 20), size=40, margin=0.5)
    # Window side = 20 * (1 + 2*0.5) = 40 -> no resize; window starts at (-10, -10).
    assert crop.shape == (40, 40, 3)
    assert (crop[:10, :, :] == 0).all() and (crop[:, :10, :] == 0).all()  # padding
    assert (crop[10:30, 10:30] == 255).all()  # lesion exactly centred
    assert (crop[30:, :, :] == 0).all()
    # Bottom-right corner, the same.
    img2 = np.zeros((100, 120), np.uint8)
    img2[80:100, 100:120] = 200
    crop2 = crop_box(img2, (100, 80, 120, 100), size=40, margin=0.5)
    assert (crop2[10:30, 10:30] == 200).all()
    assert (crop2[30:, :] == 0).all() and (crop2[:, 30:] == 0).all()


def test_crop_window_square_and_margin() -> None:
    x1, y1, x2, y2 = crop_window((10, 20, 50, 30), margin=0.25, square=True)
    assert x2 - x1 == pytest.approx(60) and y2 - y1 == pytest.approx(60)
    assert ((x1 + x2) / 2, (y1 + y2) / 2) == (30, 25)
    r = crop_window((10, 20, 50, 30), margin=0.0, square=False)
    assert r == (10, 20, 50, 30)


def test_crop_pad_value_and_rgb() -> None:
    img = np.zeros((10, 10, 3), np.uint8)
    img[..., 1] = 100
    crop = crop_box(img, (-5, -5, 5, 5), size=10, margin=0.0, pad_value=7)
    assert (crop[:5, :5] == 7).all()
    assert (crop[5:, 5:, 1] == 100).all() and (crop[5:, 5:, 0] == 0).all()


@pytest.mark.parametrize(
    ("image", "box", "match"),
    [
        (np.zeros((10, 10), np.float32), (1, 1, 5, 5), "uint8"),
        (np.zeros((10, 10, 2), np.uint8), (1, 1, 5, 5), "shape"),
        ([[0]], (1, 1, 5, 5), "numpy"),
        (np.zeros((10, 10), np.uint8), (5, 5, 5, 9), "no area"),
        (np.zeros((10, 10), np.uint8), (1, 1, float("nan"), 5), "finite"),
    ],
)
def test_crop_bad_input(image, box, match: str) -> None:
    with pytest.raises(InputError, match=match):
        crop_box(image, box, size=8, source="video.avi frame 3")


def test_bad_config() -> None:
    with pytest.raises(ConfigError, match="stride"):
        ClipBuilder(ClipConfig(stride=0))
    with pytest.raises(ConfigError, match="length"):
        ClipBuilder(ClipConfig(length=0))


def test_missing_frame_image() -> None:
    with pytest.raises(InputError, match="no image for frame 4"):
        clips_from_track(_track(8), {i: np.zeros((8, 8), np.uint8) for i in range(4)})


def test_tracks_from_boxes_split_on_gap_and_lesion() -> None:
    boxes = {i: [(0, 0, 5, 5)] for i in range(10)} | {i: [(0, 0, 5, 5)] for i in range(13, 20)}
    tracks = tracks_from_boxes(boxes)
    assert [len(t) for t in tracks] == [10, 7]
    two = {i: [(0, 0, 5, 5), (10, 10, 20, 20)] for i in range(8)}
    ids = {i: [7, 9] for i in range(8)}
    tracks = tracks_from_boxes(two, ids)
    assert len(tracks) == 2 and tracks[1].detections[0].box == (10, 10, 20, 20)
    with pytest.raises(InputError, match="lesion ids"):
        tracks_from_boxes({0: [(0, 0, 5, 5)]}, {0: [1, 2]})


def test_paste_into_frame_inverts_crop_geometry() -> None:
    from sonorisk.video_classifier.clips import paste_into_frame

    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (100, 120), dtype=np.uint8)
    box = (100, 80, 120, 100)  # window 40 px (margin 0.5) runs past the bottom-right
    crop = crop_box(img, box, size=40, margin=0.5)
    back = paste_into_frame(crop[:, :, 0].astype(np.float32), box, (100, 120), margin=0.5)
    inside = ~np.isnan(back)
    assert inside.sum() == 30 * 30  # the window part within the frame: x 90-120, y 70-100
    np.testing.assert_array_equal(back[70:100, 90:120], img[70:100, 90:120].astype(np.float32))
    assert np.isnan(back[:70]).all() and np.isnan(back[:, :90]).all()
    with pytest.raises(InputError, match="H x W"):
        paste_into_frame(np.zeros((2, 4, 4)), box, (100, 120))
