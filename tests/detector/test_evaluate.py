from __future__ import annotations

import pytest

from sonorisk.detector.evaluate import evaluate_detector, format_evaluation
from sonorisk.detector.reference import ReferenceDetector
from sonorisk.detector.samples import load_samples


@pytest.fixture(scope="module")
def video_samples(tmp_path_factory: pytest.TempPathFactory) -> list:
    from sonorisk.data.synth import synthesize_phantom

    out = tmp_path_factory.mktemp("evalds")
    ds = synthesize_phantom(
        3, out / "ds", seed=2, frames=30, size=(128, 96), proportions={"benign": 2, "normal": 1}
    )
    return load_samples(ds)


class KeyedReference(ReferenceDetector):
    """Answers per sample key (video, frame): the evaluation reads frames in order."""

    def __init__(self, samples: list, extra_on_free: int) -> None:
        super().__init__({})
        self.queue = []
        for s in samples:
            boxes = [tuple(map(float, b)) for b in s.boxes]
            if s.lesion_free:
                boxes = [(1.0, 1.0, 11.0, 11.0)] * extra_on_free
            self.queue.append(boxes)

    def predict(self, images, frame_indices=None):
        out = []
        for _ in images:
            self.boxes = {0: self.queue.pop(0)}
            out += super().predict([None], [0])
        return out


def test_perfect_detector_scores_and_fp_per_minute(video_samples: list):
    clean = evaluate_detector(KeyedReference(video_samples, 0), video_samples, 0.5)
    assert clean.ap50 == pytest.approx(1.0) and clean.ap == pytest.approx(1.0)
    assert clean.per_video_detection_rate  # lesion videos, each fully detected
    assert all(r == 1.0 for r in clean.per_video_detection_rate.values())
    assert clean.false_positives_per_minute == 0.0

    noisy = evaluate_detector(KeyedReference(video_samples, 1), video_samples, 0.5)
    lesion_videos = {s.video_id for s in video_samples if not s.lesion_free}
    free = [s for s in video_samples if s.video_id not in lesion_videos]
    # Only the normal video counts (not the out-of-view frames of lesion videos):
    # one box on each of its frames at 30 fps = 1800 false positives a minute.
    assert noisy.lesion_free_video_frames == len(free) == 30
    assert noisy.false_positives_per_minute == pytest.approx(1800.0)
    assert noisy.ap50 < clean.ap50  # equally confident false positives cost precision
    text = format_evaluation(noisy)
    assert "per-video detection rate" in text and "false positives per minute" in text


def test_missing_everything_gives_zero(video_samples: list):
    detector = ReferenceDetector({})  # finds nothing
    result = evaluate_detector(detector, video_samples, score_thresh=0.5)
    assert result.ap50 == 0.0
    assert all(r == 0.0 for r in result.per_video_detection_rate.values())
    assert result.false_positives_per_minute == 0.0
