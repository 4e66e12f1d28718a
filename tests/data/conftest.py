"""Fixtures of tests/data: small datasets made once per session by the real generators."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from sonorisk.data.format import DatasetWriter
from sonorisk.io.writer import write_video

SMALL = (240, 180)  # reduced resolution: what these tests check does not need more


@pytest.fixture(scope="session")
def busi_sweeps(tmp_path_factory, busi_dir):
    """4 short sweeps from BUSI stills (stratified), masks kept in memory and on disk."""
    from sonorisk.data.synth import synthesize_from_stills

    out = tmp_path_factory.mktemp("busi_sweeps")
    masks: dict[str, list] = defaultdict(list)

    def keep(video_id, frame):
        masks[video_id].append(
            (frame.index, list(frame.lesions), [m.copy() for m in frame.masks], frame.image.copy())
        )

    synthesize_from_stills(
        busi_dir,
        4,
        out,
        seed=11,
        frames=24,
        size=SMALL,
        save_masks=True,
        contact_sheet=True,
        on_frame=keep,
    )
    return out, dict(masks)


@pytest.fixture(scope="session")
def phantom_sweeps(tmp_path_factory):
    from sonorisk.data.synth import synthesize_phantom

    out = tmp_path_factory.mktemp("phantom_sweeps")
    synthesize_phantom(
        3,
        out,
        seed=4,
        frames=16,
        size=SMALL,
        save_masks=True,
        proportions={"benign": 1, "malignant": 1, "normal": 1},
    )
    return out


def make_tiny_dataset(
    root: Path, codec: str = "rawvideo", n_frames: int = 6, size: tuple[int, int] = (64, 48)
) -> Path:
    """Two videos (benign with a moving box; normal); frame i is filled with 20*i+10."""
    width, height = size
    writer = DatasetWriter(root)
    for vid, label, patient in (("v1", "benign", "p1"), ("v2", "normal", "p2")):
        frames = [np.full((height, width, 3), 20 * i + 10, np.uint8) for i in range(n_frames)]
        file = f"videos/{vid}.avi"
        write_video(root / file, frames, fps=30, codec=codec)
        per_frame = []
        lesion = writer.new_lesion_id() if label == "benign" else None
        for i in range(n_frames):
            if lesion is not None and i >= 1:
                per_frame.append(([(4.0 + i, 5.0, 20.0 + i, 25.0)], [lesion]))
            else:
                per_frame.append(([], []))
        writer.add_video(
            {"video_id": vid, "file": file, "pathology": label, "patient_id": patient, "fps": 30.0},
            per_frame,
            width,
            height,
        )
    writer.write()
    return root


@pytest.fixture()
def tiny_dataset(tmp_path):
    return make_tiny_dataset(tmp_path / "tiny")


@pytest.fixture()
def make_tiny():
    """The tiny-dataset builder, for tests that need other codecs or several copies."""
    return make_tiny_dataset
