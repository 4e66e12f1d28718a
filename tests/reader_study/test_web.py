"""The web app in-process (FastAPI TestClient over the real SQLite study): sign-in, who may
see what, 4xx with reasons, the AI display (risk, "no scorable lesion", notice), admin."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient

from sonorisk.reader_study.web import NO_SCORE_TEXT

from .conftest import NOTICE, client_for, form_token, links, page_token


def test_sign_in_by_link_and_password(app_store, study: Path) -> None:
    app, store = app_store
    c = client_for(app, links(study)["R1"])
    assert c.get("/").headers["location"] == "/reader/R1"
    home = c.get("/reader/R1")
    assert home.status_code == 200 and "Reader One" in home.text and "0 of 10" in home.text
    anon = client_for(app, None)
    assert anon.get("/r/not-a-token").status_code == 404
    assert anon.get("/reader/R1").status_code == 401
    token = form_token(anon)
    r = anon.post("/login", data={"reader_id": "R2", "password": "wrong-pass", "csrf_token": token})
    assert r.status_code == 401 and "wrong password" in r.text
    r = anon.post(
        "/login", data={"reader_id": "R1", "password": "anything-at-all", "csrf_token": token}
    )
    assert r.status_code == 401  # R1 has no password: link only
    r = anon.post(
        "/login", data={"reader_id": "R2", "password": "secret-pass-2", "csrf_token": token}
    )
    assert r.status_code == 303 and r.headers["location"] == "/reader/R2"
    assert anon.get("/reader/R2").status_code == 200
    # a forged cookie naming another reader is not accepted
    forged = TestClient(
        app, follow_redirects=False, cookies={"sonorisk_study": "reader:R1:9999999999:00"}
    )
    assert forged.get("/reader/R1").status_code == 401
    assert [e["kind"] for e in store.events()].count("sign_in") == 2


def test_a_reader_cannot_open_another_readers_pages_or_admin(app_store, study: Path) -> None:
    app, _ = app_store
    c = client_for(app, links(study)["R1"])
    for url in (
        "/reader/R2",
        "/reader/R2/next",
        "/reader/R2/step/0",
        "/reader/R2/step/0/video.mp4",
        "/reader/R2/step/1/overlay.mp4",
    ):
        r = c.get(url)
        assert r.status_code == 403, url
        assert "another reader" in r.text
    r = c.post(
        "/reader/R2/step/0", data={"birads": "3", "confidence": "5", "csrf_token": form_token(c)}
    )
    assert r.status_code == 403 and "another reader" in r.text
    assert c.get("/admin").status_code == 403
    assert c.get("/admin/export/reads.csv").status_code == 403


def test_no_ai_and_no_label_before_the_unaided_read_is_saved(app_store, study: Path) -> None:
    app, store = app_store
    c = client_for(app, links(study)["R1"])
    assert c.get("/reader/R1/next").headers["location"] == "/reader/R1/step/0"
    step = store.steps("R1")[0]
    case = store.case(step.case_id)
    page = c.get("/reader/R1/step/0")
    assert page.status_code == 200
    for secret in (
        case["case_id"],
        "benign",
        "malignant",
        "phantom",
        "AI result",
        NOTICE[1],
        "Malignancy risk",
        "overlay.mp4",
    ):
        assert secret not in page.text, secret
    # the AI step, its overlay and heatmaps are refused until the unaided read is saved
    for url in (
        "/reader/R1/step/1",
        "/reader/R1/step/1/overlay.mp4",
        "/reader/R1/step/1/heatmap/0.png",
    ):
        r = c.get(url)
        assert r.status_code == 403 and "only after your unaided read" in r.text, url
    r = c.post(
        "/reader/R1/step/1",
        data={"birads": "3", "confidence": "5", "csrf_token": page_token(page.text)},
    )
    assert r.status_code == 403 and "only after your unaided read" in r.text
    # a step ahead is not open either
    assert c.get("/reader/R1/step/2").status_code == 403
    # the video is served (with HTTP ranges, as browsers ask)
    v = c.get("/reader/R1/step/0/video.mp4", headers={"Range": "bytes=0-99"})
    assert v.status_code == 206 and v.headers["content-type"] == "video/mp4"
    assert len(v.content) == 100
    assert store.reads() == []


def test_bad_answers_get_400_with_the_reason_and_nothing_is_stored(app_store, study: Path) -> None:
    app, store = app_store
    c = client_for(app, links(study)["R1"])
    page = c.get("/reader/R1/step/0").text
    token = page_token(page)
    # No default confidence is pre-filled: the reader must set it.
    assert 'name="confidence" id="confidence-field" value=""' in page
    for data, reason in (
        ({"birads": "7", "confidence": "50"}, "outside the scale"),
        ({"birads": "4", "confidence": "50"}, "ambiguous"),
        ({"confidence": "50"}, "BI-RADS is missing"),
        ({"birads": "3", "confidence": "250"}, "from 0 to 100"),
        ({"birads": "3"}, "confidence is missing"),
        ({"birads": "3", "confidence": " "}, "move the 0-100 slider"),
    ):
        r = c.post("/reader/R1/step/0", data={**data, "csrf_token": token})
        assert r.status_code == 400 and reason in r.text, data
        assert 'id="read-form"' in r.text  # the form comes back with the reason
    assert store.reads() == [] and store.audit() == []


def _answer(c: TestClient, rid: str, n: int, birads: str, conf: int) -> str:
    page = c.get(f"/reader/{rid}/step/{n}")
    assert page.status_code == 200
    r = c.post(
        f"/reader/{rid}/step/{n}",
        data={"birads": birads, "confidence": str(conf), "csrf_token": page_token(page.text)},
    )
    assert r.status_code == 303, r.text
    return c.get(r.headers["location"]).headers.get("location", "")


def test_the_aided_step_shows_the_ai_result_honestly(app_store, study: Path) -> None:
    app, store = app_store
    c = client_for(app, links(study)["R2"])
    steps = store.steps("R2")
    seen_no_score = seen_score = False
    for st in steps:
        if st.session == "unaided":
            nxt = _answer(c, "R2", st.step, "3", 25)
            assert nxt == f"/reader/R2/step/{st.step + 1}"
            continue
        page = c.get(f"/reader/R2/step/{st.step}").text
        case = store.case(st.case_id)
        for line in NOTICE:
            assert line in page
        assert "Your read without AI: BI-RADS 3, confidence 25" in page
        if case["ai_risk"] is None:
            seen_no_score = True
            assert NO_SCORE_TEXT in page and "Malignancy risk" not in page
            assert not re.search(r"\(\d+ / 100\)", page)
            assert "heatmap/0.png" not in page
        else:
            seen_score = True
            assert f"Malignancy risk: <b>{case['ai_risk']:.2f}</b>" in page
            assert c.get(f"/reader/R2/step/{st.step}/heatmap/0.png").status_code == 200
        assert c.get(f"/reader/R2/step/{st.step}/overlay.mp4").status_code == 200
        # the unaided read of this case is now final
        r = c.post(
            f"/reader/R2/step/{st.step - 1}",
            data={"birads": "5", "confidence": "90", "csrf_token": form_token(c)},
        )
        assert r.status_code == 409 and "cannot change after the AI" in r.text
        _answer(c, "R2", st.step, "4A", 60)
    assert seen_no_score and seen_score
    assert c.get("/reader/R2/next").headers["location"] == "/reader/R2"
    assert "finished this study" in c.get("/reader/R2").text
    # the AI overlay is never part of an unaided step
    assert c.get("/reader/R2/step/0/overlay.mp4").status_code == 403
    assert len(store.reads()) == len(steps)


def test_admin_sees_progress_and_exports(app_store, study: Path) -> None:
    app, store = app_store
    admin = client_for(app, links(study)["admin"])
    assert admin.get("/").headers["location"] == "/admin"
    reader = client_for(app, links(study)["R1"])
    _answer(reader, "R1", 0, "4B", 70)
    page = admin.get("/admin")
    assert page.status_code == 200
    assert re.search(r'data-reader="R1">.*?<td class="done">1 / 10</td>', page.text, re.S)
    assert re.search(r'data-reader="R2">.*?<td class="done">0 / 10</td>', page.text, re.S)
    csv = admin.get("/admin/export/reads.csv")
    assert csv.status_code == 200
    lines = csv.text.strip().splitlines()
    assert lines[0].startswith("reader,case_id,session,birads,confidence,reading_time_s")
    assert len(lines) == 2 and ",unaided,4B,70," in lines[1]
    assert "insert" in admin.get("/admin/export/audit.csv").text
    r = admin.get("/admin/export/imrmc_input.txt")
    assert r.status_code == 409 and "fully crossed" in r.text
    assert admin.get("/admin/export/secrets.txt").status_code == 404
    assert client_for(app, None).get("/admin/login/wrong").status_code == 404


def test_the_model_card_comes_from_the_stored_score_document(
    app_store, study: Path, study_inputs: dict
) -> None:
    app, store = app_store
    c = client_for(app, links(study)["R1"])
    first = store.steps("R1")[0]
    assert c.get(f"/reader/R1/step/{first.step}/model").status_code == 403  # unaided
    _answer(c, "R1", first.step, "3", 30)
    page = c.get(f"/reader/R1/step/{first.step + 1}")
    # one notice line in view; every statement of the document behind it
    summary = re.search(r"<summary>(.*?)</summary>", page.text).group(1)
    assert summary == "Research software, not a clinical result"
    card = c.get(f"/reader/R1/step/{first.step + 1}/model")
    assert card.status_code == 200
    for line in NOTICE:
        assert line in card.text
    assert "demonstration</th><td>True" in card.text and "loose files" in card.text
    # nothing of the scored file (its path names the case) reaches the reader
    assert str(study_inputs["dataset"]) not in card.text
    assert first.case_id not in card.text
    other = client_for(app, links(study)["R2"])
    assert other.get(f"/reader/R1/step/{first.step + 1}/model").status_code == 403
