"""``sonorisk eval report``: every analysis of the paper on any scores table.

Writes ``report.md``, ``report.html``, ``tables/*.csv``, ``figures/*.png`` and, with
reads, ``imrmc_input.txt``. Each table notes how its intervals and p-values were
computed; undefined values print as "n/a (reason)", never NaN.
"""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from sonorisk.errors import ConfigError
from sonorisk.eval import figures
from sonorisk.eval.agreement import ICC_FORMS, cohen_kappa, fleiss_kappa, icc
from sonorisk.eval.binary import BinaryMetrics, multiclass_confusion
from sonorisk.eval.birads import BIRADS_SCALE
from sonorisk.eval.bootstrap import stratified_indices
from sonorisk.eval.comparisons import t_test, wilcoxon_rank_sum
from sonorisk.eval.errors import EvalInputError
from sonorisk.eval.formatting import Table, fmt_estimate, fmt_number, fmt_p
from sonorisk.eval.intervals import Estimate, TestResult
from sonorisk.eval.mrmc import obuchowski_rockette, write_imrmc
from sonorisk.eval.operating_points import (
    OperatingPoint,
    fixed_threshold,
    threshold_for_sensitivity,
    threshold_for_specificity,
    youden_threshold,
)
from sonorisk.eval.readers import (
    birads_change_table,
    calls,
    mean_reader_sensitivity,
    paired_tests,
    reader_table,
    reading_time_terciles,
    session_table,
)
from sonorisk.eval.roc import (
    RocCurve,
    auc_bootstrap_ci,
    auc_delong_ci,
    delong_test_paired,
    one_vs_rest_auc,
    roc_curve,
)
from sonorisk.eval.subgroups import split_covariate, subgroup_analysis
from sonorisk.eval.tables import Predictions

log = logging.getLogger(__name__)

STANDARD_SUBGROUPS = ("site", "age", "lesion_size_mm", "birads")
SYNTHETIC_WORDS = ("synthetic", "demo", "simulated", "simulation", "toy", "untrained")
METRICS = ("sensitivity", "specificity", "ppv", "npv", "accuracy")
_METRIC_NAMES = {
    "sensitivity": "Sens",
    "specificity": "Spec",
    "ppv": "PPV",
    "npv": "NPV",
    "accuracy": "Acc",
}


@dataclass(frozen=True)
class ReportConfig:
    """Settings of ``sonorisk eval report``; each key is also a flag (``--kappa-weights``)."""

    level: float = 0.95
    n_bootstrap: int = 2000
    seed: int = 0
    threshold: float | None = None
    target_sensitivity: float | None = None
    target_specificity: float | None = None
    reference_model: str | None = None
    subgroups: tuple[str, ...] | None = None  # "column" or "column:cut"; None: standard
    kappa_weights: str = "unweighted"  # unweighted | linear | quadratic
    mrmc_covariance: str = "delong"  # delong | jackknife
    mrmc_rating: str = "birads"  # birads | confidence
    calibration_bins: int = 10
    note: str | None = None
    inputs: dict[str, str] = field(default_factory=dict)  # names of the input files, for the header

    def __post_init__(self) -> None:
        def bad(key: str, reason: str) -> ConfigError:
            return ConfigError(f"eval report config: {key}", reason)

        if not 0.5 <= self.level < 1.0:
            raise bad("level", f"must be in [0.5, 1), got {self.level}")
        if self.n_bootstrap < 1:
            raise bad("n_bootstrap", f"must be >= 1, got {self.n_bootstrap}")
        if self.calibration_bins < 2:
            raise bad("calibration_bins", f"must be >= 2, got {self.calibration_bins}")
        rules = [k for k in ("threshold", "target_sensitivity", "target_specificity")
                 if getattr(self, k) is not None]  # fmt: skip
        if len(rules) > 1:
            raise bad(rules[1], f"give one operating-point rule, not {rules}")
        for key in ("target_sensitivity", "target_specificity"):
            value = getattr(self, key)
            if value is not None and not 0.0 <= value <= 1.0:
                raise bad(key, f"must be in [0, 1], got {value}")
        for key, allowed in (("kappa_weights", ("unweighted", "linear", "quadratic")),
                             ("mrmc_covariance", ("delong", "jackknife")),
                             ("mrmc_rating", ("birads", "confidence"))):  # fmt: skip
            if getattr(self, key) not in allowed:
                raise bad(key, f"must be one of {list(allowed)}, got {getattr(self, key)!r}")

    @property
    def mrmc_rating_column(self) -> str:
        return "birads_code" if self.mrmc_rating == "birads" else "confidence"


@dataclass
class ReportResult:
    out_dir: Path
    tables: dict[str, Table]
    figures: dict[str, Path]
    operating_point: OperatingPoint
    warnings: list[str]


def _ci_note(level: float) -> str:
    return f"{_level_pct(level)} confidence intervals"


def metric_label(metric: str, level: float) -> str:
    """Column header such as "Sens % (95% CI)" at the report's confidence level."""
    return f"{_METRIC_NAMES[metric]} % ({_level_pct(level)} CI)"


def _level_pct(level: float) -> str:
    return f"{level * 100:g}%"


def _p_eq(p: str) -> str:
    """ "=0.012" or "<0.001": so a cell reads "p<0.001", not "p=<0.001"."""
    return p if p.startswith("<") else f"={p}"


def _p_tail(test: TestResult) -> str:
    return _p_eq(fmt_p(test))


def _counts_cell(m: BinaryMetrics) -> str:
    c = m.counts
    return f"TP {c.tp} FN {c.fn} TN {c.tn} FP {c.fp}"


def _metric_cells(m: BinaryMetrics) -> list[str]:
    return [fmt_estimate(getattr(m, k), percent=True) for k in METRICS]


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


def synthetic_warnings(predictions: Predictions, cfg: ReportConfig) -> list[str]:
    """One line per distinct provenance note; synthetic/demo sources are flagged loudly."""
    out = []
    if cfg.note:
        flag = any(w in cfg.note.lower() for w in SYNTHETIC_WORDS)
        prefix = "SYNTHETIC/DEMO SCORES — not a clinical result. " if flag else ""
        out.append(f"{prefix}Note given with --note: {cfg.note}")
    by_note: dict[str, list[str]] = {}
    for model, note in predictions.notes.items():
        by_note.setdefault(note, []).append(model)
    for note, names in by_note.items():
        flag = any(w in note.lower() for w in SYNTHETIC_WORDS)
        prefix = "SYNTHETIC/DEMO SCORES — not a clinical result. " if flag else ""
        label = "Model" if len(names) == 1 else "Models"
        out.append(f"{prefix}{label} {', '.join(repr(n) for n in names)}: {note}")
    return out


NOT_PROBABILITIES = "SCORES NOT PROBABILITIES"


def score_range_warnings(scores: dict[str, np.ndarray]) -> list[str]:
    """A loud line per model whose scores leave [0, 1] (logits, ranks, decision values).

    Ranks, AUC and thresholds do not need probabilities, but a calibration plot
    of such scores would compare them with a fraction malignant and mean nothing.
    """
    out = []
    for model, s in scores.items():
        low, high = float(np.min(s)), float(np.max(s))
        if low < 0.0 or high > 1.0:
            out.append(
                f"{NOT_PROBABILITIES} — model {model!r} has scores from {low:.4g} to {high:.4g}, "
                "outside [0, 1]: it is left out of the calibration plot. AUC, tests and "
                "operating points hold for any score; thresholds are in its own score units."
            )
    return out


def _calibration_figure(
    y: np.ndarray, scores: dict[str, np.ndarray], out_dir: Path, cfg: ReportConfig,
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
        y, shown, out_dir / "figures" / "calibration.png", cfg.calibration_bins,
        "; ".join(notes) or None,
    )


def build_report(
    truth: pd.DataFrame,
    predictions: Predictions,
    reads: pd.DataFrame | None,
    out_dir: Path,
    cfg: ReportConfig,
) -> ReportResult:
    out_dir = Path(out_dir)
    (out_dir / "tables").mkdir(parents=True, exist_ok=True)
    (out_dir / "figures").mkdir(parents=True, exist_ok=True)
    y = truth["truth"].to_numpy().astype(int)
    models = predictions.models
    ref = cfg.reference_model or models[0]
    if ref not in models:
        raise EvalInputError("--reference-model", f"{ref!r} is not one of the models {models}")
    models = [ref, *[m for m in models if m != ref]]  # the reference leads every table
    scores = {m: predictions.scores[m].to_numpy() for m in models}
    provenance = synthetic_warnings(predictions, cfg)
    range_warnings = score_range_warnings(scores)
    fig_note = (
        "Synthetic/demo scores: not a clinical result"
        if any(w.startswith("SYNTHETIC") for w in provenance) or cfg.note
        else None
    )
    tables: dict[str, Table] = {}
    figs: dict[str, Path] = {}
    ci = _ci_note(cfg.level)

    # --- AUC per model, DeLong against the reference ---------------------------------------------
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

    # --- operating points ------------------------------------------------------------------------
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
            _counts_cell(o.metrics),
        ]
        for k in METRICS:
            cells.append(
                fmt_estimate(getattr(o.metrics, k), percent=True)
                + ("" if m == ref else f"; p{_p_tail(tests[k])}")
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
                _counts_cell(yo.metrics),
                *_metric_cells(yo.metrics),
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

    if predictions.subtype_scores is not None:
        _subtype_section(truth, predictions.subtype_scores, cfg, tables)

    # --- covariates by truth class (Table 1 style) -----------------------------------------------
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

    # --- subgroups (Table 3) ---------------------------------------------------------------------
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
                        + (f"; p{_p_eq(p_cells[j + 1])}" if p_cells[j + 1] else "")
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

    # --- figures without reads -------------------------------------------------------------------
    curves = {m: roc_curve(y, scores[m]) for m in models}
    figs["roc_models"] = figures.plot_model_rocs(
        {m: (curves[m], aucs_delong[m]) for m in models},
        out_dir / "figures" / "roc_models.png",
        f"ROC curves of the models (AUC with DeLong {_level_pct(cfg.level)} CI)",
        fig_note,
    )
    calibration = _calibration_figure(y, scores, out_dir, cfg, fig_note)
    if calibration is not None:
        figs["calibration"] = calibration
    elif range_warnings:
        range_warnings.append(f"{NOT_PROBABILITIES} — no calibration plot: no model's scores "
                              "are probabilities.")

    if reads is not None:
        _reader_sections(
            y,
            truth,
            scores[ref],
            ref,
            op,
            reads,
            cfg,
            out_dir,
            tables,
            figs,
            curves[ref],
            aucs_delong[ref],
            fig_note,
        )

    for t in tables.values():
        t.write_csv(out_dir / "tables" / f"{t.name}.csv")
    _write_documents(out_dir, tables, figs, range_warnings, provenance, cfg, truth, models, op,
                     ref)
    return ReportResult(out_dir, tables, figs, op, range_warnings + provenance)


def _subtype_section(
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
            f"{_ci_note(cfg.level)}: DeLong, each class against all other classes; "
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


def _reader_sections(
    y: np.ndarray,
    truth: pd.DataFrame,
    ref_scores: np.ndarray,
    ref: str,
    op: OperatingPoint,
    reads: pd.DataFrame,
    cfg: ReportConfig,
    out_dir: Path,
    tables: dict[str, Table],
    figs: dict[str, Path],
    curve: RocCurve,
    auc_est: Estimate,
    fig_note: str | None,
) -> None:
    ci = _ci_note(cfg.level)
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

    # --- agreement -------------------------------------------------------------------------------
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
            ["session", "reader A", "reader B", "n cases", f"kappa ({_level_pct(cfg.level)} CI)"],
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
            ["session", "readers", "cases", f"kappa ({_level_pct(cfg.level)} CI)", "method"],
            fleiss_rows,
            [f"{ci} from a case bootstrap."],
        )
    if icc_rows:
        tables["icc"] = Table(
            "icc",
            "Intraclass correlation of BI-RADS codes across readers",
            ["session", "form", "model", f"ICC ({_level_pct(cfg.level)} CI)", "F test", "p"],
            icc_rows,
            [
                f"{ci}: F-distribution (Shrout & Fleiss 1979); ICC(2,*) with "
                "Satterthwaite df. BI-RADS coded 1=0, 2=1, 3=2, 4A=3, 4B=4, 4C=5, "
                "5=6, 6=7."
            ],
        )

    # --- reading-time terciles -------------------------------------------------------------------
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

    # --- MRMC ------------------------------------------------------------------------------------
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

    # --- Fig. 4 ----------------------------------------------------------------------------------
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
        _level_pct(cfg.level),
    )


def _html_line(line: str) -> str:
    """One Markdown header line as HTML (title, bold label, bullet, warning)."""
    text = html.escape(line.lstrip("#- ").replace("**", "").replace("`", ""))
    if line.startswith("# "):
        return f"<h1>{text}</h1>"
    if "SYNTHETIC/DEMO" in line or NOT_PROBABILITIES in line:
        return f"<p class='warn'>{text}</p>"
    return f"<p>{text}</p>"


def _write_documents(
    out_dir: Path,
    tables: dict[str, Table],
    figs: dict[str, Path],
    range_warnings: list[str],
    provenance: list[str],
    cfg: ReportConfig,
    truth: pd.DataFrame,
    models: list[str],
    op: OperatingPoint,
    ref: str,
) -> None:
    n_pos = int(truth["truth"].sum())
    header = [
        "# sonorisk evaluation report",
        "",
        "Research software output, not a medical device; numbers describe the inputs below only.",
        "",
    ]
    if range_warnings:
        header += ["**Warnings:**", ""] + [f"- {w}" for w in range_warnings] + [""]
    if provenance:
        header += ["**Provenance notes:**", ""] + [f"- {w}" for w in provenance] + [""]
    header += [
        "- Inputs: " + ", ".join(f"{k} = `{v}`" for k, v in cfg.inputs.items())
        if cfg.inputs
        else "- Inputs: tables passed in memory",
        f"- Cases: {len(truth)} ({n_pos} malignant, {len(truth) - n_pos} benign)",
        f"- Models: {', '.join(models)}; reference: {ref}",
        f"- Operating point of {ref}: threshold {op.threshold:.4f} — {op.rule}",
        f"- Bootstrap: {cfg.n_bootstrap} resamples, seed {cfg.seed}; "
        f"confidence level {cfg.level:g}",
        "",
    ]
    md = "\n".join(header) + "\n" + "\n".join(t.to_markdown() for t in tables.values())
    md += (
        "\n## Figures\n\n" + "\n".join(f"![{k}](figures/{p.name})" for k, p in figs.items()) + "\n"
    )
    (out_dir / "report.md").write_text(md)
    body = "".join(_html_line(line) for line in header if line.strip())
    body += "".join(t.to_html() for t in tables.values())
    body += "".join(
        f"<h3>{html.escape(k)}</h3><img src='figures/{p.name}' width='560'>"
        for k, p in figs.items()
    )
    style = (
        "body{font-family:sans-serif;max-width:1400px;margin:2em auto}"
        "table{border-collapse:collapse;font-size:12px;margin-bottom:0.5em}"
        "td,th{border:1px solid #ccc;padding:3px 6px}.note{font-size:11px;color:#555}"
        ".warn{color:#b00000;font-weight:bold}"
    )
    (out_dir / "report.html").write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>sonorisk evaluation report"
        f"</title><style>{style}</style></head><body>{body}</body></html>"
    )
