"""A compact still folder of detector training samples, for training elsewhere.

A lent GPU machine takes only what travels with the checkout (a size limit),
and nothing outside it can be reached. Detector training shrinks every image to
the short side it can use (``model.min_size`` times the largest scale
augmentation: 384 px for the release configs) before anything else, so images
stored at that size lose nothing the training would see. This writes:

* every still of each ``--stills`` folder (BUSI-style), and N frames drawn at
  random from each ``--sweeps`` dataset (a sonorisk video dataset: decoded
  sweep frames with their codec's artefacts, and lesion-free ones as hard
  negatives), shrunk to ``--short-side`` (never enlarged) as JPEG of
  ``--quality``;
* ``manifest.csv`` in the still-folder format (id, label, width, height,
  n_lesions, boxes, group, source), boxes scaled with the image, groups kept
  (the held-out groups stay the validation split).

    python scripts/pack_training_stills.py --stills ../shared/data/busi \\
        [--sweeps DATASET 150] [--short-side 384] [--quality 90] --out .dev/stills

Keep the output out of the repository (BUSI must not be copied into it).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import cv2
import numpy as np

from sonorisk.detector.samples import DetectionSample, load_samples
from sonorisk.detector.train import shrink_sample

COLUMNS = ("id", "label", "width", "height", "n_lesions", "boxes", "group", "source")


def chosen(folder: Path, frames: int | None, seed: int) -> list[DetectionSample]:
    """All samples of a still folder; ``frames`` of a video dataset, drawn at random
    (seeded) from all its frames, in dataset order."""
    samples = load_samples(folder)
    if frames is None or frames >= len(samples):
        return samples
    keep = np.random.default_rng(seed).choice(len(samples), size=frames, replace=False)
    return [samples[k] for k in sorted(keep)]


def pack(
    folders: list[tuple[Path, int | None]], out: Path, short_side: int, quality: int, seed: int = 0
) -> tuple[int, int]:
    """Writes the pack; returns (images, bytes)."""
    out.mkdir(parents=True, exist_ok=True)
    rows, total = [], 0
    for folder, frames in folders:
        for sample in chosen(folder, frames, seed):
            image, boxes = shrink_sample(sample, short_side)  # as training would
            key = sample.key.replace(":", "_f")
            label = sample.label or ("normal" if sample.lesion_free else "lesion")
            source = f"{label}/{key}.jpg"
            (out / label).mkdir(exist_ok=True)
            bgr = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
            ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
            if not ok:
                raise RuntimeError(f"could not encode {sample.key}")
            (out / source).write_bytes(data.tobytes())
            total += len(data)
            rows.append(
                {
                    "id": key,
                    "label": label,
                    "width": image.shape[1],
                    "height": image.shape[0],
                    "n_lesions": len(boxes),
                    "boxes": ";".join(" ".join(f"{v:.1f}" for v in b) for b in boxes),
                    "group": sample.group,
                    "source": source,
                }
            )
    with (out / "manifest.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return len(rows), total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stills", action="append", default=[], type=Path, metavar="DIR")
    parser.add_argument(
        "--sweeps",
        action="append",
        default=[],
        nargs=2,
        metavar=("DATASET", "FRAMES"),
        help="a sonorisk video dataset and how many of its frames to take (at random)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--short-side", type=int, default=384)
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    folders: list[tuple[Path, int | None]] = [(d, None) for d in args.stills]
    folders += [(Path(d), int(n)) for d, n in args.sweeps]
    if not folders:
        parser.error("give --stills and/or --sweeps")
    n, size = pack(folders, args.out, args.short_side, args.quality, args.seed)
    print(f"{n} images, {size / 1e6:.1f} MB, in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
