"""The BI-RADS ordinal scale for ultrasound, and its binary cut at >= 4A."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from sonorisk.eval.errors import BiradsScaleError, MissingValueError

# Final assessment categories in order. 0 (incomplete) is not an ordinal category
# and a bare "4" is ambiguous on a 4A/4B/4C scale: both are refused, not guessed.
BIRADS_SCALE: tuple[str, ...] = ("1", "2", "3", "4A", "4B", "4C", "5", "6")
BIRADS_CODE = {cat: i for i, cat in enumerate(BIRADS_SCALE)}
MALIGNANT_FROM = "4A"


def normalize_birads(value: object, source: str = "birads", row: int | None = None) -> str:
    where = f" at row {row}" if row is not None else ""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        raise MissingValueError(source, f"missing BI-RADS value{where}")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip().upper().replace(" ", "")
    for prefix in ("BI-RADS", "BIRADS"):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    if text in BIRADS_CODE:
        return text
    if text == "0":
        reason = "0 (incomplete assessment) is not an ordinal category"
    elif text == "4":
        reason = "bare 4 is ambiguous: use 4A, 4B or 4C"
    else:
        reason = f"{value!r} is outside the scale {', '.join(BIRADS_SCALE)}"
    raise BiradsScaleError(source, f"BI-RADS {reason}{where}")


def birads_codes(values: Iterable[object], source: str = "birads") -> np.ndarray:
    """Ordinal codes 0..7 (1 -> 0, ..., 4A -> 3, ..., 6 -> 7)."""
    return np.array(
        [BIRADS_CODE[normalize_birads(v, source, i)] for i, v in enumerate(values)], dtype=int
    )


def birads_to_binary(values: Iterable[object], source: str = "birads") -> np.ndarray:
    """1 (malignant call) for BI-RADS >= 4A, else 0 (the paper's biopsy/follow-up cut)."""
    return (birads_codes(values, source) >= BIRADS_CODE[MALIGNANT_FROM]).astype(np.int8)
