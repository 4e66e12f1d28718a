"""Spreadsheet formulas never reach a CSV cell; sonorisk reads back what it wrote."""

from __future__ import annotations

import pandas as pd
import pytest

from sonorisk.csv_safe import from_cell, read_frame, safe_frame, to_cell

HOSTILE = ["=cmd|' -C calc'!A0.avi", "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1"]


@pytest.mark.parametrize("text", HOSTILE)
def test_formula_text_is_written_as_text(text: str) -> None:
    assert to_cell(text) == "'" + text
    assert from_cell(to_cell(text)) == text


@pytest.mark.parametrize(
    "value",
    ["plain.avi", "-0.5", "+3", "1e-3", "", "'quoted", 0.5, -1, None, "'=already", "''=twice"],
)
def test_everything_else_round_trips(value: object) -> None:
    assert from_cell(to_cell(value)) == value
    if isinstance(value, str) and not value.startswith("'"):
        assert to_cell(value) == value  # numbers and plain text are untouched


def test_frames_round_trip_through_a_csv(tmp_path) -> None:
    ids = [h for h in HOSTILE if "\r" not in h] + ["ok"]  # pandas writes a bare CR unquoted
    frame = pd.DataFrame({"id": ids, "score": [0.1] * len(ids)})
    path = tmp_path / "t.csv"
    safe_frame(frame).to_csv(path, index=False)
    raw = path.read_text()
    assert "\n=cmd" not in raw and "\n'=cmd" in raw
    back = read_frame(pd.read_csv(path, keep_default_na=False))
    assert list(back["id"]) == list(frame["id"])


def test_column_names_are_escaped_and_read_back(tmp_path) -> None:
    """A wide table names its columns after models or readers, as users named them."""
    frame = pd.DataFrame({"id": ["a"], '=HYPERLINK("x")': [0.5]})
    path = tmp_path / "wide.csv"
    safe_frame(frame).to_csv(path, index=False)
    assert path.read_text().splitlines()[0] == 'id,"\'=HYPERLINK(""x"")"'
    assert list(read_frame(pd.read_csv(path)).columns) == ["id", '=HYPERLINK("x")']
