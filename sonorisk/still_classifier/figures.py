"""The still classifier's comparison table and held-out figures, from the outputs
of scripts/still_classifier.sh (what the bundle's metadata and card carry).

    python -m sonorisk.still_classifier.figures --runs runs/still_classifier \
        --out runs/still_classifier/figures.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

HELDOUT_NOTE = (
    "lesion crops (ground-truth boxes, 25% margin) of the benign and malignant "
    "stills of the 96 held-out BUSI groups, scored by the file as shipped"
)


def _read(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def _row(
    model: str, stored: str, cv_auc: float | None, held: dict[str, Any], shipped: str = "no"
) -> dict[str, Any]:
    return {
        "model": model,
        "stored": stored,
        "cv_auc": cv_auc,
        "auc": held.get("auc"),
        "ci_low": held.get("ci_low"),
        "ci_high": held.get("ci_high"),
        "n": held.get("n"),
        "n_malignant": held.get("n_malignant"),
        "shipped": shipped,
    }


def _mb(path: Path) -> str:
    return f"{path.stat().st_size / 1e6:.2f} MB" if path.is_file() else "–"


def build_figures(runs: Path) -> dict[str, Any]:
    release = _read(runs / "release" / "train.json")
    cv = {r["candidate"]: r["cv_auc"] for r in release["cross_validation"]}
    chosen = release["chosen"]
    rows = []
    for candidate, label in (
        ("head", "CAM head on the frozen detector trunk"),
        ("head+last_stage", "CAM head + the trunk's last stage fine-tuned (stored as a delta)"),
    ):
        name = candidate.replace("+", "-")
        held = runs / "eval" / f"{name}.json"
        if candidate in cv and held.is_file():
            rows.append(
                _row(
                    label,
                    _mb(runs / "release" / f"still_classifier-{name}.safetensors"),
                    cv[candidate],
                    _read(held),
                    "yes (chosen by CV)" if candidate == chosen else "no",
                )
            )
    full = runs / "lite0_full"
    if (full / "train.json").is_file():
        rows.append(
            _row(
                "EfficientNet-Lite0 end to end from ImageNet (comparator)",
                _mb(full / "still_classifier.safetensors"),
                None,
                _read(runs / "eval" / "lite0-full.json"),
                "no (does not fit the 30 MB bundle)",
            )
        )
        rows[-1]["validation_auc"] = _read(full / "train.json")["whole_network"]["val_auc"]
    if (runs / "pca_svm.json").is_file():
        pca = _read(runs / "pca_svm.json")
        for key, label in (
            ("imagenet_lite0", "PCA+SVM on ImageNet Lite0 features"),
            ("detector_trunk", "PCA+SVM on the detector trunk's features"),
        ):
            if key in pca:
                rows.append(_row(label, "–", pca[key]["cv_auc"], pca[key]["heldout"]))
    shipped = _read(runs / "eval" / "shipped.json")
    metrics = {
        "still_classifier_auc_gt_boxes": {
            "value": shipped["auc"],
            "ci_low": shipped["ci_low"],
            "ci_high": shipped["ci_high"],
            "n": shipped["n"],
            "method": shipped["method"],
            "note": f"{HELDOUT_NOTE} ({shipped['n_malignant']} malignant lesions)",
        }
    }
    return {
        "summary": (
            "A 1x1 convolution, ReLU, global average pooling and a linear layer on "
            "the frozen EfficientNet-Lite0 trunk of this bundle's detector (its "
            "weights are not repeated: still_classifier.safetensors names "
            "detector.safetensors by sha256 and stores only what it trained). "
            f"Chosen by 5-fold group cross-validation on the training groups: "
            f"{chosen}."
        ),
        "chosen": chosen,
        "comparison": rows,
        "training_seconds": release.get("seconds"),
        "metrics": metrics,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sonorisk.still_classifier.figures")
    p.add_argument("--runs", default="runs/still_classifier")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    figures = build_figures(Path(args.runs))
    Path(args.out).write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
