"""The memory budget: frames too large to score are refused on the first frame."""

from __future__ import annotations

import numpy as np
import pytest

from sonorisk.config import load_config
from sonorisk.errors import ConfigError, InputError
from sonorisk.pipeline.budget import bytes_per_pixel, check_memory, estimate_mb, frames_held
from sonorisk.pipeline.config import PipelineConfig
from sonorisk.pipeline.scorer import IncrementalScorer
from sonorisk.records import Frame

from .conftest import BoxDetector, blob_video


def test_the_estimate_grows_with_the_pixels_and_the_error_says_what_fits():
    assert estimate_mb(2000, 1000) - estimate_mb(1000, 1000) == pytest.approx(
        bytes_per_pixel()
    )  # 1 MP more costs bytes_per_pixel() MB
    check_memory(1920, 1080, 4096, "v.avi")  # a screen capture fits the default
    check_memory(8000, 8000, None, "v.avi")  # no budget, no refusal
    with pytest.raises(InputError) as err:
        check_memory(8000, 8000, 4096, "v.avi")
    reason = str(err.value)
    assert "8000x8000" in reason and "4,096 MB" in reason and "memory_budget_mb" in reason
    side = int(reason.split("up to about ")[1].split("x")[0].replace(",", ""))
    check_memory(side, side, 4096, "v.avi")  # what the message says fits, fits
    with pytest.raises(InputError):
        check_memory(side + 20, side + 20, 4096, "v.avi")


def test_the_scorer_refuses_before_holding_any_frame(tiny_i3d):
    frames, boxes = blob_video(3, visible=[0, 1, 2], size=96)
    # A budget just under what 96x96 frames need, and one just over it.
    need = estimate_mb(96, 96)
    tight = PipelineConfig(memory_budget_mb=need - 0.1)
    scorer = IncrementalScorer(BoxDetector(boxes), tiny_i3d, tight, fps=30.0)
    with pytest.raises(InputError, match="96x96 frames need about"):
        scorer.push(frames[0])
    assert scorer.timing.frames == 0
    roomy = IncrementalScorer(
        BoxDetector(boxes), tiny_i3d, PipelineConfig(memory_budget_mb=need + 0.1), fps=30.0
    )
    roomy.push(frames[0])
    assert roomy.timing.frames == 1


def test_the_default_budget_refuses_the_8000_pixel_upload_of_issue_15(tiny_i3d):
    scorer = IncrementalScorer(BoxDetector({}), tiny_i3d, PipelineConfig(), fps=30.0)
    # Only the first frame is made: the refusal comes before any work on it.
    huge = Frame(0, 0.0, np.zeros((8000, 8000), np.uint8))
    with pytest.raises(InputError, match="8000x8000"):
        scorer.push(huge)


def test_a_budget_must_be_positive():
    with pytest.raises(ConfigError, match="memory_budget_mb"):
        PipelineConfig(memory_budget_mb=0).validate()
    PipelineConfig(memory_budget_mb=None).validate()


def test_the_estimate_counts_the_frames_the_settings_hold(tiny_i3d):
    from pathlib import Path

    default = PipelineConfig()
    cpu = load_config(PipelineConfig, Path(__file__).parents[2] / "configs" / "pipeline-cpu.yaml")
    one_at_a_time = PipelineConfig(overlap=False)
    # Sparser keyframes and two batches in flight hold more whole frames.
    assert frames_held(cpu) > frames_held(default) >= frames_held(one_at_a_time)
    sparse = PipelineConfig(crop="none")
    sparse.tracking.keyframe_interval = 6
    dense = PipelineConfig(crop="none")
    assert frames_held(sparse) - frames_held(dense) == 5 * 4 * 3  # ring + two batches of 4
    # A frame size the defaults admit that the CPU profile's queue would not.
    side = 3500
    check_memory(side, side, 4096, "v.avi", frames_held(default))
    with pytest.raises(InputError, match="3500x3500"):
        check_memory(side, side, 4096, "v.avi", frames_held(cpu))
    frame = Frame(0, 0.0, np.zeros((side, side), np.uint8))
    scorer = IncrementalScorer(BoxDetector({}), tiny_i3d, cpu, fps=30.0)
    with pytest.raises(InputError, match="3500x3500 frames need about"):
        scorer.push(frame)
