"""Report tables: numbers to text (never "nan"), and Markdown/HTML/CSV writers.

Undefined values print as ``n/a (reason)``. Every table carries notes that say
how its intervals and p-values were computed.
"""

from __future__ import annotations

import csv
import html
import math
from dataclasses import dataclass, field
from pathlib import Path

from sonorisk.csv_safe import to_cell
from sonorisk.eval.intervals import Estimate, TestResult


def _is_number(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(float(x))


def fmt_number(x: float | None, digits: int = 4, reason: str = "undefined") -> str:
    if x is None or not _is_number(x):
        return f"n/a ({reason})"
    return f"{float(x):.{digits}f}"


def fmt_estimate(est: Estimate, percent: bool = False, digits: int | None = None) -> str:
    """ "97.39 (92.57, 99.46)" for a percentage, "0.8998 (0.8529, 0.9439)" otherwise."""
    d = digits if digits is not None else (2 if percent else 4)
    if est.estimate is None:  # not est.defined
        return f"n/a ({est.undefined or 'undefined'})"
    scale = 100.0 if percent else 1.0
    value = f"{est.estimate * scale:.{d}f}"
    if est.ci_low is None or est.ci_high is None:
        if est.undefined:
            return f"{value} (CI n/a: {est.undefined})"
        return value
    return f"{value} ({est.ci_low * scale:.{d}f}, {est.ci_high * scale:.{d}f})"


def fmt_p(test: TestResult | None) -> str:
    if test is None:
        return "—"
    if test.p_value is None or not _is_number(test.p_value):
        return f"n/a ({test.undefined or 'undefined'})"
    p = float(test.p_value)
    return "<0.001" if p < 0.001 else f"{p:.3f}"


@dataclass
class Table:
    """A report table: a title, string cells and notes on how numbers were computed."""

    name: str  # file stem, e.g. "table4_readers"
    title: str
    columns: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        for row in self.rows:
            if len(row) != len(self.columns):
                raise ValueError(
                    f"table {self.name}: row {row} has {len(row)} cells, "
                    f"expected {len(self.columns)}"
                )
            for cell in row:
                if "nan" in str(cell).lower().split() or str(cell).lower() == "nan":
                    raise ValueError(f"table {self.name}: a NaN reached a cell ({row})")

    def to_markdown(self) -> str:
        def esc(s: str) -> str:
            return str(s).replace("|", "\\|")

        lines = [
            f"### {self.title}",
            "",
            "| " + " | ".join(esc(c) for c in self.columns) + " |",
            "|" + "|".join("---" for _ in self.columns) + "|",
        ]
        lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in self.rows]
        if self.notes:
            lines.append("")
            lines += [f"*{note}*  " for note in self.notes]
        return "\n".join(lines) + "\n"

    def to_html(self) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>"
            for row in self.rows
        )
        notes = "".join(f"<p class='note'>{html.escape(n)}</p>" for n in self.notes)
        return (
            f"<h3>{html.escape(self.title)}</h3><table><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table>{notes}"
        )

    def write_csv(self, path: Path) -> Path:
        with open(path, "w", newline="") as fh:
            writer = csv.writer(fh)  # no live formulas in a spreadsheet (ids, model names)
            writer.writerow([to_cell(c) for c in self.columns])
            writer.writerows([to_cell(c) for c in row] for row in self.rows)
        return path
