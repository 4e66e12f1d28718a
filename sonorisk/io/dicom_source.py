"""Ultrasound cine loops stored as multi-frame DICOM, through pydicom.

Frames are read one at a time (``pydicom.pixels.iter_pixels`` on the path), so
a long cine never sits in memory whole. Colour: RGB as is, YBR_FULL and
YBR_FULL_422 through ``convert_color_space``, PALETTE COLOR through
``apply_color_lut``, MONOCHROME1 inverted; more than 8 bits are scaled to 8.
Timing, in order of preference: FrameTimeVector (0018,1065), FrameTime
(0018,1063), CineRate (0018,0040), RecommendedDisplayFrameRate (0008,2144).
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from sonorisk.errors import (
    CorruptVideoError,
    NotAVideoError,
    TruncatedVideoError,
    UnsupportedVideoError,
    VideoError,
)
from sonorisk.io.source import Color, Dropped, Ended, VideoSource, check_dimensions, error_text
from sonorisk.records import Frame, VideoMeta

_DICOM_SUFFIXES = {".dcm", ".dicom", ".dic"}


def is_dicom(path: Path) -> bool:
    """DICOM Part 10 magic ('DICM' at byte 128), or a .dcm file pydicom can parse."""
    if not path.is_file():  # never read from a pipe here: it would eat the stream
        return False
    try:
        with path.open("rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    if head[128:132] == b"DICM":
        return True
    if path.suffix.lower() in _DICOM_SUFFIXES:
        import pydicom

        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        except Exception:  # noqa: BLE001 - not parseable means "not DICOM" here
            return False
        return "Rows" in ds
    return False


def _frames_the_file_can_hold(
    size_bytes: int, ds: Any, rows: int, cols: int, compressed: bool
) -> int:
    """An upper bound on the frames a file of ``size_bytes`` can really contain.

    Native pixel data stores every frame in full; encapsulated (compressed)
    data needs at least an 8-byte item header per frame.
    """
    if compressed:
        return size_bytes // 8
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    bits = int(ds.get("BitsAllocated", 8) or 8)
    frame_bytes = rows * cols * samples * bits // 8
    if str(ds.get("PhotometricInterpretation", "")).strip() == "YBR_FULL_422":
        frame_bytes = rows * cols * 2 * bits // 8  # 4:2:2: Y per pixel, Cb and Cr per pair
    return size_bytes // max(1, frame_bytes)


def _frame_times(ds: Any, n_frames: int, fallback_fps: float) -> tuple[np.ndarray, float | None]:
    """Frame timestamps in seconds, and the frame rate the tags give (or None)."""
    vector = ds.get("FrameTimeVector")
    if vector is not None and len(vector) == n_frames:
        increments = np.asarray([float(v) for v in vector]) / 1000.0
        increments[0] = 0.0  # the first entry is the (zero) time of frame 0
        times = np.cumsum(increments)
        fps: float | None = (n_frames - 1) / times[-1] if times[-1] > 0 else None
        return times, fps
    fps = None
    frame_time_ms = ds.get("FrameTime")
    if frame_time_ms is not None and float(frame_time_ms) > 0:
        fps = 1000.0 / float(frame_time_ms)
    for keyword in ("CineRate", "RecommendedDisplayFrameRate"):
        value = ds.get(keyword)
        if fps is None and value is not None and float(value) > 0:
            fps = float(value)
    step = 1.0 / (fps or fallback_fps)
    return np.arange(n_frames) * step, fps


class DicomSource(VideoSource):
    """A multi-frame (cine) DICOM file."""

    def __init__(
        self,
        source: str,
        *,
        color: Color = "rgb",
        open_timeout_s: float = 10.0,
        frame_timeout_s: float = 30.0,
        strict: bool = False,
        fallback_fps: float = 30.0,
    ) -> None:
        self._path = Path(source)
        self._fallback_fps = fallback_fps
        self._ds: Any = None
        self._times = np.zeros(0)
        self._claimed = 0  # NumberOfFrames as the header states it
        super().__init__(
            source,
            color=color,
            open_timeout_s=open_timeout_s,
            frame_timeout_s=frame_timeout_s,
            live=False,
            strict=strict,
        )

    def _open(self) -> VideoMeta:
        import pydicom
        from pydicom.errors import InvalidDicomError

        try:
            # defer_size: leave the pixel data on disk; frames are read lazily.
            ds = pydicom.dcmread(self._path, defer_size="64 KB")
        except InvalidDicomError as exc:
            raise NotAVideoError(
                self.source, f"not a readable DICOM file ({error_text(exc)})"
            ) from exc
        except (OSError, ValueError, EOFError) as exc:
            raise CorruptVideoError(
                self.source, f"DICOM header unreadable ({error_text(exc)})"
            ) from exc
        if "PixelData" not in ds and "FloatPixelData" not in ds:
            raise NotAVideoError(self.source, "DICOM file holds no pixel data")
        rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
        check_dimensions(self.source, cols, rows)
        n_frames = int(ds.get("NumberOfFrames", 1) or 1)
        if n_frames < 2:
            raise NotAVideoError(
                self.source, "single-frame DICOM image, not a cine loop (NumberOfFrames < 2)"
            )
        photometric = str(ds.get("PhotometricInterpretation", "")).strip()
        supported = {
            "MONOCHROME1",
            "MONOCHROME2",
            "RGB",
            "YBR_FULL",
            "YBR_FULL_422",
            "PALETTE COLOR",
            "YBR_RCT",
            "YBR_ICT",
            "YBR_PARTIAL_420",
        }
        if photometric not in supported:
            raise UnsupportedVideoError(
                self.source, f"photometric interpretation {photometric!r} is not supported"
            )
        tsyntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
        if tsyntax is not None and tsyntax.is_compressed:
            from pydicom.pixels import get_decoder

            try:
                decoder = get_decoder(tsyntax)
            except NotImplementedError as exc:
                raise UnsupportedVideoError(
                    self.source, f"no decoder for transfer syntax {tsyntax.name}"
                ) from exc
            if not decoder.is_available:
                raise UnsupportedVideoError(
                    self.source,
                    f"transfer syntax {tsyntax.name} needs a decoder plugin that is not "
                    f"installed (missing: {', '.join(decoder.missing_dependencies)})",
                )
        # The header's NumberOfFrames is a claim; the file's size bounds what it
        # can hold (work and memory follow the file, never the claim).
        # Frames beyond that are reported missing at the end (truncated), as
        # for a cut file.
        held = _frames_the_file_can_hold(
            self._path.stat().st_size, ds, rows, cols, tsyntax is not None and tsyntax.is_compressed
        )
        self._claimed = n_frames
        n_frames = max(1, min(n_frames, held))
        self._ds = ds
        self._times, fps = _frame_times(ds, n_frames, self._fallback_fps)
        duration = (n_frames / fps) if fps else None
        return VideoMeta(
            source=self.source,
            width=cols,
            height=rows,
            fps=fps,
            frame_count=n_frames,  # at most what the file can hold
            codec=f"dicom:{tsyntax.name if tsyntax is not None else 'unknown'}",
            duration_s=duration,
            container="dicom",
            pixel_format=photometric,
            is_live=False,
        )

    def _produce(self) -> Generator[Frame | Dropped | Ended, None, None]:
        from pydicom.pixels import iter_pixels

        ds = self._ds
        n_frames = len(self._times)
        photometric = str(ds.PhotometricInterpretation).strip()
        compressed = ds.file_meta.TransferSyntaxUID.is_compressed
        if photometric == "YBR_FULL_422" and not compressed:
            # pydicom 3.0's iter_pixels sizes native 4:2:2 frames as 4:4:4
            # and runs off the end; unpack them here instead.
            frames: Iterator[np.ndarray] = _native_422_frames(ds, n_frames)
        else:
            # raw=True: keep the stored colour space; _to_uint8 converts explicitly.
            frames = iter_pixels(self._path, raw=True)
        index = 0
        while index < n_frames:
            try:
                raw = next(frames)
            except StopIteration:
                break
            except Exception as exc:  # noqa: BLE001 - pydicom raises plain ValueErrors
                yield self._damaged(index, self._claimed, exc)
                return
            try:
                image = _to_uint8(raw, ds, self.color)
            except (ValueError, IndexError) as exc:
                index += 1
                yield Dropped(f"frame {index - 1}: {error_text(exc)}")
                continue
            yield Frame(index=index, timestamp_s=float(self._times[index]), image=image)
            index += 1
        if index < self._claimed:
            yield Ended(
                "truncated",
                TruncatedVideoError(
                    self.source, f"pixel data ends after {index} of {self._claimed} frames"
                ),
            )
            return
        yield Ended("eof")

    def _damaged(self, index: int, n_frames: int, exc: Exception) -> Ended:
        error: VideoError
        if index == 0:
            error = CorruptVideoError(self.source, f"no frame could be read ({error_text(exc)})")
            return Ended("error", error)
        error = TruncatedVideoError(
            self.source, f"pixel data ends after {index} of {n_frames} frames ({error_text(exc)})"
        )
        return Ended("truncated", error)

    def _release(self) -> None:
        self._ds = None


def _native_422_frames(ds: Any, n_frames: int) -> Iterator[np.ndarray]:
    """Uncompressed YBR_FULL_422 (Y0 Y1 Cb Cr per pixel pair) -> HxWx3 YBR frames."""
    rows, cols = int(ds.Rows), int(ds.Columns)
    frame_bytes = rows * cols * 2
    data = ds.PixelData
    for i in range(n_frames):
        chunk = data[i * frame_bytes : (i + 1) * frame_bytes]
        if len(chunk) < frame_bytes:
            raise ValueError(f"frame {i} has {len(chunk)} of {frame_bytes} bytes")
        quads = np.frombuffer(chunk, np.uint8).reshape(rows, cols // 2, 4)
        out = np.empty((rows, cols // 2, 2, 3), np.uint8)
        out[:, :, 0, 0] = quads[:, :, 0]
        out[:, :, 1, 0] = quads[:, :, 1]
        out[:, :, :, 1] = quads[:, :, 2:3]
        out[:, :, :, 2] = quads[:, :, 3:4]
        yield out.reshape(rows, cols, 3)


def _to_uint8(arr: np.ndarray, ds: Any, color: Color) -> np.ndarray:
    """One stored frame -> HxW gray or HxWx3 RGB uint8."""
    from pydicom.pixels import apply_color_lut, convert_color_space

    photometric = str(ds.PhotometricInterpretation).strip()
    if photometric == "PALETTE COLOR":
        rgb = apply_color_lut(arr, ds)
        # LUT entries are 8 or 16 bits (LUT descriptor's third value).
        bits = int(ds.RedPaletteColorLookupTableDescriptor[2])
        if bits > 8 or rgb.dtype != np.uint8:
            rgb = (rgb.astype(np.uint32) >> max(bits - 8, 0)).astype(np.uint8)
        out = rgb
    elif photometric.startswith("YBR"):
        out = convert_color_space(arr, photometric, "RGB")
        out = _scale_bits(out, ds)
    else:
        out = _scale_bits(arr, ds)
        if photometric == "MONOCHROME1":
            out = 255 - out
    out = np.ascontiguousarray(out)
    if color == "gray":
        if out.ndim == 3:
            import cv2

            out = cv2.cvtColor(out, cv2.COLOR_RGB2GRAY)
        return out
    if out.ndim == 2:
        out = np.repeat(out[:, :, None], 3, axis=2)
    return out


def _scale_bits(arr: np.ndarray, ds: Any) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    bits = int(ds.get("BitsStored", 8) or 8)
    if arr.dtype.kind == "i":  # signed pixels: shift into the unsigned range
        arr = arr.astype(np.int64) + (1 << (bits - 1))
    scaled = arr.astype(np.float64) * (255.0 / ((1 << bits) - 1))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
