"""Choose the lesion rules (``pipeline.lesions``) on development sweeps.

Input: ``sonorisk batch`` runs made with every track scored
(``lesions.min_confidence: 0``) on annotated development sweeps, and the
datasets they came from. Each reported lesion is labelled a true lesion when its
boxes overlap a ground-truth box (IoU >= 0.3) on at least half its frames.

1. The confidence model: logistic regression of "true lesion" on the lesion's
   evidence (logit of the mean detector score, logit of the mean lesion check,
   log of the frames), monotone: a weight against the evidence is dropped
   (``--no-monotone`` keeps it).
2. The threshold: the one that maximises (lesion sweeps with exactly one scored
   lesion) minus (scored lesions per lesion-free sweep), both as shares.
3. The video risk rule: the one with the highest benign/malignant AUC on the
   lesion sweeps at that threshold (ties go to ``most_confident_lesion``, the
   rule no extra track can move).

Development sweeps must come from training groups, never from held-out ones:
the held-out figures are measured afterwards with the chosen rules.

    python -m sonorisk.eval.lesion_rules --run BATCH_JSON_DIR DATASET [--run ...] \\
        --out rules.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sonorisk.errors import InputError
from sonorisk.eval.roc import auc
from sonorisk.pipeline.lesions import (
    RISK_RULES,
    ConfidenceModel,
    LesionEvidence,
    LesionRules,
    LesionVerdict,
    confidence_of,
    video_risk,
)
from sonorisk.records import ClipScore
from sonorisk.video_classifier.lesion_check import overlaps_truth


@dataclass(frozen=True)
class DevLesion:
    evidence: LesionEvidence
    true: bool
    risk: float | None
    clips: tuple[float, ...]  # malignancy probability of each clip


@dataclass(frozen=True)
class DevVideo:
    video_id: str
    pathology: str  # benign, malignant, normal
    lesions: tuple[DevLesion, ...]


def dev_lesion(entry: dict[str, Any], true: bool, source: Path) -> DevLesion:
    """One reported lesion of a score JSON (``source``) as development evidence."""
    ev = entry.get("evidence")
    if ev is None:
        raise ValueError(f"{source}: lesions carry no evidence (made by an older sonorisk)")
    return DevLesion(
        LesionEvidence(
            ev["detector_score"],
            ev["detector_frames"],
            ev["lesion_check"],
            ev.get("tracked_frames"),
        ),
        true,
        entry["risk"],
        tuple(c["probability"] for c in entry["clips"] if c["probability"] is not None),
    )


def read_run(
    json_dir: Path,
    dataset_root: Path,
    min_true: float = 0.5,
    groups: set[str] | None = None,
) -> list[DevVideo]:
    """The run's videos of the dataset (only those of ``groups`` when given), each
    lesion labelled true when it overlaps a ground-truth box on ``min_true`` of its
    frames."""
    from sonorisk.data.dataset import load_dataset

    dataset = load_dataset(dataset_root)
    video_ids = dataset.video_ids
    if groups is not None:
        table = dataset.table
        if "group" not in table.columns:
            raise InputError(str(dataset_root), "the video table has no group column")
        video_ids = [
            str(v)
            for v, g in zip(table["video_id"], table["group"], strict=True)
            if str(g) in groups
        ]
    out: list[DevVideo] = []
    for video_id in video_ids:
        path = json_dir / f"{video_id}.json"
        if not path.exists():
            continue
        document = json.loads(path.read_text())
        truth = dataset.boxes_for(video_id)
        lesions = []
        for entry in document["lesions"]:
            boxes = {int(b["frame"]): tuple(b["box"]) for b in entry["boxes"]}
            lesions.append(dev_lesion(entry, overlaps_truth(boxes, truth) >= min_true, path))
        out.append(DevVideo(video_id, str(dataset.video(video_id).pathology), tuple(lesions)))
    return out


def _features(ev: LesionEvidence, max_frames: int) -> list[float]:
    def logit(p: float) -> float:
        p = min(max(p, 1e-4), 1 - 1e-4)
        return math.log(p / (1 - p))

    check = 0.5 if ev.lesion_check is None else ev.lesion_check
    return [
        logit(ev.detector_score),
        logit(check),
        math.log(min(max(1, ev.frames), max_frames)),
    ]


FEATURES = ("detector", "check", "frames")


def fit_confidence(
    videos: Sequence[DevVideo], c: float = 1.0, monotone: bool = True
) -> ConfidenceModel:
    """Logistic regression of "true lesion" on the evidence.

    ``monotone``: more evidence may never lower the confidence. A feature whose
    weight comes out negative is dropped (weight 0) and the rest refitted, until
    none is negative. Development sweeps are synthetic: a weight against the
    evidence there (1.2.0's fit gave length a negative weight, because the false
    tracks of synthetic lesion-free sweeps last the whole sweep) is a trait of
    the synthesis that clinical video, where a lesion is dwelt on, would not share.
    """
    from sklearn.linear_model import LogisticRegression

    # Length counts up to the longest development track, and no further.
    max_frames = max(les.evidence.frames for v in videos for les in v.lesions)
    x = np.asarray([_features(les.evidence, max_frames) for v in videos for les in v.lesions])
    y = np.asarray([les.true for v in videos for les in v.lesions], dtype=int)
    kept = list(range(len(FEATURES)))
    while True:
        lr = LogisticRegression(C=c, max_iter=1000).fit(x[:, kept], y)
        weights = dict(zip(kept, (float(w) for w in lr.coef_[0]), strict=True))
        negative = [k for k, w in weights.items() if w < 0]
        if not monotone or not negative:
            break
        kept.remove(min(negative, key=lambda k: weights[k]))
    coef = {name: round(weights.get(k, 0.0), 3) for k, name in enumerate(FEATURES)}
    return ConfidenceModel(
        intercept=round(float(lr.intercept_[0]), 3), max_frames=int(max_frames), **coef
    )


def verdicts(video: DevVideo, model: ConfidenceModel, threshold: float) -> list[LesionVerdict]:
    out = []
    for k, les in enumerate(video.lesions):
        conf = confidence_of(les.evidence, model)
        clips = [ClipScore(k, j, (), p) for j, p in enumerate(les.clips)]
        out.append(LesionVerdict(k, conf, conf >= threshold and bool(clips), les.risk, clips))
    return out


def operating_point(
    videos: Sequence[DevVideo], model: ConfidenceModel, threshold: float
) -> dict[str, Any]:
    lesion = [v for v in videos if v.pathology in ("benign", "malignant")]
    free = [v for v in videos if v.pathology not in ("benign", "malignant")]
    scored = {v.video_id: [x for x in verdicts(v, model, threshold) if x.scored] for v in videos}
    one = sum(len(scored[v.video_id]) == 1 for v in lesion)
    false_free = sum(len(scored[v.video_id]) for v in free)
    out: dict[str, Any] = {
        "threshold": threshold,
        "lesion_sweeps": len(lesion),
        "exactly_one": one / len(lesion) if lesion else None,
        "with_risk": sum(bool(scored[v.video_id]) for v in lesion) / len(lesion)
        if lesion
        else None,
        "lesion_free_sweeps": len(free),
        "scored_per_lesion_free_sweep": false_free / len(free) if free else None,
    }
    for rule in RISK_RULES:
        pos: list[float] = []
        neg: list[float] = []
        for v in lesion:
            risk, _ = video_risk(verdicts(v, model, threshold), rule)
            if risk is not None:
                (pos if v.pathology == "malignant" else neg).append(risk)
        out[f"auc_{rule}"] = (
            auc([1] * len(pos) + [0] * len(neg), pos + neg) if pos and neg else None
        )
    return out


def choose(
    videos: Sequence[DevVideo], model: ConfidenceModel
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    table = [operating_point(videos, model, t) for t in np.round(np.arange(0.05, 1.0, 0.05), 2)]

    def objective(row: dict[str, Any]) -> float:
        return (row["exactly_one"] or 0.0) - (row["scored_per_lesion_free_sweep"] or 0.0)

    best = max(table, key=lambda r: (objective(r), -r["threshold"]))
    aucs = {rule: best[f"auc_{rule}"] or 0.0 for rule in RISK_RULES}
    top = max(aucs.values())
    rule = (
        "most_confident_lesion"
        if aucs["most_confident_lesion"] >= top - 1e-9
        else max(aucs, key=lambda r: aucs[r])
    )
    return {
        "min_confidence": float(best["threshold"]),
        "risk_rule": rule,
        "confidence": asdict(model),
        "development": best,
    }, table


def load_rules(source: str) -> LesionRules:
    """The rules chosen in a ``--out`` file of this command, or ``"defaults"``."""
    if source == "defaults":
        return LesionRules()
    try:
        chosen = json.loads(Path(source).read_text())["chosen"]
        rules = dataclasses.replace(
            LesionRules(),
            min_confidence=float(chosen["min_confidence"]),
            risk_rule=chosen["risk_rule"],
            confidence=ConfidenceModel(**chosen["confidence"]),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(source, f"not a rules file of this command: {exc}") from exc
    rules.validate(source)
    return rules


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m sonorisk.eval.lesion_rules", description=__doc__.split("\n\n")[0]
    )
    p.add_argument(
        "--run", nargs=2, action="append", required=True, metavar=("BATCH_JSON_DIR", "DATASET")
    )
    p.add_argument("--out", required=True, help="JSON: the chosen rules and the table")
    p.add_argument(
        "--evaluate",
        metavar="RULES_JSON",
        help="fit nothing: the operating point of these rules (a --out of this command, "
        "or 'defaults' for sonorisk's) on the runs",
    )
    p.add_argument(
        "--no-monotone",
        dest="monotone",
        action="store_false",
        help="keep weights that make more evidence lower the confidence",
    )
    args = p.parse_args(argv)
    videos = [v for d, root in args.run for v in read_run(Path(d), Path(root))]
    if args.evaluate:
        rules = load_rules(args.evaluate)
        point = operating_point(videos, rules.confidence, rules.min_confidence)
        point["risk_rule"] = rules.risk_rule
        point["auc"] = point[f"auc_{rules.risk_rule}"]
        point["rules"] = args.evaluate
        point["runs"] = [d for d, _ in args.run]
        Path(args.out).write_text(json.dumps(point, indent=2))
        print(json.dumps(point, indent=2))
        return 0
    model = fit_confidence(videos, monotone=args.monotone)
    chosen, table = choose(videos, model)
    n = sum(len(v.lesions) for v in videos)
    chosen["monotone"] = args.monotone
    chosen["fitted_on"] = {
        "videos": len(videos),
        "lesions": n,
        "true_lesions": sum(les.true for v in videos for les in v.lesions),
        "runs": [d for d, _ in args.run],
    }
    Path(args.out).write_text(json.dumps({"chosen": chosen, "table": table}, indent=2))
    print(json.dumps(chosen, indent=2))
    for row in table:
        print(
            " ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items())
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
