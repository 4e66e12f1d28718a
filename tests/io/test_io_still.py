"""Still images through the real readers (Pillow, pydicom): what is read, what is
refused and why, one bad kind at a time."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom.dataset import Dataset

from sonorisk.cli import main
from sonorisk.errors import InputError, NotAVideoError
from sonorisk.io import open_video
from sonorisk.io.still import MIN_SIDE, is_still, read_still

from .test_io_dicom import _dataset, _save  # noqa: TID252 (the project's way to make DICOM)


def _rgb(h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _refused(path: Path, *words: str) -> InputError:
    with pytest.raises(InputError) as info:
        read_still(path)
    message = str(info.value)
    assert str(path) in message, message
    for word in words:
        assert word in message, message
    return info.value


# --- what is read --------------------------------------------------------------
@pytest.mark.parametrize(("suffix", "fmt"), [(".png", "png"), (".tif", "tiff"), (".bmp", "bmp")])
def test_lossless_formats_read_pixel_exact(tmp_path, suffix, fmt):
    rgb = _rgb()
    path = tmp_path / f"img{suffix}"
    Image.fromarray(rgb).save(path)
    still = read_still(path)
    assert (still.format, still.width, still.height, still.bit_depth) == (fmt, 64, 48, 8)
    assert still.image.dtype == np.uint8 and still.image.shape == (48, 64, 3)
    np.testing.assert_array_equal(still.image, rgb)
    assert still.notes == () and still.pixel_spacing_mm is None and still.source == str(path)


def test_jpeg_and_gray_become_rgb(tmp_path):
    gray = np.tile(np.linspace(0, 255, 64, dtype=np.uint8), (48, 1))
    path = tmp_path / "gray.jpg"
    Image.fromarray(gray).save(path, quality=95)
    still = read_still(path)
    assert still.format == "jpeg" and still.image.shape == (48, 64, 3)
    np.testing.assert_array_equal(still.image[..., 0], still.image[..., 2])
    assert np.abs(still.image[..., 0].astype(int) - gray).max() <= 6


def test_stills_are_told_by_their_bytes_not_their_names(tmp_path, make_video):
    png = tmp_path / "scan.dat"
    Image.fromarray(_rgb()).save(png, format="PNG")
    text = tmp_path / "notes.png"
    text.write_text("not an image\n")
    video = make_video("clip.avi", n=4)
    assert is_still(png) and not is_still(text) and not is_still(video)
    assert not is_still(tmp_path / "missing.png") and not is_still(tmp_path)
    assert read_still(png).format == "png"
    _refused(text, "not a still image")


def test_a_still_is_not_opened_as_a_video(tmp_path):
    path = tmp_path / "benign_002.png"
    Image.fromarray(_rgb()).save(path)
    with pytest.raises(NotAVideoError) as info:
        open_video(path)
    assert str(path) in str(info.value) and "still image (PNG)" in str(info.value)
    assert "sonorisk score" in str(info.value)


# --- bad stills, one kind at a time -------------------------------------------------
def test_corrupt_png_is_refused(tmp_path):
    path = tmp_path / "corrupt.png"
    Image.fromarray(_rgb(seed=1)).save(path)
    data = bytearray(path.read_bytes())
    data[120:160] = bytes(40)  # inside the image data: its checksum no longer holds
    path.write_bytes(bytes(data))
    _refused(path, "corrupt PNG")


def test_truncated_jpeg_is_refused(tmp_path):
    path = tmp_path / "cut.jpg"
    Image.fromarray(_rgb(200, 200, seed=2)).save(path, quality=90)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    _refused(path, "truncated JPEG")


def test_one_pixel_image_is_too_small(tmp_path):
    path = tmp_path / "dot.png"
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(path)
    _refused(path, "1x1", "too small", f"{MIN_SIDE}x{MIN_SIDE}")


def test_16_bit_png_is_scaled_to_8_bits_with_a_note(tmp_path):
    values = np.array([[0, 257, 32768, 65535]], np.uint16).repeat(40, 0).repeat(10, 1)
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    still = read_still(path)
    assert still.bit_depth == 16 and still.image.shape == (40, 40, 3)
    assert still.image[0, ::10, 0].tolist() == [0, 1, 128, 255]
    assert any("16-bit" in note and "8 bits" in note for note in still.notes)


def test_12_bit_values_in_a_16_bit_png_use_the_whole_8_bit_range(tmp_path):
    """Scanner data of 12 bits in 16-bit words: scaled by the bits used, not darkened."""
    values = np.array([[0, 1024, 2048, 4095]], np.uint16).repeat(40, 0).repeat(10, 1)
    path = tmp_path / "twelve.png"
    Image.fromarray(values).save(path)
    still = read_still(path)
    assert still.image[0, ::10, 0].tolist() == [0, 64, 128, 255]
    assert any("12 bits" in note and "0-4095" in note for note in still.notes)


def test_exif_orientation_is_applied_and_said(tmp_path):
    """A JPEG stored sideways with Orientation 6 (rotate 90 degrees clockwise to view)."""
    stored = np.zeros((40, 80, 3), np.uint8)
    stored[:, :20] = 255  # bright band on the stored image's left edge
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[0x0112] = 6
    path = tmp_path / "sideways.jpg"
    image.save(path, exif=exif.tobytes(), quality=95)
    still = read_still(path)
    assert (still.width, still.height) == (40, 80) and still.image.shape == (80, 40, 3)
    assert still.image[:15, :, 0].mean() > 200 > still.image[-30:, :, 0].mean()  # band on top
    assert any("EXIF orientation" in note for note in still.notes)
    plain = tmp_path / "upright.jpg"
    Image.fromarray(stored).save(plain, quality=95)
    assert not any("EXIF" in note for note in read_still(plain).notes)


def test_rgba_drops_alpha_with_a_note(tmp_path):
    rgba = np.dstack([_rgb(), np.full((48, 64), 10, np.uint8)])  # nearly transparent
    path = tmp_path / "alpha.png"
    Image.fromarray(rgba, "RGBA").save(path)
    still = read_still(path)
    np.testing.assert_array_equal(still.image, rgba[..., :3])  # colours as stored
    assert still.mode == "RGBA" and any("alpha channel dropped" in n for n in still.notes)


def test_palette_image_is_converted(tmp_path):
    index = np.zeros((40, 40), np.uint8)
    index[:, 20:] = 1
    im = Image.fromarray(index, "P")
    im.putpalette([200, 10, 30, 5, 250, 60] + [0] * 762)
    path = tmp_path / "palette.png"
    im.save(path)
    still = read_still(path)
    assert still.image[0, 0].tolist() == [200, 10, 30]
    assert still.image[0, 39].tolist() == [5, 250, 60]
    assert any("palette" in n for n in still.notes)


def _png_declaring(path: Path, width: int, height: int) -> Path:
    """A tiny PNG whose header declares width x height (the body is a few bytes)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit gray
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )
    return path


@pytest.mark.parametrize("side", [9_000, 100_000])  # over our limit; over Pillow's too
def test_decompression_bomb_is_refused_before_decoding(tmp_path, monkeypatch, side):
    from PIL import ImageFile

    path = _png_declaring(tmp_path / f"bomb{side}.png", side, side)
    assert path.stat().st_size < 200

    def no_decoding(self):  # pragma: no cover - reached only if the guard failed
        raise AssertionError("decoded a decompression bomb")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    monkeypatch.setattr(ImageFile.ImageFile, "verify", no_decoding)
    _refused(path, "refused before decoding", "decompression bomb")


# --- DICOM -------------------------------------------------------------------------
def _dicom(path: Path, pixels: np.ndarray | None, frames: int = 1, **tags: object) -> Path:
    """A gray DICOM as tests/io/test_io_dicom makes them; ``pixels`` None: no pixel data."""
    shape = pixels.shape[-2:] if pixels is not None else (40, 48)
    ds = _dataset(
        b"" if pixels is None else pixels.tobytes(),
        "MONOCHROME2",
        1,
        n_frames=frames,
        Rows=shape[0],
        Columns=shape[1],
        **tags,
    )
    if pixels is None:
        del ds.PixelData
    return _save(ds, path)


def _region(dx_cm: float, dy_cm: float) -> Dataset:
    region = Dataset()
    region.RegionSpatialFormat = 1
    region.RegionDataType = 1
    region.RegionLocationMinX0, region.RegionLocationMinY0 = 0, 0
    region.RegionLocationMaxX1, region.RegionLocationMaxY1 = 47, 39
    region.PhysicalUnitsXDirection = region.PhysicalUnitsYDirection = 3  # cm
    region.PhysicalDeltaX, region.PhysicalDeltaY = dx_cm, dy_cm
    return region


def test_single_frame_dicom_with_ultrasound_region_spacing(tmp_path):
    gray = np.random.default_rng(3).integers(0, 256, (40, 48), dtype=np.uint8)
    path = _dicom(
        tmp_path / "us.dcm",
        gray,
        SequenceOfUltrasoundRegions=[_region(0.01, 0.02)],
        PixelSpacing=[9.0, 9.0],
    )  # the region wins over a generic PixelSpacing
    assert is_still(path)
    still = read_still(path)
    assert (still.format, still.width, still.height, still.bit_depth) == ("dicom", 48, 40, 8)
    np.testing.assert_array_equal(still.image[..., 1], gray)
    assert still.pixel_spacing_mm == pytest.approx((0.1, 0.2))  # cm -> mm, (x, y)


def test_dicom_pixel_spacing_without_regions_and_12_bits(tmp_path):
    values = np.full((40, 48), 4095, np.uint16)
    values[:, :24] = 0
    path = _dicom(
        tmp_path / "ct_like.dcm",
        values,
        BitsAllocated=16,
        BitsStored=12,
        HighBit=11,
        PixelSpacing=[0.3, 0.5],
    )
    still = read_still(path)
    assert still.pixel_spacing_mm == pytest.approx((0.5, 0.3))  # (column, row) = (x, y)
    assert still.bit_depth == 12 and still.image[0, 0, 0] == 0 and still.image[0, 47, 0] == 255
    assert any("12-bit" in n for n in still.notes)


def test_dicom_without_pixel_data_is_refused(tmp_path):
    path = _dicom(tmp_path / "report.dcm", None)
    _refused(path, "no pixel data")


def test_multi_frame_dicom_is_a_video_not_a_still(tmp_path):
    cine = np.zeros((3, 40, 48), np.uint8)
    path = _dicom(tmp_path / "cine.dcm", cine, frames=3)
    assert not is_still(path)
    _refused(path, "multi-frame DICOM (3 frames)", "video")
    with open_video(path) as src:  # the video way
        assert len(list(src)) == 3


# --- sonorisk info --------------------------------------------------------------------
def test_info_says_what_a_still_is(tmp_path, capsys):
    rgba = tmp_path / "alpha.png"
    Image.fromarray(np.dstack([_rgb(), np.full((48, 64), 255, np.uint8)]), "RGBA").save(rgba)
    dcm = _dicom(
        tmp_path / "us.dcm",
        np.zeros((40, 48), np.uint8),
        SequenceOfUltrasoundRegions=[_region(0.01, 0.01)],
    )
    assert main(["info", str(rgba), str(dcm), "--crop"]) == 0
    out = capsys.readouterr().out
    assert out.count("scan region: ") == 2 and "from the image alone" in out
    assert "still image PNG, size 64x48, 8-bit (RGBA)" in out
    assert "note: alpha channel dropped" in out
    assert "still image DICOM, size 48x40" in out and "pixel spacing 0.1 x 0.1 mm" in out


def test_info_json_goes_on_after_a_bad_still(tmp_path, capsys):
    good = tmp_path / "good.bmp"
    Image.fromarray(_rgb()).save(good)
    bad = tmp_path / "dot.png"
    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(bad)
    assert main(["info", str(good), str(bad), "--json", "--crop"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc[0]["ok"] and doc[0]["kind"] == "still" and doc[0]["still"]["format"] == "bmp"
    assert doc[0]["scan_region"]["frames_used"] == 1
    assert not doc[1]["ok"] and "too small" in doc[1]["error"] and str(bad) in doc[1]["error"]
