"""Contact sheets: a grid of every k-th frame with its boxes drawn, for looking at data."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from sonorisk.records import Box

BOX_COLORS = ((0, 255, 0), (255, 160, 0), (0, 200, 255), (255, 0, 255))


def draw_boxes(
    image: np.ndarray, boxes: Sequence[Box], lesion_ids: Sequence[int] = (), thickness: int = 1
) -> np.ndarray:
    """An RGB copy of ``image`` with boxes drawn (colour by lesion id)."""
    rgb = image if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    rgb = np.ascontiguousarray(rgb.copy())
    for j, box in enumerate(boxes):
        lesion = lesion_ids[j] if j < len(lesion_ids) else j
        color = BOX_COLORS[int(lesion) % len(BOX_COLORS)]
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        cv2.rectangle(rgb, (x1, y1), (max(x1, x2 - 1), max(y1, y2 - 1)), color, thickness)
    return rgb


def contact_sheet(
    frames: Sequence[np.ndarray],
    boxes: Sequence[Sequence[Box]],
    lesion_ids: Sequence[Sequence[int]] | None = None,
    columns: int = 6,
    tile_width: int = 200,
    labels: Sequence[str] | None = None,
) -> np.ndarray:
    """A grid of frames (RGB uint8) with their boxes and a caption each."""
    if not frames:
        raise ValueError("no frames for a contact sheet")
    tiles = []
    for i, frame in enumerate(frames):
        ids = lesion_ids[i] if lesion_ids is not None else range(len(boxes[i]))
        drawn = draw_boxes(frame, boxes[i], list(ids), thickness=max(1, frame.shape[1] // 240))
        scale = tile_width / drawn.shape[1]
        tile = cv2.resize(
            drawn, (tile_width, int(round(drawn.shape[0] * scale))), interpolation=cv2.INTER_AREA
        )
        if labels is not None:
            cv2.putText(
                tile,
                labels[i],
                (4, 14),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.4,
                (255, 255, 0),
                1,
                cv2.LINE_AA,
            )
        tiles.append(tile)
    tile_h = max(t.shape[0] for t in tiles)
    rows = []
    for start in range(0, len(tiles), columns):
        row = tiles[start : start + columns]
        row = [np.pad(t, ((0, tile_h - t.shape[0]), (0, 0), (0, 0))) for t in row]
        while len(row) < columns:
            row.append(np.zeros_like(row[0]))
        rows.append(np.concatenate([np.pad(t, ((2, 2), (2, 2), (0, 0))) for t in row], axis=1))
    return np.concatenate(rows, axis=0)


def every_kth(n_frames: int, max_tiles: int = 24) -> list[int]:
    """Indices of evenly spaced frames (at most ``max_tiles``), first and last included."""
    if n_frames <= max_tiles:
        return list(range(n_frames))
    return sorted({int(round(v)) for v in np.linspace(0, n_frames - 1, max_tiles)})


def _palette(gray_levels: int) -> list[int]:
    colors = [(round(v), round(v), round(v)) for v in np.linspace(0, 255, gray_levels)]
    colors += [(r, g, b) for r, g, b in BOX_COLORS] + [(255, 255, 0)]
    flat = [channel for color in colors for channel in color]
    return flat + flat[-3:] * (256 - len(colors))


def save_png(path: str | Path, rgb: np.ndarray, gray_levels: int = 48) -> Path:
    """Write a palette PNG (gray ramp + box colours): speckle defeats PNG compression,
    so a few dozen gray levels keep contact sheets small without visible loss."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    palette = Image.new("P", (1, 1))
    palette.putpalette(_palette(gray_levels))
    image = Image.fromarray(rgb).quantize(palette=palette, dither=Image.Dither.NONE)
    image.save(path, compress_level=6)
    return path
