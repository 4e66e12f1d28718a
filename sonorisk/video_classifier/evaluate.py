"""Video-level predictions of a trained classifier on a dataset split.

``sonorisk eval classifier`` cuts clips from the ground-truth boxes of each
video (the same clips training used), scores them, and writes one row per
video: its score is the mean malignant probability of its clips (WAUVE's video
score). The table feeds ``sonorisk eval report`` directly (long format: id,
model, score), so several models side by side give the shape of the paper's
Table 2: AUC with 95% CI per model and DeLong tests between them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sonorisk.errors import ConfigError
from sonorisk.video_classifier.base import ClipClassifier
from sonorisk.video_classifier.data import ClipSet
from sonorisk.video_classifier.static2d import (
    InputPattern,
    Static2DClassifier,
    static_video_score,
)


def video_scores(
    model: ClipClassifier,
    clipset: ClipSet,
    batch_size: int = 16,
    pattern: InputPattern | None = None,
) -> pd.DataFrame:
    """One row per video of ``clipset``: id, truth (1 = malignant), score, n_clips.

    ``score`` is the mean P(malignant) of the video's clips. For a 2D static
    model, ``pattern`` applies the paper's input patterns instead: one key
    frame, two key frames (chosen from the boxes, see ``default_key_frames``)
    or all ROI frames. ``truth`` uses the model's own malignant classes, so a
    subtype model is judged benign/malignant.
    """
    malignant = model.malignant_mask.cpu().numpy()[clipset.labels].astype(int)
    members: dict[str, list[int]] = defaultdict(list)
    for i, video_id in enumerate(clipset.video_ids):
        members[video_id].append(i)
    if pattern is None:
        clip_p = np.array(
            [
                s.probability
                for s in model.predict(clipset.clips, heatmaps=False, batch_size=batch_size)
            ]
        )
        video_p = {v: float(clip_p[idx].mean()) for v, idx in members.items()}
    else:
        if not isinstance(model, Static2DClassifier):
            raise ConfigError(
                "pattern",
                f"input patterns apply to static2d models, not {model.config.model.kind!r}",
            )
        if clipset.boxes is None:
            raise ConfigError("pattern", "the clips carry no boxes to choose key frames from")
        video_p = {
            v: _pattern_score(model, clipset, idx, pattern, batch_size)
            for v, idx in members.items()
        }
    rows = [
        {"id": v, "truth": int(malignant[idx[0]]), "score": video_p[v], "n_clips": len(idx)}
        for v, idx in members.items()
    ]
    return pd.DataFrame(rows, columns=["id", "truth", "score", "n_clips"])


def _pattern_score(
    model: Static2DClassifier,
    clipset: ClipSet,
    idx: list[int],
    pattern: InputPattern,
    batch_size: int,
) -> float:
    assert clipset.boxes is not None  # checked by the caller
    crops = clipset.clips[idx].reshape(-1, *clipset.clips.shape[2:])
    boxes = [tuple(b) for b in clipset.boxes[idx].reshape(-1, 4)]

    def score_frames(frames: np.ndarray) -> np.ndarray:
        return model.predict_frames(frames, batch_size=batch_size)

    return static_video_score(score_frames, crops, pattern, boxes)


def evaluate_checkpoint(
    checkpoint: str | Path,
    data_dir: str | Path,
    video_ids: Sequence[str] | None = None,
    name: str | None = None,
    label_field: str = "auto",
    batch_size: int = 16,
    pattern: InputPattern | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Score the videos ``video_ids`` (default: all) of a dataset with a checkpoint.

    Returns the per-video table (with a ``model`` column) and a summary: the
    model name, its training-data description, the number of videos and clips,
    the videos skipped and why, and the video-level AUC.
    """
    from sklearn.metrics import roc_auc_score

    from sonorisk.data.dataset import load_dataset
    from sonorisk.video_classifier.data import clips_from_dataset
    from sonorisk.video_classifier.registry import load_classifier

    model = load_classifier(checkpoint)
    dataset = load_dataset(data_dir)
    try:
        clipset = clips_from_dataset(
            dataset, model.config.clips, model.class_names, label_field, video_ids
        )
    finally:
        dataset.close()
    table = video_scores(model, clipset, batch_size, pattern)
    name = name or "-".join(
        filter(None, [Path(checkpoint).parent.name or model.config.model.kind, pattern])
    )
    table.insert(1, "model", name)
    both = table["truth"].nunique() == 2
    summary = {
        "model": name,
        "kind": model.config.model.kind,
        "pattern": pattern,
        "checkpoint": str(checkpoint),
        "videos": len(table),
        "clips": int(table["n_clips"].sum()),
        "malignant": int(table["truth"].sum()),
        "auc_video": float(roc_auc_score(table["truth"], table["score"])) if both else None,
        "skipped": dict(clipset.skipped),
        "training_data": (model.checkpoint_info or {}).get("training_data"),
    }
    return table, summary
