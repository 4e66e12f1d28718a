"""Training: clips of a video dataset -> a checkpointed classifier.

Neural models (i3d, lite3d, timesformer, static2d): Adam, step LR (seed 000: halved
every 5 epochs), class balance by loss weights or a balanced sampler,
augmentation, validation AUC each epoch (clip level and video level = mean of
a video's clips, the paper's risk), ``last.pt`` every epoch and ``best.pt``
at the best validation AUC, resume from any checkpoint. A kind whose class says
``trained_by = "fit"`` (pca-svm: frozen CNN features) is fitted once instead.

The statistics package (CIs, DeLong, ...) belongs to ``sonorisk.eval``; here
sklearn's ``roc_auc_score`` only steers training.
"""

from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from sonorisk.config import to_dict
from sonorisk.errors import ConfigError, InputError
from sonorisk.threads import set_torch_threads
from sonorisk.video_classifier.augment import augment_clips
from sonorisk.video_classifier.base import ClipClassifier
from sonorisk.video_classifier.config import ClassifierConfig
from sonorisk.video_classifier.data import ClipSet
from sonorisk.video_classifier.registry import (
    build_classifier,
    config_from_checkpoint,
    read_checkpoint,
    save_checkpoint,
)

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    last_checkpoint: Path
    best_checkpoint: Path
    history: list[dict[str, Any]]
    model: ClipClassifier


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(name)
    except RuntimeError as exc:
        raise ConfigError("train.device", f"unknown device {name!r}") from exc


def clip_metrics(
    p_malignant: np.ndarray, y_malignant: np.ndarray, video_ids: Sequence[str]
) -> dict[str, Any]:
    """AUC at clip and video level (video = mean of its clips), accuracy at 0.5."""
    from sklearn.metrics import roc_auc_score

    out: dict[str, Any] = {"clips": int(len(p_malignant))}
    out["accuracy_clip"] = float(np.mean((p_malignant >= 0.5) == y_malignant.astype(bool)))
    if len(np.unique(y_malignant)) == 2:
        out["auc_clip"] = float(roc_auc_score(y_malignant, p_malignant))
    else:
        out["auc_clip"] = None  # undefined with one class in the validation set
    by_video: dict[str, list[float]] = defaultdict(list)
    label_of: dict[str, int] = {}
    for p, y, v in zip(p_malignant, y_malignant, video_ids, strict=True):
        by_video[v].append(float(p))
        label_of[v] = int(y)
    vids = sorted(by_video)
    vp = np.array([np.mean(by_video[v]) for v in vids])
    vy = np.array([label_of[v] for v in vids])
    out["videos"] = len(vids)
    out["auc_video"] = float(roc_auc_score(vy, vp)) if len(np.unique(vy)) == 2 else None
    return out


def _malignant_labels(model: ClipClassifier, labels: np.ndarray) -> np.ndarray:
    return model.malignant_mask.cpu().numpy()[labels].astype(np.int64)


@torch.no_grad()
def evaluate(model: ClipClassifier, clipset: ClipSet, batch_size: int) -> dict[str, Any]:
    model.eval()
    probs, losses = [], []
    for start in range(0, len(clipset), batch_size):
        x = model.to_input(clipset.clips[start : start + batch_size])
        y = torch.as_tensor(clipset.labels[start : start + batch_size], device=model.device)
        logits = model(x)
        losses.append(float(F.cross_entropy(logits, y, reduction="sum")))
        probs.append(model.malignant_probability(logits).cpu().numpy())
    p = np.concatenate(probs)
    metrics = clip_metrics(p, _malignant_labels(model, clipset.labels), clipset.video_ids)
    metrics["loss"] = sum(losses) / len(clipset)
    return metrics


def _class_weights(labels: np.ndarray, k: int) -> np.ndarray:
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    weights = np.where(counts > 0, len(labels) / (k * np.maximum(counts, 1)), 0.0)
    return weights


def _epoch_order(labels: np.ndarray, k: int, balance: str, rng: np.random.Generator) -> np.ndarray:
    if balance == "sampler":
        w = _class_weights(labels, k)[labels]
        return rng.choice(len(labels), size=len(labels), replace=True, p=w / w.sum())
    return rng.permutation(len(labels))


def _score_key(metrics: dict[str, Any]) -> float:
    """Higher is better: video AUC, else clip AUC, else minus the loss."""
    for key in ("auc_video", "auc_clip"):
        if metrics.get(key) is not None:
            return float(metrics[key])
    return -float(metrics.get("loss", math.inf))


def train_on_clips(
    train: ClipSet,
    val: ClipSet | None,
    config: ClassifierConfig,
    out_dir: str | Path,
    training_data: dict[str, Any],
    resume: str | Path | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train ``config.model`` on in-memory clips; checkpoints go to ``out_dir``."""
    config.validate()
    if len(train) == 0:
        raise InputError("training data", "no training clips")
    if list(train.class_names) != list(config.model.classes):
        raise ConfigError(
            "model.classes",
            f"clips are labelled {train.class_names}, config names {config.model.classes}",
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tc = config.train
    set_torch_threads(tc.num_threads)
    device = pick_device(tc.device)
    history: list[dict[str, Any]] = []
    start_epoch = 0
    payload: dict[str, Any] | None = None
    if resume is not None:
        payload = read_checkpoint(resume)
        saved = config_from_checkpoint(payload, str(resume))
        if saved.model.kind != config.model.kind:
            raise InputError(
                resume,
                f"holds a {saved.model.kind!r} classifier, cannot resume "
                f"training a {config.model.kind!r} one",
            )
        # The architecture comes from the checkpoint; epochs etc. from the caller.
        saved.train = config.train
        config = saved
        history = list(payload.get("history", []))
        start_epoch = int(payload.get("epoch", 0))
    torch.manual_seed(tc.seed)  # reproducible random init
    model = build_classifier(config, load_weights=payload is None).to(device)
    if payload is not None:
        model.load_state_dict(payload["model_state"])
        model.provenance = dict(payload.get("weights_provenance", {}))
    training_data = {**training_data, "train_config": to_dict(config.train)}

    if model.trained_by == "fit":
        return _fit_once(model, train, val, config, out, training_data, progress)

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=tc.lr, weight_decay=tc.weight_decay)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, max(1, tc.lr_step_epochs), tc.lr_gamma)
    if payload is not None and payload.get("optimizer_state"):
        optimizer.load_state_dict(payload["optimizer_state"])
        if payload.get("scheduler_state"):
            scheduler.load_state_dict(payload["scheduler_state"])
    k = model.num_classes
    empty = [name for name, n in train.class_counts().items() if n == 0]
    if empty:
        log.warning("no training clips of class(es) %s: the model cannot learn them", empty)
    loss_weight = None
    if tc.class_balance == "loss":
        loss_weight = torch.as_tensor(
            _class_weights(train.labels, k), dtype=torch.float32, device=device
        )
    best = max((_score_key(h["val"]) for h in history if h.get("val")), default=-math.inf)
    last_path, best_path = out / "last.pt", out / "best.pt"
    from tqdm import tqdm

    for epoch in range(start_epoch, tc.epochs):
        # Seeded per epoch so a resumed run draws what an uninterrupted one would.
        rng = np.random.default_rng([tc.seed, epoch])
        gen = torch.Generator().manual_seed(tc.seed * 100_003 + epoch)
        torch.manual_seed(tc.seed * 100_003 + epoch)  # dropout
        order = _epoch_order(train.labels, k, tc.class_balance, rng)
        steps = math.ceil(len(order) / tc.batch_size)
        if tc.max_steps_per_epoch is not None:
            steps = min(steps, tc.max_steps_per_epoch)
        model.train()
        t0, seen, loss_sum = time.time(), 0, 0.0
        bar = tqdm(
            range(steps), desc=f"epoch {epoch + 1}/{tc.epochs}", disable=not progress, leave=False
        )
        for step in bar:
            idx = order[step * tc.batch_size : (step + 1) * tc.batch_size]
            batch = model.training_batch(train.clips[idx], rng)
            labels = train.labels[idx]
            x = model.to_unit(batch)
            x = model.normalize(augment_clips(x, tc.augment, gen))
            y = torch.as_tensor(labels, device=device)
            logits = model(x)
            loss = F.cross_entropy(logits, y, weight=loss_weight)
            if not torch.isfinite(loss):
                raise InputError(
                    "training",
                    f"loss became {float(loss)} at epoch {epoch + 1} "
                    f"step {step + 1}; lower train.lr",
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            seen += len(idx)
            loss_sum += float(loss.detach()) * len(idx)
            bar.set_postfix(loss=f"{loss_sum / seen:.4f}")
        scheduler.step()
        record: dict[str, Any] = {
            "epoch": epoch + 1,
            "train_loss": loss_sum / max(seen, 1),
            "train_clips_seen": seen,
            "lr": optimizer.param_groups[0]["lr"],
            "seconds": round(time.time() - t0, 2),
        }
        if val is not None and len(val):
            record["val"] = evaluate(model, val, tc.batch_size)
        history.append(record)
        log.info("epoch %d: %s", epoch + 1, _fmt(record))
        if progress:
            print(f"epoch {epoch + 1}/{tc.epochs}: {_fmt(record)}", flush=True)
        metrics = record.get("val", {})
        state = dict(
            model=model,
            training_data=training_data,
            metrics=metrics,
            history=history,
            epoch=epoch + 1,
            optimizer_state=optimizer.state_dict(),
            scheduler_state=scheduler.state_dict(),
        )
        save_checkpoint(last_path, **state)
        score = _score_key(metrics) if metrics else -record["train_loss"]
        if score > best or not best_path.exists():
            best = max(best, score)
            save_checkpoint(best_path, **state)
    if not last_path.exists():  # resumed at or past the last epoch: still leave checkpoints
        save_checkpoint(
            last_path,
            model,
            training_data=training_data,
            history=history,
            epoch=start_epoch,
            metrics=history[-1].get("val", {}) if history else {},
        )
    if not best_path.exists():
        best_path.write_bytes(last_path.read_bytes())
    model.eval()
    return TrainResult(last_path, best_path, history, model)


def _fmt(record: dict[str, Any]) -> str:
    parts = [f"train_loss {record['train_loss']:.4f}"]
    val = record.get("val") or {}
    for key in ("loss", "auc_clip", "auc_video", "accuracy_clip"):
        if val.get(key) is not None:
            parts.append(f"val_{key} {val[key]:.4f}")
    return ", ".join(parts)


def _fit_once(
    model: ClipClassifier,
    train: ClipSet,
    val: ClipSet | None,
    config: ClassifierConfig,
    out: Path,
    training_data: dict[str, Any],
    progress: bool,
) -> TrainResult:
    """A kind trained by one ``fit`` call (pca-svm): one record, no epochs."""
    t0 = time.time()
    model.fit(train.clips, train.labels, seed=config.train.seed, batch_size=config.train.batch_size)
    fit_info = dict(model.fit_report_)
    record: dict[str, Any] = {
        "epoch": 1,
        "train_loss": float("nan"),
        "fit": fit_info,
        "train_clips_seen": len(train),
        "seconds": round(time.time() - t0, 2),
    }
    if val is not None and len(val):
        record["val"] = evaluate(model, val, config.train.batch_size)
    if progress:
        print(f"{model.kind} fitted: {fit_info}; val {record.get('val')}", flush=True)
    history = [record]
    last = save_checkpoint(
        out / "last.pt",
        model,
        training_data=training_data,
        metrics=record.get("val", {}),
        history=history,
        epoch=1,
    )
    best = out / "best.pt"
    best.write_bytes(last.read_bytes())
    return TrainResult(last, best, history, model)


def split_video_ids(
    dataset: Any, val_fraction: float, seed: int, split_file: str | Path | None = None
) -> tuple[list[str], list[str]]:
    """Train/val video ids: from a splits CSV when given, else a patient-level split."""
    if split_file is not None:
        from sonorisk.data.splits import read_split_ids

        return read_split_ids(split_file, "train"), read_split_ids(split_file, "val")
    if val_fraction <= 0:
        return list(dataset.video_ids), []
    from sonorisk.data.splits import patient_split

    table = dataset.table
    split = patient_split(table, val=val_fraction, test=0.0, seed=seed)
    train_ids = split.loc[split["split"] == "train", "video_id"].astype(str).tolist()
    val_ids = split.loc[split["split"] == "val", "video_id"].astype(str).tolist()
    return train_ids, val_ids


def train_from_dataset(
    data_dir: str | Path,
    config: ClassifierConfig,
    out_dir: str | Path,
    resume: str | Path | None = None,
    split_file: str | Path | None = None,
    label_field: str = "auto",
    progress: bool = True,
) -> TrainResult:
    """``sonorisk train classifier``: clips from a dataset folder's ground-truth boxes."""
    from sonorisk.data.dataset import load_dataset
    from sonorisk.video_classifier.data import clips_from_dataset, describe_training_data

    config.validate()
    if resume is not None:
        # Clips must be cut as the checkpointed model was trained.
        saved = config_from_checkpoint(read_checkpoint(resume), str(resume))
        config.clips = saved.clips
        config.model = saved.model
    dataset = load_dataset(data_dir)
    tc = config.train
    train_ids, val_ids = split_video_ids(dataset, tc.val_fraction, tc.seed, split_file)
    classes = config.model.classes

    def build(ids: list[str]) -> ClipSet | None:
        if not ids:
            return None
        return clips_from_dataset(
            dataset, config.clips, classes, label_field, ids, tc.max_clips_per_video, tc.seed
        )

    train = build(train_ids)
    assert train is not None  # clips_from_dataset raises when it finds nothing
    try:
        val = build(val_ids)
    except InputError as exc:  # a val side with no usable video: train without it, say so
        log.warning("no validation clips: %s", exc)
        val = None
    description = describe_training_data(dataset, train, val)
    description["label_field"] = label_field
    if progress:
        print(
            f"clips: train {len(train)} {train.class_counts()}, "
            f"val {len(val) if val else 0}; synthetic data: {description['synthetic']}",
            flush=True,
        )
    dataset.close()
    return train_on_clips(train, val, config, out_dir, description, resume, progress)
