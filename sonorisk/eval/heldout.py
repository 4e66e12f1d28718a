"""The held-out figures of a model release, each a value with its 95% CI.

Pure functions from the outputs of the project's own evaluation commands
(``sonorisk eval detector --json``, ``sonorisk eval classifier --out``,
``sonorisk batch --out``) to the ``metrics`` mapping of a bundle's
metadata.json: ``{name: {value, ci_low, ci_high, n, method, note}}``.

``python -m sonorisk.eval.heldout`` runs them for scripts/release.sh.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sonorisk.errors import InputError
from sonorisk.eval.intervals import Estimate, clopper_pearson
from sonorisk.eval.roc import auc_delong_ci


def figure(
    value: float | None,
    ci: tuple[float | None, float | None] | None,
    n: int,
    method: str,
    note: str,
) -> dict[str, Any]:
    low, high = ci if ci is not None else (None, None)
    return {
        "value": _round(value),
        "ci_low": _round(low),
        "ci_high": _round(high),
        "n": int(n),
        "method": method,
        "note": note,
    }


def _round(x: float | None) -> float | None:
    return None if x is None else round(float(x), 4)


def _from_estimate(est: Estimate, n: int, note: str) -> dict[str, Any]:
    return figure(est.estimate, (est.ci_low, est.ci_high), n, est.method, note)


def detector_figures(evaluation: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """AP50/AP (bootstrap CIs) and rates from ``sonorisk eval detector --json``."""
    n = int(evaluation["n_images"])
    boxes = int(evaluation["n_lesion_boxes"])
    tta = (evaluation.get("detector") or {}).get("test_time_augmentation")
    how = f"test-time augmentation: {tta}" if tta else "no test-time augmentation"
    where = f"{n} held-out BUSI stills ({boxes} lesion boxes), {how}"
    boot = f"percentile bootstrap over images, {evaluation.get('bootstrap_resamples', 0)} resamples"
    out = {
        "detector_ap50_stills": figure(
            evaluation["ap50"], evaluation.get("ap50_ci"), n, f"COCO AP50; {boot}", where
        ),
        "detector_ap_stills": figure(
            evaluation["ap"], evaluation.get("ap_ci"), n, f"COCO AP@[.50:.95]; {boot}", where
        ),
    }
    rate = evaluation.get("still_detection_rate")
    if rate is not None:
        # The rate is per lesion still (a hit on any of its lesions), not per box.
        stills = n - int(evaluation.get("lesion_free_stills") or 0)
        hits = round(rate * stills)
        out["detector_detection_rate_stills"] = _from_estimate(
            clopper_pearson(hits, stills),
            stills,
            f"lesion stills with a box at IoU >= 0.5 at the operating threshold "
            f"{evaluation['score_thresh']}; {where}",
        )
    return out


def _truth(videos_csv: Path) -> pd.Series:
    table = pd.read_csv(videos_csv)
    if "pathology" not in table or "video_id" not in table:
        raise InputError(
            videos_csv, "needs video_id and pathology columns (a dataset's videos.csv)"
        )
    return table.set_index("video_id")["pathology"]


def classifier_figures(scores_csv: Path, videos_csv: Path) -> dict[str, dict[str, Any]]:
    """Video AUC of the classifier alone, on clips cut along ground-truth boxes."""
    scores = pd.read_csv(scores_csv)
    truth = _truth(videos_csv)
    scores = scores[scores["id"].isin(truth.index)]
    y = (truth.loc[scores["id"]] == "malignant").astype(int).to_numpy()
    est = auc_delong_ci(y, scores["score"].to_numpy(), source=str(scores_csv))
    return {
        "classifier_auc_gt_boxes": _from_estimate(
            est,
            len(y),
            f"video AUC (mean of clip P(malignant)) on clips cut along the ground-truth "
            f"boxes of {len(y)} sweeps made from held-out BUSI stills "
            f"({int(y.sum())} malignant)",
        )
    }


def end_to_end_figures(
    batch_csv: Path,
    videos_csv: Path,
    lesion_free_csv: Path | None = None,
    pipeline: str = "default pipeline settings: detector on every frame, "
    "lesion rules of pipeline.lesions",
    prefix: str = "",
    what: str = "sweeps",
) -> dict[str, dict[str, Any]]:
    """Through ``sonorisk batch``: video AUC where a risk was given, the share of
    lesion videos left without one, the share giving exactly one scored lesion,
    and lesion-free videos wrongly given a risk (and scored lesions per such
    video). ``prefix`` names another set of the same figures (e.g. ``screen_``)."""
    rows = pd.read_csv(batch_csv)
    rows["video_id"] = rows["video"].map(lambda name: Path(str(name)).stem)
    truth = _truth(videos_csv)
    lesion = rows[rows["video_id"].isin(truth.index)]
    if lesion.empty:
        raise InputError(batch_csv, f"no row names a video of {videos_csv}")
    scored = lesion[lesion["risk"].notna()]
    y = (truth.loc[scored["video_id"]] == "malignant").astype(int).to_numpy()
    est = auc_delong_ci(y, scored["risk"].to_numpy(float), source=str(batch_csv))
    out = {
        f"{prefix}end_to_end_auc": _from_estimate(
            est,
            len(y),
            f"video AUC of the pipeline's video risk (own detector, tracker, "
            f"classifier; {pipeline}) on {len(y)} of {len(lesion)} held-out lesion "
            f"{what} that got a risk ({int(y.sum())} malignant)",
        ),
        f"{prefix}end_to_end_lesion_videos_scored": _from_estimate(
            clopper_pearson(len(scored), len(lesion)),
            len(lesion),
            f"share of held-out lesion {what} given a risk (the rest: no scorable lesion)",
        ),
    }
    if "scored_lesions" in lesion:
        one = int((lesion["scored_lesions"] == 1).sum())
        out[f"{prefix}end_to_end_exactly_one_lesion"] = _from_estimate(
            clopper_pearson(one, len(lesion)),
            len(lesion),
            f"share of held-out one-lesion {what} that gave exactly one scored lesion",
        )
    if lesion_free_csv is not None:
        free_ids = set(_truth(lesion_free_csv).index)
        free = rows[rows["video_id"].isin(free_ids)]
        if len(free):
            out[f"{prefix}end_to_end_lesion_free_given_risk"] = _from_estimate(
                clopper_pearson(int(free["risk"].notna().sum()), len(free)),
                len(free),
                f"share of lesion-free {what} (held-out normal stills) wrongly given a risk",
            )
            if "scored_lesions" in free:
                n_false = int(free["scored_lesions"].sum())
                out[f"{prefix}end_to_end_lesion_free_scored_lesions_per_video"] = figure(
                    n_false / len(free),
                    None,
                    len(free),
                    "count / videos",
                    f"scored (false) lesions per lesion-free {what}: {n_false} in {len(free)}",
                )
    return out


def out_of_scope_figures(batch_csv: Path, what: str) -> dict[str, dict[str, Any]]:
    """Videos with no breast lesion at all (``what`` says which: e.g. real lung
    ultrasound clips) that ``sonorisk batch`` wrongly gave a breast-cancer risk."""
    rows = pd.read_csv(batch_csv)
    rows = rows[rows["status"] != "failed"]
    if rows.empty:
        raise InputError(batch_csv, "no scored row")
    given = int(rows["risk"].notna().sum())
    return {
        "out_of_scope_given_risk": _from_estimate(
            clopper_pearson(given, len(rows)),
            len(rows),
            f"share of {what} wrongly given a breast-cancer risk",
        )
    }


def _manifest_truth(manifest_csv: Path) -> pd.DataFrame:
    table = pd.read_csv(manifest_csv)
    if not {"id", "label", "boxes"} <= set(table.columns):
        raise InputError(
            manifest_csv, "needs id, label and boxes columns (a BUSI-like manifest.csv)"
        )
    return table.set_index("id")


def _boxes(cell: object) -> np.ndarray:
    """``x1 y1 x2 y2;x1 y1 x2 y2`` (a manifest cell; empty or NaN: no lesion) as N x 4."""
    text = "" if not isinstance(cell, str) else cell.strip()
    rows = [[float(v) for v in part.split()] for part in text.split(";") if part.strip()]
    return np.asarray(rows, dtype=float).reshape(-1, 4)


def _document_boxes(document: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Every lesion's box on the still (scored lesions and candidates alike) and the
    detector's score of it: what the pipeline found, for AP."""
    boxes, scores = [], []
    for lesion in document.get("lesions", []):
        for box in lesion.get("boxes", []):
            if box.get("source") == "detector":
                boxes.append(box["box"])
                scores.append(box["score"])
    return np.asarray(boxes, dtype=float).reshape(-1, 4), np.asarray(scores, dtype=float)


def still_figures(batch_csv: Path, manifest_csv: Path) -> dict[str, dict[str, Any]]:
    """Through ``sonorisk batch`` on a folder of held-out stills (file stem = the
    manifest's id): still-level AUC where a risk was given, the share of lesion
    stills given a risk, lesion-free stills wrongly given one, and the detector's
    AP50 and detection rate computed from the boxes the documents report (the
    pipeline's operating threshold applies, so AP50 here is at most what
    ``sonorisk eval detector`` reports with every box ranked)."""
    from sonorisk.detector.metrics import coco_ap, detection_rate

    rows = pd.read_csv(batch_csv)
    rows["still_id"] = rows["video"].map(lambda name: Path(str(name)).stem)
    truth = _manifest_truth(manifest_csv)
    rows = rows[rows["still_id"].isin(truth.index)]
    if rows.empty:
        raise InputError(batch_csv, f"no row names a still of {manifest_csv}")
    failed = rows[rows["status"] == "failed"]
    if len(failed):
        raise InputError(
            batch_csv,
            f"{len(failed)} stills failed to score, e.g. "
            f"{failed.iloc[0]['video']}: {failed.iloc[0]['error']}",
        )
    label = truth.loc[rows["still_id"], "label"].to_numpy()
    lesion = rows[label != "normal"]
    free = rows[label == "normal"]
    scored = lesion[lesion["risk"].notna()]
    y = (truth.loc[scored["still_id"], "label"] == "malignant").astype(int).to_numpy()
    est = auc_delong_ci(y, scored["risk"].to_numpy(float), source=str(batch_csv))
    out = {
        "still_auc": _from_estimate(
            est,
            len(y),
            f"still AUC of the pipeline's risk (own detector, still classifier) "
            f"on {len(y)} of {len(lesion)} held-out lesion stills that got a risk "
            f"({int(y.sum())} malignant)",
        ),
        "still_lesion_stills_scored": _from_estimate(
            clopper_pearson(len(scored), len(lesion)),
            len(lesion),
            "share of held-out lesion stills given a risk (the rest: no lesion found)",
        ),
    }
    if len(free):
        out["still_lesion_free_given_risk"] = _from_estimate(
            clopper_pearson(int(free["risk"].notna().sum()), len(free)),
            len(free),
            "share of held-out normal stills wrongly given a risk",
        )
    json_dir = Path(batch_csv).with_name(Path(batch_csv).stem + ".json")  # batch's default
    gts, preds, scores, sizes = [], [], [], []
    for _, row in rows.iterrows():
        document = json.loads((json_dir / str(row["json"])).read_text())
        boxes, box_scores = _document_boxes(document)
        info = truth.loc[row["still_id"]]
        gts.append(_boxes(info["boxes"]))
        preds.append(boxes)
        scores.append(box_scores)
        sizes.append((int(info["width"]), int(info["height"])))
    ap = coco_ap(gts, preds, scores, sizes)
    n_boxes = sum(len(g) for g in gts)
    out["still_detector_ap50"] = figure(
        ap.ap50,
        None,
        n_boxes,
        "COCO AP50 (pycocotools)",
        f"AP50 of the boxes the score documents report on {len(rows)} held-out stills "
        f"({n_boxes} lesion boxes), at the pipeline's detector threshold",
    )
    rate = detection_rate(gts, preds)
    n_lesion = sum(1 for g in gts if len(g))
    out["still_detection_rate"] = figure(
        rate,
        None,
        n_lesion,
        "share of stills",
        f"held-out lesion stills with a reported box at IoU >= 0.5 ({n_lesion} stills)",
    )
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m sonorisk.eval.heldout",
        description="Held-out figures of a release as metadata JSON.",
    )
    p.add_argument("--detector-eval", type=Path, help="JSON of `sonorisk eval detector --json`")
    p.add_argument("--classifier-scores", type=Path, help="CSV of `sonorisk eval classifier`")
    p.add_argument("--batch", type=Path, help="CSV of `sonorisk batch` on held-out sweeps")
    p.add_argument("--sweeps", type=Path, help="videos.csv of the held-out lesion sweeps")
    p.add_argument("--lesion-free", type=Path, help="videos.csv of the lesion-free sweeps")
    p.add_argument(
        "--screen-batch",
        type=Path,
        help="CSV of `sonorisk batch` on 1920x1080 screen captures of held-out stills",
    )
    p.add_argument("--screen-sweeps", type=Path, help="videos.csv of the screen-capture sweeps")
    p.add_argument(
        "--screen-lesion-free",
        type=Path,
        help="videos.csv of the lesion-free screen-capture sweeps",
    )
    p.add_argument(
        "--out-of-scope",
        type=Path,
        help="CSV of `sonorisk batch` on videos with no breast lesion at all",
    )
    p.add_argument(
        "--out-of-scope-what",
        default="real lung ultrasound clips (no breast)",
        help="what those videos are, for the figure's note",
    )
    p.add_argument(
        "--still-batch",
        type=Path,
        help="CSV of `sonorisk batch` on a folder of held-out stills (file stem = id)",
    )
    p.add_argument(
        "--manifest",
        type=Path,
        help="manifest.csv of those stills (id, label, width, height, boxes)",
    )
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    figures: dict[str, dict[str, Any]] = {}
    if args.detector_eval:
        figures |= detector_figures(json.loads(args.detector_eval.read_text()))
    if args.classifier_scores:
        figures |= classifier_figures(args.classifier_scores, args.sweeps)
    if args.batch:
        figures |= end_to_end_figures(args.batch, args.sweeps, args.lesion_free)
    if args.screen_batch:
        figures |= end_to_end_figures(
            args.screen_batch,
            args.screen_sweeps,
            args.screen_lesion_free,
            prefix="screen_",
            what="1920x1080 screen-capture sweeps",
        )
    if args.still_batch:
        if args.manifest is None:
            p.error("--still-batch needs --manifest")
        figures |= still_figures(args.still_batch, args.manifest)
    if args.out_of_scope:
        figures |= out_of_scope_figures(args.out_of_scope, args.out_of_scope_what)
    args.out.write_text(json.dumps(figures, indent=2) + "\n")
    for name, f in figures.items():
        print(f"{name}: {f['value']} (95% CI {f['ci_low']}-{f['ci_high']}, n={f['n']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
