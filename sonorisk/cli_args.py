"""Argument types for the command line: refuse what no command can use.

``float("nan")`` and ``int("-5")`` parse, so argparse's plain ``float`` and
``int`` let ``--timeout nan`` or ``--max-frames -5`` through to run with a
meaning nobody asked for. These types make argparse refuse them with the
flag's name (exit status 2, usage line) before any work starts.
"""

from __future__ import annotations

import argparse
import math


def finite_float(text: str) -> float:
    """A float that is a number (not nan, not inf)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def positive_float(text: str) -> float:
    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def non_negative_float(text: str) -> float:
    value = finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value
