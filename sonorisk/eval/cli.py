"""Verbs of sonorisk.eval (placeholder until its issue lands: registers nothing)."""

from __future__ import annotations

import argparse


def register(groups: dict[str, argparse._SubParsersAction]) -> None:
    return None
