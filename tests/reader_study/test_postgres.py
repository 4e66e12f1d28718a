"""The store on a real PostgreSQL server (started by the test): migrations from an old
version, concurrent answers and their audit trail."""

from __future__ import annotations

from sqlalchemy import create_engine, inspect, text

from sonorisk.reader_study.migrations import migrate
from sonorisk.reader_study.schema import SCHEMA_VERSION
from sonorisk.reader_study.store import StudyStore

from .conftest import make_study, needs_postgres
from .test_store import check_concurrent_changes

pytestmark = needs_postgres


def test_an_old_version_postgresql_database_is_upgraded(pg_db: str) -> None:
    engine = create_engine(pg_db)
    assert migrate(engine, target=1) == 1
    with engine.begin() as conn:
        assert "events" not in inspect(conn).get_table_names()
        conn.execute(text("INSERT INTO study_meta VALUES ('title', 'old'), ('secret', 'x')"))
        conn.execute(text("INSERT INTO readers VALUES ('R1', 'One', 'h', 1.0)"))
    engine.dispose()
    # a plain postgresql:// URL means psycopg 3 too
    store = StudyStore.open(pg_db.replace("postgresql+psycopg://", "postgresql://"))
    try:
        with store.engine.connect() as conn:
            assert "events" in inspect(conn).get_table_names()
            assert (
                conn.execute(text("SELECT max(version) FROM schema_version")).scalar()
                == SCHEMA_VERSION
            )
        assert store.reader("R1")["name"] == "One"
        store.set_password("R1", "pbkdf2_sha256$1$AA==$AA==")
        assert store.reader("R1")["password_hash"].startswith("pbkdf2")
    finally:
        store.close()


def test_simultaneous_answers_on_postgresql(study_inputs, pg_db, tmp_path) -> None:
    make_study(study_inputs, tmp_path / "s", db_url=pg_db)
    store = StudyStore.open(pg_db)
    try:
        check_concurrent_changes(store)
    finally:
        store.close()


def test_drafts_on_postgresql(study_inputs, pg_db, tmp_path) -> None:
    """Autosave on PostgreSQL: replaced in place, deleted with the saved answer."""
    make_study(study_inputs, tmp_path / "s", db_url=pg_db)
    store = StudyStore.open(pg_db)
    try:
        store.open_step("R1", 0)
        store.save_draft("R1", 0, "3", "")
        store.save_draft("R1", 0, "4B", "66")
        assert [(d["birads"], d["confidence"]) for d in store.drafts()] == [("4B", 66)]
        assert store.reads() == []
        store.save_read("R1", 0, "4B", 66)
        assert store.drafts() == [] and len(store.reads()) == 1
    finally:
        store.close()
