"""Training and evaluating the still classifier.

Frozen trunk (``backbone: detector``): every training lesion gives
``augment_copies`` augmented views; the frozen trunk runs once on each, up to
the input of its last stage, and those features are cached. The candidates
(``train.candidates``: ``head`` trains the head on the frozen trunk;
``head+last_stage`` trains the last stage too) are compared by group
cross-validation on the training groups (folds never split a group); the best
by pooled out-of-fold AUC is trained on every training group. Held-out groups
are never read by training.

Whole network (``model.finetune_all``, the comparator from ImageNet weights):
end to end on fresh augmented views every epoch, the best epoch by AUC on a
group validation part of the training groups.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from sonorisk.errors import InputError
from sonorisk.still_classifier.config import StillClassifierConfig
from sonorisk.still_classifier.data import LesionCrop, augmented_crop, plain_crop
from sonorisk.still_classifier.model import (
    StillClassifier,
    StillNet,
    build_still_classifier,
    to_tensor,
)

log = logging.getLogger(__name__)
CANDIDATES = ("head", "head+last_stage")


# ------------------------------------------------------------------ views
def make_views(
    crops: Sequence[LesionCrop], config: StillClassifierConfig, copies: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """``copies`` augmented views of every crop (0: the plain crop once), as
    ``N x size x size x 3`` uint8, and the index of the crop each view came from."""
    rng = np.random.default_rng(seed)
    size, margin = config.crop.size, config.crop.margin
    views, owner = [], []
    for i, crop in enumerate(crops):
        image = crop.read()
        if copies == 0:
            views.append(plain_crop(image, crop.box, margin, size))
            owner.append(i)
        for _ in range(copies):
            views.append(augmented_crop(image, crop.box, margin, size, rng))
            owner.append(i)
    return np.stack(views), np.asarray(owner)


def cache_start(config: StillClassifierConfig) -> int:
    """The trunk block whose input is cached: the last one (it may be trained)."""
    return config.model.trunk_blocks - 1


@torch.no_grad()
def trunk_features(
    net: StillNet, views: np.ndarray, stop: int, size: int, batch_size: int = 32
) -> torch.Tensor:
    net.eval()
    return torch.cat(
        [
            net.trunk.forward_until(to_tensor(views[s : s + batch_size], size), stop)
            for s in range(0, len(views), batch_size)
        ]
    )


@torch.no_grad()
def trunk_tail(
    net: StillNet, feats: torch.Tensor, start: int, batch_size: int = 256
) -> torch.Tensor:
    """The frozen trunk's output from features at block ``start``."""
    net.eval()
    return torch.cat(
        [
            net.trunk.forward_from(feats[s : s + batch_size], start)
            for s in range(0, len(feats), batch_size)
        ]
    )


def _candidate_config(config: StillClassifierConfig, candidate: str) -> StillClassifierConfig:
    """The config a candidate is trained with (and saved under)."""
    last = candidate == "head+last_stage"
    train = replace(config.train, epochs=config.train.last_stage_epochs) if last else config.train
    return replace(config, model=replace(config.model, finetune_last_stage=last), train=train)


# ------------------------------------------------------------------ folds
def group_folds(groups: Sequence[str], k: int, seed: int) -> np.ndarray:
    """A fold number per item; a group's items share a fold."""
    unique = sorted(set(groups))
    order = np.random.default_rng(seed).permutation(len(unique))
    fold_of = {unique[j]: n % k for n, j in enumerate(order)}
    return np.asarray([fold_of[g] for g in groups])


def _auc(y: np.ndarray, p: np.ndarray) -> float | None:
    from sonorisk.eval.roc import auc

    if len(set(y.tolist())) < 2:
        return None
    return float(auc(y, p))


# ------------------------------------------------------------------ cached training
def _trainable(
    net: StillNet, candidate: str, config: StillClassifierConfig
) -> list[dict[str, Any]]:
    """Optimizer groups: the head, and the trunk's last block at a lower rate."""
    head = [*net.head_conv.parameters(), *net.head_fc.parameters()]
    if net.subtype_fc is not None:
        head += list(net.subtype_fc.parameters())
    groups: list[dict[str, Any]] = [{"params": head, "lr": config.train.lr}]
    if candidate == "head+last_stage":
        groups.append(
            {
                "params": list(net.trunk._blocks[-1].parameters()),
                "lr": config.train.lr * config.train.last_stage_lr_scale,
            }
        )
    return groups


def fit_cached(
    net: StillNet,
    feats: torch.Tensor,
    y: np.ndarray,
    subtypes: np.ndarray | None,
    config: StillClassifierConfig,
    candidate: str,
    start: int,
) -> StillNet:
    """Train ``net``'s head (and last stage) on cached trunk features, in place."""
    if candidate not in CANDIDATES:
        raise InputError(
            "train.candidates", f"unknown candidate {candidate!r}; known: {list(CANDIDATES)}"
        )
    t = config.train
    torch.manual_seed(t.seed)
    for p in net.parameters():
        p.requires_grad_(False)
    groups = _trainable(net, candidate, config)
    for group in groups:
        for p in group["params"]:
            p.requires_grad_(True)
    opt = torch.optim.AdamW(groups, lr=t.lr, weight_decay=t.weight_decay)
    steps = t.epochs * max(1, -(-len(feats) // t.batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=[g["lr"] for g in groups], total_steps=steps, pct_start=0.1
    )
    yt = torch.as_tensor(y, dtype=torch.float32)
    pos = float(yt.sum())
    pos_weight = torch.tensor((len(yt) - pos) / max(pos, 1.0))
    st = torch.as_tensor(subtypes) if subtypes is not None else None
    gen = torch.Generator().manual_seed(t.seed)
    net.train()
    for _ in range(t.epochs):
        for idx in torch.randperm(len(feats), generator=gen).split(t.batch_size):
            fmap = net.trunk.forward_from(feats[idx], start)
            logit, sub, _ = net.head(fmap)
            loss = F.binary_cross_entropy_with_logits(logit, yt[idx], pos_weight=pos_weight)
            if sub is not None and st is not None:
                loss = loss + t.subtype_weight * F.cross_entropy(sub, st[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


@torch.no_grad()
def score_cached(net: StillNet, feats: torch.Tensor, start: int) -> np.ndarray:
    net.eval()
    logit, _, _ = net.head(net.trunk.forward_from(feats, start))
    return torch.sigmoid(logit).numpy()


def _subtype_index(
    crops: Sequence[LesionCrop], names: Sequence[str], owner: np.ndarray
) -> np.ndarray | None:
    if not names:
        return None
    lookup = {n: i for i, n in enumerate(names)}
    missing = sorted({c.subtype for c in crops if c.subtype not in lookup}, key=str)
    if missing:
        raise InputError(
            "model.subtypes",
            f"crops with subtypes {missing} not in the "
            f"config's {list(names)}: a subtype head trains "
            "only on data that has subtypes",
        )
    return np.asarray([lookup[crops[i].subtype] for i in owner])


def cross_validate(
    initial: dict[str, torch.Tensor],
    net: StillNet,
    feats: torch.Tensor,
    plain: torch.Tensor,
    crops: Sequence[LesionCrop],
    owner: np.ndarray,
    config: StillClassifierConfig,
    candidate: str,
    start: int,
) -> dict[str, Any]:
    """Pooled out-of-fold AUC of ``candidate`` over group folds of the training crops
    (``feats``/``plain``: trunk features of the views and plain crops at block ``start``)."""
    y_crop = np.asarray([c.label for c in crops])
    folds = group_folds([c.group for c in crops], config.train.cv_folds, config.train.seed)
    sub = _subtype_index(crops, config.model.subtypes, owner)
    oof = np.zeros(len(crops))
    for k in range(config.train.cv_folds):
        fit_rows = folds[owner] != k
        if not fit_rows.any() or (folds == k).sum() == 0:
            continue
        net.load_state_dict(initial)
        fit_cached(
            net,
            feats[torch.as_tensor(fit_rows)],
            y_crop[owner][fit_rows],
            sub[fit_rows] if sub is not None else None,
            config,
            candidate,
            start,
        )
        oof[folds == k] = score_cached(net, plain[torch.as_tensor(folds == k)], start)
    return {
        "candidate": candidate,
        "cv_auc": _auc(y_crop, oof),
        "folds": config.train.cv_folds,
        "n": len(crops),
        "n_malignant": int(y_crop.sum()),
    }


# ------------------------------------------------------------------ whole network
def fit_whole(
    classifier: StillClassifier,
    crops: Sequence[LesionCrop],
    config: StillClassifierConfig,
    progress: Callable[[str], None] = log.info,
) -> dict[str, Any]:
    """End-to-end training (the comparator); the best epoch by AUC on a group
    validation part (``val_fraction``) of ``crops``."""
    t = config.train
    net = classifier.net
    groups = sorted({c.group for c in crops})
    rng = np.random.default_rng(t.seed)
    val_groups = set(rng.permutation(groups)[: max(1, round(len(groups) * t.val_fraction))])
    fit = [c for c in crops if c.group not in val_groups]
    val = [c for c in crops if c.group in val_groups]
    val_views, _ = make_views(val, config, 0, t.seed)
    y_val = np.asarray([c.label for c in val])
    y_fit = torch.as_tensor([c.label for c in fit], dtype=torch.float32)
    pos_weight = torch.tensor(float(len(y_fit) - y_fit.sum()) / max(float(y_fit.sum()), 1.0))
    params = [p for p in net.parameters() if p.is_floating_point()]
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=t.lr, weight_decay=t.weight_decay)
    per_epoch = -(-len(fit) // t.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=t.lr, total_steps=t.epochs * per_epoch, pct_start=0.15
    )
    best: tuple[float, int, dict[str, torch.Tensor]] = (-1.0, -1, {})
    history = []
    for epoch in range(t.epochs):
        views, owner = make_views(fit, config, 1, t.seed + 1000 + epoch)
        net.train()
        for idx in torch.randperm(
            len(views), generator=torch.Generator().manual_seed(t.seed + epoch)
        ).split(t.batch_size):
            x = to_tensor(views[idx.numpy()], config.crop.size)
            logit, _, _ = net(x)
            loss = F.binary_cross_entropy_with_logits(
                logit, y_fit[owner[idx.numpy()]], pos_weight=pos_weight
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        net.eval()
        probs = np.asarray([s.probability for s in classifier.predict(list(val_views))])
        val_auc = _auc(y_val, probs) or 0.0
        history.append({"epoch": epoch + 1, "val_auc": val_auc})
        progress(f"epoch {epoch + 1}/{t.epochs}: validation AUC {val_auc:.3f}")
        if val_auc > best[0]:
            best = (val_auc, epoch + 1, copy.deepcopy(net.state_dict()))
    net.load_state_dict(best[2])
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return {
        "best_epoch": best[1],
        "val_auc": best[0],
        "history": history,
        "n_fit": len(fit),
        "n_val": len(val),
        "val_groups": len(val_groups),
    }


# ------------------------------------------------------------------ the verb
def train_still_classifier(
    config: StillClassifierConfig,
    crops: Sequence[LesionCrop],
    detector: str | Path | None,
    out_dir: str | Path,
    training_data: dict[str, Any],
    progress: Callable[[str], None] = log.info,
    command: str | None = None,
) -> dict[str, Any]:
    """Train on ``crops`` (training groups only) and write ``out_dir/still_classifier.safetensors``
    and ``out_dir/train.json``; returns the training report."""
    from sonorisk.threads import set_torch_threads

    if len({c.label for c in crops}) < 2:
        raise InputError("training data", "needs benign and malignant lesions")
    set_torch_threads(config.train.num_threads)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    classifier = build_still_classifier(config, detector)
    report: dict[str, Any] = {
        "n_crops": len(crops),
        "n_malignant": int(sum(c.label for c in crops)),
        "n_groups": len({c.group for c in crops}),
    }
    if config.model.finetune_all or config.model.backbone != "detector":
        report["whole_network"] = fit_whole(classifier, crops, config, progress)
        chosen = "whole"
    else:
        net = classifier.net
        start = cache_start(config)
        progress(f"features of {len(crops)} crops x {config.train.augment_copies} views")
        views, owner = make_views(crops, config, config.train.augment_copies, config.train.seed)
        feats = trunk_features(net, views, start, config.crop.size)
        plain_views, _ = make_views(crops, config, 0, config.train.seed)
        plain = trunk_features(net, plain_views, start, config.crop.size)
        initial = copy.deepcopy(net.state_dict())
        n_blocks = config.model.trunk_blocks
        # "head" sees the whole frozen trunk's output: cached once more past the last block.
        caches = {
            "head+last_stage": (feats, plain, start),
            "head": (trunk_tail(net, feats, start), trunk_tail(net, plain, start), n_blocks),
        }
        candidates = list(config.train.candidates)
        report["cross_validation"] = []
        for candidate in candidates:
            result = cross_validate(
                initial,
                net,
                *caches[candidate][:2],
                crops,
                owner,
                _candidate_config(config, candidate),
                candidate,
                caches[candidate][2],
            )
            progress(f"{candidate}: {config.train.cv_folds}-fold group CV AUC {result['cv_auc']}")
            report["cross_validation"].append(result)
        chosen = max(report["cross_validation"], key=lambda r: r["cv_auc"] or 0.0)["candidate"]
        y = np.asarray([c.label for c in crops])[owner]
        subtypes = _subtype_index(crops, config.model.subtypes, owner)
        # Every candidate is fitted on all training groups (the comparison table
        # reports each on the held-out groups); the chosen one is the model.
        fitted = {}
        for candidate in candidates:
            net.load_state_dict(initial)
            cand_config = _candidate_config(config, candidate)
            fit_cached(
                net, caches[candidate][0], y, subtypes, cand_config, candidate, caches[candidate][2]
            )
            fitted[candidate] = StillClassifier(copy.deepcopy(net), cand_config, classifier.payload)
        classifier, config = fitted[chosen], fitted[chosen].config
    report.update(
        {
            "chosen": chosen,
            "seconds": round(time.time() - started, 1),
            "threads": config.train.num_threads,
        }
    )
    path = classifier.save(
        out_dir / "still_classifier.safetensors",
        dtype=config.train.store_dtype,
        training_data=training_data,
        training={"command": command, **{k: v for k, v in report.items() if k != "whole_network"}},
        created_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    report["path"] = str(path)
    if not (config.model.finetune_all or config.model.backbone != "detector"):
        for candidate, other in fitted.items():
            name = f"still_classifier-{candidate.replace('+', '-')}.safetensors"
            other.save(
                out_dir / name,
                dtype=config.train.store_dtype,
                training_data=training_data,
                training={
                    "command": command,
                    "candidate": candidate,
                    "chosen": candidate == chosen,
                },
            )
            report.setdefault("candidates", {})[candidate] = str(out_dir / name)
    (out_dir / "train.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


# ------------------------------------------------------------------ evaluation
def evaluate_still(
    classifier: StillClassifier, crops: Sequence[LesionCrop], batch_size: int = 32
) -> dict[str, Any]:
    """Lesion-level AUC (DeLong 95% CI) of the classifier as it scores: its own
    ``crop`` of each lesion box, then ``predict``."""
    scores = []
    for s in range(0, len(crops), batch_size):
        part = crops[s : s + batch_size]
        scores += classifier.predict([classifier.crop(c.read(), c.box) for c in part])
    probs = [r.probability for r in scores]
    y = np.asarray([c.label for c in crops])
    result: dict[str, Any] = auc_summary(y, np.asarray(probs))
    if classifier.subtype_names and all(c.subtype for c in crops):
        from sonorisk.eval.intervals import clopper_pearson

        top = [max(r.subtypes, key=r.subtypes.get) for r in scores]  # type: ignore[union-attr, arg-type]
        hits = sum(t == c.subtype for t, c in zip(top, crops, strict=True))
        est = clopper_pearson(hits, len(crops))
        result["subtype_accuracy"] = {
            "value": hits / len(crops),
            "ci_low": est.ci_low,
            "ci_high": est.ci_high,
            "n": len(crops),
            "method": est.method,
            "chance": _majority_share([c.subtype for c in crops]),
        }
    result["predictions"] = [
        {
            "still": c.still_id,
            "group": c.group,
            "label": int(c.label),
            "box": list(c.box),
            "probability": r.probability,
            **({"subtype": c.subtype, "subtypes": r.subtypes} if r.subtypes else {}),
        }
        for c, r in zip(crops, scores, strict=True)
    ]
    return result


def _majority_share(labels: Sequence[Any]) -> float:
    from collections import Counter

    return Counter(labels).most_common(1)[0][1] / len(labels)


def auc_summary(y: np.ndarray, p: np.ndarray) -> dict[str, Any]:
    from sonorisk.eval.roc import auc_delong_ci

    est = auc_delong_ci(y, p)
    return {
        "auc": est.estimate,
        "ci_low": est.ci_low,
        "ci_high": est.ci_high,
        "n": int(len(y)),
        "n_malignant": int(np.sum(y)),
        "method": est.method,
    }
