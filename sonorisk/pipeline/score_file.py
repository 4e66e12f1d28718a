"""Score one video file end to end: decode, push every frame, write the outputs.

The same ``IncrementalScorer`` the live server drives; a file is a finite
stream. Every output is made by a sink from the frames and events passing the
scorer (``sinks.py``): the scoring JSON is the fold of the events
(``fold.py``); the overlay video is fed the frames as they pass; heatmap strips
come from the folded result. Outputs per video (``OUT/<stem>``): the JSON,
optionally the overlay and heatmaps. Models come from
``sonorisk.models.load_models`` (re-exported here).
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, TypedDict, Unpack

from tqdm import tqdm

from sonorisk.config import to_dict
from sonorisk.errors import InputError, ScoringTimeout
from sonorisk.io import open_video
from sonorisk.models.load import ScoringModels, load_models
from sonorisk.pipeline.config import PipelineConfig
from sonorisk.pipeline.document import ScoreDocument
from sonorisk.pipeline.fold import ScoreFold
from sonorisk.pipeline.report import write_report
from sonorisk.pipeline.scorer import IncrementalScorer
from sonorisk.pipeline.sinks import OverlayWriter, Sink, Sinks
from sonorisk.pipeline.visualize import write_heatmaps

log = logging.getLogger(__name__)

__all__ = [
    "ScoringModels",
    "ScoringTimeout",
    "load_models",
    "score_file",
    "score_path",
    "summary_line",
]


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
    fold = ScoreFold(config.lesions)
    overlay_name = f"{stem}.overlay.mp4"
    writer: OverlayWriter | None = None
    try:
        with open_video(path, color="rgb") as source:
            meta = source.meta
            scorer = IncrementalScorer(models.detector, models.classifier, config, fps=meta.fps)
            sink_list: list[Sink] = [fold]
            if overlay:
                writer = OverlayWriter(out_dir / overlay_name, meta.fps or 30.0)
                sink_list.append(writer)
            sinks = Sinks(sink_list)
            bar = tqdm(
                source,
                total=meta.frame_count,
                unit="frame",
                desc=path.name,
                disable=not progress,
                leave=False,
            )
            # ``pace``: frame i is pushed no sooner than i / (fps x pace) s in.
            interval = 1.0 / ((meta.fps or 30.0) * config.pace) if config.pace else 0.0
            fed = time.perf_counter()
            try:
                for i, frame in enumerate(bar):
                    if interval:
                        time.sleep(max(0.0, fed + i * interval - time.perf_counter()))
                    if deadline is not None and time.monotonic() > deadline:
                        raise ScoringTimeout(
                            path,
                            f"still scoring at frame {frame.index} when "
                            "its time ran out (jobs.timeout_s)",
                        )
                    sinks.frame(frame)
                    sinks.events(scorer.push(frame))
                sinks.events(scorer.finish())
            except InputError as exc:
                # The scorer names only the frame (e.g. where the frame size changed):
                # name the file too. The source's errors name it already, typed.
                if exc.source != str(path):
                    raise InputError(path, f"{exc.source}: {exc.reason}") from exc
                raise
            finally:
                scorer.close()  # a model call in flight ends before the error goes up
            decode = source.stats.as_dict()
        if scorer.timing.frames == 0:
            raise InputError(path, "no decodable frame: nothing to score")
        result = fold.result()
        wall = time.perf_counter() - started

        outputs: dict[str, str] = {}
        heatmap_files = write_heatmaps(result, out_dir, stem) if heatmaps else {}
        if writer is not None:
            writer.write(result)
            outputs["overlay"] = overlay_name
    finally:
        if writer is not None:
            writer.close()
    document = fold.document(
        meta,
        models=models.cards,
        pipeline_config=to_dict(config),
        decode=decode,
        wall_s=wall,
        heatmaps=heatmap_files,
        outputs=outputs,
    )
    write_report(document, out_dir / f"{stem}.json")
    log.info(
        "%s: %s, risk %s (%d clips, %d lesions) in %.1f s",
        path.name,
        document["status"],
        "n/a" if result.risk is None else f"{result.risk:.3f}",
        result.clips,
        len(result.lesions),
        wall,
    )
    return document


class ScoreOptions(TypedDict, total=False):
    """``score_file``'s keywords (``score_path`` passes them on as they are)."""

    overlay: bool
    heatmaps: bool
    progress: bool
    stem: str | None
    deadline: float | None


def score_path(
    path: str | Path,
    models: ScoringModels,
    config: PipelineConfig,
    out_dir: str | Path,
    **options: Unpack[ScoreOptions],
) -> dict[str, Any]:
    """Score a video or a still image, told apart by the file's bytes (``is_still``:
    PNG/JPEG/TIFF/BMP, or a DICOM with one frame): ``score_file`` or
    ``sonorisk.pipeline.still.score_still``, same arguments, same document schema.
    Every entry point (``sonorisk score``, batch, service jobs) calls this."""
    from sonorisk.io.still import is_still

    if is_still(path):  # a URL or a missing file is no still: the video path says why
        from sonorisk.pipeline.still import score_still

        return score_still(path, models, config, out_dir, **options)
    return score_file(path, models, config, out_dir, **options)


def summary_line(document: dict[str, Any]) -> str:
    """The one-line summary ``sonorisk score`` prints (``ScoreDocument.summary``)."""
    return ScoreDocument.from_json(document).summary().line()
