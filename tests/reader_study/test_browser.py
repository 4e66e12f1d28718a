"""A small study completed in a real browser (Playwright driving Debian's Chromium) against
`sonorisk reader-study serve` running as a real process: two readers, unaided then aided
reads; the server is SIGKILLed mid-study and restarted on the same database, and no saved
read is lost; a reader cannot open another reader's pages nor the AI result before the
unaided read is saved; the export feeds `sonorisk eval report` (Table 4/5, Fig 4/5,
reading time). Run on SQLite and on a PostgreSQL server started by the test."""

from __future__ import annotations

import pandas as pd
import pytest

from sonorisk.cli import main
from sonorisk.reader_study.store import StudyStore, default_db_url

from .conftest import CHROMIUM, FRAMES, Server, links, make_study, needs_chromium, needs_postgres

pytestmark = [needs_chromium, pytest.mark.slow]


def planned_answer(truth: int, reader: str, session: str, position: int) -> tuple[str, int]:
    """Answers with some signal and some noise, so the report's statistics are defined."""
    unaided = {1: ["4A", "4B", "3", "5", "4C"], 0: ["3", "2", "4A", "3", "2"]}[truth]
    aided = {1: ["4B", "4C", "4A", "5", "5"], 0: ["2", "3", "3", "2", "3"]}[truth]
    shift = 1 if reader == "R2" else 0
    cats = unaided if session == "unaided" else aided
    birads = cats[(position + shift) % len(cats)]
    return birads, (80 if birads >= "4" else 20) + position + (5 if session == "aided" else 0)


class Reader:
    """One reader's browser context."""

    def __init__(self, browser, server: Server, rid: str, link: str, store: StudyStore) -> None:
        self.ctx = browser.new_context()
        self.page = self.ctx.new_page()
        self.server, self.rid, self.store = server, rid, store
        self.steps = store.steps(rid)
        self.page.goto(server.base + link)
        assert self.page.url.endswith(f"/reader/{rid}")
        self.submitted: dict[tuple[str, str], tuple[str, int]] = {}

    def goto(self, path: str):
        return self.page.goto(self.server.base + path)

    def at_step(self) -> int:
        return int(self.page.url.rstrip("/").split("/step/")[1])

    def continue_(self) -> int:
        self.goto(f"/reader/{self.rid}")
        self.page.click("#continue")
        return self.at_step()

    def check_player(self) -> None:
        page = self.page
        page.wait_for_function(
            "() => document.getElementById('video').readyState >= 2", timeout=15000
        )
        duration = page.evaluate("document.getElementById('video').duration")
        assert duration == pytest.approx(FRAMES / 30.0, abs=0.05)
        page.click("#frame-fwd")
        page.wait_for_function(
            "() => document.getElementById('frame-counter').textContent"
            f".startsWith('frame 2 / {FRAMES}')",
            timeout=5000,
        )
        page.click("#frame-back")
        page.wait_for_function(
            "() => document.getElementById('frame-counter').textContent.startsWith('frame 1 /')",
            timeout=5000,
        )
        page.select_option("#speed", "2")
        assert page.evaluate("document.getElementById('video').playbackRate") == 2
        page.check("#loop")
        assert page.evaluate("document.getElementById('video').loop") is True
        page.click("#play")
        page.wait_for_function(
            "() => document.getElementById('video').currentTime > 0.05", timeout=10000
        )
        page.click("#play")  # pause
        assert page.evaluate("document.getElementById('video').paused") is True

    def answer_current(self, check_player: bool = False) -> int:
        """Answer the step the browser shows; returns the step answered."""
        page = self.page
        n = self.at_step()
        step = self.steps[n]
        truth = self.store.case(step.case_id)["truth"]
        ai_shown = page.locator("#ai-result").count() > 0
        assert ai_shown == (step.session == "aided")
        if step.session == "unaided":
            # before this read is saved, its AI step answers 403
            other = self.ctx.new_page()
            response = other.goto(self.server.base + f"/reader/{self.rid}/step/{n + 1}")
            assert response.status == 403
            assert "only after your unaided read" in other.content()
            assert other.locator("#ai-result").count() == 0
            other.close()
        else:
            assert page.locator("#ai-risk").is_visible()
            assert "Research software, not a medical device" in page.content()
        if check_player:
            self.check_player()
        birads, conf = planned_answer(truth, self.rid, step.session, step.position)
        page.check(f"#birads-{birads}")
        if check_player and (step.case_id, step.session) not in self.submitted:
            # An untouched slider is no answer (no default 50): refused with the
            # reason, and the BI-RADS choice comes back checked.
            assert page.text_content("#confidence-value").startswith("not set")
            page.click("#submit")
            page.wait_for_load_state()
            assert "confidence is missing" in page.text_content("#error")
            assert page.is_checked(f"#birads-{birads}") and self.at_step() == n
        page.evaluate(
            "v => { const s = document.getElementById('confidence'); s.value = v;"
            " s.dispatchEvent(new Event('input')); }",
            conf,
        )
        assert page.text_content("#confidence-value") == str(conf)
        page.click("#submit")
        page.wait_for_load_state()
        self.submitted[(step.case_id, step.session)] = (birads, conf)
        return n


def stored(store: StudyStore, rid: str) -> dict[tuple[str, str], tuple[str, int]]:
    return {
        (r["case_id"], r["session"]): (r["birads"], r["confidence"])
        for r in store.reads()
        if r["reader_id"] == rid
    }


def run_study(study, db_url, server_factory, tmp_path, report_too: bool = True) -> None:
    from playwright.sync_api import sync_playwright

    server = server_factory(study, db_url)
    store = StudyStore.open(db_url or default_db_url(study))
    link = links(study)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM)
            r1 = Reader(browser, server, "R1", link["R1"], store)
            r2 = Reader(browser, server, "R2", link["R2"], store)
            assert r1.continue_() == 0
            r1.answer_current(check_player=True)  # unaided, then the page shows the AI step
            assert r1.at_step() == 1
            r1.answer_current()
            r1.answer_current()
            assert r1.at_step() == 3
            assert r2.continue_() == 0
            r2.answer_current()
            assert r2.at_step() == 1  # R2 sees the AI step of its first case, unanswered

            # a reader cannot open another reader's pages
            for path in ("/reader/R2", "/reader/R2/step/0", "/reader/R2/step/0/video.mp4"):
                response = r1.goto(path)
                assert response.status == 403, path
            assert "another reader" in r1.page.content()

            # kill the server mid-study; every saved read is in the database
            server.kill()
            assert stored(store, "R1") == r1.submitted and len(r1.submitted) == 3
            assert stored(store, "R2") == r2.submitted and len(r2.submitted) == 1
            server = server_factory(study, db_url, port=server.port)
            r1.server = r2.server = server

            # the readers resume where they left off (their cookies still hold)
            assert r1.continue_() == 3
            response = r2.page.reload()
            assert response.status == 200 and r2.at_step() == 1
            assert r2.page.locator("#ai-result").count() == 1
            for reader in (r1, r2):
                while reader.page.url.find("/step/") >= 0:
                    reader.answer_current()
                assert reader.page.locator("#finished").count() == 1
                assert stored(store, reader.rid) == reader.submitted
                assert len(reader.submitted) == len(reader.steps)

            admin = browser.new_context().new_page()
            admin.goto(server.base + link["admin"])
            assert admin.locator("#study-finished").count() == 1
            browser.close()
    finally:
        store.close()
    assert sum(1 for a in store_audit(study, db_url) if a["action"] == "insert") == 20

    # export and analyse
    export, report = tmp_path / "export", tmp_path / "report"
    db_args = ["--db", db_url] if db_url else []
    assert main(["reader-study", "export", str(study), "--out", str(export), *db_args]) == 0
    reads = pd.read_csv(export / "reads.csv")
    excluded = pd.read_csv(export / "excluded_cases.csv")["id"].tolist()
    assert len(excluded) == 1  # the "no scorable lesion" video
    assert len(reads) == 2 * 2 * 4 and not reads["case_id"].isin(excluded).any()
    assert len(pd.read_csv(export / "reads_all.csv")) == 20
    # reading time = total time - video duration (the paper's definition)
    assert (
        (reads["reading_time_s"] - (reads["total_time_s"] - reads["video_duration_s"])).abs() < 2e-3
    ).all()
    assert (reads["video_duration_s"] == FRAMES / 30.0).all() and (reads["total_time_s"] > 0).all()
    assert (export / "imrmc_input.txt").read_text().count("\n") > 16
    if not report_too:  # the analysis reads only the exported tables: one backend suffices
        return
    assert (
        main(
            [
                "eval",
                "report",
                str(export / "predictions.csv"),
                "--truth",
                str(export / "truth.csv"),
                "--reads",
                str(export / "reads.csv"),
                "--out",
                str(report),
                "--bootstrap",
                "200",
            ]
        )
        == 0
    )
    text = (report / "report.md").read_text()
    for heading in ("(Table 4)", "(Table 5)", "reading-time tercile", "SYNTHETIC/DEMO"):
        assert heading in text, heading
    for fig in ("roc_readers.png", "kappa_matrix.png"):  # Fig. 4, Fig. 5
        assert (report / "figures" / fig).stat().st_size > 1000
    table4 = pd.read_csv(report / "tables" / "table4_readers.csv")
    assert table4.astype(str).apply(lambda c: c.str.contains("R1")).any().any()


def store_audit(study, db_url) -> list[dict]:
    store = StudyStore.open(db_url or default_db_url(study))
    try:
        return store.audit()
    finally:
        store.close()


def test_browser_study_on_sqlite_survives_a_server_kill(study, server_factory, tmp_path) -> None:
    run_study(study, None, server_factory, tmp_path)


@needs_postgres
def test_browser_study_on_postgresql_survives_a_server_kill(
    study_inputs, pg_db, server_factory, tmp_path
) -> None:
    study = make_study(study_inputs, tmp_path / "pgstudy", db_url=pg_db, show_overlay=True)
    assert not (study / "study.sqlite").exists()
    run_study(study, pg_db, server_factory, tmp_path, report_too=False)


def test_browser_autosave_restores_an_unsaved_answer(study, server_factory) -> None:
    """A reader chooses an answer and leaves without saving: a reload and a server restart
    bring it back into the form (autosave, issue 15); Save stores it and ends the draft."""
    from playwright.sync_api import sync_playwright

    server = server_factory(study)
    store = StudyStore.open(default_db_url(study))

    def restored(page) -> None:
        assert page.is_checked("#birads-4C")
        assert page.text_content("#confidence-value") == "53"
        assert page.input_value("#confidence-field") == "53"
        assert page.locator("#draft-restored").count() == 1

    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM)
            page = browser.new_context().new_page()
            page.goto(server.base + links(study)["R1"])
            page.goto(server.base + "/reader/R1/step/0")
            page.check("#birads-4C")
            page.focus("#confidence")  # the slider starts unset (shown at 50)
            for _ in range(3):
                page.keyboard.press("ArrowRight")
            page.wait_for_function(
                "() => document.getElementById('draft-status').textContent"
                ".startsWith('Draft kept')",
                timeout=10000,
            )
            page.reload()
            restored(page)
            assert store.reads() == []  # a draft is not a read

            server.kill()
            server = server_factory(study, port=server.port)
            page.reload()
            restored(page)

            page.click("#submit")
            page.wait_for_url("**/reader/R1/step/1")
            browser.close()
        assert stored(store, "R1") == {(store.steps("R1")[0].case_id, "unaided"): ("4C", 53)}
        assert store.drafts() == []
    finally:
        store.close()
