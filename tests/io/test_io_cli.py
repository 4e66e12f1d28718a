"""``sonorisk info`` through the real entry point."""

from __future__ import annotations

import json

import numpy as np

from sonorisk.cli import main
from sonorisk.data.screen_capture import make_layout, render
from sonorisk.io.writer import write_video

from .conftest import moving_frames  # noqa: TID252


def test_info_text_counts_frames_the_header_does_not_give(make_video, capsys):
    path = make_video("clip.mpg", n=30, codec="mpeg2video", fps=25)
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert str(path) in out
    assert "codec mpeg2video" in out and "size 160x120" in out
    assert "30 decoded (header gives no count)" in out
    assert "end: eof" in out


def test_info_json_for_several_files_goes_on_after_a_failure(make_video, tmp_path, capsys):
    good = make_video("a.avi", n=12, fps=30)
    bad = tmp_path / "notes.avi"
    bad.write_text("not a video\n" * 10)
    assert main(["info", str(good), str(bad), "--json"]) == 1  # one failed
    doc = json.loads(capsys.readouterr().out)
    assert [d["ok"] for d in doc] == [True, False]
    assert doc[0]["frames_decoded"] == 12 and doc[0]["meta"]["frame_count"] == 12
    assert doc[0]["meta"]["fps"] == 30 and doc[0]["stats"]["end_reason"] == "eof"
    assert doc[1]["error_type"] == "NotAVideoError" and str(bad) in doc[1]["error"]


def test_info_reports_truncation_and_drops(noisy_mjpeg, tmp_path, capsys):
    data = noisy_mjpeg.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    assert main(["info", str(cut), "--json"]) == 0  # frames were read: not a failure
    doc = json.loads(capsys.readouterr().out)[0]
    assert doc["stats"]["end_reason"] == "truncated"
    assert doc["stats"]["error_type"] == "TruncatedVideoError"
    assert 0 < doc["frames_decoded"] < 40


def _screen_capture(path, n: int, seed: int, rng_seed: int, **layout_kw):
    """A screen capture of moving frames (MJPEG AVI at ``path``) and its layout."""
    frames = moving_frames(n, 320, 240, seed=seed)
    layout = make_layout(frames[0].shape, np.random.default_rng(rng_seed), **layout_kw)
    write_video(path, (render(f, layout) for f in frames), 30.0, "mjpeg")
    return layout


def _info_region(path, capsys) -> dict:
    assert main(["info", str(path), "--crop", "--json"]) == 0
    return json.loads(capsys.readouterr().out)[0]["scan_region"]


def test_info_crop_finds_the_scan_region(tmp_path, capsys):
    path = tmp_path / "screen.avi"
    layout = _screen_capture(path, 16, 3, 0, shape="linear", calipers=False)
    region = _info_region(path, capsys)
    assert region["kind"] == "linear"
    box, want = region["box"], layout.region
    ix = max(0, min(box[2], want[2]) - max(box[0], want[0]))
    iy = max(0, min(box[3], want[3]) - max(box[1], want[1]))
    area = (box[2] - box[0]) * (box[3] - box[1]) + (want[2] - want[0]) * (want[3] - want[1])
    assert ix * iy / (area - ix * iy) >= 0.9, (box, want)
    assert main(["info", str(path), "--crop"]) == 0
    assert "scan region: linear" in capsys.readouterr().out


def test_info_missing_file_exit_code_and_message(tmp_path, capsys):
    missing = tmp_path / "gone.mp4"
    assert main(["info", str(missing)]) == 1
    err = capsys.readouterr().err
    assert str(missing) in err and "no such file" in err and "VideoNotFoundError" in err


class _NoBoxes:
    """A detector that finds nothing: the scan region is all this test reads."""

    info = {"kind": "no boxes (test)"}

    def predict(self, images, frame_indices=None):
        return [[] for _ in images]


def test_info_reports_the_region_score_crops_to(tmp_path, capsys):
    """`info --crop` and the scorer sample one way (RegionSampler): one region."""
    from types import SimpleNamespace

    from sonorisk.models.load import ScoringModels
    from sonorisk.pipeline.config import PipelineConfig
    from sonorisk.pipeline.score_file import score_file
    from sonorisk.video_classifier.clips import ClipConfig

    path = tmp_path / "screen.avi"
    _screen_capture(path, 60, 4, 1, shape="convex", calipers=True)
    region = _info_region(path, capsys)
    assert region["cropped"] is True
    classifier = SimpleNamespace(clip_config=ClipConfig())  # never called: no box, no clip
    models = ScoringModels(_NoBoxes(), classifier, cards={})
    document = score_file(path, models, PipelineConfig(), tmp_path / "out", progress=False)
    scored = document["video"]["scan_region"]
    assert scored is not None
    assert (scored["box"], scored["kind"], scored["frames_used"]) == (
        region["box"],
        region["kind"],
        region["frames_used"],
    )
