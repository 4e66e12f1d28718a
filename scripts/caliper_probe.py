"""Do the released models read burned-in calipers? (issue 14: build for the shift)

Many BUSI stills carry the radiologist's calipers (small "+" marks at the ends
of a measured axis, often joined by a dotted line), drawn on the lesion. Cine
filmed while scanning carries none: calipers are placed on a frozen frame. A
model that learned "calipers here" as evidence would score clinical cine
differently from the stills it was measured on.

This probe paints calipers, in BUSI's style, on the held-out stills' marked
lesions and scores each lesion with and without them, all else equal:

- the clip classifier (P(malignant) and the lesion check's P(lesion)) on a
  still clip of the lesion's crop (the crop repeated for the clip's length);
- the detector (the highest score of a box overlapping the lesion, IoU >= 0.3,
  on the whole still);
- and on the lesion-free held-out stills, calipers on a random lesion-sized
  place: does the detector now find a lesion there?

A model that does not read calipers moves little and in no one direction; one
that does moves its malignancy AUC or shifts one class.

    python scripts/caliper_probe.py [--models BUNDLE] [--detector CHECKPOINT] \\
        [--classifier CHECKPOINT] [--out runs/caliper_probe.json]
    python scripts/caliper_probe.py --table NAME PROBE_JSON STILLS_JSON [--table ...]

``--detector`` / ``--classifier`` score with that detector / clip classifier
and the bundle's other model.
``--table`` prints probes side by side, each with the detector's held-out
still figures (a ``sonorisk eval detector --json`` of the same detector).

It only measures (docs/end-to-end.md, "Calipers").
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from sonorisk.data.busi import Still, read_manifest
from sonorisk.data.calipers import draw_calipers, random_caliper_box
from sonorisk.data.splits import read_id_lines
from sonorisk.eval.roc import auc, auc_delong_ci
from sonorisk.models.load import ScoringModels, load_models
from sonorisk.models.resolve import resolve_models
from sonorisk.records import Box, Detection, Frame
from sonorisk.tracking.postprocess import box_iou
from sonorisk.video_classifier.clips import crop_box

STYLES = ("none", "plus", "plus_line")


def with_calipers(gray: np.ndarray, box: Box, style: str) -> np.ndarray:
    """``gray`` as it is, or with calipers measuring ``box`` (with dotted lines
    for ``plus_line``)."""
    return gray.copy() if style == "none" else draw_calipers(gray, box, line=style == "plus_line")


def still_clip(gray: np.ndarray, box: Box, models: ScoringModels) -> np.ndarray:
    clips = models.classifier.clip_config
    crop = crop_box(gray, box, clips.crop_size, clips.margin, clips.square, clips.pad_value)
    return np.repeat(crop[None], clips.length, axis=0)


def detections(gray: np.ndarray, models: ScoringModels) -> list[Detection]:
    return models.detector.predict([Frame(0, float("nan"), gray)])[0]


def detector_score(gray: np.ndarray, box: Box, models: ScoringModels) -> float:
    hits = [d.score for d in detections(gray, models) if box_iou(d.box, box) >= 0.3]
    return max(hits, default=0.0)


def score(stills: Sequence[Still], models: ScoringModels) -> list[dict[str, object]]:
    rows = []
    for k, still in enumerate(stills):
        gray = np.asarray(Image.open(still.image_path).convert("L"))
        box = still.boxes[0]
        row: dict[str, object] = {"id": still.still_id, "label": still.label}
        clips = []
        for style in STYLES:
            image = with_calipers(gray, box, style)
            clips.append(still_clip(image, box, models))
            row[f"detector_{style}"] = detector_score(image, box, models)
        for style, s in zip(
            STYLES, models.classifier.predict(np.stack(clips), heatmaps=False), strict=True
        ):
            row[f"malignant_{style}"] = s.probability
            row[f"lesion_{style}"] = (
                float("nan") if s.lesion_probability is None else s.lesion_probability
            )
        rows.append(row)
        if (k + 1) % 20 == 0:
            print(f"  {k + 1} of {len(stills)} stills", flush=True)
    return rows


def lesion_free(stills: Sequence[Still], models: ScoringModels, seed: int = 0) -> dict[str, object]:
    """Calipers where no lesion is: on each lesion-free still, calipers measure a
    random lesion-sized place (the same places for every detector: ``seed``).
    Counted: detector boxes of score >= 0.5 on that place (IoU >= 0.3) and in
    all, without and with the calipers."""
    rng = np.random.default_rng(seed)
    counts = {"on_place_none": 0, "on_place_calipers": 0, "boxes_none": 0, "boxes_calipers": 0}
    for still in stills:
        gray = np.asarray(Image.open(still.image_path).convert("L"))
        place = random_caliper_box(*gray.shape[:2], rng)
        for key, image in (("none", gray), ("calipers", draw_calipers(gray, place))):
            found = [d for d in detections(image, models) if d.score >= 0.5]
            counts[f"boxes_{key}"] += len(found)
            counts[f"on_place_{key}"] += sum(box_iou(d.box, place) >= 0.3 for d in found)
    return {"stills": len(stills), **counts}


def _ci(e) -> list[float | None]:  # noqa: ANN001
    return [e.ci_low, e.ci_high]


def summary(rows: list[dict[str, object]]) -> dict[str, object]:
    y = np.array([r["label"] == "malignant" for r in rows])
    out: dict[str, object] = {"lesions": len(rows), "malignant": int(y.sum())}
    for style in STYLES:
        m = np.array([r[f"malignant_{style}"] for r in rows], dtype=float)
        d = np.array([r[f"detector_{style}"] for r in rows], dtype=float)
        lesion = np.array([r[f"lesion_{style}"] for r in rows], dtype=float)
        entry: dict[str, object] = {
            "malignancy_auc": auc(y, m),
            "malignancy_auc_ci": _ci(auc_delong_ci(y, m)),
            "mean_p_malignant": {"benign": m[~y].mean(), "malignant": m[y].mean()},
            "mean_p_lesion": float(np.nanmean(lesion)),
            "detected_share": float((d >= 0.5).mean()),
            "mean_detector_score": float(d.mean()),
        }
        if style != "none":
            base = np.array([r["malignant_none"] for r in rows], dtype=float)
            delta = m - base
            entry["p_malignant_change"] = {
                "benign_mean": float(delta[~y].mean()),
                "malignant_mean": float(delta[y].mean()),
                "abs_median": float(np.median(np.abs(delta))),
                "up_share": float((delta > 0).mean()),
            }
            entry["detector_change_mean"] = float(
                (d - np.array([r["detector_none"] for r in rows], dtype=float)).mean()
            )
        out[style] = entry
    return out


def table(entries: Sequence[Sequence[str]]) -> None:
    print(
        "| detector | held-out stills: AP50 / detection rate / false per lesion-free still "
        "| detector score, mean: none / + calipers / + calipers and lines "
        "| detected (>= 0.5) | malignancy AUC (clip classifier) "
        "| lesion-free stills, boxes >= 0.5 on the calipers' place: none / calipers |"
    )
    print("|---|---|---|---|---|---|")
    for name, probe_json, stills_json in entries:
        result = json.loads(Path(probe_json).read_text())
        probe, free = result["summary"], result["lesion_free"]
        stills = json.loads(Path(stills_json).read_text())
        cells = [
            name,
            f"{stills['ap50']:.3f} / {stills['still_detection_rate']:.3f} / "
            f"{stills['false_positives_per_image']:.2f}",
            " / ".join(f"{probe[s]['mean_detector_score']:.3f}" for s in STYLES),
            " / ".join(f"{probe[s]['detected_share']:.3f}" for s in STYLES),
            " / ".join(f"{probe[s]['malignancy_auc']:.3f}" for s in STYLES),
            f"{free['on_place_none']} / {free['on_place_calipers']} of {free['stills']} "
            f"(all boxes {free['boxes_none']} / {free['boxes_calipers']})",
        ]
        print("| " + " | ".join(cells) + " |")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=None, help="bundle (default: the bundled one)")
    p.add_argument("--detector", type=Path, help="score with this detector checkpoint")
    p.add_argument("--classifier", type=Path, help="score with this clip classifier checkpoint")
    p.add_argument("--table", nargs=3, action="append", metavar=("NAME", "PROBE", "STILLS"))
    p.add_argument("--busi", type=Path, default=Path("../shared/data/busi"))
    p.add_argument("--groups", type=Path, default=Path("configs/release/heldout_groups.txt"))
    p.add_argument("--out", type=Path, default=Path("runs/caliper_probe.json"))
    args = p.parse_args()
    if args.table:
        table(args.table)
        return 0
    groups = set(read_id_lines(args.groups))
    held = [s for s in read_manifest(args.busi) if s.group in groups]
    stills = [s for s in held if s.label != "normal" and s.boxes]
    if args.detector or args.classifier:
        bundled = resolve_models(args.models)
        models = load_models(
            args.detector or bundled.detector, classifier=args.classifier or bundled.classifier
        )
    else:
        models = load_models(args.models)
    print(f"{len(stills)} held-out lesion stills; {models.resolved}")
    rows = score(stills, models)
    result = {
        "summary": summary(rows),
        "lesion_free": lesion_free([s for s in held if not s.boxes], models),
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=float))
    print(json.dumps({k: result[k] for k in ("summary", "lesion_free")}, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
