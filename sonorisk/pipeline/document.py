"""The score document, typed, and its one summary.

``report.build_report`` writes the document (score.schema.json); readers
(batch rows, job summaries, stream segments, the reader study, the CLI line)
read it through ``ScoreDocument.from_json`` instead of string keys, and every
short form of a result is ``ScoreDocument.summary()``: one ``Summary`` with
one dict shape (``as_dict``) and one line of text (``line``).

Parsing is lenient about what a reader does not need (a job runner's test
document has no models, no risk rule): absent optional parts read as empty.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sonorisk.records import LesionStatus


@dataclass(frozen=True)
class ClipEntry:
    clip_index: int
    frame_indices: tuple[int, ...]
    probability: float | None  # None for a candidate's clip
    lesion_probability: float | None
    heatmap: str | None  # PNG path relative to the output folder

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ClipEntry:
        return cls(
            int(data["clip_index"]),
            tuple(int(i) for i in data["frame_indices"]),
            data.get("probability"),
            data.get("lesion_probability"),
            data.get("heatmap"),
        )


@dataclass(frozen=True)
class LesionEntry:
    lesion_id: int
    status: LesionStatus
    risk: float | None
    confidence: float | None
    clips_used: int
    first_frame: int
    last_frame: int
    clips: tuple[ClipEntry, ...] = ()
    subtypes: dict[str, float] | None = None  # a still's subtype head; None elsewhere

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LesionEntry:
        return cls(
            int(data["lesion_id"]),
            LesionStatus(data["status"]),
            data.get("risk"),
            data.get("confidence"),
            int(data.get("clips_used") or 0),
            int(data["first_frame"]),
            int(data["last_frame"]),
            tuple(ClipEntry.from_json(c) for c in data.get("clips") or ()),
            dict(data["subtypes"]) if data.get("subtypes") else None,
        )


@dataclass(frozen=True)
class VideoEntry:
    source: str | None
    frames_scored: int
    fps: float | None
    duration_s: float | None
    decode: dict[str, Any]
    kind: str = "video"  # or "still": one still image (documents before stills: video)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VideoEntry:
        return cls(
            data.get("source"),
            int(data.get("frames_scored") or 0),
            data.get("fps"),
            data.get("duration_s"),
            dict(data.get("decode") or {}),
            str(data.get("kind") or "video"),
        )


@dataclass(frozen=True)
class LesionSummary:
    lesion_id: int
    status: LesionStatus
    risk: float | None
    confidence: float | None
    clips: int
    frames: tuple[int, int]

    def as_dict(self) -> dict[str, Any]:
        return {
            "lesion_id": self.lesion_id,
            "status": self.status.value,
            "risk": self.risk,
            "confidence": self.confidence,
            "clips": self.clips,
            "frames": list(self.frames),
        }


def _risk_text(risk: float | None) -> str:
    return "n/a" if risk is None else f"{risk:.3f}"


@dataclass(frozen=True)
class Summary:
    """A result in brief: what a job, a stream segment and the CLI show."""

    source: str | None
    status: LesionStatus
    risk: float | None
    risk_rule: str | None
    reason: str | None  # why there is no risk
    clips: int
    frames: int
    lesions: tuple[LesionSummary, ...]
    models: dict[str, Any]  # the bundle: name, version, sha256
    notice: tuple[str, ...]
    kind: str = "video"  # "still": one image, whose lesions have no frames or clips to show

    @property
    def scored_lesions(self) -> int:
        """Lesions that got a risk (candidates and clip-less tracks do not)."""
        return sum(1 for lesion in self.lesions if lesion.risk is not None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "risk": self.risk,
            "risk_rule": self.risk_rule,
            "reason": self.reason,
            "clips": self.clips,
            "frames": self.frames,
            "lesions": [lesion.as_dict() for lesion in self.lesions],
            "scored_lesions": self.scored_lesions,
            "models": dict(self.models),
            "notice": list(self.notice),
        }

    def line(self) -> str:
        """One line for a terminal: the video, its risk or why none, each lesion."""

        def lesion_text(lz: LesionSummary) -> str:
            if self.kind == "still":  # one frame, one crop: frames and clips say nothing
                sure = f"confidence {lz.confidence:.2f}" if lz.confidence is not None else ""
                return f"lesion {lz.lesion_id}: {_risk_text(lz.risk)} ({sure or 'scored'})"
            where = f"frames {lz.frames[0]}-{lz.frames[1]}"
            sure = f", confidence {lz.confidence:.2f}" if lz.confidence is not None else ""
            if lz.status is LesionStatus.CANDIDATE:
                return f"lesion {lz.lesion_id}: candidate, not scored ({where}{sure})"
            return f"lesion {lz.lesion_id}: {_risk_text(lz.risk)} ({lz.clips} clips, {where}{sure})"

        lesions = ", ".join(lesion_text(lz) for lz in self.lesions) or (
            "no lesion" if self.kind == "still" else "no lesion track"
        )
        shown = (
            f"no scorable lesion ({self.reason or 'no lesion'})"
            if self.risk is None
            else f"risk {_risk_text(self.risk)}"
        )
        return f"{Path(self.source or '').name}: {shown} [{lesions}]"


@dataclass(frozen=True)
class ScoreDocument:
    """The typed view of one score document; ``data`` is the JSON as written."""

    schema_version: int | None
    status: LesionStatus
    risk: float | None
    risk_rule: str | None
    reason: str | None
    clips: int
    video: VideoEntry
    lesions: tuple[LesionEntry, ...]
    notice: tuple[str, ...]
    models: dict[str, Any]
    timing: dict[str, Any]
    outputs: dict[str, str]
    data: dict[str, Any]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ScoreDocument:
        rule = data.get("risk_rule")
        return cls(
            schema_version=data.get("schema_version"),
            status=LesionStatus(data["status"]),
            risk=data.get("risk"),
            risk_rule=rule.get("name") if isinstance(rule, dict) else rule,
            reason=data.get("reason"),
            clips=int(data.get("clips") or 0),
            video=VideoEntry.from_json(data.get("video") or {}),
            lesions=tuple(LesionEntry.from_json(lz) for lz in data.get("lesions") or ()),
            notice=tuple(data.get("notice") or ()),
            models=dict(data.get("models") or {}),
            timing=dict(data.get("timing") or {}),
            outputs=dict(data.get("outputs") or {}),
            data=data,
        )

    @property
    def kind(self) -> str:
        """What was scored: "video" or "still" (batch rows tell them apart by it)."""
        return self.video.kind

    @property
    def bundle(self) -> dict[str, Any]:
        """The bundle the models came from: name, version, sha256 (None for loose
        checkpoint files)."""
        bundle = self.models.get("bundle") or {}
        return {k: bundle.get(k) for k in ("name", "version", "sha256")}

    def summary(self) -> Summary:
        return Summary(
            self.video.source,
            self.status,
            self.risk,
            self.risk_rule,
            self.reason,
            self.clips,
            self.video.frames_scored,
            tuple(
                LesionSummary(
                    lz.lesion_id,
                    lz.status,
                    lz.risk,
                    lz.confidence,
                    lz.clips_used,
                    (lz.first_frame, lz.last_frame),
                )
                for lz in self.lesions
            ),
            self.bundle,
            self.notice,
            self.video.kind,
        )
