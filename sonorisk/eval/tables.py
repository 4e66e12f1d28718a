"""Load and validate the three input tables of ``sonorisk eval report``.

Formats (see docs/evaluation.md):
- TRUTH: ``id``, ``truth`` (0/1 or benign/malignant), optional covariates
  (``site``, ``age``, ``lesion_size_mm``, ``birads``, ``subtype``, anything else).
- PREDICTIONS: wide (``id`` + one numeric column per model) or long
  (``id``, ``model``, ``score``); an optional ``note`` column (long: per model,
  wide: one value for the file) carries metadata such as "synthetic demo model".
- READS: long, one row per (reader, case, session): ``reader``, ``case_id``
  (or ``id``), ``session`` (unaided|aided), ``birads``, optional ``confidence``
  (0-100) and ``reading_time_s``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from sonorisk.csv_safe import read_frame
from sonorisk.eval.birads import BIRADS_CODE, normalize_birads
from sonorisk.eval.errors import (
    EvalInputError,
    MismatchedIdsError,
    MissingColumnError,
    MissingValueError,
)
from sonorisk.eval.validation import as_binary_labels, as_scores

SESSIONS = ("unaided", "aided")
NOTE_COLUMNS = ("note", "notes", "metadata")
SUBTYPE_PREFIX = "subtype:"


# Ids compare as strings (docs/evaluation.md): "007" is not "7", so they are
# read as text, never parsed as numbers.
ID_TEXT = {"id": str, "case_id": str, "reader": str}


def read_table(path: str | Path) -> pd.DataFrame:
    p = Path(path)
    if not p.is_file():
        raise EvalInputError(p, "file not found")
    try:
        if p.suffix.lower() in (".parquet", ".pq"):
            df = pd.read_parquet(p)
        elif p.suffix.lower() in (".csv", ".txt"):
            df = pd.read_csv(p, dtype=ID_TEXT)
        elif p.suffix.lower() == ".tsv":
            df = pd.read_csv(p, sep="\t", dtype=ID_TEXT)
        else:
            raise EvalInputError(p, f"unsupported table type {p.suffix!r} (use .csv or .parquet)")
    except EvalInputError:
        raise
    except Exception as exc:  # pandas/pyarrow raise many types for a corrupt file
        raise EvalInputError(p, f"cannot read table: {exc}") from exc
    if df.empty:
        raise EvalInputError(p, "table has no rows")
    df.columns = [str(c).strip() for c in df.columns]
    return read_frame(df)  # cells escaped against spreadsheet formulas read back as written


def _require(df: pd.DataFrame, columns: tuple[str, ...], source: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise MissingColumnError(source, f"missing column(s) {missing}; has {list(df.columns)}")


def _ids(series: pd.Series, source: str) -> pd.Series:
    if series.isna().any():
        raise MissingValueError(source, f"{int(series.isna().sum())} missing id(s) in column 'id'")
    ids = series.astype(str).str.strip()
    dup = ids[ids.duplicated()]
    if not dup.empty:
        raise EvalInputError(source, f"duplicate id(s) {sorted(set(dup))[:5]}")
    return ids


def load_truth(data: pd.DataFrame | str | Path, source: str | None = None) -> pd.DataFrame:
    """Truth table indexed by id (str) with an int8 ``truth`` column and the covariates."""
    src = source or (str(data) if not isinstance(data, pd.DataFrame) else "truth table")
    df = data.copy() if isinstance(data, pd.DataFrame) else read_table(data)
    if "id" not in df.columns and "case_id" in df.columns:
        df = df.rename(columns={"case_id": "id"})
    _require(df, ("id", "truth"), src)
    df["id"] = _ids(df["id"], src)
    df["truth"] = as_binary_labels(df["truth"], f"{src}: column 'truth'")
    if "birads" in df.columns:
        df["birads"] = [
            None if pd.isna(v) else normalize_birads(v, f"{src}: column 'birads'", i)
            for i, v in enumerate(df["birads"])
        ]
    return df.set_index("id")


@dataclass(frozen=True)
class Predictions:
    scores: pd.DataFrame  # index: id, one float column per model
    notes: dict[str, str] = field(default_factory=dict)  # model -> note (e.g. "synthetic")
    # A subtype head: columns "subtype:<class>" hold one score per class (index: id).
    subtype_scores: pd.DataFrame | None = None

    @property
    def models(self) -> list[str]:
        return list(self.scores.columns)


def _check_ids(ids: pd.Index, truth: pd.DataFrame, source: str) -> None:
    extra = sorted(set(ids) - set(truth.index))
    missing = sorted(set(truth.index) - set(ids))
    if extra or missing:
        parts = []
        if extra:
            parts.append(f"{len(extra)} id(s) not in the truth table (e.g. {extra[:3]})")
        if missing:
            parts.append(f"{len(missing)} truth id(s) without a row (e.g. {missing[:3]})")
        raise MismatchedIdsError(source, "; ".join(parts))


def load_predictions(
    data: pd.DataFrame | str | Path, truth: pd.DataFrame, source: str | None = None
) -> Predictions:
    src = source or (str(data) if not isinstance(data, pd.DataFrame) else "predictions table")
    df = data.copy() if isinstance(data, pd.DataFrame) else read_table(data)
    if "id" not in df.columns and "case_id" in df.columns:
        df = df.rename(columns={"case_id": "id"})
    _require(df, ("id",), src)
    note_col = next((c for c in NOTE_COLUMNS if c in df.columns), None)
    notes: dict[str, str] = {}
    if {"model", "score"} <= set(df.columns):
        if df["model"].isna().any():
            raise MissingValueError(src, "missing value in column 'model'")
        df["model"] = df["model"].astype(str)
        df["id"] = df["id"].astype(str).str.strip()
        dup = df[df.duplicated(["id", "model"])]
        if not dup.empty:
            raise EvalInputError(
                src, f"duplicate (id, model) rows, e.g. {dup.iloc[0][['id', 'model']].tolist()}"
            )
        for model, part in df.groupby("model", sort=False):
            as_scores(part["score"], f"{src}: column 'score' (model {model})")
            if note_col:
                vals = sorted({str(v) for v in part[note_col].dropna() if str(v).strip()})
                if vals:
                    notes[str(model)] = "; ".join(vals)
        wide = df.pivot(index="id", columns="model", values="score")
        order = list(dict.fromkeys(df["model"]))
        wide = wide[order]
        if wide.isna().any().any():
            col = wide.columns[wide.isna().any()].tolist()[0]
            raise MissingValueError(
                src,
                f"model {col!r} has no score for some ids "
                f"(e.g. {wide.index[wide[col].isna()][:3].tolist()})",
            )
    else:
        df["id"] = _ids(df["id"], src)
        if note_col:
            vals = sorted({str(v) for v in df[note_col].dropna() if str(v).strip()})
            file_note = "; ".join(vals)
            df = df.drop(columns=[note_col])
        else:
            file_note = ""
        score_cols = [c for c in df.columns if c != "id"]
        if not score_cols:
            raise MissingColumnError(
                src,
                "no score column: need id + one column per model, or long format id, model, score",
            )
        wide = df.set_index("id")
        for c in score_cols:
            wide[c] = as_scores(wide[c], f"{src}: column {c!r}")
        if file_note:
            notes = {c: file_note for c in score_cols}
    wide.index = wide.index.astype(str)
    wide.columns = [str(c) for c in wide.columns]
    _check_ids(wide.index, truth, src)
    wide = wide.loc[truth.index].astype(float)
    sub_cols = [c for c in wide.columns if c.startswith(SUBTYPE_PREFIX)]
    subtype = None
    if sub_cols:
        subtype = wide[sub_cols].rename(columns=lambda c: c[len(SUBTYPE_PREFIX) :])
        wide = wide.drop(columns=sub_cols)
        if "subtype" not in truth.columns:
            raise MissingColumnError(
                src, f"subtype score columns {sub_cols} need a 'subtype' column in the truth table"
            )
    if wide.shape[1] == 0:
        raise MissingColumnError(src, "no malignancy score column besides the subtype head")
    return Predictions(wide, notes, subtype)


def load_reads(
    data: pd.DataFrame | str | Path, truth: pd.DataFrame, source: str | None = None
) -> pd.DataFrame:
    """Validated long reads table with ``birads`` canonical and ``birads_code`` added."""
    src = source or (str(data) if not isinstance(data, pd.DataFrame) else "reads table")
    df = data.copy() if isinstance(data, pd.DataFrame) else read_table(data)
    if "case_id" not in df.columns and "id" in df.columns:
        df = df.rename(columns={"id": "case_id"})
    _require(df, ("reader", "case_id", "session", "birads"), src)
    for col in ("reader", "case_id", "session"):
        if df[col].isna().any():
            raise MissingValueError(src, f"missing value in column {col!r}")
    df["reader"] = df["reader"].astype(str).str.strip()
    df["case_id"] = df["case_id"].astype(str).str.strip()
    df["session"] = df["session"].astype(str).str.strip().str.lower()
    bad = sorted(set(df["session"]) - set(SESSIONS))
    if bad:
        raise EvalInputError(src, f"column 'session' holds {bad}; allowed: {list(SESSIONS)}")
    df["birads"] = [
        normalize_birads(v, f"{src}: column 'birads'", i) for i, v in enumerate(df["birads"])
    ]
    df["birads_code"] = [BIRADS_CODE[v] for v in df["birads"]]
    unknown = sorted(set(df["case_id"]) - set(truth.index))
    if unknown:
        raise MismatchedIdsError(
            src, f"{len(unknown)} case id(s) not in the truth table (e.g. {unknown[:3]})"
        )
    dup = df[df.duplicated(["reader", "case_id", "session"])]
    if not dup.empty:
        raise EvalInputError(
            src,
            "duplicate (reader, case_id, session) rows, e.g. "
            f"{dup.iloc[0][['reader', 'case_id', 'session']].tolist()}",
        )
    for col, lo, hi in (("confidence", 0.0, 100.0), ("reading_time_s", -np.inf, np.inf)):
        if col in df.columns:
            vals = pd.to_numeric(df[col], errors="coerce")
            if vals.isna().any():
                raise MissingValueError(
                    src,
                    f"column {col!r}: missing or non-numeric value at row "
                    f"{int(np.flatnonzero(vals.isna())[0])}",
                )
            if ((vals < lo) | (vals > hi)).any():
                raise EvalInputError(src, f"column {col!r}: values must lie in [{lo:g}, {hi:g}]")
            df[col] = vals.astype(float)
    df["truth"] = truth.loc[df["case_id"], "truth"].to_numpy()
    return df.reset_index(drop=True)
