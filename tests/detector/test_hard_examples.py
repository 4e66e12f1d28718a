"""Hard examples: the frames the pipeline got wrong, mined and drawn in training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sonorisk.detector.hard_examples import (
    HardFrame,
    hard_frames_of,
    main,
    mine,
    read_csv,
    write_csv,
)
from sonorisk.detector.samples import DetectionSample
from sonorisk.detector.train import repeat_to_share
from sonorisk.errors import DatasetError

from .conftest import tiny_config

LESION = (40.0, 40.0, 60.0, 60.0)
ELSEWHERE = (0.0, 0.0, 10.0, 10.0)


def _lesion(frames, box, source="detector"):
    return {
        "boxes": [{"frame": i, "box": list(box), "score": 0.9, "source": source} for i in frames]
    }


def test_false_track_frames_and_missed_lesion_frames():
    truth = {i: [LESION] for i in range(8)}
    document = {"lesions": [_lesion(range(0, 5), LESION), _lesion(range(2, 6), ELSEWHERE)]}
    frames = hard_frames_of(document, truth, "ds", "v1")
    false = [f.frame for f in frames if f.reason == "false_track"]
    missed = [f.frame for f in frames if f.reason == "missed"]
    assert false == [2, 3, 4, 5]  # the track that never overlaps the lesion
    # Lesion frames no reported box overlaps; frame 5 is listed once, as a false track's.
    assert missed == [6, 7]
    assert {f.key for f in frames} >= {"v1:2", "v1:7"}


def test_a_track_that_touches_the_lesion_once_is_not_a_false_track():
    truth = {0: [LESION], 1: [], 2: []}
    document = {
        "lesions": [
            _lesion([0], LESION)
            | {"boxes": _lesion([0], LESION)["boxes"] + _lesion([1, 2], ELSEWHERE)["boxes"]}
        ]
    }
    assert hard_frames_of(document, truth, "ds", "v") == []


def test_lesion_free_video_with_no_track_gives_nothing():
    assert hard_frames_of({"lesions": []}, {0: [], 1: []}, "ds", "v") == []


@pytest.fixture(scope="module")
def phantom(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sonorisk.data.synth import synthesize_phantom

    return synthesize_phantom(
        4,
        tmp_path_factory.mktemp("hard") / "ph",
        seed=3,
        frames=10,
        size=(96, 80),
        proportions={"benign": 1, "normal": 1},
    )


def _batch_dir(phantom: Path, tmp_path: Path) -> Path:
    """A batch JSON folder: one false track in every video, the lesions not found."""
    from sonorisk.data import load_dataset

    out = tmp_path / "batch.json"
    out.mkdir()
    for video_id in load_dataset(phantom).video_ids:
        (out / f"{video_id}.json").write_text(
            json.dumps({"lesions": [_lesion(range(3), (1.0, 1.0, 5.0, 5.0))]})
        )
    return out


def test_mine_round_trips_through_the_csv_and_the_cli(phantom: Path, tmp_path: Path):
    from sonorisk.data import load_dataset

    dataset = load_dataset(phantom)
    batch = _batch_dir(phantom, tmp_path)
    frames = mine(batch, phantom)
    # Frames 0-2 carry the false track, so they are listed as its frames, not as missed.
    n_lesion_frames = sum(
        1
        for v in dataset.video_ids
        for i, boxes in dataset.boxes_for(v).items()
        if boxes and i >= 3
    )
    assert sum(f.reason == "false_track" for f in frames) == 3 * len(dataset.video_ids)
    assert sum(f.reason == "missed" for f in frames) == n_lesion_frames > 0
    write_csv(frames, tmp_path / "hard.csv")
    assert read_csv(tmp_path / "hard.csv") == frames
    groups = tmp_path / "groups.txt"
    first = dataset.video(dataset.video_ids[0])
    groups.write_text(f"{first.patient_id}\n")
    assert (
        main(
            [
                "--run",
                str(batch),
                str(phantom),
                "--groups",
                str(groups),
                "--out",
                str(tmp_path / "one_group.csv"),
            ]
        )
        == 0
    )
    kept = read_csv(tmp_path / "one_group.csv")
    assert kept and {f.video_id for f in kept} <= {
        v for v in dataset.video_ids if dataset.video(v).patient_id == first.patient_id
    }


def test_read_csv_names_what_is_wrong(tmp_path: Path):
    bad = tmp_path / "bad.csv"
    bad.write_text("dataset,video_id,frame,reason\nds,v,3,looked_odd\n")
    with pytest.raises(DatasetError, match="looked_odd"):
        read_csv(bad)
    bad.write_text("dataset,video_id,frame,reason\nds,v,three,missed\n")
    with pytest.raises(DatasetError, match="three"):
        read_csv(bad)
    bad.write_text("video_id,frame\nv,3\n")
    with pytest.raises(DatasetError, match="needs columns"):
        read_csv(bad)
    with pytest.raises(DatasetError, match="not found"):
        read_csv(tmp_path / "missing.csv")


def _sample(key: str) -> DetectionSample:
    return DetectionSample(
        key, "g", "benign", np.zeros((0, 4), np.float32), load=lambda: np.zeros((8, 8), np.uint8)
    )


def test_hard_examples_are_repeated_to_their_share():
    hard = [_sample(f"h{i}") for i in range(10)]
    drawn = repeat_to_share(hard, n_other=90, share=0.25)
    assert len(drawn) / (len(drawn) + 90) == pytest.approx(0.25)
    assert repeat_to_share(hard, n_other=0, share=0.25) == hard  # never fewer than once
    assert repeat_to_share([], n_other=90, share=0.25) == []
    with pytest.raises(Exception, match="hard_example_share"):
        repeat_to_share(hard, n_other=90, share=1.0)


def test_training_draws_hard_frames_and_refuses_unknown_ones(phantom: Path, tmp_path: Path):
    from sonorisk.detector.checkpoint import load_checkpoint
    from sonorisk.detector.train import train_detector

    frames = mine(_batch_dir(phantom, tmp_path), phantom)
    write_csv(frames, tmp_path / "hard.csv")
    out = tmp_path / "run"
    cfg = tiny_config(
        out,
        max_iters_per_epoch=1,
        max_val_images=4,
        video_frame_stride=3,
        val_fraction=0.5,
        hard_examples=(str(tmp_path / "hard.csv"),),
    )
    train_detector([phantom], cfg, out, progress=False)
    training = load_checkpoint(out / "last.pt")["training"]
    val_groups = set(training["val_groups"])
    from sonorisk.data import load_dataset

    dataset = load_dataset(phantom)
    expected = sum(1 for f in frames if dataset.video(f.video_id).patient_id not in val_groups)
    assert training["n_hard_frames"] == expected > 0  # validation groups never trained on
    assert training["hard_examples"] == [str(tmp_path / "hard.csv")]

    write_csv(
        [HardFrame(str(phantom), dataset.video_ids[0], 999, "missed")], tmp_path / "unknown.csv"
    )
    cfg = tiny_config(
        tmp_path / "run2",
        max_iters_per_epoch=1,
        video_frame_stride=3,
        val_fraction=0.5,
        hard_examples=(str(tmp_path / "unknown.csv"),),
    )
    with pytest.raises(DatasetError, match="not in this dataset"):
        train_detector([phantom], cfg, tmp_path / "run2", progress=False)
