"""The store on a real PostgreSQL server (started by the test): migrations from an old
version, concurrent first answers, the audit trail."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import create_engine, inspect, text

from sonorisk.reader_study.migrations import migrate
from sonorisk.reader_study.schema import SCHEMA_VERSION
from sonorisk.reader_study.store import StudyStore

from .conftest import make_study, needs_postgres

pytestmark = needs_postgres


def test_an_old_version_postgresql_database_is_upgraded(pg_db: str) -> None:
    engine = create_engine(pg_db)
    assert migrate(engine, target=1) == 1
    with engine.begin() as conn:
        assert "events" not in inspect(conn).get_table_names()
        conn.execute(text("INSERT INTO study_meta VALUES ('title', 'old'), ('secret', 'x')"))
        conn.execute(text("INSERT INTO readers VALUES ('R1', 'One', 'h', 1.0)"))
    engine.dispose()
    store = StudyStore.open(pg_db)
    try:
        with store.engine.connect() as conn:
            assert "events" in inspect(conn).get_table_names()
            assert conn.execute(text("SELECT max(version) FROM schema_version")).scalar() \
                == SCHEMA_VERSION
        assert store.reader("R1")["name"] == "One"
        store.set_password("R1", "pbkdf2_sha256$1$AA==$AA==")
        assert store.reader("R1")["password_hash"].startswith("pbkdf2")
    finally:
        store.close()


def test_simultaneous_answers_store_one_read_and_audit_each_change(study_inputs, pg_db,
                                                                   tmp_path) -> None:
    make_study(study_inputs, tmp_path / "s", db_url=pg_db)
    store = StudyStore.open(pg_db)
    try:
        store.open_step("R1", 0)
        answers = [("3", 10), ("4A", 60), ("3", 10), ("5", 95)]
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda a: store.save_read("R1", 0, *a), answers))
        reads = store.reads()
        assert len(reads) == 1
        audit = store.audit()
        assert audit[0]["action"] == "insert"
        final = (reads[0]["birads"], reads[0]["confidence"])
        assert json.loads(audit[-1]["new"]) == {"birads": final[0], "confidence": final[1]}
        # each audit row's old value is the previous row's new value: no change unlogged
        for before, after in zip(audit, audit[1:], strict=False):
            assert json.loads(after["old"]) == json.loads(before["new"])
    finally:
        store.close()
