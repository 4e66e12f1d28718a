"""``sonorisk reader-study export``: the study's reads in the tables ``sonorisk eval report``
reads, plus iMRMC input and the audit trail.

Files (``OUT/``):

- ``reads.csv``: one row per reader, case and session: ``reader, case_id, session,
  birads, confidence, reading_time_s`` (the READS format of docs/evaluation.md) and
  ``total_time_s, video_duration_s, step, opened_at, submitted_at, updated_at, changes``;
- ``truth.csv``: ``id, truth`` (1 malignant) and the covariates of the dataset table;
- ``predictions.csv``: ``id``, the AI's risk (column named after the model), ``note``
  (the AI documents' notices, so the report flags demonstration models);
- ``imrmc_input.txt`` (BI-RADS codes) and ``imrmc_confidence.txt`` (0-100): iMRMC input,
  written when the design is fully crossed;
- ``audit.csv``: every insert and change of an answer;
- with cases that have no AI risk ("no scorable lesion"): by default they are left out
  of reads/truth/predictions (listed in ``excluded_cases.csv``, all reads kept in
  ``reads_all.csv``); ``no_score="negative"`` keeps them with AI score 0 (a negative
  call), said in the note. The risk itself is never invented.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from sonorisk.csv_safe import safe_frame
from sonorisk.errors import ConfigError, InputError
from sonorisk.reader_study.store import StudyStore, iso

NO_SCORE_POLICIES = ("exclude", "negative")
READ_COLUMNS = [
    "reader",
    "case_id",
    "session",
    "birads",
    "confidence",
    "reading_time_s",
    "total_time_s",
    "video_duration_s",
    "step",
    "opened_at",
    "submitted_at",
    "updated_at",
    "changes",
]


@dataclass
class StudyTables:
    reads: pd.DataFrame
    reads_all: pd.DataFrame
    truth: pd.DataFrame
    predictions: pd.DataFrame
    audit: pd.DataFrame
    excluded: list[str] = field(default_factory=list)
    unfinished: list[str] = field(default_factory=list)  # "R1: 3/12"

    def imrmc_text(self, rating: str = "birads_code") -> str | None:
        """iMRMC input, or None when the design is not fully crossed."""
        from sonorisk.eval.mrmc import write_imrmc
        from sonorisk.eval.tables import load_reads, load_truth

        if self.reads.empty:
            return None
        try:
            truth = load_truth(self.truth, "truth.csv")
            reads = load_reads(self.reads, truth, "reads.csv")
            with tempfile.TemporaryDirectory() as tmp:
                path = write_imrmc(reads, Path(tmp) / "imrmc.txt", rating)
                return path.read_text()
        except InputError:
            return None


def export_tables(store: StudyStore, no_score: str = "exclude") -> StudyTables:
    if no_score not in NO_SCORE_POLICIES:
        raise ConfigError("no_score", f"must be one of {list(NO_SCORE_POLICIES)}, got {no_score!r}")
    meta = store.meta()
    model = meta.get("model_name", "AI")
    cases = store.cases()
    audit = pd.DataFrame(
        store.audit(),
        columns=["id", "at", "actor", "reader_id", "case_id", "session", "action", "old", "new"],
    )
    changes = audit[audit["action"] == "update"].groupby(["reader_id", "case_id", "session"]).size()
    rows = []
    for r in store.reads():
        rows.append(
            {
                "reader": r["reader_id"],
                "case_id": r["case_id"],
                "session": r["session"],
                "birads": r["birads"],
                "confidence": r["confidence"],
                "reading_time_s": round(r["reading_time_s"], 3),
                "total_time_s": round(r["total_time_s"], 3),
                "video_duration_s": round(r["video_duration_s"], 4),
                "step": r["step"],
                "opened_at": iso(r["opened_at"]),
                "submitted_at": iso(r["submitted_at"]),
                "updated_at": iso(r["updated_at"]),
                "changes": int(changes.get((r["reader_id"], r["case_id"], r["session"]), 0)),
            }
        )
    reads_all = pd.DataFrame(rows, columns=READ_COLUMNS)
    audit["at"] = [iso(t) for t in audit["at"]]

    no_risk = [c["case_id"] for c in cases if c["ai_risk"] is None]
    excluded = no_risk if no_score == "exclude" else []
    kept = [c for c in cases if c["case_id"] not in excluded]
    truth = pd.DataFrame(
        [
            {
                "id": c["case_id"],
                "truth": c["truth"],
                "pathology": c["pathology"],
                **c["covariates"],
            }
            for c in kept
        ]
    )
    notices = sorted({line for c in cases for line in c["ai_notice"]})
    note = " ".join(notices)
    if no_risk and no_score == "negative":
        note += (
            f" {len(no_risk)} case(s) where the AI found no scorable lesion are scored 0 "
            "(a negative call) by the export policy, not by the model."
        )
    elif no_risk:
        note += (
            f" {len(no_risk)} case(s) where the AI found no scorable lesion are left out "
            "of this analysis."
        )
    predictions = pd.DataFrame(
        {
            "id": [c["case_id"] for c in kept],
            model: [0.0 if c["ai_risk"] is None else float(c["ai_risk"]) for c in kept],
            "note": note.strip(),
        }
    )
    reads = reads_all[~reads_all["case_id"].isin(excluded)].reset_index(drop=True)
    unfinished = [
        f"{p['reader_id']}: {p['done']}/{p['total']}" for p in store.progress() if not p["finished"]
    ]
    return StudyTables(reads, reads_all, truth, predictions, audit, excluded, unfinished)


@dataclass
class ExportResult:
    out: Path
    files: list[Path]
    warnings: list[str]

    def report_command(self) -> str:
        o = self.out
        return (
            f"sonorisk eval report {o / 'predictions.csv'} --truth {o / 'truth.csv'} "
            f"--reads {o / 'reads.csv'} --out REPORT_DIR"
        )


def export_study(store: StudyStore, out: str | Path, no_score: str = "exclude") -> ExportResult:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tables = export_tables(store, no_score)
    files: list[Path] = []
    warnings: list[str] = []

    def write(frame: pd.DataFrame, name: str) -> None:
        safe_frame(frame).to_csv(out / name, index=False)  # no live formulas in a spreadsheet
        files.append(out / name)

    write(tables.reads, "reads.csv")
    write(tables.truth, "truth.csv")
    write(tables.predictions, "predictions.csv")
    write(tables.audit, "audit.csv")
    if tables.excluded:
        write(tables.reads_all, "reads_all.csv")
        write(
            pd.DataFrame({"id": tables.excluded, "reason": "AI: no scorable lesion"}),
            "excluded_cases.csv",
        )
        warnings.append(
            f"{len(tables.excluded)} case(s) without an AI risk (no scorable "
            "lesion) left out of reads/truth/predictions; see excluded_cases.csv"
        )
    for name, rating in (
        ("imrmc_input.txt", "birads_code"),
        ("imrmc_confidence.txt", "confidence"),
    ):
        text = tables.imrmc_text(rating)
        if text is None:
            if name == "imrmc_input.txt":
                warnings.append(
                    "iMRMC input not written: the design is not fully crossed "
                    "(not every reader read every case in both sessions)"
                )
            continue
        (out / name).write_text(text)
        files.append(out / name)
    if tables.unfinished:
        warnings.append("study not finished: " + ", ".join(tables.unfinished))
    (out / "export.json").write_text(
        json.dumps(
            {
                "study": store.meta().get("title"),
                "no_score": no_score,
                "excluded": tables.excluded,
                "unfinished": tables.unfinished,
                "files": [f.name for f in files],
            },
            indent=2,
        )
        + "\n"
    )
    return ExportResult(out, files, warnings)
