"""Find the ultrasound image inside a scanner screen capture, once per video.

Screen captures (the WAUVE videos are 1920x1080) show the image amid the
scanner's interface: text, a depth ruler, focus marks, grey/colour bars. The
interface is static and sparse; the image is a large, textured region whose
speckle changes as the probe moves. So, from a sample of frames:

1. per pixel, the temporal standard deviation (motion) and the mean intensity
   relative to the background (the darkest common level) mark "content";
2. a morphological opening a little wider than interface strokes (text, ruler
   ticks, thin bars) removes the interface; the largest remaining component,
   preferring moving ones, is the image;
3. its convex hull decides the shape: a hull that fills its bounding box
   with both top corners full is a linear (rectangular) image, else a
   convex/sector fan, whose mask is the hull;
4. for a linear image each edge of the box is refined at full resolution.

The region is estimated once from a sample and then kept for the whole video
(the scanner's layout does not move), so crops are stable frame to frame.

Limits: image areas that are black in every sampled frame and touch the image
border (deep shadowing, an empty top) are indistinguishable from background
and are cut off; a static video (no probe motion) falls back on intensity
alone, which may merge bright interface panels that touch the image.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import cv2
import numpy as np

from sonorisk.errors import InputError
from sonorisk.records import Frame

RegionKind = Literal["linear", "convex"]

WORK_SIDE = 480  # long side of the working resolution
MOTION_STD = 2.0  # temporal std (grey levels) above which a pixel surely "moves"
MIN_MOTION_STD = 0.25  # ... and the lowest threshold used when the backdrop is still
CONTENT_LEVEL = 10.0  # mean level above the background that counts as content
OFF_LEVEL = 1.5  # smaller steady offsets from the backdrop, kept only over broad areas
LINEAR_FILL = 0.88  # hull area / box area above which the region is a rectangle


@dataclass(frozen=True)
class ScanRegion:
    """The image region of a video: box (x2, y2 exclusive), kind and mask."""

    box: tuple[int, int, int, int]  # x1, y1, x2, y2 in frame pixels
    kind: RegionKind
    frame_size: tuple[int, int]  # (width, height) of the frames it was found in
    mask: np.ndarray = field(repr=False)  # frame-sized HxW bool: image pixels
    moving_fraction: float = 0.0  # share of the region that moved in the sample
    frames_used: int = 0

    @property
    def width(self) -> int:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> int:
        return self.box[3] - self.box[1]

    def crop(self, image: np.ndarray, *, blank_outside: bool = False) -> np.ndarray:
        """The image cropped to the box; ``blank_outside`` zeroes pixels off the fan."""
        if (image.shape[1], image.shape[0]) != self.frame_size:
            raise ValueError(
                f"frame is {image.shape[1]}x{image.shape[0]}, region was found in "
                f"{self.frame_size[0]}x{self.frame_size[1]} frames"
            )
        x1, y1, x2, y2 = self.box
        out = image[y1:y2, x1:x2]
        if blank_outside and self.kind != "linear":
            out = out.copy()
            out[~self.mask[y1:y2, x1:x2]] = 0
        return out

    def crop_frame(self, frame: Frame, *, blank_outside: bool = False) -> Frame:
        return Frame(
            index=frame.index,
            timestamp_s=frame.timestamp_s,
            image=self.crop(frame.image, blank_outside=blank_outside),
        )

    def to_frame_coords(
        self, box: tuple[float, float, float, float]
    ) -> tuple[float, float, float, float]:
        """Map a box in cropped-image pixels back to full-frame pixels."""
        x1, y1 = self.box[:2]
        return (box[0] + x1, box[1] + y1, box[2] + x1, box[3] + y1)

    def as_dict(self) -> dict[str, Any]:
        return {
            "box": list(self.box),
            "kind": self.kind,
            "frame_size": list(self.frame_size),
            "mask_fraction_of_box": round(
                float(self.mask[self.box[1] : self.box[3], self.box[0] : self.box[2]].mean()), 4
            ),
            "moving_fraction": round(self.moving_fraction, 4),
            "frames_used": self.frames_used,
        }


def full_frame_region(width: int, height: int) -> ScanRegion:
    """The trivial region (no crop), for frames already cropped."""
    return ScanRegion(
        (0, 0, width, height), "linear", (width, height), np.ones((height, width), bool)
    )


def _gray(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return image
    return cv2.cvtColor(np.ascontiguousarray(image[:, :, :3]), cv2.COLOR_RGB2GRAY)


def estimate_scan_region(frames: Sequence[np.ndarray]) -> ScanRegion:
    """Find the image region from a sample of frames (gray or RGB uint8)."""
    if len(frames) == 0:
        raise ValueError("need at least one frame to find the scan region")
    h, w = frames[0].shape[:2]
    for f in frames:
        if f.shape[:2] != (h, w):
            raise ValueError("all sampled frames must have the same size")
    grays = [_gray(f) for f in frames]
    # Full-resolution mean and std by running sums: cheap and needed for refinement.
    acc = np.zeros((h, w), np.float32)
    acc2 = np.zeros((h, w), np.float32)
    for g in grays:
        gf = g.astype(np.float32)
        acc += gf
        acc2 += gf * gf  # float32 is exact enough: 8-bit values, <= a few hundred frames
    n = len(grays)
    mean_full = acc / n
    std_full = np.sqrt(np.maximum(acc2 / n - mean_full * mean_full, 0))

    scale = min(1.0, WORK_SIDE / max(h, w))
    ws, hs = max(8, round(w * scale)), max(8, round(h * scale))
    mean_s = cv2.resize(mean_full, (ws, hs), interpolation=cv2.INTER_AREA)
    std_s = cv2.resize(std_full, (ws, hs), interpolation=cv2.INTER_AREA)

    # The background is the commonest level (the interface's backdrop); an
    # image can be darker than it (black depths), so no percentile rule.
    hist = np.bincount(np.clip(np.rint(mean_s), 0, 255).astype(np.int64).ravel(), minlength=256)
    background = float(np.argmax(hist))
    near_bg = np.abs(mean_s - background) < 2
    # Motion threshold from the backdrop's own flicker (codec noise), bounded.
    noise = float(np.percentile(std_s[near_bg], 90)) if near_bg.any() else MOTION_STD
    motion_thr = float(np.clip(3 * noise, MIN_MOTION_STD, MOTION_STD))
    moving = std_s > motion_thr
    bright = np.abs(mean_s - background) > CONTENT_LEVEL
    # Broad areas a little off the backdrop level (an image's black depths on
    # a grey backdrop): the opening below keeps only the broad ones.
    off_level = np.abs(mean_s - background) > OFF_LEVEL
    content = (moving | bright | off_level).astype(np.uint8)
    # Open a little wider than interface strokes: ~1.5% of the long side.
    k = max(3, int(round(0.015 * max(ws, hs))) | 1)
    opened = cv2.morphologyEx(
        content, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    )
    n_labels, labels, stats, _ = cv2.connectedComponentsWithStats(opened, connectivity=8)
    if n_labels <= 1:
        # Nothing stands out: take the whole frame rather than guess.
        region = full_frame_region(w, h)
        return ScanRegion(region.box, "linear", (w, h), region.mask, 0.0, n)
    areas = stats[1:, cv2.CC_STAT_AREA].astype(np.float64)
    moving_counts = np.bincount(labels.ravel(), weights=moving.ravel(), minlength=n_labels)[1:]
    # Prefer what moves; among static candidates, the largest.
    score = moving_counts + 0.05 * areas
    best = int(np.argmax(score)) + 1
    component = (labels == best).astype(np.uint8)

    contours, _ = cv2.findContours(component, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    points = np.vstack([c.reshape(-1, 2) for c in contours])
    hull = cv2.convexHull(points)
    bx, by, bw, bh = cv2.boundingRect(hull)
    hull_area = cv2.contourArea(hull)
    fill = hull_area / max(bw * bh, 1)
    # A fan also shows in its empty top corners, even when cropped so tightly
    # that it nearly fills its box (as in many exported clips).
    hull_mask = np.zeros((hs, ws), np.uint8)
    cv2.fillPoly(hull_mask, [hull.reshape(-1, 2)], 1)
    cw_, ch_ = max(2, round(0.08 * bw)), max(2, round(0.08 * bh))
    top_left = hull_mask[by : by + ch_, bx : bx + cw_].mean()
    top_right = hull_mask[by : by + ch_, bx + bw - cw_ : bx + bw].mean()
    empty_corners = top_left < 0.5 and top_right < 0.5
    kind: RegionKind = "linear" if fill >= LINEAR_FILL and not empty_corners else "convex"

    inv = 1.0 / scale
    if kind == "linear":
        box = (
            int(np.floor(bx * inv)),
            int(np.floor(by * inv)),
            int(np.ceil((bx + bw) * inv)),
            int(np.ceil((by + bh) * inv)),
        )
        box = _refine_box(box, mean_full, std_full, background, motion_thr, inv, (w, h))
        mask = np.zeros((h, w), bool)
        mask[box[1] : box[3], box[0] : box[2]] = True
    else:
        # Hull vertices are pixel centres at the working scale; map to full res.
        poly = (hull.reshape(-1, 2).astype(np.float64) + 0.5) * inv - 0.5
        poly_i = np.round(poly).astype(np.int32)
        mask_u8 = np.zeros((h, w), np.uint8)
        cv2.fillPoly(mask_u8, [poly_i], 1)
        mask = mask_u8.astype(bool)
        ys, xs = np.nonzero(mask)
        box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    box = (max(0, box[0]), max(0, box[1]), min(w, box[2]), min(h, box[3]))
    in_box = moving[by : by + bh, bx : bx + bw]
    moving_fraction = float(in_box.mean()) if in_box.size else 0.0
    return ScanRegion(box, kind, (w, h), mask, moving_fraction, n)


def _refine_box(
    box: tuple[int, int, int, int],
    mean_full: np.ndarray,
    std_full: np.ndarray,
    background: float,
    motion_thr: float,
    inv: float,
    size: tuple[int, int],
) -> tuple[int, int, int, int]:
    """Move each edge of a coarse box to where full-resolution content starts."""
    w, h = size
    content = (std_full > motion_thr) | (np.abs(mean_full - background) > CONTENT_LEVEL)
    x1, y1, x2, y2 = box
    r = int(np.ceil(2 * inv)) + 2  # two working pixels: the coarse box's uncertainty
    # Profiles over the box's inner part, away from corners (fan corners,
    # interface lines that run past the image).
    inner_y = slice(max(0, y1 + 3 * r), max(y1 + 3 * r + 1, y2 - 3 * r))
    inner_x = slice(max(0, x1 + 3 * r), max(x1 + 3 * r + 1, x2 - 3 * r))
    cols = content[inner_y].mean(axis=0)  # share of content per column
    rows = content[:, inner_x].mean(axis=1)

    def find_edge(profile: np.ndarray, coarse: int, step: int) -> int | None:
        """The edge near ``coarse`` (``step`` points outwards) at full resolution.

        Walk outwards from well inside the box while lines stay mostly content:
        the walk stops at the gap between the image and an interface line that
        the coarse box may have swallowed. If that starting line is not content
        (a dark image border), start just inside the coarse edge instead.
        """
        n = len(profile)
        for depth in (3 * r, r):
            pos = int(np.clip(coarse - step * depth, 0, n - 1))
            if profile[pos] > 0.5:
                break
        else:
            return None  # nothing convincing nearby: keep the coarse edge
        steps = 0
        while 0 <= pos + step < n and steps < 5 * r and profile[pos + step] > 0.5:
            pos += step
            steps += 1
        return pos

    nx1 = find_edge(cols, x1, -1)
    nx2 = find_edge(cols, x2 - 1, +1)
    ny1 = find_edge(rows, y1, -1)
    ny2 = find_edge(rows, y2 - 1, +1)
    out = (
        x1 if nx1 is None else nx1,
        y1 if ny1 is None else ny1,
        x2 if nx2 is None else min(w, nx2 + 1),
        y2 if ny2 is None else min(h, ny2 + 1),
    )
    if out[2] - out[0] < (x2 - x1) / 2 or out[3] - out[1] < (y2 - y1) / 2:
        return box  # refinement collapsed the box: distrust it
    return out


REGION_SAMPLE = 16  # frames the region is found from (pipeline ``crop_sample``)
WHOLE_FRAME = 0.98  # a region covering this share of the frame is no crop at all


def crop_region(region: ScanRegion) -> ScanRegion | None:
    """The region to crop to, or None where it is (nearly) the whole frame."""
    width, height = region.frame_size
    return region if region.width * region.height < WHOLE_FRAME * width * height else None


class RegionSampler:
    """Which frames find a video's scan region: the first ``size`` it shows.

    The one sampling rule for every reader of a region (the scorer, ``sonorisk
    info --crop``, :class:`RegionCropper`), so ``info`` reports the region
    ``score`` crops to. The first frames, not a sample spread over the video:
    a live stream has no end to spread over, and the region must be known
    before the frames it crops can move on.
    """

    def __init__(self, size: int = REGION_SAMPLE) -> None:
        if size < 1:
            raise ValueError(f"a region sample needs >= 1 frame, got {size}")
        self.size = size
        self._images: list[np.ndarray] = []

    @property
    def frames(self) -> int:
        return len(self._images)

    @property
    def full(self) -> bool:
        return len(self._images) >= self.size

    def add(self, image: np.ndarray) -> bool:
        """Keep ``image`` while the sample is not full; True once it is."""
        if not self.full:
            self._images.append(image)
        return self.full

    def estimate(self) -> ScanRegion:
        """The region of the frames gathered (fewer than ``size`` in a short video)."""
        images, self._images = self._images, []
        if len({im.shape[:2] for im in images}) > 1:
            raise InputError(
                f"the first {len(images)} frames", "frame size changes within the video"
            )
        return estimate_scan_region(images)


class RegionCropper:
    """Crop a frame stream: estimate the region from its first frames, then keep it.

    Works on files and live streams alike (it only buffers the sample):
    ``cropper = RegionCropper(source); for frame in cropper: ...`` yields
    cropped frames, with ``cropper.region`` set once the sample is in. As the
    scorer does, a region that is (nearly) the whole frame leaves frames as
    they are (``cropper.crop`` is then None).
    """

    def __init__(
        self, frames: Iterable[Frame], sample: int = REGION_SAMPLE, blank_outside: bool = False
    ) -> None:
        self._frames = iter(frames)
        self._sampler = RegionSampler(sample)
        self._blank = blank_outside
        self.region: ScanRegion | None = None
        self.crop: ScanRegion | None = None

    def __iter__(self) -> Iterator[Frame]:
        buffered: list[Frame] = []
        for frame in self._frames:
            buffered.append(frame)
            if self._sampler.add(frame.image):
                break
        if not buffered:
            return
        self.region = self._sampler.estimate()
        self.crop = crop_region(self.region)
        for frame in itertools.chain(buffered, self._frames):
            yield (
                frame
                if self.crop is None
                else self.crop.crop_frame(frame, blank_outside=self._blank)
            )
