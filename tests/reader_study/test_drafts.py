"""Autosave (issue 15): the answer a reader is entering is kept as a draft on the server,
comes back into the form after a reload or a server restart, goes when the answer is
saved, and is never a read (export, progress)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from sonorisk.reader_study.errors import ReadRejected
from sonorisk.reader_study.export import export_tables
from sonorisk.reader_study.migrations import migrate
from sonorisk.reader_study.store import StudyStore, default_db_url
from sonorisk.reader_study.web import CSRF_HEADER, create_app

from .conftest import client_for, links, page_token

JSON = {"Accept": "application/json"}


@pytest.fixture
def store(study: Path):
    s = StudyStore.open(default_db_url(study))
    yield s
    s.close()


def form_values(html: str) -> tuple[str | None, str]:
    """(checked BI-RADS, hidden confidence field) of a case page's form."""
    checked = re.search(r'value="([^"]+)" id="birads-[^"]+" required\s+checked', html)
    conf = re.search(r'name="confidence" id="confidence-field" value="([^"]*)"', html)
    assert conf, "no answer form"
    return (checked.group(1) if checked else None), conf.group(1)


def post_draft(c, n: int, token: str, **values: str):
    return c.post(f"/reader/R1/step/{n}/draft", data=values, headers={CSRF_HEADER: token, **JSON})


# --- the store ---------------------------------------------------------------------------
def test_store_keeps_partial_drafts_and_saving_the_answer_deletes_them(store) -> None:
    store.open_step("R1", 0)
    assert store.save_draft("R1", 0, "4a", "", now=10.0) == {
        "birads": "4A",
        "confidence": None,
        "updated_at": 10.0,
    }
    store.save_draft("R1", 0, "4A", "65", now=11.0)  # replaces the first
    assert store.drafts() == [
        {"reader_id": "R1", "step": 0, "birads": "4A", "confidence": 65, "updated_at": 11.0}
    ]
    assert store.reads() == [] and store.current_step("R1").step == 0
    assert store.save_draft("R1", 0, "", " ") is None  # cleared: nothing to keep
    assert store.draft("R1", 0) is None
    store.save_draft("R1", 0, "3", "30")
    read = store.save_read("R1", 0, "3", 40)
    assert store.drafts() == []  # saved with the answer, in one transaction
    # a draft equal to the saved answer is no draft
    saved_at = read["updated_at"]
    assert store.save_draft("R1", 0, "3", "40", saved_at=saved_at) is None
    assert store.drafts() == []
    # a draft from a page shown before the answer was saved (a late autosave request)
    # does not shadow the answer
    with pytest.raises(ReadRejected, match="saved after this page was shown") as exc:
        store.save_draft("R1", 0, "3", "30")
    assert exc.value.status == 409 and store.drafts() == []
    assert store.save_draft("R1", 0, "2", "30", saved_at=saved_at)["birads"] == "2"


@pytest.mark.parametrize(
    ("birads", "confidence", "reason"),
    [
        ("7", "", "outside the scale"),
        ("4", "", "ambiguous"),
        ("", "101", "from 0 to 100"),
        ("", "12.5", "whole number"),
        ("", "high", "must be a number"),
    ],
)
def test_a_draft_holds_only_values_the_form_could_save(
    store, birads: str, confidence: str, reason: str
) -> None:
    store.open_step("R1", 0)
    with pytest.raises(ReadRejected, match=reason) as exc:
        store.save_draft("R1", 0, birads, confidence)
    assert exc.value.status == 400 and store.drafts() == []


def test_drafts_follow_the_rules_of_answers(store) -> None:
    with pytest.raises(ReadRejected, match="only after your unaided read") as exc:
        store.save_draft("R1", 1, "3", "20")  # the AI step, before the unaided read
    assert exc.value.status == 403
    with pytest.raises(ReadRejected, match="not open yet"):
        store.save_draft("R1", 2, "3", "20")
    store.open_step("R1", 0)
    store.save_read("R1", 0, "3", 20)
    store.open_step("R1", 1)  # the AI result is shown: the unaided read is final
    with pytest.raises(ReadRejected, match="cannot change after the AI") as exc:
        store.save_draft("R1", 0, "5", "90", saved_at=store.reads()[0]["updated_at"])
    assert exc.value.status == 409 and store.drafts() == []


def test_a_version_2_database_gains_the_drafts_table_and_keeps_its_data(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'v2.sqlite'}"
    engine = create_engine(url)
    assert migrate(engine, target=2) == 2
    with engine.begin() as conn:
        assert "drafts" not in inspect(conn).get_table_names()
        conn.execute(text("INSERT INTO study_meta VALUES ('title', 'v2 study')"))
        conn.execute(text("INSERT INTO readers VALUES ('R1', 'One', 'h', 1.0, NULL)"))
    engine.dispose()
    store = StudyStore.open(url)
    try:
        assert store.meta()["title"] == "v2 study" and store.reader("R1")["name"] == "One"
        assert store.drafts() == []
    finally:
        store.close()


# --- the web app ---------------------------------------------------------------------------
def test_a_draft_survives_a_reload_and_a_restart_and_goes_when_saved(study: Path) -> None:
    store = StudyStore.open(default_db_url(study))
    app = create_app(study, store=store)
    c = client_for(app, links(study)["R1"])
    page = c.get("/reader/R1/step/0").text
    token = page_token(page)
    assert 'data-draft-url="/reader/R1/step/0/draft"' in page and "/static/draft.js" in page
    assert form_values(page) == (None, "") and 'id="draft-restored"' not in page

    r = post_draft(c, 0, token, birads="4B", confidence="")  # BI-RADS chosen first
    assert r.status_code == 200 and r.json()["kept"] is True
    assert form_values(c.get("/reader/R1/step/0").text) == ("4B", "")
    r = post_draft(c, 0, token, birads="4B", confidence="72")
    assert r.status_code == 200
    page = c.get("/reader/R1/step/0").text  # a reload
    assert form_values(page) == ("4B", "72") and 'id="draft-restored"' in page
    assert 'id="confidence-value">72<' in page  # the slider's read-out too
    assert store.reads() == []
    store.close()

    # a restart: a new app (and store) on the same database; the cookie still holds
    store = StudyStore.open(default_db_url(study))
    try:
        app = create_app(study, store=store)
        c2 = client_for(app, None)
        c2.cookies = c.cookies
        page = c2.get("/reader/R1/step/0").text
        assert form_values(page) == ("4B", "72") and 'id="draft-restored"' in page
        # the export and the progress count no draft as a read
        tables = export_tables(store)
        assert tables.reads.empty and tables.reads_all.empty
        assert store.progress()[0]["done"] == 0
        # saving the answer discards the draft
        r = c2.post(
            "/reader/R1/step/0",
            data={"birads": "4B", "confidence": "72", "csrf_token": page_token(page)},
        )
        assert r.status_code == 303 and store.drafts() == []
        assert len(export_tables(store).reads_all) == 1
        # back on the saved step: the saved answer, no draft note
        page = c2.get("/reader/R1/step/0").text
        assert form_values(page) == ("4B", "72") and 'id="draft-restored"' not in page
    finally:
        store.close()


def test_a_draft_over_a_saved_answer_comes_back_until_saved(app_store, study: Path) -> None:
    app, store = app_store
    c = client_for(app, links(study)["R1"])
    token = page_token(c.get("/reader/R1/step/0").text)
    assert (
        c.post(
            "/reader/R1/step/0", data={"birads": "3", "confidence": "30", "csrf_token": token}
        ).status_code
        == 303
    )
    # the page tells the script which saved answer it shows
    saved_at = re.search(r'data-saved-at="([^"]+)"', c.get("/reader/R1/step/0").text)[1]
    assert float(saved_at) == store.reads()[0]["updated_at"]
    late = post_draft(c, 0, token, birads="2", confidence="30")  # from the page before Save
    assert late.status_code == 409 and "saved after this page" in late.json()["reason"]
    assert (
        post_draft(c, 0, token, birads="4A", confidence="30", saved_at=saved_at).status_code == 200
    )
    page = c.get("/reader/R1/step/0").text
    assert form_values(page) == ("4A", "30") and 'id="draft-restored"' in page
    assert "Saved: BI-RADS 3, confidence 30" in page  # the saved answer is still said
    assert [(r["birads"], r["confidence"]) for r in store.reads()] == [("3", 30)]
    assert len(export_tables(store).reads_all) == 1  # the draft adds no row
    # a refused answer comes back as entered, not as the older draft
    r = c.post("/reader/R1/step/0", data={"birads": "2", "confidence": "", "csrf_token": token})
    assert r.status_code == 400 and form_values(r.text) == ("2", "")


def test_draft_requests_are_refused_with_reasons_in_json(app_store, study: Path) -> None:
    app, store = app_store
    c = client_for(app, links(study)["R1"])
    token = page_token(c.get("/reader/R1/step/0").text)
    cases = [  # (request, status, words of the reason)
        (
            c.post("/reader/R1/step/0/draft", data={"birads": "3"}, headers=JSON),
            403,
            "anti-forgery token",
        ),
        (post_draft(c, 1, token, birads="3"), 403, "only after your unaided read"),
        (post_draft(c, 0, token, birads="4"), 400, "ambiguous"),
        (post_draft(c, 0, token, birads="4A", saved_at="yesterday"), 400, "not a time"),
        (
            c.post(
                "/reader/R2/step/0/draft",
                data={"birads": "3"},
                headers={CSRF_HEADER: token, **JSON},
            ),
            403,
            "another reader",
        ),
        (
            client_for(app, None).post(
                "/reader/R1/step/0/draft",
                data={"birads": "3"},
                headers={CSRF_HEADER: token, **JSON},
            ),
            403,
            "anti-forgery token",
        ),  # no session: a token of another session
    ]
    for r, status, reason in cases:
        assert r.status_code == status and reason in r.json()["reason"], r.text
        assert r.headers["content-type"].startswith("application/json")
    assert store.drafts() == []
