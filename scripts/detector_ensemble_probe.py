"""Probe: do two detectors fused by weighted box fusion find more lesions than one?

Each checkpoint runs with no score threshold; their boxes of each frame are fused
(``sonorisk.detector.fusion.weighted_box_fusion``, the fusion flip TTA uses) and
the fused list is scored exactly as ``sonorisk eval detector`` scores one
detector (``evaluate_detector``, operating threshold 0.3). A probe for the
detector notes (docs/detector.md, "Session 16"), not a pipeline feature: the
pipeline runs one detector.

    python scripts/detector_ensemble_probe.py --checkpoint sonorisk-busi \\
        --checkpoint runs/lite2_detector/best.pt --data ../shared/data/busi \\
        --groups configs/release/heldout_groups.txt
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

import numpy as np

from sonorisk.data.splits import read_id_lines
from sonorisk.detector.evaluate import evaluate_detector
from sonorisk.detector.fusion import weighted_box_fusion
from sonorisk.detector.predictor import TorchvisionDetector
from sonorisk.detector.samples import load_samples
from sonorisk.models.resolve import resolve_model_file
from sonorisk.records import Detection, Frame
from sonorisk.threads import set_torch_threads

FIGURES = (
    "ap50",
    "ap",
    "still_detection_rate",
    "false_positives_per_image",
    "mean_video_detection_rate",
    "false_positives_per_minute",
)


class FusedDetectors:
    """Several detectors as one ``FrameDetector``: per frame, their boxes fused."""

    def __init__(self, members: Sequence[TorchvisionDetector], iou_thresh: float) -> None:
        self.members = list(members)
        self.iou_thresh = iou_thresh
        self.info = {"members": [m.info.get("checkpoint") for m in self.members]}

    def predict(self, frames: Sequence[Frame]) -> list[list[Detection]]:
        found = [member.predict(frames) for member in self.members]
        fused = []
        for k, frame in enumerate(frames):
            views = [
                (
                    np.asarray([d.box for d in dets[k]], np.float32).reshape(-1, 4),
                    np.asarray([d.score for d in dets[k]], np.float32),
                )
                for dets in found
            ]
            boxes, scores = weighted_box_fusion(views, self.iou_thresh)
            fused.append(
                [
                    Detection(frame.index, tuple(float(v) for v in box), float(score))
                    for box, score in zip(boxes, scores, strict=True)
                ]
            )
        return fused


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", action="append", required=True, help="repeat: each member")
    p.add_argument("--data", action="append", required=True, help="still or sweep folder")
    p.add_argument("--groups", help="only these groups (a text file of ids)")
    p.add_argument("--stride", type=int, default=1, help="every Nth frame of videos")
    p.add_argument("--iou", type=float, default=0.55, help="fusion IoU threshold")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", help="write the whole evaluation here")
    args = p.parse_args(argv)
    set_torch_threads(args.threads)
    members = []
    for spec in args.checkpoint:
        member = TorchvisionDetector.from_checkpoint(resolve_model_file(spec, "detector"))
        member.config.inference.score_thresh = 0.0  # fusion sees every box
        members.append(member)
    samples = [s for folder in args.data for s in load_samples(folder, args.stride)]
    if args.groups:
        wanted = set(read_id_lines(args.groups))
        samples = [s for s in samples if s.group in wanted]
    detector = members[0] if len(members) == 1 else FusedDetectors(members, args.iou)
    result = evaluate_detector(detector, samples, 0.3, batch_size=4).to_dict()
    print(json.dumps({"checkpoints": args.checkpoint, **{k: result.get(k) for k in FIGURES}}))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
