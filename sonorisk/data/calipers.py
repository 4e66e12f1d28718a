"""Measurement calipers drawn as a scanner burns them into a frozen image.

Many BUSI stills carry the radiologist's calipers on the lesion: small "+"
marks at the two ends of each measured axis, often joined by a dotted line.
Cine filmed while scanning carries none (calipers are placed on a frozen
frame), so a model that reads calipers as lesion evidence scores clinical cine
differently from the stills it was measured on (docs/end-to-end.md,
"Calipers"). Drawing calipers lets training show them where no lesion is
(the detector's ``train.augment.calipers_p``) or on lesions of either class
(the clip classifier's ``train.augment.calipers_prob``), and lets a probe ask
whether a model reads them (scripts/caliper_probe.py).

Finding them lets training see lesions without them: ``find_calipers`` locates
the "+" marks (always upright, whatever the measured axis's angle: four thin
bright arms from one centre, which neither tissue highlights nor burned-in text
make), ``remove_calipers`` inpaints the marks, the digits beside them and the
dotted lines between them (``sonorisk dataset uncaliper`` writes a still folder
so cleaned).
"""

from __future__ import annotations

import itertools
import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from sonorisk.errors import InputError
from sonorisk.records import Box

MARK, LINE = 255, 230  # the "+" marks are white; the dotted line a little darker


def draw_calipers(
    image: np.ndarray, box: Box, *, line: bool = True, arm: int | None = None
) -> np.ndarray:
    """A copy of ``image`` (H x W or H x W x C, uint8) with calipers measuring
    ``box`` (x1, y1, x2, y2, pixels) on both axes: "+" marks at the middle of its
    left and right sides and of its top and bottom, with a dotted line between
    each pair when ``line``. ``arm``: half the width of a "+" in pixels (default
    1.2% of the image's width, at least 3). Marks off the image are clipped."""
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError(f"expected an H x W (x C) uint8 image, got {image.dtype} {image.shape}")
    out = image.copy()
    arm = max(3, round(0.012 * image.shape[1])) if arm is None else arm
    x1, y1, x2, y2 = (round(float(v)) for v in box)
    cx, cy = (x1 + x2) // 2, (y1 + y2) // 2
    for a, b in (((x1, cy), (x2, cy)), ((cx, y1), (cx, y2))):
        if line:
            steps = max(2, int(np.hypot(b[0] - a[0], b[1] - a[1]) // 4))
            for t in np.linspace(0.0, 1.0, steps):
                _put(out, round(a[0] + t * (b[0] - a[0])), round(a[1] + t * (b[1] - a[1])), LINE)
        for x, y in (a, b):
            for d in range(-arm, arm + 1):
                _put(out, x + d, y, MARK)
                _put(out, x, y + d, MARK)
    return out


def _put(image: np.ndarray, x: int, y: int, value: int) -> None:
    if 0 <= y < image.shape[0] and 0 <= x < image.shape[1]:
        image[y, x] = value


def random_caliper_box(
    height: int, width: int, rng: np.random.Generator, min_side: float = 0.1, max_side: float = 0.4
) -> Box:
    """A box to measure anywhere in an ``height`` x ``width`` image, its sides
    ``min_side``..``max_side`` of the image's shorter side (lesion-sized)."""
    short = min(height, width)
    w, h = (float(rng.uniform(min_side, max_side)) * short for _ in range(2))
    x1 = float(rng.uniform(0, max(width - w, 1)))
    y1 = float(rng.uniform(0, max(height - h, 1)))
    return (x1, y1, x1 + w, y1 + h)


# Finding "+" marks. A pixel on a thin bright line is brighter by LINE_CONTRAST
# than both pixels SIDE px across the line, for one of SIDES (arms up to 7 px
# wide pass). A mark's
# centre has such a line along each of its four half-arms over ARM_PROBE px
# from its centre; one half-arm may be masked by the digit a scanner writes
# beside the mark, so three must pass and the fourth only be bright.
SIDES = (3, 4)
LINE_CONTRAST = 35
BRIGHT = 160
ARM_PROBE = range(3, 6)
# A mark's vertical half-arms are alike and at least MIN_UPRIGHT px long; its
# horizontal ones at least MIN_ARM px (a digit can cut one short) and at most
# ARM_RATIO times the vertical (a tissue highlight or a word runs on). Letters
# fail here (a "T" has no upper arm), and so do crossings of tissue lines.
MIN_UPRIGHT, MIN_ARM, ARM_SPREAD, ARM_RATIO = 6, 3, 2, 2.0
# No half-arm longer than this share of the image's width (at least MAX_ARM px):
# two long lines crossing are tissue, not a mark.
MAX_ARM, MAX_ARM_SHARE = 16, 0.03
# Bright detail a scanner burns in (digits, dotted lines): this much above the
# local median and at least this bright.
OVERLAY_CONTRAST, OVERLAY_BRIGHT = 40, 140
DOTTED_MIN = 0.4  # share of a segment between marks with a dot within 1 px
# Burned-in text: a letter's strokes can pass for a mark ("T", "X", "H"); a
# word has bright detail on both sides of it (a mark, its digit on one side
# only), and neighbouring letters give "marks" side by side on one row.
TEXT_DENSITY = 0.2


@dataclass(frozen=True)
class CaliperMark:
    """One "+" mark: its centre (pixels) and half-arm lengths right, left,
    down, up (pixels)."""

    x: int
    y: int
    arms: tuple[int, int, int, int]

    @property
    def reach(self) -> int:
        return max(self.arms)


def _gray(image: np.ndarray) -> np.ndarray:
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError(f"expected an H x W (x C) uint8 image, got {image.dtype} {image.shape}")
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image


def _shifted(a: np.ndarray, dx: int, dy: int, fill: int) -> np.ndarray:
    """``out[y, x] = a[y + dy, x + dx]`` (``fill`` off the image)."""
    out = np.full_like(a, fill)
    h, w = a.shape
    out[max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx)] = a[
        max(0, dy) : h - max(0, -dy), max(0, dx) : w - max(0, -dx)
    ]
    return out


_DIRECTIONS = ((1, 0), (-1, 0), (0, 1), (0, -1))  # right, left, down, up


def _arm_length(g: np.ndarray, x: int, y: int, dx: int, dy: int, limit: int) -> int:
    """How far a thin bright line runs from (x, y) along (dx, dy), allowing one
    pixel's gap, and a wider one at the start (inside the crossing arm, which
    has no contrast along this one)."""
    h, w = g.shape
    length = 0
    for step in range(1, limit):
        xx, yy = x + dx * step, y + dy * step
        far = SIDES[-1]
        if not (far <= xx < w - far and far <= yy < h - far):
            break
        side = min(
            max(g[yy - d, xx], g[yy + d, xx]) if dy == 0 else max(g[yy, xx - d], g[yy, xx + d])
            for d in SIDES
        )
        if g[yy, xx] >= BRIGHT and g[yy, xx] - side >= LINE_CONTRAST // 2:
            length = step
        elif step > 3 and step - length > 1:
            break
    return length


def find_calipers(image: np.ndarray) -> list[CaliperMark]:
    """The "+" caliper marks burned into ``image`` (H x W or H x W x 3, uint8)."""
    g = _gray(image).astype(np.int16)
    across_h = np.max(
        [g - np.maximum(_shifted(g, 0, d, 255), _shifted(g, 0, -d, 255)) for d in SIDES], axis=0
    )
    across_v = np.max(
        [g - np.maximum(_shifted(g, d, 0, 255), _shifted(g, -d, 0, 255)) for d in SIDES], axis=0
    )
    contrast, brightness = [], []
    for dx, dy in _DIRECTIONS:
        line = across_h if dy == 0 else across_v
        steps = [(dx * s, dy * s) for s in ARM_PROBE]
        contrast.append(np.median([_shifted(line, sx, sy, -255) for sx, sy in steps], axis=0))
        brightness.append(np.median([_shifted(g, sx, sy, 0) for sx, sy in steps], axis=0))
    ranked = np.sort(np.stack(contrast), axis=0)
    candidate = (
        (ranked[1] >= LINE_CONTRAST)
        & (ranked[0] >= 5)
        & (np.min(np.stack(brightness), axis=0) >= BRIGHT)
        & (g >= BRIGHT)
    )
    n, _, _, centres = cv2.connectedComponentsWithStats(candidate.astype(np.uint8))
    longest = max(MAX_ARM, round(MAX_ARM_SHARE * g.shape[1]))
    marks: list[CaliperMark] = []
    for cx, cy in centres[1:]:
        # The blob's centroid may sit a pixel off the arms: take the best place near it.
        best: tuple[int, int, tuple[int, ...]] | None = None
        for ox, oy in itertools.product(range(-2, 3), repeat=2):
            x, y = round(cx) + ox, round(cy) + oy
            arms = tuple(_arm_length(g, x, y, dx, dy, longest + 2) for dx, dy in _DIRECTIONS)
            if best is None or (min(arms), sum(arms)) > (min(best[2]), sum(best[2])):
                best = (x, y, arms)
        assert best is not None
        x, y, arms = best
        right, left, down, up = arms
        upright = max(down, up)
        if (
            min(down, up) >= MIN_UPRIGHT
            and abs(down - up) <= ARM_SPREAD
            and min(right, left) >= MIN_ARM
            and max(right, left) <= ARM_RATIO * upright
            and max(arms) <= longest
            and not any(abs(m.x - x) <= 2 and abs(m.y - y) <= 2 for m in marks)
        ):
            marks.append(CaliperMark(x, y, (right, left, down, up)))
    return _without_text(marks, _overlay(g.astype(np.uint8)))


def _overlay(g: np.ndarray) -> np.ndarray:
    """Bright detail a scanner burns in: much brighter than its neighbourhood."""
    return (g >= OVERLAY_BRIGHT) & (g.astype(np.int16) - cv2.medianBlur(g, 9) >= OVERLAY_CONTRAST)


def _without_text(marks: list[CaliperMark], overlay: np.ndarray) -> list[CaliperMark]:
    kept = []
    for m in marks:
        r = m.reach
        rows = overlay[max(0, m.y - r) : m.y + r + 1]
        left = rows[:, max(0, m.x - 3 * r) : max(0, m.x - r - 1)]
        right = rows[:, m.x + r + 2 : m.x + 3 * r + 1]
        flanked = min(left.mean() if left.size else 0.0, right.mean() if right.size else 0.0)
        in_a_row = any(
            o is not m and abs(o.y - m.y) <= 2 and abs(o.x - m.x) <= 3 * r for o in marks
        )
        if flanked < TEXT_DENSITY and not in_a_row:
            kept.append(m)
    return kept


def caliper_mask(image: np.ndarray, marks: list[CaliperMark]) -> np.ndarray:
    """Where ``marks`` and what a scanner draws with them lie (bool H x W): each
    mark's arms, the bright detail beside it (its digit), and the dotted line
    to another mark when there is one."""
    g = _gray(image)
    h, w = g.shape
    mask = np.zeros((h, w), np.uint8)
    overlay = _overlay(g)
    for m in marks:
        right, left, down, up = m.arms
        mask[max(0, m.y - 2) : m.y + 3, max(0, m.x - left - 1) : m.x + right + 2] = 1
        mask[max(0, m.y - up - 1) : m.y + down + 2, max(0, m.x - 2) : m.x + 3] = 1
        r = 2 * m.reach
        near = np.zeros_like(mask)
        near[max(0, m.y - r) : m.y + r + 1, max(0, m.x - r) : m.x + r + 1] = 1
        mask |= near & overlay
    for a, b in itertools.combinations(marks, 2):
        length = float(np.hypot(b.x - a.x, b.y - a.y))
        skip = max(a.reach, b.reach) + 2
        if length <= 2 * skip:
            continue
        t = np.arange(skip, length - skip) / length
        xs = np.round(a.x + t * (b.x - a.x)).astype(int)
        ys = np.round(a.y + t * (b.y - a.y)).astype(int)
        near_dot = cv2.dilate(overlay.astype(np.uint8), np.ones((3, 3), np.uint8))
        if near_dot[ys, xs].mean() < DOTTED_MIN:
            continue
        tube = np.zeros_like(mask)
        cv2.line(tube, (a.x, a.y), (b.x, b.y), 1, thickness=5)
        mask |= tube & overlay
    return cv2.dilate(mask, np.ones((3, 3), np.uint8)).astype(bool)


def remove_calipers(image: np.ndarray) -> tuple[np.ndarray, list[CaliperMark], np.ndarray]:
    """``image`` (H x W, or H x W x 3 RGB) with its caliper marks, their digits
    and dotted lines inpainted from the tissue around them; the marks found and
    the mask filled. An image without calipers comes back unchanged (a copy)."""
    marks = find_calipers(image)
    if not marks:
        return image.copy(), marks, np.zeros(image.shape[:2], bool)
    mask = caliper_mask(image, marks)
    cleaned = cv2.inpaint(image, mask.astype(np.uint8), 3, cv2.INPAINT_TELEA)
    return cleaned, marks, mask


REPORT = "calipers.csv"


def uncaliper_still_folder(
    source: str | Path, out: str | Path, *, overwrite: bool = False, progress: bool = False
) -> pd.DataFrame:
    """Copy the BUSI-like still folder ``source`` into ``out`` with calipers
    removed from every still (``remove_calipers``); masks and the manifest are
    copied as they are (calipers are not part of a lesion). Writes and returns
    the report ``out/calipers.csv``: per still its id, label, the marks found
    (``x y`` each, ``;`` between) and how many pixels were filled."""
    from sonorisk.data.busi import MANIFEST, read_manifest

    source, out = Path(source), Path(out)
    if out.resolve() == source.resolve():
        raise InputError(out, "the output folder is the source folder; choose another")
    if (out / MANIFEST).exists() and not overwrite:
        raise InputError(out, "already holds a still folder (pass overwrite to replace it)")
    stills = read_manifest(source)
    bar = None
    if progress:
        from sonorisk.data.synth import _progress

        bar = _progress(len(stills), "uncaliper")
    rows = []
    for still in stills:
        folder = out / still.label
        folder.mkdir(parents=True, exist_ok=True)
        image = cv2.imread(str(still.image_path), cv2.IMREAD_UNCHANGED)
        if image is None or image.dtype != np.uint8:
            raise InputError(still.image_path, "not a readable 8-bit image")
        colour = image.ndim == 3
        gray = cv2.cvtColor(image[..., :3], cv2.COLOR_BGR2GRAY) if colour else image
        marks = find_calipers(gray)
        filled = 0
        if marks:
            mask = caliper_mask(gray, marks).astype(np.uint8)
            image = cv2.inpaint(image[..., :3] if colour else image, mask, 3, cv2.INPAINT_TELEA)
            filled = int(mask.sum())
        if not cv2.imwrite(str(folder / still.image_path.name), image):
            raise InputError(folder / still.image_path.name, "could not write the image")
        for mask_path in still.mask_paths:
            shutil.copyfile(mask_path, folder / mask_path.name)
        rows.append(
            {
                "id": still.still_id,
                "label": still.label,
                "marks": ";".join(f"{m.x} {m.y}" for m in marks),
                "n_marks": len(marks),
                "pixels_filled": filled,
            }
        )
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    shutil.copyfile(source / MANIFEST, out / MANIFEST)
    report = pd.DataFrame(rows)
    report.to_csv(out / REPORT, index=False)
    return report
