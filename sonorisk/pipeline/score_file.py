"""Score one video file end to end: decode, push every frame, write the outputs.

The same ``IncrementalScorer`` the live server drives; a file is a finite
stream. Outputs per video (``OUT/<stem>``): the scoring JSON, optionally an
overlay video and heatmap strips. Models come from
``sonorisk.models.load_models`` (re-exported here).
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from tqdm import tqdm

from sonorisk.config import to_dict
from sonorisk.errors import InputError, ScoringTimeout
from sonorisk.io import open_video
from sonorisk.models.load import ScoringModels, load_models
from sonorisk.pipeline.config import PipelineConfig
from sonorisk.pipeline.report import build_report, write_report
from sonorisk.pipeline.scorer import IncrementalScorer
from sonorisk.pipeline.visualize import heatmap_strip, write_overlay, write_png

log = logging.getLogger(__name__)

__all__ = ["ScoringModels", "ScoringTimeout", "load_models", "score_file", "summary_line"]


def score_file(
    path: str | Path,
    models: ScoringModels,
    config: PipelineConfig,
    out_dir: str | Path,
    *,
    overlay: bool = False,
    heatmaps: bool = False,
    progress: bool = True,
    stem: str | None = None,
    deadline: float | None = None,
) -> dict[str, Any]:
    """Score ``path``; write ``OUT/<stem>.json`` (+ overlay, heatmaps). Returns the document.

    ``stem``: the output name (default: the file's stem; several inputs into one
    folder get distinct ones from :func:`sonorisk.pipeline.output_names.output_stems`).
    ``deadline``: a ``time.monotonic()`` value; scoring still going then stops with
    :class:`ScoringTimeout` (checked between frames).
    """
    path = Path(path)
    out_dir = Path(out_dir)
    stem = stem or path.stem
    if heatmaps and not config.heatmaps:
        config = replace(config, heatmaps=True)
    started = time.perf_counter()
    with open_video(path, color="rgb") as source:
        meta = source.meta
        scorer = IncrementalScorer(models.detector, models.classifier, config, fps=meta.fps)
        bar = tqdm(source, total=meta.frame_count, unit="frame", desc=path.name,
                   disable=not progress, leave=False)
        try:
            for frame in bar:
                if deadline is not None and time.monotonic() > deadline:
                    raise ScoringTimeout(path, f"still scoring at frame {frame.index} when its "
                                               "time ran out (jobs.timeout_s)")
                scorer.push(frame)
            scorer.finish()
        except InputError as exc:
            # The scorer names only the frame (e.g. where the frame size changed):
            # name the file too. The source's errors name it already, typed.
            if exc.source != str(path):
                raise InputError(path, f"{exc.source}: {exc.reason}") from exc
            raise
        decode = source.stats.as_dict()
    if scorer.timing.frames == 0:
        raise InputError(path, "no decodable frame: nothing to score")
    result = scorer.result()
    wall = time.perf_counter() - started

    outputs: dict[str, str] = {}
    heatmap_files: dict[tuple[int, int], str] = {}
    if heatmaps:
        for lesion in result.lesions:
            for score in lesion.scores:
                crops = lesion.crops.get(score.clip_index)
                if crops is None or score.heatmap is None:
                    continue
                name = f"{stem}.heatmaps/lesion{lesion.lesion_id}_clip{score.clip_index}.png"
                write_png(out_dir / name, heatmap_strip(crops, score.heatmap))
                heatmap_files[(lesion.lesion_id, score.clip_index)] = name
    if overlay:
        name = f"{stem}.overlay.mp4"
        with open_video(path, color="rgb") as source:
            write_overlay(out_dir / name, source, list(result.lesions), result.risk,
                          meta.fps or 30.0)
        outputs["overlay"] = name
    document = build_report(
        result, meta, models=models.cards, pipeline_config=to_dict(config),
        decode=decode, wall_s=wall, heatmaps=heatmap_files, outputs=outputs,
    )
    write_report(document, out_dir / f"{stem}.json")
    log.info("%s: %s, risk %s (%d clips, %d lesions) in %.1f s", path.name, document["status"],
             "n/a" if result.risk is None else f"{result.risk:.3f}", result.clips,
             len(result.lesions), wall)
    return document


def _risk_text(risk: float | None) -> str:
    return "n/a" if risk is None else f"{risk:.3f}"


def summary_line(document: dict[str, Any]) -> str:
    def lesion_text(lz: dict[str, Any]) -> str:
        where = f"frames {lz['first_frame']}-{lz['last_frame']}"
        confidence = lz.get("confidence")
        sure = f", confidence {confidence:.2f}" if confidence is not None else ""
        if lz["status"] == "candidate":
            return f"lesion {lz['lesion_id']}: candidate, not scored ({where}{sure})"
        return (f"lesion {lz['lesion_id']}: {_risk_text(lz['risk'])} ({lz['clips_used']} clips, "
                f"{where}{sure})")

    lesions = ", ".join(lesion_text(lz) for lz in document["lesions"]) or "no lesion track"
    shown = (f"no scorable lesion ({document.get('reason') or 'no lesion'})"
             if document["risk"] is None else f"risk {_risk_text(document['risk'])}")
    return f"{Path(document['video']['source']).name}: {shown} [{lesions}]"
