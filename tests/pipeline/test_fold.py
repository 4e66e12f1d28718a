"""The score document is a fold of the scorer's events: folding the events gives
the scorer's own result and the same document, in every case the scorer knows
(merged duplicates, a lesion that comes back, bridged gaps, propagated boxes,
withdrawn flicker, heatmaps)."""

from __future__ import annotations

import jsonschema
import pytest

from sonorisk.config import to_dict
from sonorisk.models.load import scoring_cards
from sonorisk.pipeline import IncrementalScorer, PipelineConfig
from sonorisk.pipeline.events import ClipScored, LesionEnded, VideoEnded
from sonorisk.pipeline.fold import ScoreFold
from sonorisk.pipeline.report import build_report, load_schema
from sonorisk.records import VideoMeta

from .conftest import BoxDetector, blob_video

META = VideoMeta("blobs.avi", 96, 96, 30.0, 60, "ffv1", 2.0)


def _scenario(name: str):
    """(frames, detector boxes, config) of one case."""
    config = PipelineConfig(crop="none")
    if name == "two lesions":
        frames, boxes = blob_video(60, list(range(0, 32)) + list(range(40, 56)))
        for i in range(40, 56):
            boxes[i] = [(60.0, 5.0, 80.0, 25.0)]
    elif name == "duplicates":  # two boxes on one lesion: two tracks, merged
        frames, boxes = blob_video(40, range(0, 32))
        boxes = {
            i: bs + [(b[0] + 3, b[1] + 3, b[2] - 3, b[3] - 3) for b in bs]
            for i, bs in boxes.items()
        }
    elif name == "comes back":  # out of view for 60 frames, back at the same place: merged
        frames, boxes = blob_video(110, [*range(0, 24), *range(84, 108)])
        boxes = {i: [(30.0, 38.0, 50.0, 58.0)] for i in boxes}
    elif name == "gap":  # bridged by interpolated boxes
        frames, boxes = blob_video(40, [i for i in range(32) if i not in (12, 13, 14)])
    elif name == "keyframes":  # propagated boxes between keyframes
        frames, boxes = blob_video(40, range(40))
        config.tracking.keyframe_interval = 4
    elif name == "flicker and a lesion":  # a two-frame track: confirmed, then dropped
        frames, boxes = blob_video(40, range(5, 30))
        boxes[34] = boxes[35] = [(60.0, 60.0, 80.0, 80.0)]
    elif name == "heatmaps":
        frames, boxes = blob_video(30, range(2, 26))
        config.heatmaps = True
    else:  # "nothing"
        frames, boxes = blob_video(20, [])
    return frames, boxes, config


CASES = [
    "two lesions",
    "duplicates",
    "comes back",
    "gap",
    "keyframes",
    "flicker and a lesion",
    "heatmaps",
    "nothing",
]


@pytest.mark.parametrize("case", CASES)
def test_the_fold_of_the_events_is_the_scorers_result_and_document(tiny_i3d, case) -> None:
    frames, boxes, config = _scenario(case)
    scorer = IncrementalScorer(BoxDetector(boxes), tiny_i3d, config, fps=30.0)
    fold = ScoreFold(config.lesions)
    for frame in frames:
        fold.events(scorer.push(frame))
    assert not fold.ended
    fold.events(scorer.finish())
    assert fold.ended

    direct, folded = scorer.result(), fold.result()
    assert folded.risk == direct.risk and folded.status is direct.status
    assert [r.lesion_id for r in folded.lesions] == [r.lesion_id for r in direct.lesions]
    for a, b in zip(folded.lesions, direct.lesions, strict=True):
        assert a.boxes == b.boxes and a.scores == b.scores
        assert a.merged_ids == b.merged_ids and a.candidate == b.candidate
        assert sorted(a.crops) == sorted(b.crops)

    models = scoring_cards({"kind": "ground-truth boxes (test)"}, {"kind": "tiny i3d"}, None)
    kwargs = {"models": models, "pipeline_config": to_dict(config), "wall_s": 1.0}
    expected = build_report(direct, META, **kwargs)
    document = fold.document(META, **kwargs)
    jsonschema.validate(document, load_schema())
    for doc in (expected, document):
        doc.pop("created_at")
    assert document == expected


def test_the_cases_cover_what_the_fold_must_rebuild(tiny_i3d) -> None:
    """The cases above are not vacuous: they hold merged, interpolated, propagated
    and back-filled boxes, a dropped track, and crops for heatmaps."""
    seen: dict[str, set] = {"sources": set(), "merged": set(), "dropped": set(), "crops": set()}
    for case in CASES:
        frames, boxes, config = _scenario(case)
        scorer = IncrementalScorer(BoxDetector(boxes), tiny_i3d, config, fps=30.0)
        events = [e for f in frames for e in scorer.push(f)] + scorer.finish()
        assert isinstance(events[-1], VideoEnded) and events[-1].frames == len(frames)
        for lesion in scorer.result().lesions:
            seen["sources"] |= {b.source for b in lesion.boxes.values()}
            if lesion.merged_ids:
                seen["merged"].add(case)
        seen["dropped"] |= {case for e in events if isinstance(e, LesionEnded) and e.dropped}
        seen["crops"] |= {case for e in events if isinstance(e, ClipScored) and e.crops is not None}
    assert seen["sources"] >= {"detector", "propagated", "interpolated", "backfilled"}
    assert seen["merged"] == {"duplicates", "comes back"}
    assert "flicker and a lesion" in seen["dropped"]
    assert seen["crops"] == {"heatmaps"}


def test_a_fold_before_the_end_has_no_result() -> None:
    from sonorisk.pipeline.lesions import LesionRules

    with pytest.raises(RuntimeError, match="not ended"):
        ScoreFold(LesionRules()).result()
