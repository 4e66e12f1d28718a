"""The still lesion check: "is this crop a lesion at all?" for still images, and the
confidence model that turns it and the detector score into a still lesion's confidence.

The still classifier's malignancy head only ever saw lesions. The check is a
logistic layer on the same pooled trunk features (``StillClassifier.features``),
fitted after the classifier (trunk and head unchanged) on crops of the
**training groups only**:

- lesions: manifest boxes of the benign and malignant stills;
- background: random boxes (sizes drawn from the lesion boxes, relative to the
  image) in normal stills, and the detector's own boxes that overlap no true
  lesion (IoU < 0.1) on every training still.

The confidence of a still lesion is then
``sigmoid(a*logit(det) + b*logit(check) + c)``, a logistic regression on the
detector's boxes (score >= ``tracking.track_activation_threshold``) of the
training stills, with the check's probabilities out of fold (group 5-fold).
The threshold (``min_confidence``) is chosen by group 5-fold cross-validation:
the share of lesion stills keeping a scored lesion minus the false lesions per
normal still. Below it a lesion is a candidate (reported, never scored).

It is stored beside the still classifier as ``still_lesion_check.safetensors``
(the classifier file is unchanged); ``load_still_classifier`` loads it when
present and checks that it was fitted on that very file (sha256). Recipe:
``scripts/still_check.sh``; entry point ``python -m sonorisk.still_classifier.lesion_check``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sonorisk.errors import InputError
from sonorisk.still_classifier.train import group_folds
from sonorisk.video_classifier.lesion_check import fit_check

CHECK_FILE = "still_lesion_check.safetensors"
CHECK_FORMAT = "sonorisk-still-lesion-check"
CHECK_STATE_KEY = "check_state"
FALSE_IOU = 0.1  # a detector box overlapping no true lesion by this is a false lesion


class StillCheckError(InputError):
    """A still lesion-check file is unreadable, of another kind, or of another classifier."""


@dataclass
class StillLesionCheck:
    """P(lesion) of pooled trunk features (a linear layer on the raw features) and
    the still confidence model fitted with it."""

    weight: np.ndarray  # (D,) float32
    bias: float
    detector_weight: float  # a
    check_weight: float  # b
    intercept: float  # c
    min_confidence: float
    info: dict[str, Any] = field(default_factory=dict)

    def probability(self, features: np.ndarray) -> np.ndarray:
        z = np.asarray(features, np.float64) @ self.weight.astype(np.float64) + self.bias
        return 1.0 / (1.0 + np.exp(-z))

    def confidence(self, detector_score: float, check: float) -> float:
        z = (
            self.intercept
            + self.detector_weight * _logit(detector_score)
            + self.check_weight * _logit(check)
        )
        return 1.0 / (1.0 + math.exp(-z))

    def confidence_model(self) -> Any:
        """The pipeline's ConfidenceModel form (frames weight 0: a still has one frame)."""
        from sonorisk.pipeline.lesions import ConfidenceModel

        return ConfidenceModel(
            intercept=round(self.intercept, 4),
            detector=round(self.detector_weight, 4),
            check=round(self.check_weight, 4),
            frames=0.0,
            max_frames=1,
        )

    def save(self, path: str | Path, classifier_sha256: str) -> Path:
        from sonorisk.models.envelope import write_envelope

        header = {
            "format": CHECK_FORMAT,
            "format_version": 1,
            "still_classifier_sha256": classifier_sha256,
            "bias": float(self.bias),
            "confidence": {
                "intercept": float(self.intercept),
                "detector": float(self.detector_weight),
                "check": float(self.check_weight),
            },
            "min_confidence": float(self.min_confidence),
            **{k: v for k, v in self.info.items() if k not in ("format", "bias")},
        }
        state = {"weight": torch.as_tensor(np.asarray(self.weight, np.float32))}
        return write_envelope(path, header, state, state_key=CHECK_STATE_KEY, dtype=None)


def _logit(p: float, eps: float = 1e-4) -> float:
    p = min(max(float(p), eps), 1.0 - eps)
    return math.log(p / (1.0 - p))


def load_check(path: str | Path, classifier_path: str | Path | None = None) -> StillLesionCheck:
    """The check stored at ``path``; with ``classifier_path``, refused unless it was
    fitted on that file (sha256)."""
    from sonorisk.models.bundle import sha256_file
    from sonorisk.models.envelope import read_model_file

    payload = read_model_file(path, what="still lesion check", error=StillCheckError)
    if not isinstance(payload, dict) or payload.get("format") != CHECK_FORMAT:
        raise StillCheckError(path, f"not a still lesion check (expected {CHECK_FORMAT!r})")
    if classifier_path is not None:
        found = sha256_file(classifier_path)
        if found != payload.get("still_classifier_sha256"):
            raise StillCheckError(
                path,
                f"fitted on the still classifier with sha256 "
                f"{payload.get('still_classifier_sha256')}, but {classifier_path} has {found}",
            )
    state = payload.pop(CHECK_STATE_KEY)
    conf = payload["confidence"]
    info = {
        k: v
        for k, v in payload.items()
        if k not in ("bias", "confidence", "min_confidence", "format_version")
    }
    return StillLesionCheck(
        weight=np.asarray(state["weight"].float().numpy(), np.float32),
        bias=float(payload["bias"]),
        detector_weight=float(conf["detector"]),
        check_weight=float(conf["check"]),
        intercept=float(conf["intercept"]),
        min_confidence=float(payload["min_confidence"]),
        info=info,
    )


# ------------------------------------------------------------------ fitting
CHECK = "still lesion check"  # what errors of fitting name


def _confidence_inputs(det: np.ndarray, check: np.ndarray) -> np.ndarray:
    return np.column_stack([[_logit(d) for d in det], [_logit(c) for c in check]]).astype(
        np.float64
    )


def fit_confidence(
    det: np.ndarray, check: np.ndarray, labels: np.ndarray
) -> tuple[float, float, float]:
    """``(a, b, c)`` of sigmoid(a*logit(det) + b*logit(check) + c) (plain logistic
    regression, lightly regularised)."""
    from sklearn.linear_model import LogisticRegression

    if len(set(np.asarray(labels).tolist())) != 2:
        raise InputError("still confidence", "needs true and false detector lesions")
    lr = LogisticRegression(C=10.0, max_iter=2000)
    lr.fit(_confidence_inputs(det, check), labels)
    return float(lr.coef_[0][0]), float(lr.coef_[0][1]), float(lr.intercept_[0])


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def threshold_objective(
    confidence: np.ndarray,
    still_of: Sequence[str],
    still_kind: dict[str, str],
    threshold: float,
) -> tuple[float, float, float]:
    """(objective, share of lesion stills keeping a lesion, false lesions per normal
    still) when lesions below ``threshold`` are candidates."""
    kept = {s for s, p in zip(still_of, confidence, strict=True) if p >= threshold}
    lesion_stills = [s for s, k in still_kind.items() if k == "lesion"]
    normal_stills = [s for s, k in still_kind.items() if k == "normal"]
    share = sum(s in kept for s in lesion_stills) / max(1, len(lesion_stills))
    false = sum(
        1
        for s, p in zip(still_of, confidence, strict=True)
        if p >= threshold and still_kind.get(s) == "normal"
    ) / max(1, len(normal_stills))
    return share - false, share, false


def choose_threshold(
    det: np.ndarray,
    check: np.ndarray,
    labels: np.ndarray,
    groups: Sequence[str],
    still_of: Sequence[str],
    still_kind: dict[str, str],
    folds: int = 5,
    seed: int = 0,
) -> dict[str, Any]:
    """Out-of-fold confidences (group ``folds``-fold) and the threshold maximising the
    objective on them (the lowest among equals: score as much as it costs nothing)."""
    fold = group_folds(groups, folds, seed)
    oof = np.zeros(len(det))
    for k in range(folds):
        rows = fold == k
        if not rows.any():
            continue
        a, b, c = fit_confidence(det[~rows], check[~rows], labels[~rows])
        x = _confidence_inputs(det[rows], check[rows])
        oof[rows] = _sigmoid(a * x[:, 0] + b * x[:, 1] + c)
    grid = np.round(np.arange(0.0, 1.0001, 0.01), 2)
    rows = [(t, *threshold_objective(oof, still_of, still_kind, t)) for t in grid]
    best = max(rows, key=lambda r: (round(r[1], 9), -r[0]))
    return {
        "threshold": float(best[0]),
        "objective": round(best[1], 4),
        "lesion_stills_kept": round(best[2], 4),
        "false_per_normal_still": round(best[3], 4),
        "without_threshold": {
            "objective": round(rows[0][1], 4),
            "lesion_stills_kept": round(rows[0][2], 4),
            "false_per_normal_still": round(rows[0][3], 4),
        },
    }


def _iou(a: Sequence[float], b: Sequence[float]) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def random_boxes(
    width: int,
    height: int,
    relative_sizes: np.ndarray,
    n: int,
    rng: np.random.Generator,
) -> list[tuple[float, float, float, float]]:
    """``n`` boxes inside the image whose (w/W, h/H) are drawn from lesion boxes."""
    out = []
    for _ in range(n):
        rw, rh = relative_sizes[int(rng.integers(len(relative_sizes)))]
        bw, bh = max(8.0, rw * width), max(8.0, rh * height)
        bw, bh = min(bw, width - 1.0), min(bh, height - 1.0)
        x = rng.uniform(0, width - bw)
        y = rng.uniform(0, height - bh)
        out.append((float(x), float(y), float(x + bw), float(y + bh)))
    return out


def fit_still_check(
    classifier: Any,
    stills: Sequence[Any],
    detections: dict[str, list[tuple[tuple[float, float, float, float], float]]],
    images: Any,
    activation: float,
    random_per_normal: int = 3,
    folds: int = 5,
    seed: int = 0,
    progress: Any = None,
) -> tuple[StillLesionCheck, dict[str, Any]]:
    """Fit the check and the confidence model.

    ``stills``: objects with ``still_id``, ``label`` ("benign", "malignant",
    "normal"), ``group``, ``boxes``, ``width``, ``height`` (training groups only);
    ``detections``: still id -> the detector's (box, score) in image pixels;
    ``images``: still id -> HxWx3 uint8 RGB (a callable); ``activation``: the score
    a detector box needs to be a lesion at all.
    """
    rng = np.random.default_rng(seed)
    sizes = np.asarray(
        [
            ((b[2] - b[0]) / s.width, (b[3] - b[1]) / s.height)
            for s in stills
            if s.label != "normal"
            for b in s.boxes
        ],
        np.float64,
    )
    crop_rows: list[tuple[str, str, str, int]] = []  # still, group, kind, label
    crops: list[np.ndarray] = []
    det_rows: list[tuple[str, str, float, int, int]] = []  # still, group, score, label, crop
    for n, still in enumerate(stills):
        image = images(still.still_id)
        truth = list(still.boxes)
        boxes: list[tuple[tuple[float, float, float, float], str, int]] = []
        for b in truth:
            boxes.append(((float(b[0]), float(b[1]), float(b[2]), float(b[3])), "lesion", 1))
        if still.label == "normal" and len(sizes):
            for b in random_boxes(still.width, still.height, sizes, random_per_normal, rng):
                boxes.append((b, "random", 0))
        for box, score in detections.get(still.still_id, []):
            best = max((_iou(box, t) for t in truth), default=0.0)
            is_false = best < FALSE_IOU
            if is_false:
                boxes.append((box, "false_detection", 0))
            if score >= activation:
                det_rows.append((still.still_id, still.group, float(score), int(not is_false), -1))
                if not is_false:  # its crop, for the confidence model's check
                    boxes.append((box, "true_detection", -1))
                det_rows[-1] = (*det_rows[-1][:4], len(crops) + len(boxes) - 1)
        for box, kind, label in boxes:
            crops.append(classifier.crop(image, box))
            crop_rows.append((still.still_id, still.group, kind, label))
        if progress and (n + 1) % 100 == 0:
            progress(f"{n + 1}/{len(stills)} stills cropped")
    features = classifier.features(crops)
    labels = np.asarray([r[3] for r in crop_rows])
    groups = [r[1] for r in crop_rows]
    train = labels >= 0  # true detections are only scored, not trained on
    weight, bias = fit_check(features[train], labels[train], seed=seed, what=CHECK)
    # Out-of-fold P(lesion) for every crop (the confidence model must see the check
    # as it behaves on stills it was not fitted on).
    fold = group_folds(groups, folds, seed)
    oof = np.zeros(len(crops))
    for k in range(folds):
        rows = fold == k
        fit_rows = train & ~rows
        w_k, b_k = fit_check(features[fit_rows], labels[fit_rows], seed=seed, what=CHECK)
        oof[rows] = _sigmoid(features[rows].astype(np.float64) @ w_k + b_k)
    check_auc = _auc(labels[train], oof[train])
    det = np.asarray([r[2] for r in det_rows])
    det_labels = np.asarray([r[3] for r in det_rows])
    det_check = np.asarray([oof[r[4]] for r in det_rows])
    det_groups = [r[1] for r in det_rows]
    det_still = [r[0] for r in det_rows]
    kind_of = {s.still_id: ("normal" if s.label == "normal" else "lesion") for s in stills}
    chosen = choose_threshold(
        det, det_check, det_labels, det_groups, det_still, kind_of, folds=folds, seed=seed
    )
    a, b, c = fit_confidence(det, det_check, det_labels)
    counts = {k: sum(1 for r in crop_rows if r[2] == k) for k in sorted({r[2] for r in crop_rows})}
    report = {
        "crops": counts,
        "check_cv_auc": round(check_auc, 4),
        "detector_lesions": {
            "n": len(det_rows),
            "true": int(det_labels.sum()),
            "false": int(len(det_labels) - det_labels.sum()),
            # how well each input alone tells true from false detector lesions
            "auc_detector_score": round(_auc(det_labels, det), 4),
            "auc_check_out_of_fold": round(_auc(det_labels, det_check), 4),
        },
        "confidence": {"detector": round(a, 4), "check": round(b, 4), "intercept": round(c, 4)},
        "threshold_cv": chosen,
        "stills": {
            "lesion": sum(1 for v in kind_of.values() if v == "lesion"),
            "normal": sum(1 for v in kind_of.values() if v == "normal"),
        },
    }
    check = StillLesionCheck(
        weight=weight,
        bias=bias,
        detector_weight=a,
        check_weight=b,
        intercept=c,
        min_confidence=chosen["threshold"],
        info={"fit": report},
    )
    return check, report


def _auc(y: np.ndarray, s: np.ndarray) -> float:
    from sonorisk.eval.roc import auc

    return float(auc(y, s))


# ------------------------------------------------------------------ BUSI recipe
def main(argv: list[str] | None = None) -> int:
    from sonorisk.data.busi import read_manifest
    from sonorisk.data.splits import read_id_lines
    from sonorisk.io.still import read_still
    from sonorisk.models.bundle import sha256_file
    from sonorisk.models.load import load_models
    from sonorisk.pipeline.config import PipelineConfig
    from sonorisk.pipeline.scorer import StageTiming
    from sonorisk.pipeline.still import find_lesions
    from sonorisk.threads import set_torch_threads

    p = argparse.ArgumentParser(
        prog="python -m sonorisk.still_classifier.lesion_check",
        description="Fit the still lesion check and still confidence model (training groups)",
    )
    p.add_argument("--data", required=True, help="BUSI-style folder (manifest.csv)")
    p.add_argument("--bundle", required=True, help="bundle folder (detector + still classifier)")
    p.add_argument("--heldout-groups", default="configs/release/heldout_groups.txt")
    p.add_argument("--out", required=True, help="folder: still_lesion_check.safetensors, fit.json")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    set_torch_threads(args.threads)
    started = time.time()
    held = set(read_id_lines(args.heldout_groups))
    stills = [s for s in read_manifest(args.data) if s.group not in held]
    models = load_models(args.bundle)
    classifier = models.still
    if classifier is None:
        raise SystemExit(f"{args.bundle}: no still classifier")
    config = PipelineConfig()
    # Every box the detector gives (its own threshold), as the pipeline finds them.
    probe = dataclasses.replace(
        config, tracking=dataclasses.replace(config.tracking, track_activation_threshold=0.0)
    )
    cache: dict[str, np.ndarray] = {}
    detections: dict[str, list[tuple[tuple[float, float, float, float], float]]] = {}
    for n, still in enumerate(stills):
        image = read_still(still.image_path).image
        cache[still.still_id] = image
        found, _ = find_lesions(image, models.detector, probe, StageTiming())
        detections[still.still_id] = [(tuple(map(float, d.box)), float(d.score)) for d in found]  # type: ignore[misc]
        if (n + 1) % 100 == 0:
            print(f"[{time.time() - started:.0f}s] detector {n + 1}/{len(stills)}", flush=True)
    check, report = fit_still_check(
        classifier,
        stills,
        detections,
        cache.__getitem__,
        config.tracking.track_activation_threshold,
        seed=args.seed,
        progress=lambda m: print(m, flush=True),
    )
    still_file = Path(str(getattr(models.resolved, "still_classifier", "")))
    check.info.update(
        {
            "training_data": "BUSI training groups (held-out groups never read): "
            f"{len(stills)} stills",
            "heldout_groups": args.heldout_groups,
            "activation_threshold": config.tracking.track_activation_threshold,
        }
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    check.save(out / CHECK_FILE, sha256_file(still_file))
    report["seconds"] = round(time.time() - started, 1)
    report["still_classifier"] = str(still_file)
    (out / "fit.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
