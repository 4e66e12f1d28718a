"""The sections of ``sonorisk eval report`` about reader reads: AI against
readers (Table 4), BI-RADS changes (Table 5), agreement, reading time, MRMC
and the readers' ROC figure (Fig. 4). They run only when reads are given."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sonorisk.eval import figures
from sonorisk.eval.agreement import ICC_FORMS, cohen_kappa, fleiss_kappa, icc
from sonorisk.eval.birads import BIRADS_SCALE
from sonorisk.eval.bootstrap import stratified_indices
from sonorisk.eval.errors import EvalInputError
from sonorisk.eval.formatting import Table, fmt_estimate, fmt_number, fmt_p
from sonorisk.eval.intervals import Estimate, TestResult
from sonorisk.eval.mrmc import obuchowski_rockette, write_imrmc
from sonorisk.eval.readers import (
    birads_change_table,
    calls,
    reader_table,
    reading_time_terciles,
    session_table,
)
from sonorisk.eval.report_context import (
    METRICS,
    ReportConfig,
    ReportContext,
    level_pct,
    metric_label,
)


def _reads(ctx: ReportContext) -> pd.DataFrame:
    if ctx.reads is None:
        raise RuntimeError("reader sections run only with reads")
    return ctx.reads


def reader_table_section(ctx: ReportContext) -> None:
    """AI against readers, without and with AI (Table 4)."""
    cfg, ref, tables, ci, truth = ctx.cfg, ctx.ref, ctx.tables, ctx.ci, ctx.truth
    reads, op, ref_scores = _reads(ctx), ctx.point, ctx.scores[ctx.ref]
    read_cases = pd.Index(sorted(reads["case_id"].unique()))
    ai_calls = pd.Series((ref_scores >= op.threshold).astype(int), index=truth.index).loc[
        read_cases
    ]
    rows = []
    for r in reader_table(reads, ai_calls, ref, cfg.level):
        group = {
            "AI": f"{ref} (threshold {op.threshold:.4f})",
            "unaided": "without AI",
            "aided": "with AI",
        }[r.group]
        cells = [
            group,
            r.label,
            f"TP {r.metrics.counts.tp} FN {r.metrics.counts.fn} "
            f"TN {r.metrics.counts.tn} FP {r.metrics.counts.fp}",
        ]
        for k in METRICS:
            cells.append(fmt_estimate(getattr(r.metrics, k), percent=True))
            cells.append(fmt_p(r.tests.get(k)) if r.tests else "—")
        cells.append(r.comparator or "—")
        rows.append(cells)
    cols = ["group", "reader", "counts"]
    for k in METRICS:
        cols += [metric_label(k, cfg.level), f"{k} p"]
    cols.append("p against")
    tables["table4_readers"] = Table(
        "table4_readers",
        "AI against readers, without and with AI (Table 4)",
        cols,
        rows,
        [
            f"{ci}. BI-RADS >= 4A counts as a malignant call. Sens, spec, acc: Clopper-Pearson "
            "exact; PPV, NPV: logit (Mercaldo et al. 2007; exact when 0% or 100%).",
            "p: McNemar exact (sens, spec, acc) and Pearson chi-square (PPV, NPV); readers without "
            f"AI against {ref}, readers with AI against themselves without AI. 'Avg' pools all "
            "reads; its tests pair each read with the comparator's call on the same case.",
        ],
    )


def birads_change_section(ctx: ReportContext) -> None:
    """BI-RADS changes after AI (Table 5), when both sessions were read."""
    reads, tables = _reads(ctx), ctx.tables
    if {"unaided", "aided"} <= set(reads["session"]):
        change = birads_change_table(reads)
        tables["table5_birads_changes"] = Table(
            "table5_birads_changes",
            "BI-RADS changes after AI (Table 5)",
            list(change.columns),
            [[str(v) for v in rec] for rec in change.to_numpy().tolist()],
            [
                "Counts of reads per reader and truth class. 'crossed' columns count reads that "
                "moved across the 4A biopsy cut (a benign read crossing to < 4A is an avoided "
                "biopsy)."
            ],
        )


def agreement_section(ctx: ReportContext) -> None:
    """Cohen's kappa between reader pairs, Fleiss' kappa and ICC, per session."""
    cfg, tables, figs, ci, reads = ctx.cfg, ctx.tables, ctx.figs, ctx.ci, _reads(ctx)
    out_dir, fig_note = ctx.out_dir, ctx.fig_note
    kappa_rows, matrices, icc_rows, fleiss_rows = [], {}, [], []
    for session in ("unaided", "aided"):
        if not (reads["session"] == session).any():
            continue
        table = session_table(reads, session).dropna()
        readers = [str(c) for c in table.columns]
        mat = np.full((len(readers), len(readers)), np.nan)
        np.fill_diagonal(mat, 1.0)
        for i in range(len(readers)):
            for j in range(i + 1, len(readers)):
                k = cohen_kappa(
                    table.iloc[:, i].tolist(),
                    table.iloc[:, j].tolist(),
                    BIRADS_SCALE,
                    cfg.kappa_weights,
                    cfg.level,
                    f"reads {session} {readers[i]} vs {readers[j]}",
                )
                if k.defined:
                    mat[i, j] = mat[j, i] = k.estimate
                kappa_rows.append(
                    [session, readers[i], readers[j], str(len(table)), fmt_estimate(k, digits=3)]
                )
        matrices[f"{session} ({cfg.kappa_weights} kappa)"] = (readers, mat)
        if len(readers) >= 2:
            fk = fleiss_kappa(
                table.to_numpy(), BIRADS_SCALE, cfg.level, min(cfg.n_bootstrap, 1000), cfg.seed
            )
            fleiss_rows.append(
                [session, str(len(readers)), str(len(table)), fmt_estimate(fk, digits=3), fk.method]
            )
            codes = table.apply(lambda col: col.map({c: i for i, c in enumerate(BIRADS_SCALE)}))
            try:
                res = icc(codes.to_numpy(dtype=float), cfg.level, f"reads {session}")
                for form in ICC_FORMS:
                    r = res[form]
                    icc_rows.append(
                        [
                            session,
                            form,
                            r.description,
                            fmt_estimate(r.estimate, digits=3),
                            f"F({r.df1:g}, {r.df2:.1f}) = {r.f_value:.2f}",
                            fmt_p(TestResult(r.f_value, r.p_value, "F")),
                        ]
                    )
            except EvalInputError as exc:
                icc_rows.append([session, "all", "", f"n/a ({exc.reason})", "", ""])
    if kappa_rows:
        tables["kappa_pairs"] = Table(
            "kappa_pairs",
            f"Cohen's kappa between reader pairs on BI-RADS ({cfg.kappa_weights})",
            ["session", "reader A", "reader B", "n cases", f"kappa ({level_pct(cfg.level)} CI)"],
            kappa_rows,
            [
                f"{ci}: asymptotic normal, SE of Fleiss, Cohen & Everitt (1969). Categories in "
                f"order {', '.join(BIRADS_SCALE)}."
            ],
        )
        figs["kappa_matrix"] = figures.plot_kappa_matrices(
            matrices, out_dir / "figures" / "kappa_matrix.png", fig_note
        )
    if fleiss_rows:
        tables["fleiss_kappa"] = Table(
            "fleiss_kappa",
            "Fleiss' kappa across all readers",
            ["session", "readers", "cases", f"kappa ({level_pct(cfg.level)} CI)", "method"],
            fleiss_rows,
            [f"{ci} from a case bootstrap."],
        )
    if icc_rows:
        tables["icc"] = Table(
            "icc",
            "Intraclass correlation of BI-RADS codes across readers",
            ["session", "form", "model", f"ICC ({level_pct(cfg.level)} CI)", "F test", "p"],
            icc_rows,
            [
                f"{ci}: F-distribution (Shrout & Fleiss 1979); ICC(2,*) with "
                "Satterthwaite df. BI-RADS coded 1=0, 2=1, 3=2, 4A=3, 4B=4, 4C=5, "
                "5=6, 6=7."
            ],
        )


def reading_time_section(ctx: ReportContext) -> None:
    """Without against with AI by unaided reading-time tercile."""
    cfg, tables, ci, reads = ctx.cfg, ctx.tables, ctx.ci, _reads(ctx)
    if "reading_time_s" in reads.columns and {"unaided", "aided"} <= set(reads["session"]):
        rows = []
        for tr in reading_time_terciles(reads, cfg.level):
            for k in ("sensitivity", "specificity", "accuracy"):
                rows.append(
                    [
                        tr.tercile,
                        f"{tr.time_range[0]:.2f} to {tr.time_range[1]:.2f} s",
                        str(tr.n_reads),
                        k,
                        fmt_estimate(getattr(tr.unaided, k), percent=True),
                        fmt_estimate(getattr(tr.aided, k), percent=True),
                        fmt_p(tr.tests[k]),
                    ]
                )
        tables["reading_time_terciles"] = Table(
            "reading_time_terciles",
            "Without against with AI by unaided reading-time tercile",
            ["tercile", "unaided time", "reads", "metric", "without AI", "with AI", "p"],
            rows,
            [
                f"{ci}: Clopper-Pearson exact. p: McNemar exact on paired reads. "
                "Terciles cut at the "
                "1/3 and 2/3 quantiles of unaided reading times of reads present in both sessions."
            ],
        )


def mrmc_section(ctx: ReportContext) -> None:
    """Multi-reader multi-case AUC with against without AI (Obuchowski-Rockette)."""
    cfg, tables, ci, reads, out_dir = ctx.cfg, ctx.tables, ctx.ci, _reads(ctx), ctx.out_dir
    if {"unaided", "aided"} <= set(reads["session"]) and reads["reader"].nunique() >= 2:
        try:
            res = obuchowski_rockette(reads, cfg.mrmc_rating_column, cfg.mrmc_covariance, cfg.level)
            rows = [
                [
                    rd,
                    fmt_number(res.reader_aucs.loc[rd, "unaided"]),
                    fmt_number(res.reader_aucs.loc[rd, "aided"]),
                ]
                for rd in res.readers
            ]
            rows.append(
                [
                    "mean",
                    fmt_estimate(res.modality_aucs["unaided"]),
                    fmt_estimate(res.modality_aucs["aided"]),
                ]
            )
            rows.append(
                [
                    "aided - unaided",
                    fmt_estimate(res.difference),
                    f"F = {fmt_number(res.test.statistic, 3)}, ddf = "
                    f"{fmt_number(res.test.df, 1)}, p = {fmt_p(res.test)}",
                ]
            )
            tables["mrmc"] = Table(
                "mrmc",
                "Multi-reader multi-case AUC: with against without AI",
                ["reader", "AUC without AI", "AUC with AI"],
                rows,
                [
                    f"{ci}. {res.test.method}. Ratings: {cfg.mrmc_rating} "
                    "(ties count one half). Error (co)variances: "
                    + ", ".join(f"{k} {v:.3g}" for k, v in res.components.items())
                    + "."
                ],
            )
            write_imrmc(reads, out_dir / "imrmc_input.txt", cfg.mrmc_rating_column)
        except EvalInputError as exc:
            tables["mrmc"] = Table(
                "mrmc", "Multi-reader multi-case AUC", ["result"], [[f"n/a ({exc.reason})"]]
            )


def reader_roc_section(ctx: ReportContext) -> None:
    """The reference's ROC curve with every reader and the mean readers (Fig. 4)."""
    cfg, ref, figs, reads, op = ctx.cfg, ctx.ref, ctx.figs, _reads(ctx), ctx.point
    curve, auc_est, out_dir, fig_note = (
        ctx.curves[ref],
        ctx.aucs_delong[ref],
        ctx.out_dir,
        ctx.fig_note,
    )
    points = []
    for (reader, session), part in reads.groupby(["reader", "session"]):
        c = calls(part)
        t = part["truth"].to_numpy().astype(int)
        if t.sum() and (1 - t).sum():
            points.append(
                figures.ReaderPoint(
                    str(reader), float(c[t == 0].mean()), float(c[t == 1].mean()), str(session)
                )
            )
    means = _mean_reader_points(reads, cfg)
    m = op.metrics
    op_xy = (
        (1 - m.specificity.estimate, m.sensitivity.estimate)
        if m.specificity.estimate is not None and m.sensitivity.estimate is not None
        else None
    )
    figs["roc_readers"] = figures.plot_reader_roc(
        ref,
        curve,
        auc_est,
        op_xy,
        points,
        means,
        out_dir / "figures" / "roc_readers.png",
        means[0].tpr.method if means else "",
        fig_note,
        level_pct(cfg.level),
    )


def _mean_reader_points(reads: pd.DataFrame, cfg: ReportConfig) -> list[figures.MeanReaderPoint]:
    """Mean (over readers) sensitivity and 1-specificity with stratified case-bootstrap CIs."""
    out = []
    for session in ("unaided", "aided"):
        part = reads[reads["session"] == session]
        if part.empty:
            continue
        part = part.assign(call=calls(part))
        mat = part.pivot(index="case_id", columns="reader", values="call")
        truth = part.drop_duplicates("case_id").set_index("case_id").loc[mat.index, "truth"]
        y = truth.to_numpy().astype(int)
        # mean over the readers who read the case (NaN-safe when a reader skipped cases)
        case_mean = np.nanmean(mat.to_numpy(dtype=float), axis=1)
        idx = stratified_indices(y, cfg.n_bootstrap, cfg.seed)
        pos, neg = y == 1, y == 0
        sens = np.array([case_mean[row][pos[row]].mean() for row in idx])
        fpr = np.array([case_mean[row][neg[row]].mean() for row in idx])
        method = f"stratified case bootstrap, {cfg.n_bootstrap} resamples, seed {cfg.seed}"

        def est(vals: np.ndarray, point: float, method: str = method) -> Estimate:
            a = 1 - cfg.level
            lo, hi = np.quantile(vals, [a / 2, 1 - a / 2])
            return Estimate(float(point), float(lo), float(hi), method, cfg.level)

        out.append(
            figures.MeanReaderPoint(
                session,
                est(fpr, float(case_mean[neg].mean())),
                est(sens, float(case_mean[pos].mean())),
            )
        )
    return out


# In report order.
READER_SECTIONS = (
    reader_table_section,
    birads_change_section,
    agreement_section,
    reading_time_section,
    mrmc_section,
    reader_roc_section,
)
