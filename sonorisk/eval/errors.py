"""Typed input errors of the evaluation package.

Every one is an :class:`sonorisk.errors.InputError`, so the CLI prints one line
naming the table/column and the reason, and a caller can catch the family.
"""

from __future__ import annotations

from sonorisk.errors import InputError


class EvalInputError(InputError):
    """A table or array handed to sonorisk.eval is unusable."""


class MismatchedIdsError(EvalInputError):
    """Two tables that must describe the same cases do not share their ids."""


class MissingValueError(EvalInputError):
    """A required value is missing (NaN, empty, None)."""


class SingleClassError(EvalInputError):
    """A truth column holds one class where both are needed (AUC, sensitivity...)."""


class NonBinaryLabelError(EvalInputError):
    """A label that must be 0/1 (or benign/malignant) holds something else."""


class BiradsScaleError(EvalInputError):
    """A BI-RADS value is not on the ordinal scale sonorisk accepts."""


class MissingColumnError(EvalInputError):
    """A table lacks a column the analysis needs."""


class ShapeError(EvalInputError):
    """Arrays that must be parallel have different lengths or are empty."""
