"""What an aided step shows of the AI result: the compact panel and the model card.

The study keeps the AI result twice: the fields a read needs in the ``cases`` row
(risk, status, notice, lesions, media files) and a copy of the whole score document
(``ai/<code>.json``). The few fields read from that copy (clip frames of each heatmap,
the model cards) are read in one function, ``read_score_document``, so a typed score
document can replace it in one place.
"""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

NO_SCORE_TEXT = (
    "No scorable lesion: the AI found no lesion track long enough to score "
    "(8 frames) and gives no risk for this video."
)
# keys of a model card that name files or folders of the machine that trained or scored
# it: a reader needs none of them (and training data lists can name case keys)
HIDDEN_CARD_KEYS = frozenset(
    {
        "checkpoint",
        "path",
        "source",
        "files",
        "data",
        "dataset",
        "val_keys",
        "val_groups",
        "sources",
    }
)


@dataclass(frozen=True)
class HeatmapClip:
    """One heatmap strip: the clip it explains (frames are 0-based, inclusive)."""

    path: str  # as the score document names it
    lesion_id: int
    first_frame: int
    last_frame: int


@dataclass(frozen=True)
class ScoreDetails:
    heatmap_clips: list[HeatmapClip]
    notice: list[str]
    models: dict[str, Any]


def heatmap_clips(doc: dict[str, Any]) -> list[HeatmapClip]:
    """The clips that have a heatmap, in the order the study numbers the strips."""
    return [
        HeatmapClip(
            str(clip["heatmap"]),
            int(lz["lesion_id"]),
            int(clip["frame_range"][0]),
            int(clip["frame_range"][1]),
        )
        for lz in doc["lesions"]
        for clip in lz["clips"]
        if clip.get("heatmap")
    ]


def read_score_document(path: Path) -> ScoreDetails:
    """The fields of a stored ``sonorisk score`` document that the reader pages use."""
    doc = json.loads(path.read_text())
    return ScoreDetails(heatmap_clips(doc), list(doc["notice"]), dict(doc["models"]))


def ai_panel(case: dict[str, Any], study_dir: Path, base: str) -> dict[str, Any]:
    """The template's view of the AI result of one case; ``base`` is the step's URL."""
    risk = case["ai_risk"]
    try:
        clips = read_score_document(study_dir / case["ai_document"]).heatmap_clips
    except (OSError, ValueError, KeyError, TypeError) as exc:
        # the risk and notice come from the database: only the strips need the copy
        log.warning("case %s: score document unreadable (%s): no heatmaps shown", case["code"], exc)
        clips = []
    # the strips' frames travel with their URLs, so the page can show the strip of the
    # clip under the current frame (and fetch it only when the reader asks)
    strips = [
        {
            "url": f"{base}/heatmap/{k}.png",
            "lesion": clip.lesion_id,
            "first": clip.first_frame,
            "last": clip.last_frame,
        }
        for k, clip in enumerate(clips[: len(case["heatmaps"])])
    ]
    return {
        "status": case["ai_status"],
        "risk": risk,
        "risk_text": NO_SCORE_TEXT if risk is None else f"{risk:.2f}",
        "risk_pct": None if risk is None else round(100 * risk),
        "notice": case["ai_notice"],
        "lesions": case["ai_lesions"],
        "overlay_url": f"{base}/overlay.mp4" if case["overlay_file"] else None,
        "heatmaps": strips,
        "card_url": f"{base}/model",
    }


def card_facts(card: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """A model card's plain facts (kind, flags, metrics, training counts), one level of
    nesting deep; lists, file paths and case keys are left out."""
    facts: list[tuple[str, str]] = []
    for key, value in card.items():
        if key in HIDDEN_CARD_KEYS:
            continue
        name = f"{prefix}{key}"
        if isinstance(value, dict) and not prefix:
            facts += card_facts(value, f"{name}.")
        elif isinstance(value, bool | int | str) or value is None:
            if not (isinstance(value, str) and "/" in value):
                facts.append((name, str(value)))
        elif isinstance(value, float):
            facts.append((name, f"{value:.4g}"))
    return facts


@functools.lru_cache(maxsize=8)
def bundle_card_text(name: str, version: str, sha256: str) -> str | None:
    """The README.md card of the bundle the scores came from, when that very bundle (same
    sha256) is on this server; None otherwise."""
    from sonorisk.errors import InputError
    from sonorisk.models.store import find_bundle

    try:
        bundle = find_bundle(name, version).bundle
        return bundle.card.read_text() if bundle.sha256 == sha256 else None
    except (InputError, OSError):
        return None


def model_card(case: dict[str, Any], study_dir: Path) -> dict[str, Any]:
    """The model card page: every notice line, the bundle, both models' facts and, when
    the bundle is on this server, its own card."""
    details = read_score_document(study_dir / case["ai_document"])
    bundle = details.models.get("bundle") or {}
    roles = {
        role: card_facts(card)
        for role, card in details.models.items()
        if role != "bundle" and isinstance(card, dict)
    }
    text = None
    if bundle.get("name") and bundle.get("version") and bundle.get("sha256"):
        text = bundle_card_text(bundle["name"], bundle["version"], bundle["sha256"])
    return {"notice": details.notice, "bundle": bundle, "roles": roles, "card_text": text}
