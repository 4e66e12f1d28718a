"""Every validator error: typed DatasetError whose message names the file and the reason."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from sonorisk.data import load_dataset, validate_dataset
from sonorisk.errors import DatasetError


def _edit_coco(root: Path, change) -> None:
    path = root / "annotations.json"
    coco = json.loads(path.read_text())
    change(coco)
    path.write_text(json.dumps(coco))


def _edit_table(root: Path, change) -> None:
    path = root / "videos.csv"
    table = pd.read_csv(path, dtype={"video_id": str, "patient_id": str})
    table = change(table)
    table.to_csv(path, index=False)


def _expect(root: Path, file_part: str, *reason_parts: str, probe: bool = False) -> DatasetError:
    with pytest.raises(DatasetError) as info:
        load_dataset(root, probe=probe)
    message = str(info.value)
    assert file_part in info.value.source, message
    for part in reason_parts:
        assert part in message, message
    # The collecting validator reports the same problem.
    assert any(
        part in str(p) for p in validate_dataset(root, probe=probe) for part in reason_parts[:1]
    )
    return info.value


def test_valid_tiny_dataset_loads(tiny_dataset):
    assert validate_dataset(tiny_dataset) == []
    assert len(load_dataset(tiny_dataset, probe=True)) == 2


def test_box_outside_frame(tiny_dataset):
    def change(coco):
        coco["annotations"][0]["bbox"] = [50.0, 5.0, 30.0, 10.0]  # 50 + 30 > width 64

    _edit_coco(tiny_dataset, change)
    error = _expect(tiny_dataset, "annotations.json", "box outside frame", "64x48")
    assert "'v1'" in str(error)


def test_negative_box_origin_is_outside_frame(tiny_dataset):
    _edit_coco(tiny_dataset, lambda c: c["annotations"][1].__setitem__("bbox", [-3, 2, 5, 5]))
    _expect(tiny_dataset, "annotations.json", "box outside frame")


def test_frame_index_beyond_the_video(tiny_dataset):
    _edit_coco(tiny_dataset, lambda c: c["images"][2].__setitem__("frame_index", 6))
    _expect(tiny_dataset, "annotations.json", "frame index 6 beyond the video", "6 frames")


def test_table_longer_than_file_is_frame_index_beyond_the_video(tiny_dataset):
    def change(table):
        table.loc[table.video_id == "v1", "n_frames"] = 9
        return table

    _edit_table(tiny_dataset, change)
    _expect(tiny_dataset, "v1.avi", "has 6 frames", "beyond the video", probe=True)


def test_unknown_video_id(tiny_dataset):
    _edit_coco(tiny_dataset, lambda c: c["images"][0].__setitem__("video_id", "nope"))
    _expect(tiny_dataset, "annotations.json", "unknown video id 'nope'")


def test_unknown_video_in_videos_list(tiny_dataset):
    _edit_coco(
        tiny_dataset,
        lambda c: c["videos"].append(
            {"id": "ghost", "file_name": "videos/ghost.avi", "n_frames": 1, "fps": 30}
        ),
    )
    _expect(tiny_dataset, "annotations.json", "unknown video id 'ghost'")


def test_missing_label(tiny_dataset):
    def change(table):
        table.loc[table.video_id == "v2", "pathology"] = None
        return table

    _edit_table(tiny_dataset, change)
    _expect(tiny_dataset, "videos.csv", "missing label", "'v2'")


def test_unknown_label(tiny_dataset):
    def change(table):
        table.loc[table.video_id == "v2", "pathology"] = "suspicious"
        return table

    _edit_table(tiny_dataset, change)
    _expect(tiny_dataset, "videos.csv", "unknown label 'suspicious'")


def test_duplicate_video_id(tiny_dataset):
    _edit_table(tiny_dataset, lambda t: pd.concat([t, t.iloc[[0]]], ignore_index=True))
    _expect(tiny_dataset, "videos.csv", "duplicate video id", "v1")


def test_duplicate_image_id(tiny_dataset):
    _edit_coco(tiny_dataset, lambda c: c["images"][3].__setitem__("id", c["images"][2]["id"]))
    _expect(tiny_dataset, "annotations.json", "duplicate image id")


def test_duplicate_annotation_id(tiny_dataset):
    _edit_coco(
        tiny_dataset, lambda c: c["annotations"][1].__setitem__("id", c["annotations"][0]["id"])
    )
    _expect(tiny_dataset, "annotations.json", "duplicate annotation id")


def test_missing_video_file(tiny_dataset):
    (tiny_dataset / "videos" / "v2.avi").unlink()
    error = _expect(tiny_dataset, "v2.avi", "missing file")
    assert "'v2'" in error.reason


def test_missing_annotation_file(tiny_dataset):
    (tiny_dataset / "annotations.json").unlink()
    _expect(tiny_dataset, "annotations.json", "annotation file missing")


def test_missing_table(tiny_dataset):
    (tiny_dataset / "videos.csv").unlink()
    _expect(tiny_dataset, "tiny", "no per-video table")


def test_invalid_json(tiny_dataset):
    (tiny_dataset / "annotations.json").write_text("{not json")
    _expect(tiny_dataset, "annotations.json", "not valid JSON")


def test_annotation_for_unknown_image(tiny_dataset):
    _edit_coco(tiny_dataset, lambda c: c["annotations"][0].__setitem__("image_id", 999))
    _expect(tiny_dataset, "annotations.json", "unknown image id 999")


def test_normal_video_with_boxes(tiny_dataset):
    def change(coco):
        v2_image = next(i for i in coco["images"] if i["video_id"] == "v2")
        coco["annotations"].append(
            {
                "id": 500,
                "image_id": v2_image["id"],
                "bbox": [1, 1, 5, 5],
                "category_id": 1,
                "area": 25,
                "iscrowd": 0,
                "lesion_id": 9,
            }
        )

    _edit_coco(tiny_dataset, change)
    _expect(tiny_dataset, "annotations.json", "labelled normal but has lesion boxes")


def test_missing_folder(tmp_path):
    _expect(tmp_path / "absent", "absent", "dataset folder not found")


def test_validate_collects_every_problem(tiny_dataset):
    _edit_coco(
        tiny_dataset,
        lambda c: (
            c["images"][0].__setitem__("video_id", "nope"),
            c["annotations"][2].__setitem__("bbox", [0, 0, 99, 9]),
        ),
    )
    problems = validate_dataset(tiny_dataset)
    reasons = " | ".join(str(p) for p in problems)
    assert len(problems) >= 2 and "unknown video id" in reasons and "box outside frame" in reasons
    assert all(isinstance(p, DatasetError) for p in problems)
