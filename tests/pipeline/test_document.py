"""The typed score document and its one summary (the CLI line, job and stream
summaries, batch rows all read it)."""

from __future__ import annotations

from sonorisk.pipeline.document import ScoreDocument
from sonorisk.pipeline.score_file import summary_line
from sonorisk.records import LesionStatus


def _lesion(
    lesion_id: int,
    status: str,
    risk: float | None,
    clips: int,
    confidence: float | None,
    frames: tuple[int, int],
) -> dict:
    clip = {
        "clip_index": 0,
        "frame_indices": list(range(frames[0], frames[0] + 8)),
        "frame_range": [frames[0], frames[0] + 7],
        "time_range_s": None,
        "probability": risk,
        "class_probabilities": {},
        "lesion_probability": None,
        "heatmap": "v.heatmaps/lesion1_clip0.png" if risk is not None else None,
    }
    return {
        "lesion_id": lesion_id,
        "status": status,
        "risk": risk,
        "confidence": confidence,
        "clips_used": clips,
        "first_frame": frames[0],
        "last_frame": frames[1],
        "clips": [clip],
    }


DOC = {
    "schema": "sonorisk.score",
    "schema_version": 1,
    "status": "scored",
    "risk": 0.8125,
    "risk_rule": {"name": "most_confident_lesion", "text": "...", "min_confidence": 0.5},
    "reason": None,
    "clips": 3,
    "notice": ["research only"],
    "video": {
        "source": "/data/in/sweep.avi",
        "frames_scored": 90,
        "fps": 30.0,
        "duration_s": 3.0,
        "decode": {"error": None},
    },
    "lesions": [
        _lesion(1, "scored", 0.8125, 3, 0.91, (4, 40)),
        _lesion(3, "candidate", None, 0, 0.2, (50, 60)),
    ],
    "models": {
        "bundle": {
            "name": "sonorisk-busi",
            "version": "1.2.0",
            "sha256": "ab" * 32,
            "where": "bundled",
        }
    },
    "timing": {"realtime_factor": 2.5},
    "outputs": {},
}


def test_the_cli_line_names_the_risk_and_every_lesion() -> None:
    assert summary_line(DOC) == (
        "sweep.avi: risk 0.812 [lesion 1: 0.812 (3 clips, frames 4-40, confidence 0.91), "
        "lesion 3: candidate, not scored (frames 50-60, confidence 0.20)]"
    )
    none = {
        **DOC,
        "status": "no scorable lesion",
        "risk": None,
        "lesions": [],
        "reason": "no lesion found",
    }
    assert summary_line(none) == "sweep.avi: no scorable lesion (no lesion found) [no lesion track]"


def test_one_summary_shape_for_jobs_and_streams() -> None:
    doc = ScoreDocument.from_json(DOC)
    assert doc.status is LesionStatus.SCORED and doc.risk_rule == "most_confident_lesion"
    assert doc.lesions[1].status is LesionStatus.CANDIDATE
    assert doc.lesions[0].clips[0].heatmap == "v.heatmaps/lesion1_clip0.png"
    summary = doc.summary().as_dict()
    assert summary == {
        "status": "scored",
        "risk": 0.8125,
        "risk_rule": "most_confident_lesion",
        "reason": None,
        "clips": 3,
        "frames": 90,
        "scored_lesions": 1,
        "lesions": [
            {
                "lesion_id": 1,
                "status": "scored",
                "risk": 0.8125,
                "confidence": 0.91,
                "clips": 3,
                "frames": [4, 40],
            },
            {
                "lesion_id": 3,
                "status": "candidate",
                "risk": None,
                "confidence": 0.2,
                "clips": 0,
                "frames": [50, 60],
            },
        ],
        "models": {"name": "sonorisk-busi", "version": "1.2.0", "sha256": "ab" * 32},
        "notice": ["research only"],
    }


def test_a_document_without_optional_parts_still_reads() -> None:
    bare = {
        "status": "scored",
        "risk": 0.5,
        "clips": 1,
        "lesions": [],
        "video": {"frames_scored": 8},
        "notice": ["research"],
    }
    summary = ScoreDocument.from_json(bare).summary()
    assert summary.risk == 0.5 and summary.frames == 8 and summary.scored_lesions == 0
    assert summary.models == {"name": None, "version": None, "sha256": None}
