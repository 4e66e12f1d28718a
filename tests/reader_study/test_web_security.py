"""Anti-forgery tokens on every state-changing request, cookie attributes, and sign-in
throttling (issue 15): a cross-site POST carrying a reader's cookie changed an answer, and
10 wrong passwords took 0.4 s with no lockout."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from sonorisk.reader_study.security import csrf_ok, csrf_token
from sonorisk.reader_study.store import StudyStore
from sonorisk.reader_study.throttle import SignInLimits, SignInThrottle
from sonorisk.reader_study.web import COOKIE, CSRF_HEADER, create_app

from .conftest import client_for, form_token, links, page_token

ANSWER = {"birads": "4B", "confidence": "70"}


def _saved(store: StudyStore) -> list[tuple[str, str, int]]:
    return [(r["session"], r["birads"], r["confidence"]) for r in store.reads()]


def test_csrf_token_is_bound_to_the_session_and_compared_safely() -> None:
    token = csrf_token("secret", "session|R1-cookie")
    assert csrf_ok("secret", "session|R1-cookie", token)
    assert not csrf_ok("secret", "session|R2-cookie", token)  # another session
    assert not csrf_ok("other-secret", "session|R1-cookie", token)
    for bad in (None, "", "0" * 64, token[:-1], "é" * 64):  # non-ASCII must not crash
        assert not csrf_ok("secret", "session|R1-cookie", bad)
    assert not csrf_ok("secret", None, token)


def test_a_forged_answer_is_refused_and_the_stored_answer_is_unchanged(
    app_store, study: Path
) -> None:
    app, store = app_store
    c = client_for(app, links(study)["R1"])
    page = c.get("/reader/R1/step/0")
    token = page_token(page.text)
    assert f'name="csrf_token" value="{token}"' in page.text  # the form carries it
    # the normal flow: the form's token saves the answer
    r = c.post("/reader/R1/step/0", data={**ANSWER, "csrf_token": token})
    assert r.status_code == 303
    assert _saved(store) == [("unaided", "4B", 70)]
    n_audit = len(store.audit())
    # a cross-site POST carries the cookie but cannot know the token
    other = client_for(app, links(study)["R2"])
    for forged in (
        {},
        {"csrf_token": ""},
        {"csrf_token": "0" * 64},
        {"csrf_token": form_token(other)},
    ):  # a token of another session
        r = c.post("/reader/R1/step/0", data={"birads": "2", "confidence": "5", **forged})
        assert r.status_code == 403, forged
        assert "anti-forgery token" in r.text and "Nothing was changed" in r.text
    r = c.post(
        "/reader/R1/step/0",
        data={"birads": "2", "confidence": "5"},
        headers={CSRF_HEADER: "f" * 64},
    )
    assert r.status_code == 403
    assert _saved(store) == [("unaided", "4B", 70)] and len(store.audit()) == n_audit
    # the header is as good as the form field (fetch)
    r = c.post(
        "/reader/R1/step/0", data={"birads": "3", "confidence": "30"}, headers={CSRF_HEADER: token}
    )
    assert r.status_code == 303 and _saved(store) == [("unaided", "3", 30)]


def test_sign_in_and_sign_out_need_the_token(app_store, study: Path) -> None:
    app, store = app_store
    anon = client_for(app, None)
    login = anon.get("/login")
    # before sign-in the token is bound to a random nonce cookie (login CSRF)
    nonce_cookie = login.headers["set-cookie"]
    assert nonce_cookie.startswith("sonorisk_csrf=")
    assert "httponly" in nonce_cookie.lower() and "samesite=lax" in nonce_cookie.lower()
    creds = {"reader_id": "R2", "password": "secret-pass-2"}
    for forged in ({}, {"csrf_token": "0" * 64}):
        assert anon.post("/login", data={**creds, **forged}).status_code == 403
        assert (
            TestClient(app, follow_redirects=False)
            .post("/login", data={**creds, "csrf_token": page_token(login.text)})
            .status_code
            == 403
        )
    assert anon.get("/reader/R2").status_code == 401  # not signed in by the forged posts
    r = anon.post("/login", data={**creds, "csrf_token": page_token(login.text)})
    assert r.status_code == 303 and anon.get("/reader/R2").status_code == 200
    # sign-out is a POST with the token; a plain GET only offers the button
    assert 'id="logout-form"' in anon.get("/reader/R2").text
    assert anon.get("/logout").status_code == 200
    assert anon.get("/reader/R2").status_code == 200
    assert anon.post("/logout").status_code == 403
    assert anon.get("/reader/R2").status_code == 200
    r = anon.post("/logout", data={"csrf_token": form_token(anon)})
    assert r.status_code == 303 and anon.get("/reader/R2").status_code == 401


def test_every_state_changing_route_is_guarded(app_store, study: Path) -> None:
    """Any POST route, present or future, refuses a request without the token."""
    app, store = app_store
    c = client_for(app, links(study)["R1"])
    posts = [
        route.path
        for route in app.routes
        if isinstance(route, APIRoute) and route.methods - {"GET", "HEAD", "OPTIONS"}
    ]
    assert len(posts) >= 6  # answer, draft, login, logout, link and admin-link sign-in
    admin_token = links(study)["admin"].rsplit("/", 1)[1]
    r1_token = links(study)["R1"].rsplit("/", 1)[1]
    values = {"reader_id": "R1", "number": "0", "token": r1_token}
    for path in posts:
        url = path.format(**values)
        r = c.post(url, data={**ANSWER, "reader_id": "R1", "password": "x"})
        assert r.status_code == 403 and "anti-forgery" in r.text, url
    assert c.post(f"/admin/login/{admin_token}").status_code == 403
    assert c.get("/admin").status_code == 403  # still a reader
    assert store.reads() == [] and store.drafts() == []


def test_cookies_are_http_only_and_same_site(app_store, study: Path) -> None:
    app, _ = app_store
    r = TestClient(app, follow_redirects=False).get(links(study)["R1"])
    cookie = r.headers["set-cookie"].lower()
    assert cookie.startswith(f"{COOKIE}=")
    for attribute in ("httponly", "samesite=lax", "path=/", "max-age=1209600"):
        assert attribute in cookie, attribute
    assert "secure" not in cookie  # plain http on loopback; behind a TLS proxy: Secure
    https = TestClient(app, base_url="https://study.example", follow_redirects=False)
    assert "secure" in https.get(links(study)["R1"]).headers["set-cookie"].lower()


def test_a_link_for_another_reader_asks_before_switching(app_store, study: Path) -> None:
    app, _ = app_store
    c = client_for(app, links(study)["R1"])
    r = c.get(links(study)["R2"])  # e.g. a link planted on another site
    assert r.status_code == 200 and 'id="confirm-switch"' in r.text
    assert c.get("/reader/R1").status_code == 200  # still R1
    assert c.post(links(study)["R2"]).status_code == 403  # no token: no switch
    r = c.post(links(study)["R2"], data={"csrf_token": page_token(r.text)})
    assert r.status_code == 303 and c.get("/reader/R2").status_code == 200
    assert c.get(links(study)["R2"]).status_code == 303  # the same reader: no question


# --- sign-in throttling -------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_throttle_locks_an_account_with_a_growing_lockout_and_resets_on_success() -> None:
    clock = Clock()
    throttle = SignInThrottle(
        SignInLimits(account_failures=3, client_failures=100, lockout_s=10, max_lockout_s=35), clock
    )
    for _ in range(2):
        throttle.failed("R2", "1.2.3.4")
        assert throttle.retry_after("R2", "1.2.3.4") == 0
    throttle.failed("R2", "1.2.3.4")  # the 3rd failure: locked 10 s
    assert throttle.retry_after("R2", "1.2.3.4") == 10
    assert throttle.retry_after("R2", "5.6.7.8") == 10  # the account, from any address
    assert throttle.retry_after("R1", "1.2.3.4") == 0  # other accounts are not locked
    clock.t += 10
    assert throttle.retry_after("R2", "1.2.3.4") == 0
    throttle.failed("R2", "1.2.3.4")  # each failure after a lockout doubles it
    assert throttle.retry_after("R2", "1.2.3.4") == 20
    clock.t += 20
    throttle.failed("R2", "1.2.3.4")
    assert throttle.retry_after("R2", "1.2.3.4") == 35  # capped
    clock.t += 35
    throttle.succeeded("R2", "1.2.3.4")
    throttle.failed("R2", "1.2.3.4")  # counting starts again
    assert throttle.retry_after("R2", "1.2.3.4") == 0


def test_throttle_limits_a_client_trying_many_accounts_and_forgets_old_failures() -> None:
    clock = Clock()
    throttle = SignInThrottle(
        SignInLimits(account_failures=5, client_failures=4, lockout_s=10, forget_s=60, max_keys=50),
        clock,
    )
    for i in range(4):
        throttle.failed(f"guess{i}", "6.6.6.6")
    assert throttle.retry_after("R2", "6.6.6.6") == 10  # a fresh account, same client
    assert throttle.retry_after("R2", "7.7.7.7") == 0
    clock.t += 100  # past the lockout and the forget time
    throttle.failed("x", "8.8.8.8")  # bookkeeping drops stale keys
    throttle.failed("guess0", "6.6.6.6")
    assert throttle.retry_after("guess0", "6.6.6.6") == 0
    for i in range(200):  # random reader ids cannot grow the table without bound
        throttle.failed(f"random{i}", None)
    assert len(throttle._keys) <= 50


def test_sign_in_is_refused_with_429_after_repeated_wrong_passwords(study: Path) -> None:
    store = StudyStore.open(f"sqlite:///{study / 'study.sqlite'}")
    clock = Clock()
    throttle = SignInThrottle(SignInLimits(account_failures=5, lockout_s=30), clock)
    try:
        app = create_app(study, store=store, throttle=throttle)
        c = client_for(app, None)

        def sign_in(password: str):
            # the token of the form as the browser shows it now (a sign-in changes it)
            return c.post(
                "/login",
                data={"reader_id": "R2", "password": password, "csrf_token": form_token(c)},
            )

        codes = [sign_in(f"wrong-{i}").status_code for i in range(10)]
        assert codes == [401] * 5 + [429] * 5
        r = sign_in("secret-pass-2")  # even the right password waits out the lockout
        assert r.status_code == 429 and r.headers["retry-after"] == "30"
        assert "Too many failed sign-ins: try again in 30 s" in r.text
        clock.t += 30
        assert sign_in("wrong-again").status_code == 401  # 6th failure: now 60 s
        assert sign_in("secret-pass-2").headers["retry-after"] == "60"
        clock.t += 60
        assert sign_in("secret-pass-2").status_code == 303
        assert throttle.retry_after("R2", "testclient") == 0  # success cleared the count
        assert sign_in("wrong-once-more").status_code == 401
        assert [e["detail"] for e in store.events() if e["kind"] == "sign_in"] == ["password"]
    finally:
        store.close()


@pytest.mark.parametrize("args", [["--max-sign-in-failures", "0"], ["--lockout-seconds", "0"]])
def test_serve_refuses_meaningless_limits(
    study: Path, args: list[str], capsys: pytest.CaptureFixture
) -> None:
    from sonorisk.cli import main

    assert main(["reader-study", "serve", str(study), *args]) == 2
    assert "--max-sign-in-failures must be >= 1" in capsys.readouterr().err
