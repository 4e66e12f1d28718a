"""Optical flow between detector frames: features over the whole frame against
features around the boxes only, side by side in one run.

Sweeps are made from held-out BUSI stills (configs/release/heldout_groups.txt,
480x360, 48 frames). From every 6th annotated frame the ground-truth box is
carried frame by frame with each method; the mean IoU with the ground truth
after 3, 6 and 10 frames and the milliseconds per frame are printed (one
OpenCV thread). ``sonorisk.tracking.propagate.propagate_boxes`` uses the
boxes-only method.

    python benchmarks/flow.py [--sweeps 40]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

from sonorisk.io import open_video
from sonorisk.tracking.postprocess import box_iou
from sonorisk.tracking.propagate import move_boxes, propagate_boxes, to_gray_small, track_points

REPO = Path(__file__).resolve().parents[1]
AFTER = (3, 6, 10)


def methods(max_side: int = 320) -> dict:
    return {
        "whole frame, 400 features": lambda prev, nxt, boxes, scale: move_boxes(
            boxes, track_points(prev, nxt, 400), scale
        ),
        "around the boxes, 150 features": lambda prev, nxt, boxes, scale: propagate_boxes(
            prev, nxt, boxes, scale, max_corners=150
        ),
        "around the boxes, 80 features": lambda prev, nxt, boxes, scale: propagate_boxes(
            prev, nxt, boxes, scale, max_corners=80
        ),
    }


def ground_truth(data: Path) -> dict[str, dict[int, tuple[float, float, float, float]]]:
    coco = json.loads((data / "annotations.json").read_text())
    images = {i["id"]: i for i in coco["images"]}
    truth: dict[str, dict[int, tuple[float, float, float, float]]] = defaultdict(dict)
    for ann in coco["annotations"]:
        image = images[ann["image_id"]]
        x, y, w, h = ann["bbox"]
        truth[image["video_id"]][image["frame_index"]] = (x, y, x + w, y + h)
    return truth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweeps", type=int, default=40)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    from sonorisk.data.synth import synthesize_from_stills

    held = (REPO / "configs" / "release" / "heldout_groups.txt").read_text().split()
    with tempfile.TemporaryDirectory() as tmp:
        data = synthesize_from_stills(
            REPO.parent / "shared" / "data" / "busi",
            args.sweeps,
            Path(tmp) / "sweeps",
            seed=21,
            groups=held,
            labels=["benign", "malignant"],
        )
        truth = ground_truth(data)
        ious: dict[tuple[str, int], list[float]] = defaultdict(list)
        seconds: dict[str, float] = defaultdict(float)
        steps: dict[str, int] = defaultdict(int)
        for video_id, boxes in sorted(truth.items()):
            with open_video(data / "videos" / f"{video_id}.avi") as source:
                grays = [to_gray_small(f.image, 320) for f in source]
            for start in sorted(boxes)[::6]:
                for name, move in methods().items():
                    carried = [boxes[start]]
                    for k in range(1, max(AFTER) + 1):
                        j = start + k
                        if j >= len(grays):
                            break
                        t0 = time.perf_counter()
                        carried = move(grays[j - 1][0], grays[j][0], carried, grays[0][1])
                        seconds[name] += time.perf_counter() - t0
                        steps[name] += 1
                        if k in AFTER and j in boxes:
                            ious[(name, k)].append(box_iou(carried[0], boxes[j]))
    print(f"{len(truth)} held-out sweeps; mean IoU with the ground truth after carrying")
    for name in methods():
        figures = "  ".join(
            f"{k} frames {np.mean(ious[(name, k)]):.3f} (n={len(ious[(name, k)])})" for k in AFTER
        )
        print(f"  {name:32s} {1000 * seconds[name] / steps[name]:5.2f} ms/frame  {figures}")


if __name__ == "__main__":
    main()
