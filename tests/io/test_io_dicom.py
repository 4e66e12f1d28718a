"""DICOM ultrasound cine through pydicom: colour models and frame-time tags."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    ExplicitVRLittleEndian,
    UltrasoundMultiFrameImageStorage,
    generate_uid,
)

from sonorisk.errors import (
    NotAVideoError,
    TruncatedVideoError,
    UnsupportedVideoError,
)
from sonorisk.io import open_video

H, W, N = 24, 32, 6


def _dataset(
    pixels: bytes, photometric: str, samples: int, n_frames: int = N, **tags: object
) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = UltrasoundMultiFrameImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = UltrasoundMultiFrameImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality = "US"
    ds.Rows, ds.Columns = H, W
    ds.NumberOfFrames = n_frames
    ds.SamplesPerPixel = samples
    ds.PhotometricInterpretation = photometric
    if samples == 3:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    for key, value in tags.items():
        setattr(ds, key, value)
    ds.PixelData = pixels
    return ds


def _save(ds: Dataset, path: Path) -> Path:
    ds.save_as(path, enforce_file_format=True)
    return path


def _rgb_frames(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (N, H, W, 3), dtype=np.uint8)


def test_rgb_cine_with_frame_time(tmp_path):
    frames = _rgb_frames()
    path = _save(_dataset(frames.tobytes(), "RGB", 3, FrameTime=40.0), tmp_path / "cine.dcm")
    with open_video(path) as src:
        meta = src.meta
        got = list(src)
    assert meta.container == "dicom" and meta.frame_count == N
    assert meta.fps == pytest.approx(25.0)
    assert meta.duration_s == pytest.approx(N / 25.0)
    assert [f.index for f in got] == list(range(N))
    np.testing.assert_allclose([f.timestamp_s for f in got], np.arange(N) * 0.04)
    for frame, expected in zip(got, frames, strict=True):
        np.testing.assert_array_equal(frame.image, expected)
    assert src.stats.end_reason == "eof"


def test_dispatch_by_magic_not_suffix(tmp_path):
    frames = _rgb_frames()
    path = _save(_dataset(frames.tobytes(), "RGB", 3, CineRate=30), tmp_path / "cine.bin")
    with open_video(path) as src:
        assert src.meta.container == "dicom"
        assert src.meta.fps == pytest.approx(30.0)
        assert len(list(src)) == N


def test_frame_time_vector_gives_each_timestamp(tmp_path):
    gray = np.random.default_rng(1).integers(0, 256, (N, H, W), dtype=np.uint8)
    increments = [0, 20, 20, 40, 20, 60]  # ms, first entry is frame 0
    ds = _dataset(gray.tobytes(), "MONOCHROME2", 1, FrameTimeVector=increments, FrameTime=99.0)
    path = _save(ds, tmp_path / "vector.dcm")
    with open_video(path, color="gray") as src:
        got = list(src)
    np.testing.assert_allclose([f.timestamp_s for f in got], np.cumsum(increments) / 1000)
    assert src.meta.fps == pytest.approx((N - 1) / 0.16)
    np.testing.assert_array_equal(got[3].image, gray[3])
    # Gray cine asked for as RGB: three equal channels.
    with open_video(path) as src:
        first = next(src)
    assert first.image.shape == (H, W, 3)
    np.testing.assert_array_equal(first.image[..., 1], gray[0])


def test_recommended_display_rate_and_monochrome1(tmp_path):
    gray = np.random.default_rng(2).integers(0, 256, (N, H, W), dtype=np.uint8)
    ds = _dataset(gray.tobytes(), "MONOCHROME1", 1, RecommendedDisplayFrameRate=50)
    path = _save(ds, tmp_path / "mono1.dcm")
    with open_video(path, color="gray") as src:
        got = list(src)
    assert src.meta.fps == pytest.approx(50)
    np.testing.assert_array_equal(got[0].image, 255 - gray[0])  # MONOCHROME1: inverted


def test_no_timing_tags_falls_back_honestly(tmp_path):
    gray = np.zeros((N, H, W), np.uint8)
    path = _save(_dataset(gray.tobytes(), "MONOCHROME2", 1), tmp_path / "untimed.dcm")
    with open_video(path, dicom_fallback_fps=10.0) as src:
        got = list(src)
    assert src.meta.fps is None and src.meta.duration_s is None
    assert got[2].timestamp_s == pytest.approx(0.2)


def test_palette_color_applies_the_lut(tmp_path):
    indices = np.random.default_rng(3).integers(0, 256, (N, H, W), dtype=np.uint8)
    ramp = np.arange(256, dtype=np.uint16)
    red, green, blue = ramp * 257, (255 - ramp) * 257, np.full(256, 128 * 257, np.uint16)
    ds = _dataset(indices.tobytes(), "PALETTE COLOR", 1, FrameTime=33.0)
    for name, lut in (("Red", red), ("Green", green), ("Blue", blue)):
        setattr(ds, f"{name}PaletteColorLookupTableDescriptor", [256, 0, 16])
        setattr(ds, f"{name}PaletteColorLookupTableData", lut.astype("<u2").tobytes())
    path = _save(ds, tmp_path / "palette.dcm")
    with open_video(path) as src:
        got = list(src)
    image = got[4].image
    assert image.dtype == np.uint8 and image.shape == (H, W, 3)
    np.testing.assert_array_equal(image[..., 0], indices[4])
    np.testing.assert_array_equal(image[..., 1], 255 - indices[4])
    assert np.all(image[..., 2] == 128)


def _rgb_to_ybr_full(rgb: np.ndarray) -> np.ndarray:
    r, g, b = (rgb[..., i].astype(float) for i in range(3))
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = -0.168736 * r - 0.331264 * g + 0.5 * b + 128
    cr = 0.5 * r - 0.418688 * g - 0.081312 * b + 128
    return np.clip(np.rint(np.stack([y, cb, cr], -1)), 0, 255).astype(np.uint8)


def test_ybr_full_is_converted_to_rgb(tmp_path):
    # Smooth colours so the 8-bit round trip error stays small.
    rgb = np.zeros((N, H, W, 3), np.uint8)
    rgb[..., 0] = np.linspace(30, 220, W, dtype=np.uint8)[None, None, :]
    rgb[..., 1] = 90
    rgb[..., 2] = np.arange(N, dtype=np.uint8)[:, None, None] * 30
    ybr = _rgb_to_ybr_full(rgb)
    path = _save(_dataset(ybr.tobytes(), "YBR_FULL", 3, FrameTime=20.0), tmp_path / "ybr.dcm")
    with open_video(path) as src:
        got = list(src)
    for frame, expected in zip(got, rgb, strict=True):
        assert np.abs(frame.image.astype(int) - expected.astype(int)).max() <= 2


def test_ybr_full_422_is_upsampled_and_converted(tmp_path):
    rgb = np.zeros((N, H, W, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 60, 120  # chroma constant in each pair
    ybr = _rgb_to_ybr_full(rgb)
    # YBR_FULL_422 stores Y0 Y1 Cb Cr for each pair of pixels.
    pairs = ybr.reshape(N, H, W // 2, 2, 3)
    packed = np.concatenate(
        [pairs[..., 0, 0:1], pairs[..., 1, 0:1], pairs[..., 0, 1:2], pairs[..., 0, 2:3]],
        axis=-1,
    )
    path = _save(
        _dataset(packed.tobytes(), "YBR_FULL_422", 3, FrameTime=20.0), tmp_path / "ybr422.dcm"
    )
    with open_video(path) as src:
        got = list(src)
    assert len(got) == N
    assert np.abs(got[2].image.astype(int) - rgb[2].astype(int)).max() <= 2


def test_truncated_pixel_data_delivers_whole_frames(tmp_path):
    frames = _rgb_frames()
    path = _save(_dataset(frames.tobytes(), "RGB", 3, FrameTime=40.0), tmp_path / "cut.dcm")
    data = path.read_bytes()
    frame_bytes = H * W * 3
    path.write_bytes(data[: len(data) - int(2.5 * frame_bytes)])
    with open_video(path) as src:
        got = list(src)
    assert len(got) == 3  # frames 0-2 whole; frame 3 cut; 4-5 gone
    np.testing.assert_array_equal(got[2].image, frames[2])
    assert src.stats.end_reason == "truncated"
    assert isinstance(src.stats.error, TruncatedVideoError)
    assert str(path) in str(src.stats.error) and "3 of 6" in str(src.stats.error)


def test_single_frame_dicom_is_not_a_cine(tmp_path):
    gray = np.zeros((1, H, W), np.uint8)
    path = _save(_dataset(gray.tobytes(), "MONOCHROME2", 1, n_frames=1), tmp_path / "one.dcm")
    with pytest.raises(NotAVideoError) as info:
        open_video(path)
    assert str(path) in str(info.value) and "single-frame" in str(info.value)


def test_absurd_dicom_dimensions_refused(tmp_path):
    ds = _dataset(b"\0" * (H * W * N), "MONOCHROME2", 1)
    ds.Rows, ds.Columns = 0, 0
    path = _save(ds, tmp_path / "zero.dcm")
    with pytest.raises(UnsupportedVideoError) as info:
        open_video(path)
    assert str(path) in str(info.value) and "0x0" in str(info.value)


def test_jpeg_baseline_cine(tmp_path):
    """JPEG-compressed cine (as many scanners export), decoded by pydicom's Pillow plugin."""
    pytest.importorskip("PIL")
    import cv2
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit

    rgb = np.zeros((N, 64, 96, 3), np.uint8)
    rgb[..., 0] = np.linspace(40, 220, 96, dtype=np.uint8)[None, None, :]
    rgb[..., 1] = 100
    rgb[..., 2] = (np.arange(N) * 35)[:, None, None]
    encoded = [
        cv2.imencode(".jpg", f[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes() for f in rgb
    ]
    ds = _dataset(b"", "YBR_FULL_422", 3, FrameTime=40.0)
    ds.Rows, ds.Columns = 64, 96
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.PixelData = encapsulate(encoded)
    ds["PixelData"].VR = "OB"
    path = _save(ds, tmp_path / "jpeg.dcm")
    with open_video(path) as src:
        assert "JPEG" in src.meta.codec
        got = list(src)
    assert len(got) == N
    for frame, expected in zip(got, rgb, strict=True):
        assert np.abs(frame.image.astype(int) - expected.astype(int)).mean() < 4


def test_rle_lossless_cine_is_exact(tmp_path):
    """RLE Lossless (common in ultrasound exports), decoded by pydicom's own decoder."""
    from pydicom.uid import RLELossless

    frames = _rgb_frames(seed=4)
    ds = _dataset(frames.tobytes(), "RGB", 3, FrameTime=25.0)
    ds.compress(RLELossless, frames)
    path = _save(ds, tmp_path / "rle.dcm")
    with open_video(path) as src:
        assert "RLE" in src.meta.codec
        got = list(src)
    assert src.meta.fps == pytest.approx(40.0)
    for frame, expected in zip(got, frames, strict=True):
        np.testing.assert_array_equal(frame.image, expected)


def test_compressed_syntax_without_decoder_is_refused(tmp_path):
    from pydicom.encaps import encapsulate
    from pydicom.pixels import get_decoder
    from pydicom.uid import JPEGLSLossless

    if get_decoder(JPEGLSLossless).is_available:
        pytest.skip("a JPEG-LS decoder is installed here")
    ds = _dataset(b"", "MONOCHROME2", 1)
    ds.file_meta.TransferSyntaxUID = JPEGLSLossless
    ds.PixelData = encapsulate([b"\xff\xd8not-really-jpeg-ls\xff\xd9"] * N)
    ds["PixelData"].VR = "OB"
    path = _save(ds, tmp_path / "jls.dcm")
    with pytest.raises(UnsupportedVideoError) as info:
        open_video(path)
    assert str(path) in str(info.value)
    assert "JPEG-LS" in info.value.reason and "not installed" in info.value.reason


def test_frame_count_claim_beyond_the_file_costs_what_the_file_holds(tmp_path):
    """NumberOfFrames of 300 million in a small file: its 6 frames, then "truncated";
    memory and work follow the file (the timestamps of 300 million frames were 4.5 GB)."""
    import resource

    frames = _rgb_frames()
    path = _save(
        _dataset(frames.tobytes(), "RGB", 3, n_frames=300_000_000, FrameTime=40.0),
        tmp_path / "claims.dcm",
    )
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with open_video(path) as src:
        assert src.meta.frame_count <= N + 1
        got = list(src)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 200
    assert len(got) == N
    np.testing.assert_array_equal(got[-1].image, frames[-1])
    assert isinstance(src.stats.error, TruncatedVideoError)
    assert f"{N} of 300000000" in str(src.stats.error)
