"""Synthesize freehand sweep videos into a dataset folder (``sonorisk synth``).

Two sources: real stills with lesion masks (BUSI-like folders; the video's
label is the still's label, normal stills give lesion-free sweeps) and the
procedural phantom. Both go through the same sweep renderer and writer:
AVI/MJPEG by default (as scanners export), COCO boxes from the warped lesion
masks, the per-video table with provenance (source still, generator, seed).
Optionally each frame is put into a 1920x1080 scanner-like screen capture.

Video ``i`` of a run depends only on (seed, i): its random stream is spawned
from ``SeedSequence(seed)``, so the same seed gives identical bytes and boxes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import cv2
import numpy as np

from sonorisk.data.busi import BUSI_SITE, BUSI_VENDOR, Still, read_manifest, sample_stratified
from sonorisk.data.contact_sheet import contact_sheet, every_kth, save_png
from sonorisk.data.format import DatasetWriter
from sonorisk.data.phantom import PhantomCase, make_phantom
from sonorisk.data.slab import Slab, mask_box, slab_from_still
from sonorisk.data.sweep import SweepFrame, SweepParams, SweepRenderer
from sonorisk.errors import ConfigError
from sonorisk.io.writer import CODECS, VideoWriter, qscale_problem, quantiser
from sonorisk.records import Box

log = logging.getLogger(__name__)

GENERATOR_VERSION = "1"
CODEC_SUFFIX = {"h264": ".mp4"}  # everything else goes in AVI, as scanners export


@dataclass(frozen=True)
class SynthConfig:
    """Options of a synthesis run (every ``sonorisk synth`` flag maps here)."""

    n: int = 20
    seed: int = 0
    fps: int = 30
    frames: int | None = None  # fixed length in frames
    seconds: float | None = None  # fixed length in seconds (if ``frames`` is unset)
    length_range_s: tuple[float, float] = (2.0, 5.0)  # random length otherwise
    size: tuple[int, int] = (480, 360)  # output (width, height) of the ultrasound image
    codec: str = "mjpeg"
    # The encoder's quantiser, 2 (best) to 31 (worst), MJPEG/MPEG-4/MPEG-2 only;
    # None: the writer's (MJPEG 3). Sweeps at several quantisers teach models
    # that compression is not a property of the tissue.
    qscale: int | None = None
    screen_capture: str | None = None  # None, "linear" or "convex"
    contact_sheet: bool = False
    save_masks: bool = False  # masks/<video_id>.npz (bit-packed, frames x lesions x H x W)
    table_format: str = "csv"
    sweep: SweepParams = field(default_factory=SweepParams)

    def validate(self) -> None:
        if self.n < 1:
            raise ConfigError("n", f"must be >= 1, got {self.n}")
        if self.fps not in (30, 50):
            raise ConfigError("fps", f"must be 30 or 50 (as the paper's scanners), got {self.fps}")
        if self.frames is not None and self.frames < 1:
            raise ConfigError("frames", f"must be >= 1, got {self.frames}")
        if self.seconds is not None and self.seconds <= 0:
            raise ConfigError("seconds", f"must be > 0, got {self.seconds}")
        width, height = self.size
        if width < 16 or height < 16 or width % 2 or height % 2:
            raise ConfigError("size", f"must be even and >= 16x16, got {width}x{height}")
        if self.codec not in CODECS:
            raise ConfigError(
                "codec", f"unknown codec {self.codec!r}; choose from {sorted(CODECS)}"
            )
        if self.qscale is not None and (problem := qscale_problem(self.codec, self.qscale)):
            raise ConfigError("qscale", problem)
        if self.screen_capture not in (None, "linear", "convex"):
            raise ConfigError(
                "screen_capture", f"must be linear or convex, got {self.screen_capture!r}"
            )
        if self.sweep.motion.passes < 1:
            raise ConfigError(
                "sweep.motion.passes", f"must be >= 1, got {self.sweep.motion.passes}"
            )
        if self.table_format not in ("csv", "parquet"):
            raise ConfigError("table_format", f"must be csv or parquet, got {self.table_format!r}")

    def n_frames(self, rng: np.random.Generator) -> int:
        if self.frames is not None:
            return self.frames
        if self.seconds is not None:
            return max(1, int(round(self.seconds * self.fps)))
        return max(1, int(round(rng.uniform(*self.length_range_s) * self.fps)))


@dataclass
class SynthItem:
    """What one synthesized video needs: its slab and its table row (less frames)."""

    slab: Slab
    row: dict[str, Any]


def _video_rngs(seed: int, n: int) -> list[np.random.Generator]:
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(n)]


def _progress(total: int, desc: str) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="video", disable=None)


class _ScreenCapture:
    """Puts frames into a scanner-like 1920x1080 screen and maps masks/boxes onto it."""

    def __init__(self, shape: str, image_shape: tuple[int, int], rng: np.random.Generator) -> None:
        from sonorisk.data import screen_capture

        self._module = screen_capture
        self.layout = screen_capture.make_layout(
            image_shape, rng, shape=cast("screen_capture.Shape", shape)
        )
        x1, y1, x2, y2 = self.layout.region
        self.region = (x1, y1, x2, y2)
        self.visible = self.layout.mask[y1:y2, x1:x2]
        self.size = self.layout.canvas_size

    def frame(self, image: np.ndarray) -> np.ndarray:
        return self._module.render(image, self.layout)

    def box(self, mask: np.ndarray) -> tuple[Box | None, int]:
        """The lesion's box on the canvas: from the mask as shown (fan-clipped), and its area."""
        x1, y1, x2, y2 = self.region
        shown = (
            cv2.resize(mask.astype(np.float32), (x2 - x1, y2 - y1), interpolation=cv2.INTER_LINEAR)
            > 0.5
        )
        shown &= self.visible
        box = mask_box(shown)
        if box is None:
            return None, 0
        return (box[0] + x1, box[1] + y1, box[2] + x1, box[3] + y1), int(shown.sum())


def _write_video(
    item: SynthItem,
    video_id: str,
    out: Path,
    config: SynthConfig,
    rng: np.random.Generator,
    writer: DatasetWriter,
    on_frame: Callable[[SweepFrame], None] | None = None,
) -> None:
    n_frames = config.n_frames(rng)
    renderer = SweepRenderer(item.slab, n_frames, config.size, rng, config.sweep)
    screen = (
        _ScreenCapture(config.screen_capture, (config.size[1], config.size[0]), rng)
        if config.screen_capture
        else None
    )
    width, height = screen.size if screen else config.size
    file = f"videos/{video_id}{CODEC_SUFFIX.get(config.codec, '.avi')}"
    lesion_ids = [writer.new_lesion_id() for _ in item.slab.lesions]
    frames: list[tuple[list[Box], list[int]]] = []
    areas: list[list[float]] = []
    sheet_at = set(every_kth(n_frames, 18)) if config.contact_sheet else set()
    sheet: list[tuple[np.ndarray, list[Box], list[int], int]] = []
    masks_out: list[np.ndarray] = []
    with VideoWriter(out / file, config.fps, width, height, config.codec, config.qscale) as video:
        for frame in renderer:
            if on_frame is not None:
                on_frame(frame)
            image = frame.image
            boxes: list[Box] = []
            ids: list[int] = []
            frame_areas: list[float] = []
            for mask, box, k in zip(frame.masks, frame.boxes, frame.lesions, strict=True):
                area = int(mask.sum())
                if screen is not None:
                    mapped, area = screen.box(mask)
                    if mapped is None:
                        continue
                    box = mapped
                boxes.append(box)
                ids.append(lesion_ids[k])
                frame_areas.append(float(area))
            if screen is not None:
                image = screen.frame(image)
            video.write(image)
            frames.append((boxes, ids))
            areas.append(frame_areas)
            if frame.index in sheet_at:
                sheet.append((image, boxes, ids, frame.index))
            if config.save_masks:
                stack = np.zeros((len(item.slab.lesions),) + frame.image.shape, bool)
                for mask, k in zip(frame.masks, frame.lesions, strict=True):
                    stack[k] = mask
                masks_out.append(np.packbits(stack, axis=-1))  # 8x smaller: minutes fit
    row = dict(item.row)
    row.update(
        video_id=video_id,
        file=file,
        fps=float(config.fps),
        n_frames=n_frames,
        width=width,
        height=height,
        n_lesions=len(lesion_ids),
        screen_capture=config.screen_capture or "none",
        codec=config.codec,
        # The constant quantiser of every frame (empty: a codec without one): the
        # models' figures move with encoding (docs/end-to-end.md).
        qscale=quantiser(config.codec, config.qscale),
    )
    writer.add_video(row, frames, width, height, areas)
    if sheet:
        labels = [f"#{i} {len(b)} box" for _, b, _, i in sheet]
        grid = contact_sheet(
            [s[0] for s in sheet],
            [s[1] for s in sheet],
            [s[2] for s in sheet],
            columns=6,
            labels=labels,
        )
        save_png(out / "contact_sheets" / f"{video_id}.png", grid)
    if config.save_masks:
        (out / "masks").mkdir(exist_ok=True)
        shape = (n_frames, len(item.slab.lesions), config.size[1], config.size[0])
        np.savez_compressed(
            out / "masks" / f"{video_id}.npz",
            masks=np.stack(masks_out),
            shape=np.array(shape),
            lesion_ids=np.array(lesion_ids),
        )


def load_masks(path: str | Path) -> np.ndarray:
    """Masks saved with ``save_masks``: bool array frames x lesions x H x W."""
    data = np.load(path)
    shape = tuple(int(v) for v in data["shape"])
    return np.unpackbits(data["masks"], axis=-1, count=shape[-1]).astype(bool).reshape(shape)


def _run(
    items: Iterator[tuple[str, SynthItem, np.random.Generator]],
    n: int,
    out: str | Path,
    config: SynthConfig,
    description: str,
    progress: bool,
    on_frame: Callable[[str, SweepFrame], None] | None = None,
) -> Path:
    out = Path(out)
    (out / "videos").mkdir(parents=True, exist_ok=True)
    writer = DatasetWriter(out, description=description)
    bar = _progress(n, "synth") if progress else None
    for video_id, item, rng in items:
        callback = (lambda frame, vid=video_id: on_frame(vid, frame)) if on_frame else None
        _write_video(item, video_id, out, config, rng, writer, callback)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return writer.write(config.table_format)


def _still_item(
    still: Still, config: SynthConfig, rng: np.random.Generator, item_index: int
) -> SynthItem:
    slab = slab_from_still(still.read_gray(), still.read_masks(), rng)
    row = {
        "pathology": still.label,
        "subtype": None,
        "birads": None,
        "age": None,
        "lesion_size_mm": None,  # BUSI gives no pixel spacing
        "site": BUSI_SITE,
        "vendor": BUSI_VENDOR,
        "patient_id": still.group,  # near-duplicate group: keeps copies on one split side
        "source_id": still.still_id,
        "synthetic": True,
        "generator": f"sonorisk.synth.stills/v{GENERATOR_VERSION}",
        "seed": config.seed,
        "item": item_index,
        "group": still.group,
    }
    return SynthItem(slab, row)


def synthesize_from_stills(
    source_dir: str | Path,
    n: int,
    out: str | Path,
    seed: int = 0,
    fps: int = 30,
    *,
    ids: Sequence[str] | None = None,
    groups: Sequence[str] | None = None,
    labels: Sequence[str] | None = None,
    balanced: bool = False,
    config: SynthConfig | None = None,
    progress: bool = False,
    on_frame: Callable[[str, SweepFrame], None] | None = None,
    **options: Any,
) -> Path:
    """Write ``n`` sweeps made from stills of a BUSI-like folder into dataset folder ``out``.

    Source stills are sampled stratified by label (``labels`` restricts them,
    ``balanced`` gives labels equal shares) from ``ids`` and/or near-duplicate
    ``groups`` when given (e.g. the train side of a split). ``options`` are
    SynthConfig fields (frames, seconds, size, codec, screen_capture,
    contact_sheet, save_masks, ...).
    ``on_frame(video_id, frame)`` sees every rendered frame with its masks.
    """
    config = config or SynthConfig(n=n, seed=seed, fps=fps, **options)
    config.validate()
    stills = read_manifest(source_dir)
    if ids is not None:
        wanted = set(ids)
        unknown = wanted - {s.still_id for s in stills}
        if unknown:
            raise ConfigError("ids", f"still id(s) not in {source_dir}: {sorted(unknown)[:5]}")
        stills = [s for s in stills if s.still_id in wanted]
    if groups is not None:
        wanted_groups = set(groups)
        stills = [s for s in stills if s.group in wanted_groups]
        if not stills:
            raise ConfigError("groups", f"no still of {source_dir} is in the given groups")
    chooser = np.random.default_rng(np.random.SeedSequence([config.seed, 1]))
    chosen = sample_stratified(stills, config.n, chooser, labels=labels, balanced=balanced)
    rngs = _video_rngs(config.seed, config.n)

    def items() -> Iterator[tuple[str, SynthItem, np.random.Generator]]:
        for i, (still, rng) in enumerate(zip(chosen, rngs, strict=True)):
            yield f"sweep_{i:05d}_{still.still_id}", _still_item(still, config, rng, i), rng

    return _run(
        items(), config.n, out, config, f"sweeps synthesized from {source_dir}", progress, on_frame
    )


def _phantom_item(
    case: PhantomCase,
    pathology: str,
    config: SynthConfig,
    rng: np.random.Generator,
    item_index: int,
) -> SynthItem:
    row: dict[str, Any] = {
        "pathology": pathology,
        "site": "phantom",
        "vendor": "sonorisk phantom",
        "patient_id": f"phantom_{config.seed}_{item_index:05d}",
        "source_id": None,
        "synthetic": True,
        "generator": f"sonorisk.synth.phantom/v{GENERATOR_VERSION}",
        "seed": config.seed,
        "item": item_index,
        # Invented for the simulation, so subgroup code has something to cut on.
        "age": int(rng.integers(30, 80) if pathology == "malignant" else rng.integers(20, 70)),
    }
    if case.lesions:
        spec = case.lesions[0].spec
        row.update(
            subtype=spec.subtype,
            birads=spec.birads,
            lesion_size_mm=round(spec.size_mm, 1),
            **spec.descriptors(),
        )
    else:
        row.update(subtype=None, birads="1", lesion_size_mm=None)
    return SynthItem(case.slab, row)


def synthesize_phantom(
    n: int,
    out: str | Path,
    seed: int = 0,
    fps: int = 30,
    *,
    proportions: dict[str, float] | None = None,
    config: SynthConfig | None = None,
    progress: bool = False,
    on_frame: Callable[[str, SweepFrame], None] | None = None,
    slab_size: tuple[int, int] | None = None,
    **options: Any,
) -> Path:
    """Write ``n`` phantom sweeps (benign/malignant/normal) into dataset folder ``out``.

    ``proportions`` (default benign 0.45, malignant 0.45, normal 0.10) set the
    label mix, allotted by largest remainder so small runs still get each.
    """
    config = config or SynthConfig(n=n, seed=seed, fps=fps, **options)
    config.validate()
    shares = proportions or {"benign": 0.45, "malignant": 0.45, "normal": 0.10}
    names = sorted(shares)
    weights = np.array([shares[k] for k in names], float)
    exact = config.n * weights / weights.sum()
    counts = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - counts), kind="stable")[: config.n - counts.sum()]:
        counts[i] += 1
    labels = [name for name, count in zip(names, counts, strict=True) for _ in range(count)]
    order = np.random.default_rng(np.random.SeedSequence([config.seed, 2])).permutation(len(labels))
    labels = [labels[i] for i in order]
    rngs = _video_rngs(config.seed, config.n)
    width, height = config.size
    # The slab is wider than the footprint so the probe can slide across it.
    size = slab_size or (int(width * 1.5) // 2 * 2, int(height * 1.1) // 2 * 2)

    def items() -> Iterator[tuple[str, SynthItem, np.random.Generator]]:
        for i, (label, rng) in enumerate(zip(labels, rngs, strict=True)):
            case = make_phantom(label, rng, size=size)
            yield f"phantom_{i:05d}_{label}", _phantom_item(case, label, config, rng, i), rng

    return _run(items(), config.n, out, config, "procedural phantom sweeps", progress, on_frame)
