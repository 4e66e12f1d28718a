"""Reading a dataset folder's files: the per-video table, the COCO JSON, and
table cells as typed values (docs/dataset-format.md).

Parsing only: what a value *is* (a number, a text, missing). Whether it is
allowed is :mod:`sonorisk.data.validate`'s business.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, TypeGuard

import numpy as np
import pandas as pd

from sonorisk.data.format import TABLE_COLUMNS, TABLE_CSV, TABLE_PARQUET, VideoRecord
from sonorisk.errors import DatasetError


def none_if_nan(value: Any) -> Any:
    """None for every spelling of "missing" (None, NaN, pd.NA, NaT); numpy scalars as Python."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def opt_str(value: Any) -> str | None:
    value = none_if_nan(value)
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def is_int(value: Any) -> TypeGuard[int]:
    """An integer that is not a bool (JSON ``true`` is an int to Python)."""
    return isinstance(value, int) and not isinstance(value, bool)


def finite(value: Any) -> float | None:
    """``value`` as a finite float, or None for anything else (text, bool, NaN, inf, 1e400)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer too large for a float
        return None
    return number if math.isfinite(number) else None


def parse_number(value: Any, integer: bool = False) -> float | int | None:
    """A table cell as a finite number, None when empty; ValueError says what is wrong."""
    value = none_if_nan(value)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise ValueError("true/false is not a number")
    if integer and is_int(value):
        return value  # exact, also beyond float precision (seeds)
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError("not a number") from None
    if not math.isfinite(number):
        raise ValueError("not a finite number")
    if integer:
        if number != int(number):
            raise ValueError("not a whole number")
        return int(number)
    return number


def opt_float(value: Any) -> float | None:
    number = parse_number(value)
    return None if number is None else float(number)


def opt_int(value: Any) -> int | None:
    number = parse_number(value, integer=True)
    return None if number is None else int(number)


def as_bool(value: Any) -> bool:
    value = none_if_nan(value)
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value) if value is not None else False


def read_table(root: Path) -> tuple[pd.DataFrame, Path]:
    """The per-video table (videos.csv or videos.parquet) of a dataset folder."""
    csv_path, parquet_path = root / TABLE_CSV, root / TABLE_PARQUET
    if csv_path.is_file():
        try:
            # Ids stay strings ("007" must not become 7).
            table = pd.read_csv(
                csv_path,
                dtype={"video_id": str, "patient_id": str, "source_id": str, "birads": str},
            )
        except (
            pd.errors.ParserError,
            pd.errors.EmptyDataError,
            UnicodeDecodeError,
            OSError,
        ) as exc:
            raise DatasetError(csv_path, f"not a readable CSV table ({exc})") from exc
        return table, csv_path
    if parquet_path.is_file():
        try:
            table = pd.read_parquet(parquet_path)
        except Exception as exc:  # pyarrow raises several unrelated types
            raise DatasetError(parquet_path, f"not a readable Parquet table ({exc})") from exc
        for column in ("video_id", "patient_id"):
            if column in table.columns:
                table[column] = table[column].astype(str)
        return table, parquet_path
    raise DatasetError(root, f"no per-video table: expected {TABLE_CSV} or {TABLE_PARQUET}")


def record_from_row(row: dict[str, Any]) -> VideoRecord:
    extra = {k: none_if_nan(v) for k, v in row.items() if k not in TABLE_COLUMNS}
    return VideoRecord(
        video_id=str(row["video_id"]),
        file=str(row["file"]),
        pathology=str(row["pathology"]).strip().lower(),
        patient_id=str(row["patient_id"]),
        n_frames=opt_int(row["n_frames"]) or 0,  # checked before: a positive integer
        fps=opt_float(row.get("fps")),
        width=opt_int(row.get("width")),
        height=opt_int(row.get("height")),
        subtype=opt_str(row.get("subtype")),
        birads=opt_str(row.get("birads")),
        age=opt_float(row.get("age")),
        lesion_size_mm=opt_float(row.get("lesion_size_mm")),
        site=opt_str(row.get("site")),
        vendor=opt_str(row.get("vendor")),
        n_lesions=opt_int(row.get("n_lesions")),
        source_id=opt_str(row.get("source_id")),
        synthetic=as_bool(row.get("synthetic")),
        generator=opt_str(row.get("generator")),
        seed=opt_int(row.get("seed")),
        extra=extra,
    )


def load_coco(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DatasetError(path, "annotation file missing")
    try:
        coco = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(path, f"not valid JSON ({exc})") from exc
    except OSError as exc:
        raise DatasetError(path, f"cannot read the file ({exc.strerror or exc})") from exc
    except RecursionError:  # the parser recurses once per level: [[[[...]]]] 100,000 deep
        raise DatasetError(path, "JSON nested too deeply to read (not annotations)") from None
    if not isinstance(coco, dict):
        raise DatasetError(path, "top level must be a JSON object")
    for key in ("images", "annotations", "categories", "videos"):
        if not isinstance(coco.get(key), list):
            raise DatasetError(path, f"missing list {key!r}")
    return coco


def short(value: Any, limit: int = 80) -> str:
    """repr of a value from a user's file, cut to ``limit`` characters for a problem line."""
    try:
        text = repr(value)
    except RecursionError:
        text = f"a deeply nested {type(value).__name__}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def id_text(value: Any) -> str | None:
    """A video id from the JSON as the table's text (7 and "7" both mean "7"); None if neither."""
    if isinstance(value, str):
        return value
    return str(value) if is_int(value) else None
