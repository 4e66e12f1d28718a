"""torch against ONNX Runtime (``--runtime onnx``) for the detector and the clip classifier.

One run, side by side, the same inputs for both runtimes, rounds alternating
(torch, onnx, torch, onnx, ...) so that load from other work on the machine
falls on both alike:

- detector: the scan-region crops of a 1920x1080 screen-capture sweep made
  from a held-out BUSI example still, one at a time and in batches of
  ``--detector-batch`` (the detector shrinks each crop to its own input size,
  320x480 for sonorisk-busi); then the model call alone on the same shrunk
  frames: torch, the backbone in ONNX (runtime onnx) and the whole Faster
  R-CNN exported as one graph (the design not chosen);
- classifier: batches of ``--clip-batch`` clips cut from those frames around
  the detected lesion, without and with heatmaps;
- the detector again with ``--runtime onnx-int8`` (its graph in 8-bit
  integers; the classifier stays in float there), with its agreement with torch.

Prints seconds per frame / per clip, the torch/onnx ratio (above 1: onnx is
faster), and the agreement (box IoU and score, probabilities), then the
process's peak memory.

    python benchmarks/runtime.py [--models NAME|DIR] [--frames 24] [--threads 1]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

# isort: off
import sonorisk  # noqa: F401  (first: sets OMP_WAIT_POLICY before torch loads OpenMP)

# isort: on
import cv2
import numpy as np
import torch

from sonorisk.data.synth import synthesize_from_stills
from sonorisk.io import open_video
from sonorisk.io.scan_region import estimate_scan_region
from sonorisk.models import load_models, resolve_models
from sonorisk.runtime.sessions import OrtOptions, make_session
from sonorisk.tracking.postprocess import box_iou

REPO = Path(__file__).resolve().parents[1]


def timed_rounds(work: dict[str, Callable[[], Any]], rounds: int) -> dict[str, float]:
    """Median seconds of each callable over ``rounds``, run alternately after one warm-up."""
    for fn in work.values():
        fn()
    seconds: dict[str, list[float]] = {name: [] for name in work}
    for _ in range(rounds):
        for name, fn in work.items():
            started = time.perf_counter()
            fn()
            seconds[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in seconds.items()}


def sweep_crops(frames: int, tmp: Path) -> list[np.ndarray]:
    """Scan-region crops of a 1920x1080 screen-capture sweep of a benign example still."""
    synthesize_from_stills(
        REPO / "examples" / "busi",
        1,
        tmp,
        seed=0,
        frames=frames,
        ids=["benign_082"],
        size=(960, 720),
        screen_capture="linear",
    )
    (video,) = sorted((tmp / "videos").iterdir())
    with open_video(video, color="rgb") as source:
        images = [f.image for f in source]
    print(f"input: {len(images)} frames of {images[0].shape[1]}x{images[0].shape[0]}")
    region = estimate_scan_region(images[:16])
    crops = [region.crop(im) for im in images]
    print(f"scan-region crops: {crops[0].shape[1]}x{crops[0].shape[0]}")
    return crops


def detect_all(detector: Any, crops: list[np.ndarray], batch: int) -> list[list[Any]]:
    found: list[list[Any]] = []
    for i in range(0, len(crops), batch):
        chunk = crops[i : i + batch]
        found += detector.predict(chunk, list(range(i, i + len(chunk))))
    return found


def box_agreement(got: list[list[Any]], want: list[list[Any]]) -> str:
    same_count = sum(len(g) == len(w) for g, w in zip(got, want, strict=True))
    ious = [
        box_iou(a.box, b.box)
        for g, w in zip(got, want, strict=True)
        if len(g) == len(w)
        for a, b in zip(g, w, strict=True)
    ]
    scores = [
        abs(a.score - b.score)
        for g, w in zip(got, want, strict=True)
        if len(g) == len(w)
        for a, b in zip(g, w, strict=True)
    ]
    return (
        f"same box count on {same_count}/{len(want)} frames, {len(ious)} boxes, "
        f"min IoU {min(ious, default=float('nan')):.5f}, "
        f"median IoU {statistics.median(ious) if ious else float('nan'):.5f}, "
        f"max score diff {max(scores, default=float('nan')):.2e}"
    )


def clips_around_boxes(
    crops: list[np.ndarray], found: list[list[Any]], n: int, size: int, length: int
) -> np.ndarray:
    """``n`` clips of ``length`` frames: the top box of each frame (or the centre), resized."""
    out = []
    for k in range(n):
        start = (k * length // 2) % max(1, len(crops) - length)
        frames = []
        for i in range(start, start + length):
            image, dets = crops[i], found[i]
            h, w = image.shape[:2]
            x1, y1, x2, y2 = (
                (int(v) for v in dets[0].box) if dets else (w // 4, h // 4, 3 * w // 4, 3 * h // 4)
            )
            patch = image[y1 : max(y2, y1 + 2), x1 : max(x2, x1 + 2)]
            frames.append(cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA))
        out.append(np.stack(frames))
    return np.stack(out)


def design_seconds(
    torch_detector: Any,
    onnx_detector: Any,
    crops: list[np.ndarray],
    tmp: Path,
    options: OrtOptions,
    rounds: int,
) -> tuple[dict[str, float], str]:
    """Seconds a frame of the model call alone (no shrinking, no box rules), one frame
    per call, on the same shrunk frames: torch, the backbone in ONNX (what runtime onnx
    does) and the whole Faster R-CNN as one ONNX graph (the design not chosen)."""
    model = torch_detector.model
    tensors = [
        torch.from_numpy(torch_detector._shrink(c)).permute(2, 0, 1).float().div(255.0)
        for c in crops
    ]
    path = tmp / "faster_rcnn.onnx"
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            ([tensors[0]],),
            str(path),
            input_names=["image"],
            output_names=["boxes", "labels", "scores"],
            dynamic_axes={"image": {1: "height", 2: "width"}},
            opset_version=17,
            dynamo=False,
        )
    whole = make_session(path, options)

    def run(m: Any) -> list[Any]:
        with torch.inference_mode():
            return [m([t])[0]["boxes"].numpy() for t in tensors]

    work = {
        "torch": lambda: run(model),
        "backbone in ONNX": lambda: run(onnx_detector.model),
        "whole graph in ONNX": lambda: [whole.run(None, {"image": t.numpy()})[0] for t in tensors],
    }
    times = timed_rounds(work, rounds)
    want, got = work["torch"](), work["whole graph in ONNX"]()
    same = sum(len(w) == len(g) for w, g in zip(want, got, strict=True))
    return (
        {k: v / len(crops) for k, v in times.items()},
        f"whole graph: same box count on {same}/{len(crops)} frames",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", metavar="NAME|DIR", help="bundle (default: the default one)")
    parser.add_argument("--frames", type=int, default=24, help="sweep frames (>= 16)")
    parser.add_argument("--detector-batch", type=int, default=4)
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--clip-batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads, and ONNX Runtime intra-op threads"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        options = OrtOptions(threads=args.threads, cache_dir=tmp / "cache")
        resolved = resolve_models(args.models)
        print(f"models: {resolved.label()}; threads {args.threads}")
        started = time.perf_counter()
        torch_models = load_models(resolved)
        torch_load = time.perf_counter() - started
        started = time.perf_counter()
        onnx_models = load_models(resolved, runtime="onnx", ort=options)
        export_load = time.perf_counter() - started
        started = time.perf_counter()
        onnx_models = load_models(resolved, runtime="onnx", ort=options)
        cached_load = time.perf_counter() - started
        started = time.perf_counter()
        int8_detector = load_models(resolved, runtime="onnx-int8", ort=options).detector
        int8_load = time.perf_counter() - started
        print(
            f"load: torch {torch_load:.2f} s; onnx {export_load:.2f} s with export, "
            f"{cached_load:.2f} s from the cache; onnx-int8 {int8_load:.2f} s with "
            "calibration and quantization"
        )

        crops = sweep_crops(args.frames, tmp / "sweep")
        print(
            "\n| stage | torch s | onnx s | torch/onnx | agreement | onnx-int8 s | torch/int8 "
            "| int8 agreement with torch |\n|---|---|---|---|---|---|---|---|"
        )
        for batch in sorted({1, args.detector_batch}):
            det = timed_rounds(
                {
                    "torch": lambda b=batch: detect_all(torch_models.detector, crops, b),
                    "onnx": lambda b=batch: detect_all(onnx_models.detector, crops, b),
                    "int8": lambda b=batch: detect_all(int8_detector, crops, b),
                },
                args.rounds,
            )
            want = detect_all(torch_models.detector, crops, batch)
            got = detect_all(onnx_models.detector, crops, batch)
            got8 = detect_all(int8_detector, crops, batch)
            print(
                f"| detector, per frame (batches of {batch}) | {det['torch'] / len(crops):.4f} "
                f"| {det['onnx'] / len(crops):.4f} | {det['torch'] / det['onnx']:.2f} | "
                f"{box_agreement(got, want)} | {det['int8'] / len(crops):.4f} | "
                f"{det['torch'] / det['int8']:.2f} | {box_agreement(got8, want)} |"
            )
        classifier = torch_models.classifier
        t, size, _, _ = classifier.expected_shape()
        clips = clips_around_boxes(crops, want, args.clips, size, t)
        for heatmaps in (False, True):

            def run(model: Any, heatmaps: bool = heatmaps) -> list[Any]:
                return model.predict(clips, heatmaps=heatmaps, batch_size=args.clip_batch)

            cls = timed_rounds(
                {"torch": lambda: run(classifier), "onnx": lambda: run(onnx_models.classifier)},
                args.rounds,
            )
            w, g = run(classifier), run(onnx_models.classifier)
            prob = max(abs(a.probability - b.probability) for a, b in zip(g, w, strict=True))
            lesion = max(
                (
                    abs(a.lesion_probability - b.lesion_probability)
                    for a, b in zip(g, w, strict=True)
                    if a.lesion_probability is not None
                ),
                default=float("nan"),
            )
            heat = (
                max(float(np.abs(a.heatmap - b.heatmap).max()) for a, b in zip(g, w, strict=True))
                if heatmaps
                else None
            )
            agree = f"max |dP(malignant)| {prob:.1e}, max |dP(lesion)| {lesion:.1e}" + (
                f", max |d heatmap| {heat:.1e}" if heat is not None else ""
            )
            print(
                f"| classifier, per clip (batches of {args.clip_batch}, heatmaps "
                f"{'on' if heatmaps else 'off'}) | {cls['torch'] / len(clips):.4f} | "
                f"{cls['onnx'] / len(clips):.4f} | {cls['torch'] / cls['onnx']:.2f} | "
                f"{agree} | - | - | the classifier stays in float |"
            )
        per_frame, design_note = design_seconds(
            torch_models.detector, onnx_models.detector, crops, tmp, options, args.rounds
        )
        print(
            "\nDetector model call alone, one frame per call, seconds a frame ("
            + design_note
            + "):\n\n| "
            + " | ".join(per_frame)
            + " |\n|"
            + "---|" * len(per_frame)
            + "\n| "
            + " | ".join(f"{v:.4f}" for v in per_frame.values())
            + " |\n"
        )
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak memory of this process (both runtimes loaded): {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
