"""Database engines shared by the stores (serving jobs, the reader study).

SQLite file by default, PostgreSQL by URL (``postgresql://`` means psycopg 3,
the driver sonorisk installs). SQLAlchemy Core only: the stores write their
SQL themselves, so what runs on one dialect runs on the other.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url

from sonorisk.errors import InputError


def normalize_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` mean psycopg 3 (the driver sonorisk installs)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def safe_url(url: str) -> str:
    """The URL with any password masked (for messages and logs)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL is reported as given
        return url.split("@")[-1]


def is_sqlite(url: str) -> bool:
    return normalize_url(url).startswith("sqlite")


def make_engine(url: str) -> Engine:
    """An engine for ``url``; ``InputError`` naming the (masked) URL when it is unusable.

    SQLite gets WAL (readers never wait on the writer), synchronous=FULL (a
    committed row survives a crash), a busy timeout, and real transactions: a
    write transaction (execution option ``immediate``) takes the write lock at
    once, so read-then-write sequences serialize."""
    url = normalize_url(url)
    try:
        engine = create_engine(url, pool_pre_ping=True)
    except Exception as exc:  # ArgumentError, NoSuchModuleError ...
        raise InputError(safe_url(url), f"not a usable database URL ({exc})") from exc
    if engine.dialect.name == "sqlite":
        # SQLAlchemy's recipe for real SQLite transactions: pysqlite's own BEGIN
        # handling off, BEGIN emitted here.
        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=10000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            immediate = conn.get_execution_options().get("immediate", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine
