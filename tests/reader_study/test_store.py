"""The store's rules on a real SQLite file: reads, audit trail, AI gating, washout,
reading time, migrations of an old database."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from sonorisk.reader_study.errors import ReadRejected, StudyError
from sonorisk.reader_study.migrations import migrate
from sonorisk.reader_study.schema import SCHEMA_VERSION
from sonorisk.reader_study.store import (
    Step,
    StudyStore,
    aided_opening,
    default_db_url,
    first_unanswered,
    open_refusal,
    unaided_is_final,
    validate_answer,
)

from .conftest import make_study


@pytest.fixture
def store(study: Path):
    s = StudyStore.open(default_db_url(study))
    yield s
    s.close()


@pytest.mark.parametrize(
    ("birads", "confidence", "reason"),
    [
        ("7", "50", "outside the scale"),
        ("4", "50", "bare 4 is ambiguous"),
        ("0", "50", "incomplete"),
        ("1", "50", "BI-RADS 1 is not offered"),
        ("6", "50", "BI-RADS 6 is not offered"),
        ("", "50", "BI-RADS is missing"),
        ("3", "101", "from 0 to 100"),
        ("3", "-1", "from 0 to 100"),
        ("3", "12.5", "whole number"),
        ("3", "high", "must be a number"),
    ],
)
def test_bad_answers_are_refused_with_the_reason(birads: str, confidence: str, reason: str) -> None:
    with pytest.raises(ReadRejected) as exc:
        validate_answer(birads, confidence)
    assert exc.value.status == 400 and reason in exc.value.reason


def test_answers_are_normalized() -> None:
    assert validate_answer("bi-rads 4a", "70") == ("4A", 70)
    assert validate_answer("5", 100.0) == ("5", 100)


def test_reads_follow_the_steps_with_audit_and_reading_time(store: StudyStore) -> None:
    steps = store.steps("R1")
    first, aided = steps[0], steps[1]
    duration = store.case(first.case_id)["duration_s"]
    # the AI step is closed until the unaided read is saved; later steps too
    with pytest.raises(ReadRejected, match="only after your unaided read") as exc:
        store.open_step("R1", 1)
    assert exc.value.status == 403
    with pytest.raises(ReadRejected, match="not open yet"):
        store.open_step("R1", 2)
    with pytest.raises(ReadRejected) as exc:
        store.save_read("R1", 1, "3", 10)
    assert exc.value.status == 403
    t0 = 1_000_000.0
    store.open_step("R1", 0, now=t0)
    store.open_step("R1", 0, now=t0 + 5)  # a refresh does not restart the clock
    read = store.save_read("R1", 0, "3", 20, now=t0 + 12.5)
    assert read["total_time_s"] == pytest.approx(12.5)
    assert read["reading_time_s"] == pytest.approx(12.5 - duration)
    assert store.current_step("R1").step == 1
    # changing the unaided read before the AI is shown is allowed and audited
    store.save_read("R1", 0, "4A", 55, now=t0 + 14)
    store.save_read("R1", 0, "4A", 55, now=t0 + 15)  # same answer again: no change
    store.open_step("R1", 1, now=t0 + 20)
    with pytest.raises(ReadRejected, match="cannot change after the AI") as exc:
        store.save_read("R1", 0, "2", 5, now=t0 + 21)
    assert exc.value.status == 409
    store.save_read("R1", 1, "4B", 70, now=t0 + 30)
    audit = store.audit()
    assert [(a["action"], a["session"]) for a in audit] == [
        ("insert", "unaided"),
        ("update", "unaided"),
        ("insert", "aided"),
    ]
    assert json.loads(audit[1]["old"]) == {"birads": "3", "confidence": 20}
    assert json.loads(audit[1]["new"]) == {"birads": "4A", "confidence": 55}
    assert all(a["actor"] == "R1" for a in audit)
    reads = {(r["case_id"], r["session"]): r for r in store.reads()}
    assert reads[(first.case_id, "unaided")]["birads"] == "4A"
    assert reads[(first.case_id, "unaided")]["total_time_s"] == pytest.approx(12.5)
    assert reads[(aided.case_id, "aided")]["total_time_s"] == pytest.approx(10.0)
    kinds = [e["kind"] for e in store.events()]
    assert kinds.count("ai_shown") == 1 and kinds.count("view") == 2
    # R2's steps are untouched
    assert store.current_step("R2").step == 0
    progress = {p["reader_id"]: p for p in store.progress()}
    assert progress["R1"]["done"] == 2 and progress["R1"]["current_step"] == 2
    assert progress["R2"]["done"] == 0


def test_a_committed_read_survives_a_new_connection(study: Path, store: StudyStore) -> None:
    store.open_step("R2", 0)
    store.save_read("R2", 0, "5", 99)
    with sqlite3.connect(study / "study.sqlite") as conn:
        rows = conn.execute("SELECT reader_id, session, birads, confidence FROM reads").fetchall()
    assert rows == [("R2", "unaided", "5", 99)]


def test_washout_opens_the_aided_session_later_in_a_new_order(
    study_inputs: dict, tmp_path: Path
) -> None:
    out = make_study(study_inputs, tmp_path / "w", washout=True, washout_days=1.0, seed=2)
    store = StudyStore.open(default_db_url(out))
    try:
        steps = store.steps("R1")
        n = len(steps) // 2
        assert [s.session for s in steps] == ["unaided"] * n + ["aided"] * n
        assert [s.case_id for s in steps[:n]] != [s.case_id for s in steps[n:]]
        t = time.time()
        for i in range(n):
            store.open_step("R1", i, now=t + i)
            store.save_read("R1", i, "3", 30, now=t + i + 1)
        last = t + n
        with pytest.raises(ReadRejected, match="aided session opens at") as exc:
            store.open_step("R1", n, now=last + 3600)
        assert exc.value.status == 403
        store.open_step("R1", n, now=last + 86400 + 1)
        store.save_read("R1", n, "4A", 60, now=last + 86400 + 10)
        assert store.current_step("R1").step == n + 1
    finally:
        store.close()


def test_an_old_version_database_is_upgraded_and_keeps_its_reads(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    engine = create_engine(url)
    assert migrate(engine, target=1) == 1
    with engine.begin() as conn:
        cols = [r[1] for r in conn.execute(text("PRAGMA table_info(readers)"))]
        assert "password_hash" not in cols
        conn.execute(text("INSERT INTO study_meta VALUES ('title', 'old study'), ('secret', 'x')"))
        conn.execute(text("INSERT INTO readers VALUES ('R1', 'One', 'h', 1.0)"))
        conn.execute(
            text(
                "INSERT INTO cases VALUES ('c1', 'k1', 'media/k1.mp4', 30, 12, 0.4, 96, 72, "
                "'benign', 0, '{}', 'scored', 0.2, '[]', '[]', 'ai/k1.json', NULL, '[]')"
            )
        )
        conn.execute(text("INSERT INTO steps VALUES ('R1', 0, 'c1', 'unaided', 1, 5.0)"))
        conn.execute(
            text(
                "INSERT INTO reads VALUES ('R1', 'c1', 'unaided', 0, '3', 40, 5.0, "
                "9.0, 4.0, 0.4, 3.6, 9.0)"
            )
        )
    engine.dispose()
    store = StudyStore.open(url)  # opening upgrades
    try:
        with store.engine.connect() as conn:
            versions = (
                conn.execute(text("SELECT version FROM schema_version ORDER BY version"))
                .scalars()
                .all()
            )
        assert versions == list(range(1, SCHEMA_VERSION + 1))
        assert store.reads()[0]["birads"] == "3" and store.reads()[0]["reading_time_s"] == 3.6
        assert store.reader("R1")["password_hash"] is None
        store.set_password("R1", "pbkdf2_sha256$1$AA==$AA==")  # the new column works
        store.log_event("R1", "view")  # and the new table
        assert store.events()[0]["kind"] == "view"
    finally:
        store.close()


def test_a_newer_database_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.sqlite'}"
    engine = create_engine(url)
    migrate(engine)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO schema_version VALUES (99, 0, 'from the future')"))
    engine.dispose()
    with pytest.raises(StudyError, match="newer than this sonorisk"):
        StudyStore.open(url)


def test_opening_a_missing_or_empty_study_names_it(tmp_path: Path) -> None:
    with pytest.raises(StudyError, match="no study database here"):
        StudyStore.open(default_db_url(tmp_path))
    url = f"sqlite:///{tmp_path / 'empty.sqlite'}"
    StudyStore.open(url, create=True).close()
    with pytest.raises(StudyError, match="holds no study"):
        StudyStore.open(url)
    with pytest.raises(StudyError, match="not a usable database URL"):
        StudyStore.open("nosuchdialect://x/y")


def check_concurrent_changes(store: StudyStore) -> None:
    """Answers to one step sent at once: one read, and an audit trail without gaps."""
    from concurrent.futures import ThreadPoolExecutor

    store.open_step("R1", 0)
    answers = [("3", 10), ("4A", 60), ("3", 10), ("5", 95), ("2", 5), ("4C", 85)] * 2
    with ThreadPoolExecutor(6) as pool:
        list(pool.map(lambda a: store.save_read("R1", 0, *a), answers))
    reads = store.reads()
    assert len(reads) == 1
    audit = store.audit()
    assert audit[0]["action"] == "insert" and audit[0]["old"] is None
    assert all(a["action"] == "update" for a in audit[1:])
    assert json.loads(audit[-1]["new"]) == {
        "birads": reads[0]["birads"],
        "confidence": reads[0]["confidence"],
    }
    # each audit row's old value is the previous row's new value: no change unlogged
    for before, after in zip(audit, audit[1:], strict=False):
        assert json.loads(after["old"]) == json.loads(before["new"])


def test_simultaneous_answers_on_sqlite(store: StudyStore) -> None:
    check_concurrent_changes(store)


def test_the_gating_rules_are_pure_functions_of_steps_and_answers() -> None:
    """No database: two cases, each read unaided then aided."""
    steps = [
        Step("R", n, case, sess, pos, None)
        for n, (case, sess, pos) in enumerate(
            [("a", "unaided", 1), ("a", "aided", 1), ("b", "unaided", 2), ("b", "aided", 2)]
        )
    ]
    read = {"submitted_at": 100.0}
    assert first_unanswered(steps, {}) is steps[0]
    assert first_unanswered(steps, {("a", "unaided"): read}) is steps[1]
    assert first_unanswered(steps, {(st.case_id, st.session): read for st in steps}) is None

    def refused(number: int, done: dict, now: float = 0.0, washout: float | None = None):
        refusal = open_refusal(steps, done, number, now, washout)
        return None if refusal is None else (refusal.status, refusal.reason)

    assert refused(0, {}) is None
    assert refused(1, {})[0] == 403 and "only after your unaided read" in refused(1, {})[1]
    assert refused(2, {}) == (403, "not open yet: answer step 0 first")
    assert refused(4, {})[0] == 404
    assert refused(1, {("a", "unaided"): read}) is None
    # with a washout the aided session waits for every unaided read, then the washout
    assert aided_opening(steps, {("a", "unaided"): read}, 50.0) is None
    both = {("a", "unaided"): read, ("b", "unaided"): {"submitted_at": 120.0}}
    assert aided_opening(steps, both, 50.0) == 170.0 and aided_opening(steps, {}, None) == 0.0
    assert "opens at" in refused(1, both, now=160.0, washout=50.0)[1]
    assert refused(1, both, now=171.0, washout=50.0) is None
    # an unaided read is final once its case's AI result was shown
    assert not unaided_is_final(steps, steps[0])
    shown = [*steps[:1], Step("R", 1, "a", "aided", 1, 5.0), *steps[2:]]
    assert unaided_is_final(shown, shown[0]) and not unaided_is_final(shown, shown[2])
    assert not unaided_is_final(shown, shown[1])  # an aided read is never locked
