"""Versioned schema migrations (a small table of our own, no alembic).

``schema_version`` holds one row per applied migration. ``migrate(engine)`` applies
the missing ones in order, each in its own transaction (PostgreSQL: under an
advisory lock, so two servers starting at once do not both apply it). A database
newer than this code is refused rather than guessed at.

A migration is frozen once released: when a later version changes a table that an
older migration creates from ``schema.py``, freeze that table's old definition in
the older migration first.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Column, Float, MetaData, String, Table, inspect, select, text
from sqlalchemy.engine import Connection, Engine

from sonorisk.reader_study import schema as s
from sonorisk.reader_study.errors import StudyError

_PG_LOCK_KEY = 7_202_507  # any constant: the advisory lock of sonorisk study migrations


def _readers_v1(md: MetaData) -> Table:
    return Table(
        "readers",
        md,
        Column("reader_id", String(64), primary_key=True),
        Column("name", String(200), nullable=False),
        Column("token_hash", String(64), nullable=False, unique=True),
        Column("created_at", Float, nullable=False),
    )


def _v1(conn: Connection) -> None:
    s.schema_version.create(conn, checkfirst=True)
    s.study_meta.create(conn)
    _readers_v1(MetaData()).create(conn)
    for table in (s.cases, s.steps, s.reads, s.audit):
        table.create(conn)


def _v2(conn: Connection) -> None:
    conn.execute(text("ALTER TABLE readers ADD COLUMN password_hash VARCHAR(300)"))
    s.events.create(conn)


def _v3(conn: Connection) -> None:
    s.drafts.create(conn)


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    apply: Callable[[Connection], None]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "study, readers, cases, steps, reads, audit", _v1),
    Migration(2, "reader passwords; event log", _v2),
    Migration(3, "drafts: unsaved answers kept as the reader works (autosave)", _v3),
)
assert MIGRATIONS[-1].version == s.SCHEMA_VERSION


def current_version(conn: Connection) -> int:
    if not inspect(conn).has_table("schema_version"):
        return 0
    versions = conn.execute(select(s.schema_version.c.version)).scalars().all()
    return max(versions, default=0)


def migrate(engine: Engine, target: int | None = None, source: str = "database") -> int:
    """Bring the database to ``target`` (default: the newest); returns the version."""
    target = s.SCHEMA_VERSION if target is None else target
    for migration in MIGRATIONS:
        if migration.version > target:
            break
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text(f"SELECT pg_advisory_xact_lock({_PG_LOCK_KEY})"))
            version = current_version(conn)
            if version > s.SCHEMA_VERSION:
                raise StudyError(
                    source,
                    f"schema version {version} is newer than this sonorisk "
                    f"understands ({s.SCHEMA_VERSION}); upgrade sonorisk",
                )
            if version >= migration.version:
                continue
            if version != migration.version - 1:
                raise StudyError(
                    source, f"schema version {version} cannot be upgraded to {migration.version}"
                )
            migration.apply(conn)  # the first one also creates schema_version
            conn.execute(
                s.schema_version.insert().values(
                    version=migration.version,
                    applied_at=time.time(),
                    description=migration.description,
                )
            )
    with engine.connect() as conn:
        version = current_version(conn)
    if version > s.SCHEMA_VERSION:
        raise StudyError(
            source,
            f"schema version {version} is newer than this sonorisk "
            f"understands ({s.SCHEMA_VERSION}); upgrade sonorisk",
        )
    return version
