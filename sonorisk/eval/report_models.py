"""The sections of ``sonorisk eval report`` about the models: AUC, operating
points, the subtype head, covariates, subgroups and the model figures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from sonorisk.eval import figures
from sonorisk.eval.binary import multiclass_confusion
from sonorisk.eval.comparisons import t_test, wilcoxon_rank_sum
from sonorisk.eval.errors import EvalInputError
from sonorisk.eval.formatting import Table, fmt_estimate, fmt_p
from sonorisk.eval.operating_points import (
    OperatingPoint,
    fixed_threshold,
    threshold_for_sensitivity,
    threshold_for_specificity,
    youden_threshold,
)
from sonorisk.eval.readers import mean_reader_sensitivity, paired_tests
from sonorisk.eval.report_context import (
    METRICS,
    NOT_PROBABILITIES,
    ReportConfig,
    ReportContext,
    ci_note,
    counts_cell,
    level_pct,
    metric_cells,
    metric_label,
    p_eq,
    p_tail,
)
from sonorisk.eval.roc import (
    auc_bootstrap_ci,
    auc_delong_ci,
    delong_test_paired,
    one_vs_rest_auc,
    roc_curve,
)
from sonorisk.eval.subgroups import split_covariate, subgroup_analysis

STANDARD_SUBGROUPS = ("site", "age", "lesion_size_mm", "birads")


def choose_operating_point(
    y: np.ndarray, scores: np.ndarray, cfg: ReportConfig, reads: pd.DataFrame | None
) -> OperatingPoint:
    """The paper's rule when reads exist: match the readers' mean unaided sensitivity."""
    if cfg.threshold is not None:
        return fixed_threshold(y, scores, cfg.threshold, cfg.level)
    if cfg.target_sensitivity is not None:
        return threshold_for_sensitivity(y, scores, cfg.target_sensitivity, cfg.level)
    if cfg.target_specificity is not None:
        return threshold_for_specificity(y, scores, cfg.target_specificity, cfg.level)
    if reads is not None and (reads["session"] == "unaided").any():
        target = mean_reader_sensitivity(reads, "unaided")
        op = threshold_for_sensitivity(y, scores, target, cfg.level)
        return OperatingPoint(
            op.threshold, f"{op.rule} (readers' pooled unaided sensitivity)", op.metrics
        )
    return youden_threshold(y, scores, cfg.level)


def _calibration_figure(
    y: np.ndarray,
    scores: dict[str, np.ndarray],
    out_dir: Path,
    cfg: ReportConfig,
    fig_note: str | None,
) -> Path | None:
    """The calibration plot of the models whose scores are probabilities (None: no such model)."""
    shown = {m: s for m, s in scores.items() if np.min(s) >= 0.0 and np.max(s) <= 1.0}
    if not shown:
        return None
    left_out = [m for m in scores if m not in shown]
    notes = [fig_note] if fig_note else []
    if left_out:
        notes.append(f"left out, scores not probabilities: {', '.join(left_out)}")
    return figures.plot_calibration(
        y,
        shown,
        out_dir / "figures" / "calibration.png",
        cfg.calibration_bins,
        "; ".join(notes) or None,
    )


def auc_section(ctx: ReportContext) -> None:
    """AUC per model, DeLong against the reference."""
    y, cfg, models, ref, scores, tables, ci = (
        ctx.y,
        ctx.cfg,
        ctx.models,
        ctx.ref,
        ctx.scores,
        ctx.tables,
        ctx.ci,
    )
    aucs_delong = {m: auc_delong_ci(y, scores[m], cfg.level, source=f"model {m}") for m in models}
    aucs_boot = {
        m: auc_bootstrap_ci(y, scores[m], cfg.level, cfg.n_bootstrap, cfg.seed, source=f"model {m}")
        for m in models
    }
    rows = []
    for m in models:
        p = (
            "— (reference)"
            if m == ref
            else fmt_p(delong_test_paired(y, scores[ref], scores[m], cfg.level))
        )
        rows.append(
            [
                m,
                str(len(y)),
                str(int(y.sum())),
                fmt_estimate(aucs_delong[m]),
                fmt_estimate(aucs_boot[m]),
                p,
            ]
        )
    tables["auc"] = Table(
        "auc",
        "Discrimination (AUC) per model",
        ["model", "n", "n malignant", "AUC (DeLong CI)", "AUC (bootstrap CI)", f"p vs {ref}"],
        rows,
        [
            f"{ci}. DeLong: {aucs_delong[ref].method}. Bootstrap: {aucs_boot[ref].method}.",
            "p: DeLong test for two correlated ROC curves (paired, two-sided).",
        ],
    )
    ctx.aucs_delong = aucs_delong


def operating_point_section(ctx: ReportContext) -> None:
    """The reference's operating point, every model at its threshold and its Youden point."""
    y, cfg, models, ref, scores, tables, ci = (
        ctx.y,
        ctx.cfg,
        ctx.models,
        ctx.ref,
        ctx.scores,
        ctx.tables,
        ctx.ci,
    )
    reads = ctx.reads
    op = choose_operating_point(y, scores[ref], cfg, reads)
    ops = {
        m: (op if m == ref else fixed_threshold(y, scores[m], op.threshold, cfg.level))
        for m in models
    }
    rows = []
    for m in models:
        o = ops[m]
        tests = (
            {}
            if m == ref
            else paired_tests(
                y, (scores[ref] >= op.threshold).astype(int), (scores[m] >= o.threshold).astype(int)
            )
        )
        cells = [
            m,
            o.rule if m == ref else f"same threshold as {ref}",
            f"{o.threshold:.4f}",
            counts_cell(o.metrics),
        ]
        for k in METRICS:
            cells.append(
                fmt_estimate(getattr(o.metrics, k), percent=True)
                + ("" if m == ref else f"; p{p_tail(tests[k])}")
            )
        cells.append(fmt_estimate(o.metrics.f1, digits=3))
        rows.append(cells)
        yo = youden_threshold(y, scores[m], cfg.level)
        if m == ref and o.rule == yo.rule:
            continue  # the reference already sits at its Youden point
        rows.append(
            [
                m,
                yo.rule,
                f"{yo.threshold:.4f}",
                counts_cell(yo.metrics),
                *metric_cells(yo.metrics),
                fmt_estimate(yo.metrics.f1, digits=3),
            ]
        )
    tables["operating_points"] = Table(
        "operating_points",
        f"Operating points (score >= threshold is malignant); reference {ref}",
        [
            "model",
            "rule",
            "threshold",
            "counts",
            *[metric_label(k, cfg.level) for k in METRICS],
            "F1",
        ],
        rows,
        [
            f"{ci}. Sensitivity, specificity, accuracy: Clopper-Pearson exact; PPV, NPV: logit "
            "(Mercaldo et al. 2007; exact when the value is 0% or 100%). F1: no interval.",
            f"p against {ref} at its threshold: McNemar exact (sens, spec, acc), "
            "Pearson chi-square "
            "(PPV, NPV).",
        ],
    )
    ctx.op = op


def subtype_section(ctx: ReportContext) -> None:
    """The subtype head's tables, when the predictions have subtype scores."""
    if ctx.predictions.subtype_scores is not None:
        _subtype_tables(ctx.truth, ctx.predictions.subtype_scores, ctx.cfg, ctx.tables)


def _subtype_tables(
    truth: pd.DataFrame, sub: pd.DataFrame, cfg: ReportConfig, tables: dict[str, Table]
) -> None:
    """Subtype head: one-vs-rest AUC per class and the argmax confusion matrix."""
    known = truth["subtype"].notna()
    labels = truth.loc[known, "subtype"].astype(str)
    classes = list(sub.columns)
    unknown = sorted(set(labels) - set(classes))
    if unknown:
        raise EvalInputError(
            "truth table: column 'subtype'",
            f"subtype(s) {unknown} have no 'subtype:<class>' score column (have {classes})",
        )
    scores = sub.loc[known]
    aucs = one_vs_rest_auc(labels.tolist(), {c: scores[c].to_numpy() for c in classes}, cfg.level)
    rows = [[c, str(int((labels == c).sum())), fmt_estimate(aucs[c])] for c in classes]
    tables["subtype_auc"] = Table(
        "subtype_auc",
        "Subtype head: one-vs-rest AUC per class",
        ["class", "n", "AUC (DeLong CI)"],
        rows,
        [
            f"{ci_note(cfg.level)}: DeLong, each class against all other classes; "
            f"{int(known.sum())} cases with a known subtype."
        ],
    )
    predicted = scores.to_numpy().argmax(axis=1)
    cm = multiclass_confusion(labels.tolist(), [classes[i] for i in predicted], classes)
    tables["subtype_confusion"] = Table(
        "subtype_confusion",
        "Subtype head: confusion matrix (rows truth, columns highest-scoring class)",
        ["truth \\ predicted", *classes],
        [[c, *[str(v) for v in cm.matrix[i]]] for i, c in enumerate(classes)],
        [f"Accuracy {cm.accuracy() * 100:.2f}% (point estimate, no interval)."],
    )


def covariate_section(ctx: ReportContext) -> None:
    """Continuous covariates by truth class (Table 1 style)."""
    truth, tables = ctx.truth, ctx.tables
    cov_rows = []
    for col in truth.columns:
        if col == "truth":
            continue
        numeric = pd.to_numeric(truth[col], errors="coerce")
        if numeric.notna().sum() >= 4 and numeric.notna().mean() > 0.9 and col != "birads":
            a = numeric[(truth["truth"] == 1) & numeric.notna()]
            b = numeric[(truth["truth"] == 0) & numeric.notna()]
            if len(a) >= 2 and len(b) >= 2:
                tt, wx = t_test(a, b, source=col), wilcoxon_rank_sum(a, b, source=col)
                cov_rows.append(
                    [
                        col,
                        f"{a.mean():.2f} ± {a.std(ddof=1):.2f}; median {a.median():.2f} "
                        f"({a.min():g}-{a.max():g})",
                        f"{b.mean():.2f} ± {b.std(ddof=1):.2f}; median {b.median():.2f} "
                        f"({b.min():g}-{b.max():g})",
                        fmt_p(tt),
                        fmt_p(wx),
                    ]
                )
    if cov_rows:
        tables["covariates"] = Table(
            "covariates",
            "Continuous covariates by truth",
            ["covariate", "malignant", "benign", "t-test p", "Wilcoxon p"],
            cov_rows,
            [
                "mean ± SD; median (range). t-test: Student, unpaired, two-sided. Wilcoxon: "
                "rank-sum (Mann-Whitney U), two-sided."
            ],
        )


def subgroup_section(ctx: ReportContext) -> None:
    """The reference in subgroups at its threshold (Table 3)."""
    y, cfg, ref, scores, tables, ci = ctx.y, ctx.cfg, ctx.ref, ctx.scores, ctx.tables, ctx.ci
    truth, op = ctx.truth, ctx.point
    specs = (
        cfg.subgroups
        if cfg.subgroups is not None
        else tuple(c for c in STANDARD_SUBGROUPS if c in truth.columns)
    )
    sub_rows = []
    for spec in specs:
        col, _, cut = spec.partition(":")
        try:
            cut_value = float(cut) if cut else None
        except ValueError as exc:
            raise EvalInputError("--subgroup", f"cut {cut!r} of {spec!r} is not a number") from exc
        groups = split_covariate(truth, col, cut_value)
        res = subgroup_analysis(y, scores[ref], op.threshold, groups, cfg.level)
        for i, row in enumerate(res.rows):
            p_cells = (
                [fmt_p(res.tests.get("auc"))] + [fmt_p(res.tests.get(k)) for k in METRICS]
                if i == 0 and res.tests
                else [""] * 6
            )
            sub_rows.append(
                [
                    col,
                    row.group,
                    str(row.n),
                    str(row.n_malignant),
                    fmt_estimate(row.auc),
                    p_cells[0],
                    *[
                        f"{fmt_estimate(getattr(row.metrics, k), percent=True)}"
                        + (f"; p{p_eq(p_cells[j + 1])}" if p_cells[j + 1] else "")
                        for j, k in enumerate(METRICS)
                    ],
                ]
            )
    if sub_rows:
        tables["subgroups"] = Table(
            "subgroups",
            f"{ref} in subgroups at threshold {op.threshold:.4f}",
            [
                "covariate",
                "group",
                "n",
                "n malignant",
                "AUC (DeLong CI)",
                "AUC p",
                *[metric_label(k, cfg.level) for k in METRICS],
            ],
            sub_rows,
            [
                f"{ci}; intervals as in the operating-point table. p between two groups: unpaired "
                "DeLong (AUC); Pearson chi-square, or Fisher's exact test when an expected count "
                "is "
                "below 5 (proportions). p is printed on the first row of each covariate."
            ],
        )


def model_figures_section(ctx: ReportContext) -> None:
    """ROC curves of the models and the calibration plot (figures without reads)."""
    y, cfg, models, scores, figs = ctx.y, ctx.cfg, ctx.models, ctx.scores, ctx.figs
    out_dir, fig_note, aucs_delong = ctx.out_dir, ctx.fig_note, ctx.aucs_delong
    range_warnings = ctx.range_warnings
    curves = {m: roc_curve(y, scores[m]) for m in models}
    figs["roc_models"] = figures.plot_model_rocs(
        {m: (curves[m], aucs_delong[m]) for m in models},
        out_dir / "figures" / "roc_models.png",
        f"ROC curves of the models (AUC with DeLong {level_pct(cfg.level)} CI)",
        fig_note,
    )
    calibration = _calibration_figure(y, scores, out_dir, cfg, fig_note)
    if calibration is not None:
        figs["calibration"] = calibration
    elif range_warnings:
        range_warnings.append(
            f"{NOT_PROBABILITIES} — no calibration plot: no model's scores are probabilities."
        )
    ctx.curves = curves
