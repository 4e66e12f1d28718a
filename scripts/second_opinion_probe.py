"""Probe: a second detector's opinion of the tracks the first one made.

For every lesion in ``sonorisk batch`` JSON outputs, the second detector's
box classifier scores the lesion's own boxes (its region-of-interest head on
the given boxes, no proposals of its own) on every ``--step``-th frame the
first detector found it on. The mean is written per lesion, for an offline
look at whether agreement of two detectors separates lesions from things
that are not (issue #14: the Lite2 detector gives lung clips a risk that the
Lite0 one does not).

    python scripts/second_opinion_probe.py --detector DETECTOR --out OUT.json \\
        BATCH_JSON_DIR [BATCH_JSON_DIR ...]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from sonorisk.detector.predictor import TorchvisionDetector
from sonorisk.io import open_video


@torch.inference_mode()
def box_scores(detector: TorchvisionDetector, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """P(lesion) of the second detector's box head for each given box (image pixels)."""
    model = detector.model
    shrunk = detector._shrink(image)
    tensor = torch.from_numpy(np.ascontiguousarray(shrunk)).permute(2, 0, 1).float().div_(255.0)
    images, _ = model.transform([tensor])
    features = model.backbone(images.tensors)
    (height, width) = images.image_sizes[0]
    scale = np.array(
        [width / image.shape[1], height / image.shape[0]] * 2,
        dtype=np.float32,
    )
    proposals = [torch.from_numpy(boxes.astype(np.float32) * scale)]
    heads = model.roi_heads
    pooled = heads.box_roi_pool(features, proposals, images.image_sizes)
    logits, _ = heads.box_predictor(heads.box_head(pooled))
    return torch.softmax(logits, -1)[:, 1:].sum(-1).numpy()


def video_frames(path: str, wanted: set[int]) -> Iterator[tuple[int, np.ndarray]]:
    """The wanted frames, decoded by sonorisk's own reader (as the pipeline saw them)."""
    last = max(wanted)
    with open_video(path) as source:
        for frame in source:
            if frame.index > last:
                return
            if frame.index in wanted:
                yield frame.index, frame.image


def probe(detector: TorchvisionDetector, document: dict, step: int) -> dict[str, float | None]:
    region = (document["video"].get("scan_region") or {}).get("box")
    per_frame: dict[int, list[tuple[int, list[float]]]] = {}
    for lesion in document["lesions"]:
        found = [b for b in lesion["boxes"] if b["source"] == "detector"][::step]
        for b in found:
            per_frame.setdefault(int(b["frame"]), []).append((lesion["lesion_id"], b["box"]))
    scores: dict[int, list[float]] = {}
    if per_frame:
        for index, image in video_frames(document["video"]["source"], set(per_frame)):
            x0, y0 = 0, 0
            if region is not None:
                x0, y0, x1, y1 = (int(v) for v in region)
                image = image[y0:y1, x0:x1]
            ids = [i for i, _ in per_frame[index]]
            boxes = np.array([b for _, b in per_frame[index]], dtype=np.float32)
            boxes -= np.array([x0, y0, x0, y0], dtype=np.float32)
            for lesion_id, p in zip(ids, box_scores(detector, image, boxes), strict=True):
                scores.setdefault(lesion_id, []).append(float(p))
    return {
        str(le["lesion_id"]): (
            float(np.mean(scores[le["lesion_id"]])) if le["lesion_id"] in scores else None
        )
        for le in document["lesions"]
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--detector", required=True)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--step", type=int, default=3)
    p.add_argument("runs", nargs="+", type=Path)
    args = p.parse_args()
    torch.set_num_threads(1)
    detector = TorchvisionDetector.from_checkpoint(args.detector)
    out = json.loads(args.out.read_text()) if args.out.exists() else {}
    for run in args.runs:
        for path in sorted(run.glob("*.json")):
            key = f"{run}/{path.stem}"
            if key in out:
                continue
            out[key] = probe(detector, json.loads(path.read_text()), args.step)
            args.out.write_text(json.dumps(out))
        print(run, "done", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
