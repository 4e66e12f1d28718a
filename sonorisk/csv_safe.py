"""Cells that a spreadsheet will not run (CSV injection, OWASP).

A file named ``=cmd|' -C calc'!A0.avi`` written raw into results.csv becomes a
live formula when the table is opened in a spreadsheet. Text that starts with
``= + - @``, a tab or a carriage return is written with a leading ``'``, which
spreadsheets show as text. Numbers (``-0.5``) are left as they are.

The escape is reversible: :func:`from_cell` undoes :func:`to_cell` exactly, so
sonorisk reads back the values it wrote (a text that itself starts with ``'``
followed by a formula character is escaped once more).
"""

from __future__ import annotations

from typing import Any

_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _needs_escape(text: str) -> bool:
    if text.startswith(_STARTS):
        return not _is_number(text)
    return text.startswith("'") and _needs_escape(text[1:])


def to_cell(value: Any) -> Any:
    """``value`` as it may be written to a CSV cell."""
    if isinstance(value, str) and _needs_escape(value):
        return "'" + value
    return value


def from_cell(value: Any) -> Any:
    """The value :func:`to_cell` was given."""
    if isinstance(value, str) and value.startswith("'") and _needs_escape(value[1:]):
        return value[1:]
    return value


def safe_row(row: dict[str, Any]) -> dict[str, Any]:
    return {k: to_cell(v) for k, v in row.items()}


def read_row(row: dict[str, Any]) -> dict[str, Any]:
    return {k: from_cell(v) for k, v in row.items()}


def _text_columns(frame: Any) -> list[Any]:
    from pandas.api.types import is_object_dtype, is_string_dtype

    return [c for c in frame.columns if is_object_dtype(frame[c]) or is_string_dtype(frame[c])]


def safe_frame(frame: Any) -> Any:
    """A pandas DataFrame with every text cell and column name escaped (a copy).

    Column names too: a wide table has one column per model or reader, named
    as the user named them."""
    out = frame.copy()
    for column in _text_columns(out):
        out[column] = out[column].map(to_cell)
    out.columns = [to_cell(c) for c in out.columns]
    return out


def read_frame(frame: Any) -> Any:
    """A pandas DataFrame read from a CSV, with every text cell and column name
    unescaped (in place)."""
    for column in _text_columns(frame):
        frame[column] = frame[column].map(from_cell)
    frame.columns = [from_cell(c) for c in frame.columns]
    return frame
