"""The scoring document: one versioned JSON per video (docs/score-schema.md).

Every number in it traces to clips and frames: a lesion's risk lists the clips
it averages, each clip its frame indices and time range, each frame's box its
source (detector, propagated, interpolated, back-filled). The document also
carries the models' provenance, the bundle they came from (name, version,
sha256; ``models.bundle``) and, always, a statement of what the result is not
(a clinical finding).

The document is built from a ``VideoResult``: the fold of the scorer's events
(``fold.py``). Readers read it typed (``document.ScoreDocument``).
"""

from __future__ import annotations

import datetime as _dt
import json
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

from sonorisk import __version__
from sonorisk.atomic import atomic_write_text
from sonorisk.pipeline.events import LesionBox
from sonorisk.pipeline.lesions import RULE_TEXT
from sonorisk.pipeline.scorer import LesionRecord, VideoResult
from sonorisk.records import VideoMeta

SCHEMA_ID = "sonorisk.score"
SCHEMA_VERSION = 1
SCHEMA_FILE = Path(__file__).with_name("score.schema.json")

RESEARCH_NOTICE = (
    "Research software, not a medical device: this is not a clinical result and must "
    "not be used for diagnosis."
)


def honesty_statements(models: dict[str, dict[str, Any]]) -> list[str]:
    """What every report must say about the models that made it."""
    notes = [RESEARCH_NOTICE]
    bundle_notice = (models.get("bundle") or {}).get("notice")
    if bundle_notice:  # the released bundle's own line: what it was trained on, what not
        notes.append(str(bundle_notice))
    for role, card in models.items():
        if role == "bundle":
            continue
        if card.get("demonstration") and role == "still_classifier":
            trained = (card.get("training_data") or {}).get("description") or "not trained"
            notes.append(
                f"The still classifier is a DEMONSTRATION model ({trained}); its "
                "numbers mean nothing about real patients."
            )
        elif card.get("demonstration"):
            notes.append(
                f"The {role} is a DEMONSTRATION model trained in minutes on synthetic "
                "phantom videos; its numbers mean nothing about real patients."
            )
        elif card.get("trained_on_synthetic_data"):
            what = "clip classifier" if role == "classifier" else role
            notes.append(f"The {what} was trained on synthetic data.")
        elif role == "still_classifier":
            # A still's risk comes from this model: say what it learnt from, too.
            trained = (card.get("training_data") or {}).get("description")
            if trained:
                notes.append(f"The still classifier was trained on: {trained}")
        disclaimer = card.get("disclaimer")
        if disclaimer and disclaimer not in notes:
            notes.append(str(disclaimer))
    return notes


def box_json(box: LesionBox) -> dict[str, Any]:
    """One lesion box as every output shows it (the document, a stream's events)."""
    return {
        "box": [round(float(v), 2) for v in box.box],
        "score": round(float(box.score), 4),
        "source": box.source,
    }


def _clip_entry(
    score: Any, fps: float | None, heatmap_file: str | None, scored: bool = True
) -> dict[str, Any]:
    """One clip; a candidate's clips keep their frames but show no malignancy
    number (a candidate is never scored)."""
    frames = [int(i) for i in score.frame_indices]
    entry: dict[str, Any] = {
        "clip_index": int(score.clip_index),
        "frame_indices": frames,
        "frame_range": [frames[0], frames[-1]],
        "time_range_s": (
            [round(frames[0] / fps, 4), round((frames[-1] + 1) / fps, 4)] if fps else None
        ),
        "probability": float(score.probability) if scored else None,
        "class_probabilities": (
            {k: float(v) for k, v in score.class_probabilities.items()} if scored else {}
        ),
        "lesion_probability": (
            float(score.lesion_probability) if score.lesion_probability is not None else None
        ),
        "heatmap": heatmap_file if scored else None,
    }
    return entry


def _lesion_entry(
    record: LesionRecord,
    fps: float | None,
    heatmaps: dict[tuple[int, int], str],
    subtypes: dict[int, dict[str, float]] | None = None,
) -> dict[str, Any]:
    """One lesion; ``subtypes`` (a still's, by lesion id) adds the key ``subtypes``
    (null without a subtype head) to every lesion of a still."""
    risk = record.risk()
    frames = sorted(record.boxes)
    extra: dict[str, Any] = {}
    if subtypes is not None:
        shown = subtypes.get(record.lesion_id) if not record.candidate else None
        extra["subtypes"] = {k: float(v) for k, v in shown.items()} if shown else None
    return {
        "lesion_id": record.lesion_id,
        "status": risk.status.value,
        "risk": risk.risk,
        "confidence": (round(record.confidence, 4) if record.confidence is not None else None),
        "evidence": record.evidence.as_dict() if record.evidence is not None else None,
        "merged_ids": list(record.merged_ids),
        "clips_used": risk.clips_used,
        "first_frame": frames[0],
        "last_frame": frames[-1],
        "frames_with_box": len(frames),
        "box_sources": dict(Counter(record.boxes[i].source for i in frames)),
        "clips": [
            _clip_entry(
                s, fps, heatmaps.get((record.lesion_id, s.clip_index)), not record.candidate
            )
            for s in record.scores
        ],
        "boxes": [{"frame": i, **box_json(record.boxes[i])} for i in frames],
        **extra,
    }


def build_report(
    result: VideoResult,
    meta: VideoMeta,
    *,
    models: dict[str, dict[str, Any]],
    pipeline_config: dict[str, Any],
    decode: dict[str, Any] | None = None,
    wall_s: float | None = None,
    heatmaps: dict[tuple[int, int], str] | None = None,
    outputs: dict[str, str] | None = None,
    still: dict[str, Any] | None = None,
    subtypes: dict[int, dict[str, float]] | None = None,
) -> dict[str, Any]:
    """The document of ``result``. ``still``: the result is of one still image
    (``video.kind: "still"``, ``video.still`` its description, each lesion its
    ``subtypes``)."""
    fps = meta.fps if meta.fps and meta.fps > 0 else None
    lesion_rules = pipeline_config.get("lesions") or {}
    video_seconds = result.frames / fps if fps else None
    timing: dict[str, Any] = {"stages": result.timing.as_dict(), "wall_s": wall_s}
    if wall_s and video_seconds:
        timing["realtime_factor"] = video_seconds / wall_s
    return {
        "schema": SCHEMA_ID,
        "schema_version": SCHEMA_VERSION,
        "sonorisk_version": __version__,
        "created_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "notice": honesty_statements(models),
        "video": {
            **asdict(meta),
            "frames_scored": result.frames,
            "decode": decode or {},
            "scan_region": (
                result.scan_region.as_dict() if result.scan_region is not None else None
            ),
            "kind": "still" if still is not None else "video",
            **({"still": still} if still is not None else {}),
        },
        "status": result.status.value,
        "risk": result.risk,
        "risk_rule": {
            "name": result.risk_rule,
            "text": RULE_TEXT[result.risk_rule],
            "min_confidence": lesion_rules.get("min_confidence"),
        },
        "reason": result.reason,
        "clips": result.clips,
        "lesions": [
            _lesion_entry(r, fps, heatmaps or {}, (subtypes or {}) if still is not None else None)
            for r in result.lesions
        ],
        "models": models,
        "pipeline": pipeline_config,
        "timing": timing,
        "outputs": outputs or {},
    }


def write_report(document: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(json.dumps(document, indent=2, allow_nan=False), path)


def load_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_FILE.read_text())
