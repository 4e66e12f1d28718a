"""Still images (PNG, JPEG, TIFF, BMP, single-frame DICOM) as one RGB array.

A still is told from a video by its bytes, not its name: PNG, JPEG, TIFF and
BMP by their magic numbers, DICOM by a header that holds one frame (a
multi-frame DICOM is a cine loop and goes the video way, ``dicom_source``).
Raster images are read with Pillow, DICOM with pydicom. Every refusal is an
``InputError`` naming the file and the reason, and what a refusal protects
against is checked before any pixel is decoded: the declared size (a
decompression bomb declares billions of pixels in a few bytes) and the
smallest image that can hold a lesion.

What is accepted but changed is said in ``Still.notes`` (16-bit scaled to 8,
alpha dropped, palette converted), and the score document carries the notes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sonorisk.errors import InputError
from sonorisk.io.source import MAX_PIXELS, MAX_SIDE, error_text

# ".dcm" is shared with DICOM cine: a DICOM file is a still only if it holds one frame.
STILL_SUFFIXES: frozenset[str] = frozenset(
    {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".dcm"}
)

# Smaller images cannot hold a lesion the detector (trained at ~512 px) could see.
MIN_SIDE = 32
# The same ceiling as a video frame's (sonorisk.io.source): checked on the
# declared size, before decoding.
MAX_STILL_PIXELS = MAX_PIXELS

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"II+\x00", "tiff"),  # BigTIFF
    (b"MM\x00+", "tiff"),
    (b"BM", "bmp"),
)


@dataclass(frozen=True)
class Still:
    """One still image, as the detector and the still classifier read it."""

    image: np.ndarray  # H x W x 3 uint8 RGB
    source: str
    format: str  # png | jpeg | tiff | bmp | dicom
    width: int
    height: int
    bit_depth: int  # bits per sample as stored (16 for a 16-bit PNG, BitsStored for DICOM)
    pixel_spacing_mm: tuple[float, float] | None  # (x, y) mm per pixel; DICOM only
    notes: tuple[str, ...] = ()  # what was changed to read it (scaled, alpha dropped ...)
    mode: str = ""  # as stored: Pillow's mode, or DICOM's photometric interpretation

    def describe(self) -> dict[str, Any]:
        """What ``sonorisk info`` and the score document say about the still."""
        return {
            "format": self.format,
            "width": self.width,
            "height": self.height,
            "bit_depth": self.bit_depth,
            "mode": self.mode,
            "pixel_spacing_mm": (
                list(self.pixel_spacing_mm) if self.pixel_spacing_mm is not None else None
            ),
            "notes": list(self.notes),
        }


def raster_format(path: Path) -> str | None:
    """``png``/``jpeg``/``tiff``/``bmp`` by the file's first bytes, or None."""
    try:
        with path.open("rb") as fh:
            head = fh.read(8)
    except OSError:
        return None
    return next((fmt for magic, fmt in _MAGIC if head.startswith(magic)), None)


def dicom_frames(path: Path) -> int | None:
    """Frames a DICOM file declares (header only), or None when it is no DICOM."""
    from sonorisk.io.dicom_source import is_dicom

    if not is_dicom(path):
        return None
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        return int(ds.get("NumberOfFrames", 1) or 1)
    except Exception:  # noqa: BLE001 - an unreadable header: let the reader say why
        return 1


def is_still(path: str | Path) -> bool:
    """A PNG/JPEG/TIFF/BMP by its magic bytes, or a DICOM holding one frame.

    Cheap: reads the first bytes (and a DICOM's header, never its pixels).
    """
    path = Path(path)
    if not path.is_file():
        return False
    if raster_format(path) is not None:
        return True
    return dicom_frames(path) == 1


def read_still(path: str | Path) -> Still:
    """The still at ``path`` as H x W x 3 RGB uint8; ``InputError`` with the reason if not."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such file" if not path.exists() else "is not a file")
    if path.stat().st_size == 0:
        raise InputError(path, "file is empty (0 bytes)")
    fmt = raster_format(path)
    if fmt is not None:
        return _read_raster(path, fmt)
    frames = dicom_frames(path)
    if frames is None:
        raise InputError(
            path,
            "not a still image (PNG, JPEG, TIFF, BMP or single-frame "
            "DICOM, told by the file's first bytes)",
        )
    if frames > 1:
        raise InputError(
            path, f"multi-frame DICOM ({frames} frames) is a cine loop: score it as a video"
        )
    return _read_dicom(path)


def check_size(path: Path, width: int, height: int) -> None:
    """The declared size, before decoding: too small for a lesion, or too large to decode."""
    if width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_STILL_PIXELS:
        raise InputError(
            path,
            f"declares {width}x{height} pixels, beyond the supported "
            f"{MAX_SIDE} px per side / {MAX_STILL_PIXELS} pixels: refused "
            "before decoding (a decompression bomb looks like this)",
        )
    if width < MIN_SIDE or height < MIN_SIDE:
        raise InputError(
            path,
            f"image is {width}x{height} pixels: too small to hold a "
            f"lesion (at least {MIN_SIDE}x{MIN_SIDE})",
        )


# --- PNG, JPEG, TIFF, BMP (Pillow) ------------------------------------------
_BROKEN = {
    "png": "corrupt PNG",
    "jpeg": "corrupt JPEG",
    "tiff": "corrupt TIFF",
    "bmp": "corrupt BMP",
}


def _read_raster(path: Path, fmt: str) -> Still:
    from PIL import Image, ImageOps

    # Pillow's own bomb guard raises from the header alone over twice its limit
    # (it only warns over the limit itself, where check_size refuses first).
    try:
        # Verify first: PNG chunk checksums (a damaged IDAT) are checked only here.
        with Image.open(path) as probe:
            check_size(path, *probe.size)
            probe.verify()
        with Image.open(path) as im:
            frames = int(getattr(im, "n_frames", 1) or 1)
            stored = _stored_bits(im)
            im.load()
            # A photographed screen (JPEG/TIFF from a camera) may be stored sideways
            # with an EXIF orientation tag: boxes are reported in the upright image.
            turned = im.getexif().get(0x0112, 1) not in (1, None)  # 0x0112: Orientation
            upright: Image.Image = ImageOps.exif_transpose(im) if turned else im
            image, notes = _to_rgb(upright, stored)
            if turned:
                notes.insert(0, "EXIF orientation applied: boxes are in the upright image")
            mode = upright.mode
    except Image.DecompressionBombError as exc:
        raise InputError(
            path,
            f"declared image size is beyond Pillow's limit: refused "
            f"before decoding (a decompression bomb; {exc})",
        ) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InputError(path, _decode_reason(fmt, exc)) from exc
    if frames > 1:
        notes.append(f"{fmt.upper()} holds {frames} images: the first is scored")
    height, width = image.shape[:2]
    return Still(image, str(path), fmt, width, height, stored, None, tuple(notes), mode)


def _decode_reason(fmt: str, exc: BaseException) -> str:
    text = error_text(exc)
    if "truncated" in text or isinstance(exc, EOFError):
        return f"truncated {fmt.upper()}: the file ends before its image data does ({text})"
    return f"{_BROKEN[fmt]}: cannot be decoded ({text})"


def _stored_bits(im: Any) -> int:
    """Bits per sample as stored (Pillow reads 16-bit RGB PNG as 8-bit RGB
    without saying so; the raw mode of its tile still says ``;16``)."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        return 16  # mode I beyond 16 bits is refused when converted
    if im.mode == "1":
        return 1
    raw = " ".join(str(tile.args) for tile in getattr(im, "tile", ()) or ())
    return 16 if ";16" in raw else 8


def _to_rgb(im: Any, stored_bits: int) -> tuple[np.ndarray, list[str]]:
    """A loaded Pillow image -> H x W x 3 uint8, and what was changed to get there."""
    notes: list[str] = []
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        data = np.asarray(im)
        if mode == "I" and (data.min() < 0 or data.max() > 65535):
            raise ValueError("32-bit integer image with values beyond 16 bits is not supported")
        # 12-bit scanner data often sits in 16-bit words: scale the bits the data
        # use (at least 8, at most 16), not the word, or the image comes out dark.
        bits = min(16, max(8, int(data.max()).bit_length()))
        top = (1 << bits) - 1
        gray = np.rint(np.clip(data, 0, top).astype(np.float64) * (255.0 / top)).astype(np.uint8)
        notes.append(
            f"16-bit image scaled to 8 bits (its values use {bits} bits: 0-{top} onto 0-255)"
        )
        return np.repeat(gray[:, :, None], 3, axis=2), notes
    if stored_bits == 16:
        notes.append("16-bit image scaled to 8 bits (the full 16-bit range onto 0-255)")
    if mode == "F":
        raise ValueError("floating-point image (mode F) is not supported")
    if mode == "P" or mode == "PA":
        has_alpha = mode == "PA" or "transparency" in im.info
        im = im.convert("RGBA" if has_alpha else "RGB")
        notes.append("palette image converted to RGB")
        mode = im.mode
    if mode in ("RGBA", "LA", "RGBa", "La"):
        notes.append("alpha channel dropped (the colour values are kept as stored)")
        im = im.convert("RGB") if mode.startswith("RGB") else im.convert("L")
        mode = im.mode
    if mode == "1":
        notes.append("1-bit image converted to 8-bit gray")
        im = im.convert("L")
        mode = "L"
    if mode == "CMYK":
        notes.append("CMYK image converted to RGB")
        im = im.convert("RGB")
        mode = "RGB"
    if mode == "L":
        gray = np.asarray(im, dtype=np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2), notes
    if mode != "RGB":
        im = im.convert("RGB")  # YCbCr, LAB, HSV: Pillow knows the conversion
    return np.ascontiguousarray(np.asarray(im, dtype=np.uint8)), notes


# --- single-frame DICOM (pydicom) -------------------------------------------
def _read_dicom(path: Path) -> Still:
    import pydicom

    try:
        # defer_size: the pixel data stays on disk until the size is checked.
        ds = pydicom.dcmread(path, defer_size="64 KB")
    except Exception as exc:  # noqa: BLE001 - pydicom raises many kinds
        raise InputError(path, f"DICOM header unreadable ({error_text(exc)})") from exc
    if "PixelData" not in ds and "FloatPixelData" not in ds:
        raise InputError(
            path, "DICOM file holds no pixel data (a report or structured document, not an image)"
        )
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    if rows <= 0 or cols <= 0:
        raise InputError(path, f"DICOM header gives image size {cols}x{rows}")
    check_size(path, cols, rows)
    from sonorisk.io.dicom_source import _to_uint8  # the cine reader's colour rules

    try:
        image = _to_uint8(ds.pixel_array, ds, "rgb")
    except Exception as exc:  # noqa: BLE001 - decoder plugins raise many kinds
        raise InputError(path, f"DICOM pixel data cannot be decoded ({error_text(exc)})") from exc
    bits = int(ds.get("BitsStored", 8) or 8)
    notes = [f"{bits}-bit DICOM scaled to 8 bits"] if bits > 8 else []
    return Still(
        np.ascontiguousarray(image),
        str(path),
        "dicom",
        cols,
        rows,
        bits,
        dicom_pixel_spacing(ds),
        tuple(notes),
        str(ds.get("PhotometricInterpretation", "")).strip(),
    )


_CM = 3  # PhysicalUnitsX/YDirection code for centimetres (DICOM PS3.3 C.8.5.5.1)


def dicom_pixel_spacing(ds: Any) -> tuple[float, float] | None:
    """(x, y) mm per pixel: the first ultrasound region calibrated in cm
    (PhysicalDeltaX/Y), else PixelSpacing (row, column spacing in mm), else None."""
    for region in ds.get("SequenceOfUltrasoundRegions", None) or ():
        units = (region.get("PhysicalUnitsXDirection"), region.get("PhysicalUnitsYDirection"))
        dx, dy = region.get("PhysicalDeltaX"), region.get("PhysicalDeltaY")
        if units == (_CM, _CM) and dx and dy:
            return (abs(float(dx)) * 10.0, abs(float(dy)) * 10.0)
    spacing = ds.get("PixelSpacing")
    if spacing is not None and len(spacing) == 2:
        return (float(spacing[1]), float(spacing[0]))
    return None
