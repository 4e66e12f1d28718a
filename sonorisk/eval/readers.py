"""Reader-study analyses (WAUVE Tables 4-5, Fig. 4-5, reading-time terciles).

Reads are a validated long table from :func:`sonorisk.eval.tables.load_reads`
(reader, case_id, session, birads, birads_code, truth, ...). A read is a
malignant call when BI-RADS >= 4A.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from sonorisk.eval.binary import BinaryMetrics, ConfusionCounts, metrics_from_counts
from sonorisk.eval.birads import BIRADS_CODE, BIRADS_SCALE, MALIGNANT_FROM
from sonorisk.eval.comparisons import compare_predictive_values, discordant_pairs, mcnemar
from sonorisk.eval.errors import EvalInputError
from sonorisk.eval.intervals import TestResult

POOLED = "Avg"


@dataclass(frozen=True)
class ReaderRow:
    """One row of Table 4: who, metrics, and p-values against a comparator."""

    label: str
    group: str  # "AI", "unaided", "aided"
    metrics: BinaryMetrics
    tests: dict[str, TestResult]  # metric -> test against the comparator (empty for AI)
    comparator: str  # what the p-values compare against


def calls(reads: pd.DataFrame) -> np.ndarray:
    return (reads["birads_code"].to_numpy() >= BIRADS_CODE[MALIGNANT_FROM]).astype(np.int8)


def counts_of(truth: np.ndarray, pred: np.ndarray) -> ConfusionCounts:
    return ConfusionCounts(
        int(np.sum((truth == 1) & (pred == 1))),
        int(np.sum((truth == 1) & (pred == 0))),
        int(np.sum((truth == 0) & (pred == 0))),
        int(np.sum((truth == 0) & (pred == 1))),
    )


def session_table(reads: pd.DataFrame, session: str) -> pd.DataFrame:
    """Reads of one session as a (case_id x reader) table of BI-RADS categories."""
    part = reads[reads["session"] == session]
    if part.empty:
        raise EvalInputError("reads", f"no reads in session {session!r}")
    return part.pivot(index="case_id", columns="reader", values="birads")


def paired_tests(
    truth: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray
) -> dict[str, TestResult]:
    """Table 4 tests of B against A on the same cases: McNemar exact for sens/spec/acc,
    Pearson chi-square for PPV/NPV."""
    correct_a, correct_b = pred_a == truth, pred_b == truth
    out: dict[str, TestResult] = {}
    for name, mask in (
        ("sensitivity", truth == 1),
        ("specificity", truth == 0),
        ("accuracy", np.ones_like(truth, dtype=bool)),
    ):
        pairs = discordant_pairs(correct_a[mask], correct_b[mask])
        out[name] = mcnemar(pairs.b, pairs.c, exact=True)
    ca, cb = counts_of(truth, pred_a), counts_of(truth, pred_b)
    out["ppv"] = compare_predictive_values(ca.tp, ca.fp, cb.tp, cb.fp)
    out["npv"] = compare_predictive_values(ca.tn, ca.fn, cb.tn, cb.fn)
    return out


def reader_table(
    reads: pd.DataFrame,
    ai_calls: pd.Series | None = None,
    ai_label: str = "AI",
    level: float = 0.95,
) -> list[ReaderRow]:
    """Table 4: AI at its operating point, each reader unaided (vs AI), pooled unaided,
    each reader aided (vs the same reader unaided), pooled aided.

    ``ai_calls`` is a 0/1 Series indexed by case id. Pooled rows add the counts of
    all reads; their tests pair every read with the comparator read on the same case.
    """
    rows: list[ReaderRow] = []
    readers = sorted(reads["reader"].unique())
    sessions = [s for s in ("unaided", "aided") if (reads["session"] == s).any()]
    if ai_calls is not None:
        truth = reads.drop_duplicates("case_id").set_index("case_id")["truth"]
        ai_truth = truth.reindex(ai_calls.index)
        if ai_truth.isna().any():
            raise EvalInputError("reads", "AI calls cover cases the reads do not")
        t = ai_truth.to_numpy().astype(int)
        rows.append(
            ReaderRow(
                ai_label,
                "AI",
                metrics_from_counts(counts_of(t, ai_calls.to_numpy()), level),
                {},
                "",
            )
        )
    for session in sessions:
        pool_truth, pool_pred, pool_ref = [], [], []
        for reader in readers:
            part = reads[(reads["session"] == session) & (reads["reader"] == reader)]
            part = part.sort_values("case_id")
            if part.empty:
                continue
            truth = part["truth"].to_numpy().astype(int)
            pred = calls(part)
            tests: dict[str, TestResult] = {}
            comparator = ""
            ref = None
            if session == "unaided" and ai_calls is not None:
                ref = ai_calls.reindex(part["case_id"]).to_numpy()
                comparator = ai_label
            elif session == "aided":
                base = reads[(reads["session"] == "unaided") & (reads["reader"] == reader)]
                base = base.set_index("case_id").reindex(part["case_id"])
                if not base["birads_code"].isna().any():
                    ref = (base["birads_code"].to_numpy() >= BIRADS_CODE[MALIGNANT_FROM]).astype(
                        int
                    )
                    comparator = f"{reader} unaided"
            if ref is not None:
                tests = paired_tests(truth, ref.astype(int), pred)
                pool_ref.append(ref.astype(int))
            pool_truth.append(truth)
            pool_pred.append(pred)
            rows.append(
                ReaderRow(
                    reader,
                    session,
                    metrics_from_counts(counts_of(truth, pred), level),
                    tests,
                    comparator,
                )
            )
        if pool_truth:
            t_all, p_all = np.concatenate(pool_truth), np.concatenate(pool_pred)
            tests = {}
            comparator = ""
            if len(pool_ref) == len(pool_truth) and pool_ref:
                tests = paired_tests(t_all, np.concatenate(pool_ref), p_all)
                comparator = ai_label if session == "unaided" else "pooled unaided"
            rows.append(
                ReaderRow(
                    POOLED,
                    session,
                    metrics_from_counts(counts_of(t_all, p_all), level),
                    tests,
                    comparator,
                )
            )
    return rows


def mean_reader_sensitivity(reads: pd.DataFrame, session: str = "unaided") -> float:
    """Pooled sensitivity of all readers' reads in a session (the paper's matching target)."""
    part = reads[(reads["session"] == session) & (reads["truth"] == 1)]
    if part.empty:
        raise EvalInputError("reads", f"no malignant cases read in session {session!r}")
    return float(calls(part).mean())


def birads_change_table(reads: pd.DataFrame) -> pd.DataFrame:
    """Table 5: per reader and truth class, unchanged / upgraded / downgraded reads and
    each observed transition ("3 -> 4A"), plus the binary crossings of the 4A cut."""
    un = reads[reads["session"] == "unaided"].set_index(["reader", "case_id"])
    ai = reads[reads["session"] == "aided"].set_index(["reader", "case_id"])
    both = un[["birads", "birads_code", "truth"]].join(
        ai[["birads", "birads_code"]].add_suffix("_aided"), how="inner"
    )
    if both.empty:
        raise EvalInputError("reads", "no case read in both sessions by the same reader")
    both = both.reset_index()
    both["change"] = np.sign(both["birads_code_aided"] - both["birads_code"]).astype(int)
    both["transition"] = both["birads"] + " -> " + both["birads_aided"]
    cut = BIRADS_CODE[MALIGNANT_FROM]
    both["crossed_up"] = (both["birads_code"] < cut) & (both["birads_code_aided"] >= cut)
    both["crossed_down"] = (both["birads_code"] >= cut) & (both["birads_code_aided"] < cut)
    order = {c: i for i, c in enumerate(BIRADS_SCALE)}

    def key(t: str) -> tuple[int, int]:
        a, b = t.split(" -> ")
        return (order[a], order[b])

    ups = sorted(set(both.loc[both["change"] > 0, "transition"]), key=key)
    downs = sorted(set(both.loc[both["change"] < 0, "transition"]), key=key, reverse=True)
    records = []
    for (reader, truth), part in both.groupby(["reader", "truth"], sort=True):
        label = "Malignant" if truth == 1 else "Benign"
        rec: dict[str, object] = {
            "reader": reader,
            "truth": f"{label} ({len(part)})",
            "no change": int((part["change"] == 0).sum()),
            "upgrade total": int((part["change"] > 0).sum()),
        }
        for t in ups:
            rec[f"up {t}"] = int(((part["transition"] == t) & (part["change"] > 0)).sum())
        rec["downgrade total"] = int((part["change"] < 0).sum())
        for t in downs:
            rec[f"down {t}"] = int(((part["transition"] == t) & (part["change"] < 0)).sum())
        rec["crossed to >= 4A"] = int(part["crossed_up"].sum())
        rec["crossed to < 4A"] = int(part["crossed_down"].sum())
        records.append(rec)
    return pd.DataFrame.from_records(records)


@dataclass(frozen=True)
class TercileRow:
    tercile: str
    time_range: tuple[float, float]
    n_reads: int
    unaided: BinaryMetrics
    aided: BinaryMetrics
    tests: dict[str, TestResult]


def reading_time_terciles(reads: pd.DataFrame, level: float = 0.95) -> list[TercileRow]:
    """Split reads by their unaided reading time into terciles (cut at the 1/3 and 2/3
    quantiles of all unaided reads) and compare aided against unaided calls within each."""
    if "reading_time_s" not in reads.columns:
        raise EvalInputError("reads", "no column 'reading_time_s' for reading-time terciles")
    un = reads[reads["session"] == "unaided"].set_index(["reader", "case_id"])
    ai = reads[reads["session"] == "aided"].set_index(["reader", "case_id"])
    both = un[["reading_time_s", "birads_code", "truth"]].join(
        ai[["birads_code"]].add_suffix("_aided"), how="inner"
    )
    if len(both) < 3:
        raise EvalInputError("reads", "fewer than 3 paired reads: no terciles")
    edges = np.quantile(both["reading_time_s"], [1 / 3, 2 / 3])
    group = np.digitize(both["reading_time_s"].to_numpy(), edges, right=True)
    cut = BIRADS_CODE[MALIGNANT_FROM]
    rows = []
    for g, name in enumerate(("fastest third", "middle third", "slowest third")):
        part = both[group == g]
        if part.empty:
            continue
        t = part["truth"].to_numpy().astype(int)
        pu = (part["birads_code"].to_numpy() >= cut).astype(int)
        pa = (part["birads_code_aided"].to_numpy() >= cut).astype(int)
        rows.append(
            TercileRow(
                name,
                (float(part["reading_time_s"].min()), float(part["reading_time_s"].max())),
                len(part),
                metrics_from_counts(counts_of(t, pu), level),
                metrics_from_counts(counts_of(t, pa), level),
                paired_tests(t, pu, pa),
            )
        )
    return rows
