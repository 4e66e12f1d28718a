"""``sonorisk eval report``: every analysis of the paper on any scores table.

Writes ``report.md``, ``report.html``, ``tables/*.csv``, ``figures/*.png`` and, with
reads, ``imrmc_input.txt``. Each table notes how its intervals and p-values were
computed; undefined values print as "n/a (reason)", never NaN.

The report is a list of sections (``SECTIONS``, then ``READER_SECTIONS`` when
reads are given) sharing one :class:`ReportContext`: each reads what it needs
from it and adds its tables and figures, in report order. The model sections
live in ``report_models``, the reader sections in ``report_readers``, the
written documents in ``report_documents``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from sonorisk.eval.report_context import (
    METRICS,
    NOT_PROBABILITIES,
    SYNTHETIC_WORDS,
    ReportConfig,
    ReportContext,
    ReportResult,
    metric_label,
    score_range_warnings,
    synthetic_warnings,
)
from sonorisk.eval.report_documents import write_documents
from sonorisk.eval.report_models import (
    STANDARD_SUBGROUPS,
    auc_section,
    choose_operating_point,
    covariate_section,
    model_figures_section,
    operating_point_section,
    subgroup_section,
    subtype_section,
)
from sonorisk.eval.report_readers import READER_SECTIONS
from sonorisk.eval.tables import Predictions

__all__ = [
    "METRICS",
    "NOT_PROBABILITIES",
    "READER_SECTIONS",
    "SECTIONS",
    "STANDARD_SUBGROUPS",
    "SYNTHETIC_WORDS",
    "ReportConfig",
    "ReportContext",
    "ReportResult",
    "build_report",
    "choose_operating_point",
    "metric_label",
    "score_range_warnings",
    "synthetic_warnings",
]

# In report order: the order of the tables and figures in report.md.
SECTIONS = (
    auc_section,
    operating_point_section,
    subtype_section,
    covariate_section,
    subgroup_section,
    model_figures_section,
)


def build_report(
    truth: pd.DataFrame,
    predictions: Predictions,
    reads: pd.DataFrame | None,
    out_dir: Path,
    cfg: ReportConfig,
) -> ReportResult:
    ctx = ReportContext.create(truth, predictions, reads, out_dir, cfg)
    for section in SECTIONS + (READER_SECTIONS if reads is not None else ()):
        section(ctx)
    for t in ctx.tables.values():
        t.write_csv(ctx.out_dir / "tables" / f"{t.name}.csv")
    write_documents(ctx)
    return ReportResult(
        ctx.out_dir, ctx.tables, ctx.figs, ctx.point, ctx.range_warnings + ctx.provenance
    )
