"""Loading a dataset: records, frames, boxes, frame decoding (random order too)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from sonorisk.data import FrameAnnotation, VideoRecord, load_dataset
from sonorisk.errors import DatasetError


def test_records_and_frames(tiny_dataset):
    dataset = load_dataset(tiny_dataset)
    assert dataset.video_ids == ["v1", "v2"]
    record = dataset.video("v1")
    assert isinstance(record, VideoRecord)
    assert (record.pathology, record.patient_id, record.n_frames, record.fps) == (
        "benign",
        "p1",
        6,
        30.0,
    )
    frames = dataset.frames("v1")
    assert [f.frame_index for f in frames] == list(range(6))
    assert all(isinstance(f, FrameAnnotation) for f in frames)
    # Frame 0 is an explicit negative; frame 3's box is the one written (xyxy).
    assert frames[0].boxes == []
    assert frames[3].boxes == [(7.0, 5.0, 23.0, 25.0)]
    assert len(set(frames[3].lesion_ids)) == 1
    assert dataset.boxes_for("v2") == {i: [] for i in range(6)}
    assert dataset.label("v2") == "normal"
    assert len(dataset.frames()) == 12
    with pytest.raises(DatasetError, match="unknown video id 'zzz'"):
        dataset.label("zzz")


def test_coco_entries_follow_the_contract(tiny_dataset):
    coco = json.loads((tiny_dataset / "annotations.json").read_text())
    assert coco["categories"] == [{"id": 1, "name": "lesion"}]
    image = coco["images"][0]
    assert {"id", "file_name", "video_id", "frame_index", "width", "height"} <= set(image)
    ann = coco["annotations"][0]
    assert {"id", "image_id", "bbox", "category_id", "area", "iscrowd", "lesion_id"} <= set(ann)
    assert {"id", "file_name", "n_frames", "fps"} <= set(coco["videos"][0])
    # pycocotools reads it as ordinary COCO.
    from pycocotools.coco import COCO

    api = COCO(str(tiny_dataset / "annotations.json"))
    assert len(api.getImgIds()) == 12 and len(api.getAnnIds()) == 5


@pytest.mark.parametrize(
    "codec,tolerance", [("rawvideo", 0), ("mjpeg", 3), ("mpeg4", 6), ("h264", 6)]
)
def test_read_image_in_any_order(tmp_path, make_tiny, codec, tolerance):
    dataset = load_dataset(make_tiny(tmp_path / codec, codec=codec))
    frames = dataset.frames("v1")
    for index in (3, 1, 5, 0, 5, 2):
        image = dataset.read_image(frames[index])
        assert image.shape == (48, 64, 3) and image.dtype == np.uint8
        assert abs(float(image.mean()) - (20 * index + 10)) <= tolerance
    gray = dataset.read_image(frames[4], color="gray")
    assert gray.shape == (48, 64)
    seen = [(a.frame_index, round(float(img.mean()))) for a, img in dataset.iter_images("v1")]
    assert [i for i, _ in seen] == list(range(6))
    assert all(abs(m - (20 * i + 10)) <= tolerance for i, m in seen)
    dataset.close()


def test_parquet_table(tmp_path, make_tiny):
    root = make_tiny(tmp_path / "pq")
    table = pd.read_csv(root / "videos.csv", dtype={"video_id": str, "patient_id": str})
    table.to_parquet(root / "videos.parquet", index=False)
    (root / "videos.csv").unlink()
    dataset = load_dataset(root)
    assert dataset.label("v1") == "benign" and len(dataset.frames()) == 12


def test_ids_stay_strings(tmp_path, make_tiny):
    root = make_tiny(tmp_path / "ids")
    dataset = load_dataset(root)
    assert all(isinstance(v.patient_id, str) for v in dataset.videos)


def test_subset(tiny_dataset):
    dataset = load_dataset(tiny_dataset)
    part = dataset.subset(["v2"])
    assert part.video_ids == ["v2"] and list(part.table["video_id"]) == ["v2"]
    assert len(part.frames()) == 6
    with pytest.raises(DatasetError, match="unknown video id 'v9'"):
        dataset.subset(["v9"])
