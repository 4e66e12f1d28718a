"""Malformed dataset folders (issue 15): a problem line naming file, place and fault, never a crash.

Each folder is the tiny dataset with one hostile edit, as found by the attack
in issue 15: strings where objects belong, text in numeric columns, lists and
text as ids, JSON nested 100,000 deep, boxes of NaN, inf or ``true``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from sonorisk.cli import main
from sonorisk.data import load_dataset, validate_dataset
from sonorisk.errors import DatasetError


def _edit_coco(root: Path, change) -> None:
    path = root / "annotations.json"
    coco = json.loads(path.read_text())
    change(coco)
    path.write_text(json.dumps(coco))  # NaN/Infinity are written as JSON's NaN/Infinity


def _set_cell(root: Path, column: str, video_id: str, text: str) -> None:
    path = root / "videos.csv"
    table = pd.read_csv(path, dtype=str)
    table.loc[table.video_id == video_id, column] = text
    table.to_csv(path, index=False)


def _problems(root: Path, file_name: str, *reason_parts: str) -> list[str]:
    """Every problem as text; one names ``file_name`` and all of ``reason_parts``.

    ``load_dataset`` must raise DatasetError too (a crash raises something else).
    """
    problems = [str(p) for p in validate_dataset(root, probe=False)]
    assert any(file_name in p and all(part in p for part in reason_parts) for p in problems), (
        problems
    )
    with pytest.raises(DatasetError):
        load_dataset(root)
    return problems


@pytest.mark.parametrize("key", ["images", "videos", "annotations", "categories"])
def test_string_where_an_object_belongs(tiny_dataset, key):
    _edit_coco(tiny_dataset, lambda c: c[key].__setitem__(0, "frame"))
    _problems(tiny_dataset, "annotations.json", f"{key}[0] must be an object", "'frame'")


@pytest.mark.parametrize(
    ("column", "text", "reason"),
    [
        ("n_frames", "six", "not a number"),
        ("n_frames", "inf", "not a finite number"),
        ("n_frames", "2.5", "not a whole number"),
        ("width", "wide", "not a number"),
        ("height", "-48", "positive integer"),
        ("fps", "fast", "not a number"),
        ("age", "old", "not a number"),
        ("n_lesions", "True", "not a number"),
    ],
)
def test_text_in_a_numeric_column(tiny_dataset, column, text, reason):
    _set_cell(tiny_dataset, column, "v1", text)
    problems = _problems(tiny_dataset, "videos.csv row 2", f"{column} must be", reason, "'v1'")
    # The row's frames are not then reported once more as frames of an unknown video.
    assert not any("unknown video id" in p for p in problems), problems


def test_list_as_image_id_of_an_annotation(tiny_dataset):
    _edit_coco(tiny_dataset, lambda c: c["annotations"][0].__setitem__("image_id", [2]))
    _problems(
        tiny_dataset, "annotations.json", "annotation 1", "image_id must be an integer", "[2]"
    )


@pytest.mark.parametrize("key", ["annotations", "images"])
def test_list_as_entry_id(tiny_dataset, key):
    _edit_coco(tiny_dataset, lambda c: c[key][0].__setitem__("id", [1]))
    _problems(tiny_dataset, "annotations.json", "without an integer id", "[1]")


def test_list_as_category_id(tiny_dataset):
    _edit_coco(tiny_dataset, lambda c: c["categories"][0].__setitem__("id", [1]))
    _problems(tiny_dataset, "annotations.json", "categories must contain")


def test_text_lesion_id(tiny_dataset):
    _edit_coco(tiny_dataset, lambda c: c["annotations"][0].__setitem__("lesion_id", "abc"))
    _problems(
        tiny_dataset,
        "annotations.json",
        "annotation 1",
        "lesion_id must be an integer",
        "'abc'",
        "'v1'",
    )


def test_json_nested_100000_deep_is_a_clear_error(tiny_dataset, capsys):
    (tiny_dataset / "annotations.json").write_text("[" * 100_000 + "]" * 100_000)
    _problems(tiny_dataset, "annotations.json", "nested too deeply")
    assert main(["dataset", "validate", str(tiny_dataset), "--no-probe"]) == 1
    err = capsys.readouterr().err
    assert "nested too deeply" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "bbox",
    [
        [float("nan"), 5.0, 16.0, 20.0],
        [5.0, 5.0, float("inf"), 20.0],
        [True, True, True, True],
        [5, 5, 10**400, 20],
        ["5", 5, 16, 20],
    ],
)
def test_box_of_nan_inf_or_true_is_invalid(tiny_dataset, bbox):
    _edit_coco(tiny_dataset, lambda c: c["annotations"][0].__setitem__("bbox", bbox))
    _problems(
        tiny_dataset,
        "annotations.json",
        "annotation 1",
        "bbox must be [x, y, w, h] of finite numbers",
        "'v1'",
    )


@pytest.mark.parametrize(
    ("field", "value"), [("frame_index", True), ("width", True), ("video_id", ["v1"])]
)
def test_image_fields_of_the_wrong_type(tiny_dataset, field, value):
    _edit_coco(tiny_dataset, lambda c: c["images"][0].__setitem__(field, value))
    _problems(tiny_dataset, "annotations.json", "image 1:")


def test_unreadable_cells_never_crash_the_command(tiny_dataset, capsys):
    """Several faults at once through the verb: a line each, exit 1, no traceback."""
    _set_cell(tiny_dataset, "width", "v2", "wide")
    _edit_coco(
        tiny_dataset,
        lambda c: (c["videos"].append("v3"), c["annotations"][1].__setitem__("bbox", [True] * 4)),
    )
    assert main(["dataset", "validate", str(tiny_dataset), "--no-probe"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "videos.csv row 3: width must be a positive integer, got 'wide'" in err
    assert "videos[2] must be an object" in err and "annotation 2: bbox must be" in err


def test_a_whole_number_written_as_text_next_to_a_bad_cell(tiny_dataset):
    """One bad cell makes the column text: the other rows' "6.0" is still read as 6."""
    _set_cell(tiny_dataset, "n_frames", "v1", "six")
    _set_cell(tiny_dataset, "n_frames", "v2", "6.0")
    problems = _problems(tiny_dataset, "videos.csv row 2", "n_frames must be", "'six'")
    assert len(problems) == 1, problems


def test_a_fifo_listed_as_a_video_is_named_as_one(tmp_path: Path):
    import os

    from sonorisk.data.validate import why_not_a_file as _why_not_a_file

    fifo = tmp_path / "v.avi"
    os.mkfifo(fifo)
    assert _why_not_a_file(fifo) == "is a FIFO (named pipe), not a regular file"
    (tmp_path / "gone.avi").symlink_to(tmp_path / "nowhere.avi")
    assert _why_not_a_file(tmp_path / "gone.avi") == "a link to a missing file"
    assert _why_not_a_file(tmp_path / "absent.avi") == "missing file"
