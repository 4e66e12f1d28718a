"""Train the detector: sampled video frames and stills, augmentation, validation each
epoch, checkpoints (``last.pt`` every epoch, ``best.pt`` by AP50), resume, a
progress bar, and a JSON-lines log of losses and AP (``log.jsonl``).
"""

from __future__ import annotations

import copy
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sonorisk.detector.augment import augment
from sonorisk.detector.checkpoint import load_checkpoint, save_checkpoint
from sonorisk.detector.common import area_shrink
from sonorisk.detector.config import DetectorConfig
from sonorisk.detector.ema import ModelEMA
from sonorisk.detector.evaluate import DetectorEvaluation, evaluate_detector
from sonorisk.detector.model import build_model
from sonorisk.detector.predictor import TorchvisionDetector, resolve_device
from sonorisk.detector.samples import (
    DetectionSample,
    group_split,
    load_samples,
    load_video_dataset,
    read_val_groups,
    split_by_groups,
)
from sonorisk.errors import ConfigError, DatasetError, InputError
from sonorisk.threads import set_torch_threads

log = logging.getLogger(__name__)


class ImageCache:
    """Images shrunk once to the largest size training can use (saves memory and time).

    The short side is reduced to ``short_side`` (never enlarged) and boxes are
    scaled with it; the model's own transform resizes again to ``min_size``.
    """

    def __init__(self, samples: Sequence[DetectionSample], short_side: int) -> None:
        self.samples = list(samples)
        self.short_side = short_side
        self._store: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def get(self, sample: DetectionSample) -> tuple[np.ndarray, np.ndarray]:
        hit = self._store.get(sample.key)
        if hit is None:
            hit = shrink_sample(sample, self.short_side)
            self._store[sample.key] = hit
        return hit


def shrink_sample(sample: DetectionSample, short_side: int) -> tuple[np.ndarray, np.ndarray]:
    """A sample's image with its short side reduced to ``short_side`` (never
    enlarged), and its boxes scaled with it: what training sees of it."""
    image = sample.load()
    boxes = sample.boxes.astype(np.float32).copy()
    height, width = image.shape[:2]
    image = area_shrink(image, short_side / min(height, width))
    boxes *= np.array([image.shape[1] / width, image.shape[0] / height] * 2, dtype=np.float32)
    return image, boxes


def to_tensor(image: np.ndarray) -> torch.Tensor:
    if image.ndim == 2:
        image = image[:, :, None]
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0)


def make_batch(
    samples: Sequence[DetectionSample],
    cache: ImageCache,
    cfg: DetectorConfig,
    rng: np.random.Generator,
) -> tuple[list[torch.Tensor], list[dict[str, Any]]]:
    images, targets = [], []
    for sample in samples:
        image, boxes = cache.get(sample)
        image, boxes = augment(image, boxes, cfg.train.augment, rng)
        images.append(to_tensor(image))
        targets.append(
            {
                "boxes": torch.from_numpy(boxes.reshape(-1, 4)).float(),
                "labels": torch.ones(len(boxes), dtype=torch.int64),
            }
        )
    return images, targets


def hard_samples(files: Sequence[str | Path], val_groups: set[str]) -> list[DetectionSample]:
    """The frames listed in hard-example CSVs, as samples (none of a validation group)."""
    from sonorisk.detector.hard_examples import read_csv

    wanted: dict[str, set[str]] = {}
    for file in files:
        for frame in read_csv(file):
            wanted.setdefault(frame.dataset, set()).add(frame.key)
    out: list[DetectionSample] = []
    for dataset, keys in wanted.items():
        found = [s for s in load_video_dataset(dataset, stride=1) if s.key in keys]
        if len(found) != len(keys):
            raise DatasetError(
                dataset, f"{len(keys) - len(found)} hard-example frames are not in this dataset"
            )
        # Keys name the dataset too: sweep ids repeat across synthesised datasets.
        out += [
            replace(s, key=f"hard:{dataset}:{s.key}") for s in found if s.group not in val_groups
        ]
    return out


def repeat_to_share(
    hard: Sequence[DetectionSample], n_other: int, share: float
) -> list[DetectionSample]:
    """``hard`` repeated so it is about ``share`` of the samples once added to ``n_other``."""
    if not hard:
        return []
    if not 0.0 < share < 1.0:
        raise InputError("train.hard_example_share", f"must be in (0, 1), got {share}")
    repeats = max(1, round(share / (1.0 - share) * n_other / len(hard)))
    return list(hard) * repeats


def lr_at(cfg: DetectorConfig, epoch: int, iteration: int) -> float:
    """Linear warm-up, then step decay (x0.1) at the configured epoch fractions."""
    train = cfg.train
    factor = 1.0
    if iteration < train.warmup_iters:
        factor = 0.001 + (1 - 0.001) * iteration / max(1, train.warmup_iters)
    for milestone in train.lr_milestones:
        if epoch >= math.floor(milestone * train.epochs):
            factor *= 0.1
    return train.lr * factor


def validate(
    model: torch.nn.Module,
    cfg: DetectorConfig,
    samples: Sequence[DetectionSample],
    cache: ImageCache,
    progress: bool,
) -> DetectorEvaluation:
    eval_cfg = replace(cfg, inference=replace(cfg.inference, score_thresh=0.0))
    was_training = model.training
    detector = TorchvisionDetector(model, eval_cfg)  # switches to eval mode
    try:
        return evaluate_detector(
            detector,
            samples,
            cfg.inference.score_thresh,
            reader=cache.get,
            batch_size=cfg.inference.batch_size,
            progress=progress,
        )
    finally:
        model.train(was_training)


def _append_log(path: Path, record: dict[str, Any]) -> None:
    with path.open("a") as handle:
        handle.write(json.dumps(record) + "\n")


def train_detector(
    data: Sequence[str | Path],
    cfg: DetectorConfig,
    out_dir: str | Path,
    resume: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Train on ``data`` folders (stills and/or video datasets); returns the final metrics."""
    from tqdm import tqdm

    set_torch_threads(cfg.train.num_threads)
    budget = cfg.train.time_budget_s
    if budget is not None:
        if not budget > 0:
            raise ConfigError("train.time_budget_s", f"must be > 0 seconds, got {budget}")
        cfg = copy.deepcopy(cfg)  # the epochs may be cut: never the caller's config
    run_started = time.time()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "log.jsonl"
    samples: list[DetectionSample] = []
    for folder in data:
        samples += load_samples(folder, cfg.train.video_frame_stride)
    if not cfg.train.include_normals:
        samples = [s for s in samples if not s.lesion_free]
    if cfg.train.val_groups_from:
        train_set, val_set = split_by_groups(samples, read_val_groups(cfg.train.val_groups_from))
        split = f"held-out groups of {cfg.train.val_groups_from}"
    else:
        train_set, val_set = group_split(samples, cfg.train.val_fraction, cfg.train.seed)
        split = f"StratifiedGroupKFold val_fraction={cfg.train.val_fraction} seed={cfg.train.seed}"
    if cfg.train.max_val_images is not None:
        val_set = val_set[: cfg.train.max_val_images]
    n_hard = 0
    if cfg.train.hard_examples:
        hard = hard_samples(cfg.train.hard_examples, {s.group for s in val_set})
        n_hard = len(hard)
        train_set += repeat_to_share(hard, len(train_set), cfg.train.hard_example_share)
        samples += hard
    if not any(not s.lesion_free for s in train_set):
        raise DatasetError(", ".join(map(str, data)), "training split holds no lesion boxes")
    cache = ImageCache(
        samples, short_side=round(cfg.model.min_size * max(1.0, cfg.train.augment.scale_range[1]))
    )

    device = resolve_device(cfg.train.device)
    model, source = build_model(cfg.model)
    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(
        params, lr=cfg.train.lr, momentum=cfg.train.momentum, weight_decay=cfg.train.weight_decay
    )
    start_epoch, iteration, best_ap50 = 0, 0, -1.0
    weights_source = source.to_dict()
    last_path, best_path = out / "last.pt", out / "best.pt"
    ema_state: dict[str, Any] | None = None
    if resume and last_path.is_file():
        state = load_checkpoint(last_path)
        extra = state.get("extra", {})
        # With EMA the checkpoint's weights are the average; the trained weights
        # travel beside them.
        model.load_state_dict(extra.get("train_state_dict") or state["state_dict"])
        if "train_state_dict" in extra:
            ema_state = {"state_dict": state["state_dict"], "updates": extra.get("ema_updates", 0)}
        if state.get("optimizer"):
            optimizer.load_state_dict(state["optimizer"])
        start_epoch = int(state.get("epoch", -1)) + 1
        iteration = int(extra.get("iteration", 0))
        best_ap50 = float(extra.get("best_ap50", -1.0))
        weights_source = state.get("weights_source", weights_source)
        log.info("resumed from %s at epoch %d", last_path, start_epoch)
    # The average starts from the (resumed) trained weights, or continues its own.
    ema = ModelEMA(model, cfg.train.ema_decay) if cfg.train.ema_decay is not None else None
    if ema is not None and ema_state is not None:
        ema.load_state(ema_state)
    training_meta = {
        "data": [str(d) for d in data],
        "n_train_images": len(train_set),
        "n_val_images": len(val_set),
        "val_keys": sorted(s.key for s in val_set),
        "val_groups": sorted({s.group for s in val_set}),
        "split": split,
        "hard_examples": list(cfg.train.hard_examples),
        "n_hard_frames": n_hard,
    }
    _append_log(
        log_path,
        {
            "event": "start",
            "time": time.time(),
            "epoch": start_epoch,
            "n_train": len(train_set),
            "n_val": len(val_set),
            "weights_source": weights_source,
        },
    )
    bs = max(1, cfg.train.batch_size)
    use_amp = device.type == "cuda" and cfg.train.amp
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    metrics: dict[str, Any] = {}
    epoch = start_epoch
    while epoch < cfg.train.epochs:  # the time budget may lower cfg.train.epochs
        rng = np.random.default_rng((cfg.train.seed, epoch))
        order = rng.permutation(len(train_set))
        n_iters = math.ceil(len(order) / bs)
        if cfg.train.max_iters_per_epoch is not None:
            n_iters = min(n_iters, cfg.train.max_iters_per_epoch)
        bar = tqdm(
            range(n_iters),
            desc=f"epoch {epoch + 1}/{cfg.train.epochs}",
            disable=not progress,
            mininterval=10,
        )
        running: dict[str, float] = {}
        started = time.time()
        for step in bar:
            batch = [train_set[i] for i in order[step * bs : (step + 1) * bs]]
            images, targets = make_batch(batch, cache, cfg, rng)
            images = [im.to(device) for im in images]
            targets = [{k: v.to(device) for k, v in t.items()} for t in targets]
            for group in optimizer.param_groups:
                group["lr"] = lr_at(cfg, epoch, iteration)
            with torch.autocast("cuda", dtype=torch.float16, enabled=use_amp):
                losses = model(images, targets)
            loss = sum(losses.values())
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"loss became {loss.item()} at iteration {iteration}; lower train.lr"
                )
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(params, 10.0)
            scaler.step(optimizer)
            scaler.update()
            if ema is not None:
                ema.update(model)
            iteration += 1
            for k, v in losses.items():
                running[k] = running.get(k, 0.0) + float(v.detach())
            running["loss"] = running.get("loss", 0.0) + float(loss.detach())
            bar.set_postfix(loss=f"{running['loss'] / (step + 1):.3f}")
            if iteration % 20 == 0:
                _append_log(
                    log_path,
                    {
                        "event": "iter",
                        "epoch": epoch,
                        "iteration": iteration,
                        "lr": lr_at(cfg, epoch, iteration - 1),
                        **{k: float(v.detach()) for k, v in losses.items()},
                        "loss": float(loss.detach()),
                        "s_per_iter": (time.time() - started) / (step + 1),
                    },
                )
        bar.close()
        train_losses = {k: v / max(1, n_iters) for k, v in running.items()}
        evaluated = ema.module if ema is not None else model
        evaluation = validate(evaluated, cfg, val_set, cache, progress)
        metrics = {
            "epoch": epoch,
            "val_AP": evaluation.ap,
            "val_AP50": evaluation.ap50,
            "val_still_detection_rate": evaluation.still_detection_rate,
            "val_fp_per_lesion_free_still": evaluation.false_positives_per_image,
            "train_losses": train_losses,
            "epoch_seconds": time.time() - started,
        }
        _append_log(log_path, {"event": "epoch", "time": time.time(), **metrics})
        log.info(
            "epoch %d: loss %.3f val AP %s AP50 %s",
            epoch + 1,
            train_losses.get("loss", float("nan")),
            evaluation.ap,
            evaluation.ap50,
        )
        ap50 = evaluation.ap50 if evaluation.ap50 is not None else -1.0
        improved = ap50 > best_ap50
        best_ap50 = max(best_ap50, ap50)
        common: dict[str, Any] = {
            "model": evaluated,
            "config": cfg,
            "weights_source": weights_source,
            "epoch": epoch,
            "metrics": metrics,
            "training": training_meta,
        }
        resume_state: dict[str, Any] = {"iteration": iteration, "best_ap50": best_ap50}
        if ema is not None:
            resume_state.update(train_state_dict=model.state_dict(), ema_updates=ema.updates)
        if budget is not None:
            fits = epochs_within_budget(budget, time.time() - run_started, epoch, start_epoch)
            if fits < cfg.train.epochs:
                log.info(
                    "time budget %.0f s: %d epochs instead of %d", budget, fits, cfg.train.epochs
                )
                _append_log(
                    log_path,
                    {
                        "event": "budget",
                        "time": time.time(),
                        "epoch": epoch,
                        "epochs": fits,
                        "planned_epochs": cfg.train.epochs,
                        "budget_s": budget,
                    },
                )
                cfg.train.epochs = fits
        save_checkpoint(last_path, optimizer=optimizer.state_dict(), extra=resume_state, **common)
        if improved:
            save_checkpoint(best_path, **common)
        epoch += 1
    return metrics


def epochs_within_budget(budget_s: float, spent_s: float, epoch: int, start_epoch: int) -> int:
    """The total epochs a run can reach inside ``budget_s``: the epochs done (to
    ``epoch`` inclusive) plus as many more as the time left holds at the mean
    pace of this run's epochs so far (never fewer than those done)."""
    done = epoch + 1
    per_epoch = spent_s / max(1, done - start_epoch)
    more = int(max(0.0, budget_s - spent_s) // per_epoch) if per_epoch > 0 else 0
    return done + more
