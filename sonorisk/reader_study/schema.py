"""The study database, current version (SQLAlchemy Core; SQLite or PostgreSQL).

``migrations.py`` builds and upgrades it step by step; this module describes the
newest schema the code queries. Times are UNIX seconds (float) in UTC.

- ``study_meta``: key/value settings (title, seed, washout, cookie secret ...).
- ``readers``: one row per reader; sign-in token hash, optional password hash (v2).
- ``cases``: one row per video: opaque ``code`` (what readers and media URLs see:
  never the case id, which may carry the label), media files, truth and the AI result.
- ``steps``: each reader's ordered tasks ``(case, session)``; ``opened_at`` is the
  first time the page was shown (reading time starts there; for an aided step it is
  also when the AI result was first shown).
- ``reads``: one answer per (reader, case, session).
- ``audit``: every insert and change of an answer: old and new values, who, when.
- ``events`` (v2): page views and displays of the AI result, for the study log.
- ``drafts`` (v3): an answer being entered but not yet saved (autosave), one per
  reader and step, deleted when the answer is saved. Never a read: the export and
  the progress count only ``reads``.
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

SCHEMA_VERSION = 3

metadata = MetaData()

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("applied_at", Float, nullable=False),
    Column("description", Text, nullable=False),
)

study_meta = Table(
    "study_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

readers = Table(
    "readers",
    metadata,
    Column("reader_id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
    Column("password_hash", String(300)),  # v2
)

cases = Table(
    "cases",
    metadata,
    Column("case_id", String(200), primary_key=True),
    Column("code", String(32), nullable=False, unique=True),
    Column("video_file", Text, nullable=False),  # relative to the study folder
    Column("fps", Float, nullable=False),
    Column("n_frames", Integer, nullable=False),
    Column("duration_s", Float, nullable=False),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("pathology", String(32), nullable=False),
    Column("truth", Integer, nullable=False),
    Column("covariates", Text, nullable=False),  # JSON: site, age, lesion_size_mm, birads ...
    Column("ai_status", String(32), nullable=False),
    Column("ai_risk", Float),  # null: no scorable lesion; never invented
    Column("ai_notice", Text, nullable=False),  # JSON list of statements
    Column("ai_lesions", Text, nullable=False),  # JSON list: lesion_id, risk, clips, frames
    Column("ai_document", Text, nullable=False),  # copy of the score JSON (relative path)
    Column("overlay_file", Text),
    Column("heatmaps", Text, nullable=False),  # JSON list of relative PNG paths
)

steps = Table(
    "steps",
    metadata,
    Column("reader_id", String(64), ForeignKey("readers.reader_id"), nullable=False),
    Column("step", Integer, nullable=False),
    Column("case_id", String(200), ForeignKey("cases.case_id"), nullable=False),
    Column("session", String(16), nullable=False),
    Column("position", Integer, nullable=False),  # 1-based case number within the session
    Column("opened_at", Float),
    PrimaryKeyConstraint("reader_id", "step"),
    UniqueConstraint("reader_id", "case_id", "session"),
)

reads = Table(
    "reads",
    metadata,
    Column("reader_id", String(64), ForeignKey("readers.reader_id"), nullable=False),
    Column("case_id", String(200), ForeignKey("cases.case_id"), nullable=False),
    Column("session", String(16), nullable=False),
    Column("step", Integer, nullable=False),
    Column("birads", String(4), nullable=False),
    Column("confidence", Integer, nullable=False),
    Column("opened_at", Float, nullable=False),
    Column("submitted_at", Float, nullable=False),
    Column("total_time_s", Float, nullable=False),
    Column("video_duration_s", Float, nullable=False),
    Column("reading_time_s", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    PrimaryKeyConstraint("reader_id", "case_id", "session"),
)

audit = Table(
    "audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("actor", String(64), nullable=False),
    Column("reader_id", String(64), nullable=False),
    Column("case_id", String(200), nullable=False),
    Column("session", String(16), nullable=False),
    Column("action", String(16), nullable=False),  # insert | update
    Column("old", Text),  # JSON of the answer before (null on insert)
    Column("new", Text, nullable=False),  # JSON of the answer after
)

events = Table(  # v2
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("reader_id", String(64), nullable=False),
    Column("step", Integer),
    Column("kind", String(32), nullable=False),  # view | ai_shown | sign_in
    Column("detail", Text),
)

drafts = Table(  # v3
    "drafts",
    metadata,
    Column("reader_id", String(64), nullable=False),
    Column("step", Integer, nullable=False),
    Column("birads", String(4)),  # null: not chosen yet
    Column("confidence", Integer),  # null: slider not moved yet
    Column("updated_at", Float, nullable=False),
    PrimaryKeyConstraint("reader_id", "step"),
    ForeignKeyConstraint(["reader_id", "step"], ["steps.reader_id", "steps.step"]),
)
