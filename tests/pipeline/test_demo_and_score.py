"""End to end: `sonorisk demo --quick` trains real (tiny) models on phantom sweeps,
scores videos, and every output is valid, traceable and honest."""

from __future__ import annotations

import json
from pathlib import Path

import av
import cv2
import jsonschema
import pytest

from sonorisk.cli import main
from sonorisk.pipeline.report import load_schema


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    assert (
        main(["demo", "--train", "--quick", "--out", str(out), "--no-progress", "--threads", "1"])
        == 0
    )
    return out


def _documents(demo_dir: Path) -> list[dict]:
    docs = [json.loads(p.read_text()) for p in sorted((demo_dir / "scores").glob("*.json"))]
    assert len(docs) == 3
    return docs


def test_every_document_follows_the_schema(demo_dir: Path) -> None:
    schema = load_schema()
    for doc in _documents(demo_dir):
        jsonschema.validate(doc, schema)


def test_every_output_says_it_is_a_demonstration(demo_dir: Path) -> None:
    report = (demo_dir / "REPORT.md").read_text()
    assert "DEMONSTRATION" in report and "not a clinical result" in report
    for doc in _documents(demo_dir):
        notices = " ".join(doc["notice"])
        assert "not a clinical result" in notices
        assert "DEMONSTRATION" in notices
        assert doc["models"]["detector"]["demonstration"] is True
        assert doc["models"]["classifier"]["demonstration"] is True
        assert doc["models"]["classifier"]["trained_on_synthetic_data"] is True


def _assert_traceable(doc: dict) -> int:
    """Every risk is the mean of its clips, every clip 8 boxed frames; the clip count."""
    probabilities = []
    for lesion in doc["lesions"]:
        clips = lesion["clips"]
        boxed = {b["frame"] for b in lesion["boxes"]}
        for clip in clips:
            frames = clip["frame_indices"]
            assert len(frames) == 8 and frames == list(range(frames[0], frames[0] + 8))
            assert set(frames) <= boxed  # every clip frame has its box
            probabilities.append(clip["probability"])
        if clips:
            mean = sum(c["probability"] for c in clips) / len(clips)
            assert lesion["risk"] == pytest.approx(mean)
        else:
            assert lesion["risk"] is None
    if probabilities:
        assert doc["status"] == "scored"
        assert doc["risk"] == pytest.approx(sum(probabilities) / len(probabilities))
    else:  # never an invented number
        assert doc["status"] == "no scorable lesion" and doc["risk"] is None
    return len(probabilities)


@pytest.fixture(scope="module")
def true_box_scores(demo_dir: Path, tmp_path_factory) -> tuple[dict, Path]:
    """The demo's malignant sweep scored with heatmaps by the demo's real classifier
    and its true boxes as the detector (a test double for that stage only): clips
    are certain to exist, where the quick demo's own detector may find none."""
    from sonorisk.pipeline.config import PipelineConfig
    from sonorisk.pipeline.score_file import score_file

    from .conftest import BoxDetector

    record, _, models = _malignant_with_true_boxes(demo_dir, BoxDetector)
    out = tmp_path_factory.mktemp("true-boxes")
    doc = score_file(
        demo_dir / "videos" / record.file,
        models,
        PipelineConfig(crop="none"),
        out,
        heatmaps=True,
        progress=False,
    )
    return doc, out


def test_risks_trace_to_clips_and_frames(demo_dir: Path, true_box_scores) -> None:
    for doc in _documents(demo_dir):
        _assert_traceable(doc)
    doc, _ = true_box_scores
    assert _assert_traceable(doc) > 0 and doc["status"] == "scored"


def test_a_video_with_no_box_gets_no_number(demo_dir: Path, tmp_path: Path) -> None:
    """The other branch, made certain: a detector that finds nothing (test double)."""
    from sonorisk.pipeline.config import PipelineConfig
    from sonorisk.pipeline.score_file import score_file

    from .conftest import BoxDetector

    record, _, models = _malignant_with_true_boxes(demo_dir, BoxDetector)
    models.detector = BoxDetector({})
    doc = score_file(
        demo_dir / "videos" / record.file,
        models,
        PipelineConfig(crop="none"),
        tmp_path,
        progress=False,
    )
    assert _assert_traceable(doc) == 0
    assert doc["status"] == "no scorable lesion" and doc["risk"] is None and doc["clips"] == 0


def test_overlays_decode_with_pyav(demo_dir: Path) -> None:
    for doc in _documents(demo_dir):
        overlay = demo_dir / "scores" / doc["outputs"]["overlay"]
        with av.open(str(overlay)) as container:
            frames = sum(1 for _ in container.decode(video=0))
        assert frames == doc["video"]["frames_scored"]


def test_heatmap_strips_exist_for_every_clip(demo_dir: Path, true_box_scores) -> None:
    doc, out = true_box_scores
    strips = [
        (demo_dir / "scores", c)
        for d in _documents(demo_dir)
        for lesion in d["lesions"]
        for c in lesion["clips"]
    ]
    strips += [(out, c) for lesion in doc["lesions"] for c in lesion["clips"]]
    assert strips  # the true-box document has clips, so this checks something
    for folder, clip in strips:
        image = cv2.imread(str(folder / clip["heatmap"]))
        assert image is not None
        height, width = image.shape[:2]
        assert width == 4 * height  # 8 crops wide, 2 rows (crops, heatmaps)


def test_score_verb_goes_on_after_a_bad_file(demo_dir: Path, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "notes.avi"
    bad.write_text("not a video")
    good = next((demo_dir / "videos" / "videos").glob("*.avi"))
    code = main(
        [
            "score",
            str(bad),
            str(good),
            "--models",
            str(demo_dir / "models"),
            "--out",
            str(tmp_path / "out"),
            "--no-progress",
        ]
    )
    captured = capsys.readouterr()
    assert code == 1
    assert "notes.avi" in captured.err
    assert (tmp_path / "out" / f"{good.stem}.json").is_file()
    assert not (tmp_path / "out" / "notes.json").exists()


def test_score_of_two_files_with_one_name_writes_two_results(
    demo_dir: Path, tmp_path: Path, capsys
) -> None:
    import shutil

    videos = sorted((demo_dir / "videos" / "videos").glob("*.avi"))[:2]
    copies = []
    for k, video in enumerate(videos):
        (tmp_path / f"c{k}").mkdir()
        copies.append(shutil.copy(video, tmp_path / f"c{k}" / "v.avi"))
    assert (
        main(
            [
                "score",
                *map(str, copies),
                "--models",
                str(demo_dir / "models"),
                "--out",
                str(tmp_path / "out"),
                "--no-progress",
            ]
        )
        == 0
    )
    written = sorted((tmp_path / "out").glob("*.json"))
    assert len(written) == 2  # not one v.json holding the second result
    sources = {json.loads(p.read_text())["video"]["source"] for p in written}
    assert sources == {str(c) for c in copies}


def test_score_without_models_says_how_to_get_them(tmp_path: Path, capsys, monkeypatch) -> None:
    from sonorisk.models import store

    # A machine with no default bundle (none bundled, none installed).
    monkeypatch.setattr(store, "BUNDLED_DIR", tmp_path / "bundled")
    monkeypatch.setenv(store.ENV_MODELS, str(tmp_path / "models"))
    monkeypatch.delenv(store.ENV_DEFAULT, raising=False)
    video = tmp_path / "v.avi"
    video.write_bytes(b"")
    assert main(["score", str(video)]) == 2
    err = capsys.readouterr().err
    assert "--models" in err
    assert "sonorisk models install" in err and "sonorisk demo" in err


def _malignant_with_true_boxes(demo_dir: Path, detector_type: type):
    """The demo's malignant video, its true boxes, and models: the demo's real
    classifier with ``detector_type(true boxes)`` as the detector."""
    from sonorisk.data import load_dataset
    from sonorisk.pipeline.score_file import ScoringModels
    from sonorisk.video_classifier.registry import load_classifier, model_card

    dataset = load_dataset(demo_dir / "videos")
    record = next(r for r in dataset.videos if r.pathology == "malignant")
    truth = dataset.boxes_for(record.video_id)
    dataset.close()
    classifier = load_classifier(demo_dir / "models" / "classifier.pt")
    models = ScoringModels(
        detector_type(truth),
        classifier,
        {"detector": {"kind": "ground truth (test)"}, "classifier": model_card(classifier)},
    )
    return record, truth, models


def test_score_file_writes_heatmaps_and_overlay_for_every_clip(
    demo_dir: Path, tmp_path: Path
) -> None:
    """With the demo's real classifier and the videos' true boxes as the detector
    (a test double for that stage only), clips are certain to exist."""
    from sonorisk.pipeline.config import PipelineConfig
    from sonorisk.pipeline.score_file import score_file

    from .conftest import BoxDetector

    record, truth, models = _malignant_with_true_boxes(demo_dir, BoxDetector)
    classifier = models.classifier
    doc = score_file(
        demo_dir / "videos" / record.file,
        models,
        PipelineConfig(crop="none"),
        tmp_path,
        overlay=True,
        heatmaps=True,
        progress=False,
    )
    jsonschema.validate(doc, load_schema())
    clips = [c for lesion in doc["lesions"] for c in lesion["clips"]]
    visible = [i for i, boxes in truth.items() if boxes]
    assert doc["status"] == "scored" and len(clips) >= (len(visible) // 8) - 1 >= 1
    for clip in clips:
        strip = cv2.imread(str(tmp_path / clip["heatmap"]))
        size = classifier.config.clips.crop_size
        assert strip.shape[:2] == (2 * size, 8 * size)
    with av.open(str(tmp_path / doc["outputs"]["overlay"])) as container:
        assert sum(1 for _ in container.decode(video=0)) == doc["video"]["frames_scored"]
    assert "not a clinical result" in " ".join(doc["notice"])


def test_score_file_stops_at_its_deadline(demo_dir: Path) -> None:
    """A job's time limit (issue 15): checked between frames, named, never retried."""
    import time

    from sonorisk.errors import ScoringTimeout
    from sonorisk.pipeline.config import PipelineConfig
    from sonorisk.pipeline.score_file import score_file

    from .conftest import BoxDetector

    class SlowDetector(BoxDetector):
        def predict(self, images, frame_indices=None):
            time.sleep(0.05)
            return super().predict(images, frame_indices)

    record, _, models = _malignant_with_true_boxes(demo_dir, SlowDetector)
    video = demo_dir / "videos" / record.file
    with pytest.raises(ScoringTimeout) as err:
        score_file(
            video,
            models,
            PipelineConfig(crop="none"),
            demo_dir / "late",
            progress=False,
            deadline=time.monotonic() + 0.3,
        )
    frame = int(str(err.value).split("at frame ")[1].split()[0])
    assert str(video) in str(err.value) and 0 < frame < record.n_frames - 1
    assert not (demo_dir / "late").exists()  # no partial result written
