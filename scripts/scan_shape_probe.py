"""Could the scan region's shape tell breast ultrasound from other input? (issue 14)

Breast ultrasound is filmed with linear probes (the WAUVE paper: "high-frequency
linear transducers"; BUSI: GE LOGIQ E9), so a fan from a curved-array probe is
input unlike the training data. This probe measures, with the pipeline's own
scan-region finder (``sonorisk.io.scan_region``, the first 16 frames of a
video, the one image of a still), the region's kind and, for regions that are
not rectangles, the width of their top (3% down the region) as a share of the
region's width: a linear image's top is its full width, a fan's is narrower.

    python scripts/scan_shape_probe.py --stills ../shared/data/busi \\
        --videos runs/e2e/dev_sweeps/videos ../shared/data/real_ultrasound_video

It only measures; nothing in the pipeline uses the shape to refuse input
(docs/end-to-end.md, "No input check", says why).
"""

from __future__ import annotations

import argparse
import collections
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from sonorisk.io import open_video
from sonorisk.io.scan_region import RegionSampler, ScanRegion, estimate_scan_region

VIDEO_SUFFIXES = {".avi", ".mp4", ".mov", ".mpeg", ".mpg", ".mkv"}


def top_width(region: ScanRegion, depth: float = 0.03) -> float:
    """Width of the region's mask ``depth`` of the way down, over the box width."""
    x1, y1, x2, y2 = region.box
    mask = region.mask[y1:y2, x1:x2]
    row = np.nonzero(mask[min(mask.shape[0] - 1, int(depth * mask.shape[0]))])[0]
    return float(row.max() - row.min() + 1) / mask.shape[1] if len(row) else 0.0


def video_region(path: Path) -> ScanRegion:
    sampler = RegionSampler()
    source = open_video(path)
    try:
        for frame in source:
            if sampler.add(frame.image):
                break
    finally:
        source.close()
    return sampler.estimate()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stills", type=Path, nargs="*", default=[], help="BUSI-like folders")
    parser.add_argument("--videos", type=Path, nargs="*", default=[], help="folders of videos")
    args = parser.parse_args(argv)
    items: list[tuple[str, Path]] = []
    for folder in args.stills:
        items += [
            (f"stills {folder}", p) for p in sorted(folder.glob("*/*.png")) if "_mask" not in p.name
        ]
    for folder in args.videos:
        items += [
            (f"videos {folder}", p)
            for p in sorted(folder.iterdir())
            if p.suffix.lower() in VIDEO_SUFFIXES
        ]
    kinds: collections.Counter[tuple[str, str]] = collections.Counter()
    fans: dict[str, list[tuple[float, str]]] = collections.defaultdict(list)
    for source, path in items:
        if path.suffix == ".png":
            region = estimate_scan_region([np.asarray(Image.open(path).convert("RGB"))])
        else:
            region = video_region(path)
        kinds[source, region.kind] += 1
        if region.kind != "linear":
            fans[source].append((top_width(region), path.name))
    for source in dict.fromkeys(s for s, _ in items):
        line = ", ".join(f"{kinds[source, k]} {k}" for k in ("linear", "convex"))
        widths = sorted(fans.get(source, []))
        print(f"{source}: {line}")
        if widths:
            narrow = ", ".join(f"{w:.2f} ({name})" for w, name in widths if w < 0.95)
            full = sum(w >= 0.95 for w, _ in widths)
            print(f"  non-rectangular: {full} with a full-width top; narrower: {narrow or 'none'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
