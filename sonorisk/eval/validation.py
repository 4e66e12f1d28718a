"""scikit-learn-like input checks: turn user arrays into clean numpy arrays or
raise an error that names the input and the reason (never return NaN)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from sonorisk.eval.errors import (
    EvalInputError,
    MissingValueError,
    NonBinaryLabelError,
    ShapeError,
    SingleClassError,
)

# Text labels accepted for a binary truth; anything else is refused rather than guessed.
POSITIVE_LABELS = frozenset({"1", "1.0", "malignant", "m", "positive", "pos", "true", "yes"})
NEGATIVE_LABELS = frozenset({"0", "0.0", "benign", "b", "negative", "neg", "false", "no"})


def _as_series(values: Iterable[object]) -> pd.Series:
    if isinstance(values, pd.Series):
        return values.reset_index(drop=True)
    return pd.Series(list(values) if not isinstance(values, np.ndarray) else values)


def _missing_positions(series: pd.Series) -> list[int]:
    mask = series.isna().to_numpy().copy()  # pandas may hand back a read-only view
    if series.dtype == object or pd.api.types.is_string_dtype(series):
        mask |= series.map(lambda v: isinstance(v, str) and v.strip() == "").to_numpy()
    return [int(i) for i in np.flatnonzero(mask)]


def as_binary_labels(values: Iterable[object], source: str = "truth") -> np.ndarray:
    """0/1, booleans or benign/malignant (any case) -> int8 array of 0/1.

    Raises MissingValueError, NonBinaryLabelError, ShapeError (empty).
    """
    series = _as_series(values)
    if len(series) == 0:
        raise ShapeError(source, "no rows")
    missing = _missing_positions(series)
    if missing:
        raise MissingValueError(
            source, f"{len(missing)} missing label(s), first at row {missing[0]}"
        )
    out = np.empty(len(series), dtype=np.int8)
    for i, value in enumerate(series.tolist()):
        if isinstance(value, bool | np.bool_):
            out[i] = int(value)
            continue
        if isinstance(value, int | float | np.integer | np.floating):
            if float(value) in (0.0, 1.0):
                out[i] = int(value)
                continue
            raise NonBinaryLabelError(
                source, f"label {value!r} at row {i} is not binary (need 0/1 or benign/malignant)"
            )
        text = str(value).strip().lower()
        if text in POSITIVE_LABELS:
            out[i] = 1
        elif text in NEGATIVE_LABELS:
            out[i] = 0
        else:
            raise NonBinaryLabelError(
                source, f"label {value!r} at row {i} is not binary (need 0/1 or benign/malignant)"
            )
    return out


def as_scores(values: Iterable[object], source: str = "score") -> np.ndarray:
    """Finite numbers -> float64 array. Raises on missing, non-numeric or infinite values."""
    series = _as_series(values)
    if len(series) == 0:
        raise ShapeError(source, "no rows")
    missing = _missing_positions(series)
    if missing:
        raise MissingValueError(
            source, f"{len(missing)} missing score(s), first at row {missing[0]}"
        )
    numeric = pd.to_numeric(series, errors="coerce")
    bad = np.flatnonzero(numeric.isna().to_numpy())
    if bad.size:
        raise EvalInputError(source, f"non-numeric score {series.iloc[bad[0]]!r} at row {bad[0]}")
    arr = numeric.to_numpy(dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise EvalInputError(
            source, f"infinite score at row {int(np.flatnonzero(~np.isfinite(arr))[0])}"
        )
    return arr


def check_same_length(source: str, **arrays: np.ndarray) -> int:
    lengths = {name: len(a) for name, a in arrays.items()}
    if len(set(lengths.values())) != 1:
        raise ShapeError(source, f"inputs differ in length: {lengths}")
    n = next(iter(lengths.values()))
    if n == 0:
        raise ShapeError(source, "no rows")
    return n


def require_both_classes(y: np.ndarray, source: str = "truth") -> tuple[int, int]:
    """Return (n_positive, n_negative); raise SingleClassError when either is zero."""
    n_pos = int(np.sum(y == 1))
    n_neg = int(np.sum(y == 0))
    if n_pos == 0 or n_neg == 0:
        only = "malignant (1)" if n_neg == 0 else "benign (0)"
        raise SingleClassError(
            source, f"holds only {only} cases ({len(y)} rows): AUC and ROC need both classes"
        )
    return n_pos, n_neg
