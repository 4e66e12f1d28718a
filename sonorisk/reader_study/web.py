"""``sonorisk reader-study serve``: the reader web app (FastAPI, server-rendered pages).

Readers sign in with their secret link (``/r/TOKEN``) or a password; a signed cookie
then names them. Every URL of a reader's pages carries the reader id and is refused
(403) to anyone else. A case page is a dark reading view: the H.264 video as large as
the window allows (play, pause, frame step, loop, speed, brightness and contrast as
display filters), beside a fixed answer column (BI-RADS and a 0-100 confidence), all
of it on the keyboard too (``static/keys.js``); the answer is committed before the
page answers, so a refresh or a restarted server loses nothing, and
``/reader/ID/next`` always resumes at the first unanswered step. The AI result
(``ai_panel.py``: risk or "no scorable lesion", one notice line, the lesions, the
optional overlay and heatmaps, the model card) is rendered only on an aided step,
which opens only after the unaided read of that case is saved. Readers never see
case ids, file names or pathology: pages and media URLs use step numbers only.

Admin pages (``/admin/login/TOKEN``): progress per reader and the exports.

Every state-changing request (POST: an answer, a draft, sign-in, sign-out) must carry
the session's anti-forgery token, as the form field ``csrf_token`` or the header
``X-CSRF-Token`` (fetch); one app-wide dependency checks it before any route runs, so
a request without it gets 403 and changes nothing. Failed password sign-ins are
throttled (``throttle.py``). The answer being entered is autosaved as a draft
(``POST .../step/N/draft``, debounced by ``static/draft.js``) and put back into the
form when the step is opened again, after a reload or a server restart.
"""

from __future__ import annotations

import io
import logging
import secrets
import time
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Form, Request
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
)
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from sonorisk.reader_study.ai_panel import NO_SCORE_TEXT, ai_panel, model_card  # noqa: F401
from sonorisk.reader_study.errors import ReadRejected
from sonorisk.reader_study.security import (
    COOKIE_MAX_AGE_S,
    csrf_ok,
    csrf_token,
    read_session,
    sign_session,
)
from sonorisk.reader_study.store import (
    READ_CATEGORIES,
    Step,
    StudyStore,
    first_unanswered,
    iso,
    unaided_is_final,
)
from sonorisk.reader_study.throttle import SignInLimits, SignInThrottle

log = logging.getLogger(__name__)

COOKIE = "sonorisk_study"
CSRF_COOKIE = "sonorisk_csrf"  # a random nonce binding the token before sign-in
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
HERE = Path(__file__).parent


def _security_headers(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"  # sign-in tokens never leak
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self'; media-src 'self'; style-src 'self'; "
        "script-src 'self'; frame-ancestors 'none'"
    )
    return response


def _set_cookie(
    request: Request, response: Response, name: str, value: str, max_age: int | None = None
) -> None:
    """HttpOnly (no script reads it), SameSite=Lax (no cross-site POST carries it) and,
    behind a TLS proxy, Secure."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        httponly=True,
        samesite="lax",
        path="/",
        secure=request.url.scheme == "https",
    )


def _client(request: Request) -> str | None:
    return request.client.host if request.client else None


def create_app(
    study_dir: str | Path,
    db_url: str | None = None,
    store: StudyStore | None = None,
    throttle: SignInThrottle | None = None,
) -> FastAPI:
    """The app; ``throttle`` carries the sign-in limits (default ``SignInLimits()``)."""
    from sonorisk.reader_study.store import default_db_url

    study_dir = Path(study_dir).resolve()
    if store is None:
        store = StudyStore.open(db_url or default_db_url(study_dir))
    throttle = throttle or SignInThrottle()
    meta = store.meta()
    secret = meta["secret"]
    templates = Jinja2Templates(directory=str(HERE / "templates"))

    def csrf_basis(request: Request) -> str | None:
        """What this browser's token is bound to: its session once signed in, before that
        its nonce cookie (so the sign-in form is protected too); None: neither."""
        session = request.cookies.get(COOKIE)
        if read_session(secret, session) is not None:
            return f"session|{session}"
        nonce = request.cookies.get(CSRF_COOKIE)
        return f"nonce|{nonce}" if nonce else None

    async def check_csrf(request: Request) -> None:
        """Runs before every route: a state-changing request without this session's token
        is refused before it can change anything."""
        if request.method in SAFE_METHODS:
            return
        token: object = request.headers.get(CSRF_HEADER)
        if token is None:
            token = (await request.form()).get(CSRF_FIELD)  # cached: the route reads it too
        if not csrf_ok(secret, csrf_basis(request), token if isinstance(token, str) else None):
            log.warning(
                "refused %s %s: anti-forgery token missing or wrong",
                request.method,
                request.url.path,
            )
            raise ReadRejected(
                "request",
                "the anti-forgery token of this form is missing or "
                "wrong (it may come from another site, or from a page "
                "opened before you signed in again). Nothing was "
                "changed: reload the page and try again.",
                403,
            )

    app = FastAPI(
        title="sonorisk reader study",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        dependencies=[Depends(check_csrf)],
    )
    app.state.store = store
    app.state.throttle = throttle
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    @app.middleware("http")
    async def headers(request: Request, call_next: Any) -> Response:
        return _security_headers(await call_next(request))

    def page(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        context.setdefault("title", meta.get("title", "reader study"))
        context.setdefault("user", _user(request))
        basis, nonce = csrf_basis(request), None
        if basis is None:  # a first visit: a fresh nonce binds the sign-in form's token
            nonce = secrets.token_urlsafe(24)
            basis = f"nonce|{nonce}"
        context["csrf_token"] = csrf_token(secret, basis)  # in every form and <meta>
        response = templates.TemplateResponse(request, name, context, status_code=status)
        if nonce:
            _set_cookie(request, response, CSRF_COOKIE, nonce)
        return response

    def message(
        request: Request, status: int, heading: str, text: str, link: tuple[str, str] | None = None
    ) -> HTMLResponse:
        return page(request, "message.html", status, heading=heading, text=text, link=link)

    def _user(request: Request) -> tuple[str, str] | None:
        return read_session(secret, request.cookies.get(COOKIE))

    def signed_in(request: Request, role: str, ident: str) -> Response:
        home = f"/reader/{ident}" if role == "reader" else "/admin"
        response = RedirectResponse(home, 303)
        _set_cookie(
            request, response, COOKIE, sign_session(secret, role, ident), max_age=COOKIE_MAX_AGE_S
        )
        return response

    def require_reader(request: Request, reader_id: str) -> None:
        user = _user(request)
        if user is None:
            raise ReadRejected(
                "sign-in",
                "not signed in: open your personal study link or sign in with your password",
                401,
            )
        if user != ("reader", reader_id):
            raise ReadRejected(f"reader {reader_id}", "these pages belong to another reader", 403)

    def require_admin(request: Request) -> None:
        if _user(request) != ("admin", "admin"):
            raise ReadRejected("admin", "administrators only: open the admin link", 403)

    @app.exception_handler(ReadRejected)
    async def rejected(request: Request, exc: ReadRejected) -> Response:
        heading = {
            401: "Please sign in",
            403: "Not available",
            404: "Not found",
            409: "Cannot change this answer",
        }.get(exc.status, "Not accepted")
        if "application/json" in request.headers.get("accept", ""):  # autosave's fetch
            return JSONResponse({"error": heading, "reason": exc.reason}, exc.status)
        link = ("/login", "Sign in") if exc.status == 401 else None
        return message(request, exc.status, heading, exc.reason, link)

    # --- sign-in --------------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse)
    def index(request: Request) -> Response:
        user = _user(request)
        if user and user[0] == "reader":
            return RedirectResponse(f"/reader/{user[1]}", 303)
        if user and user[0] == "admin":
            return RedirectResponse("/admin", 303)
        return page(request, "login.html", error=None)

    @app.get("/login", response_class=HTMLResponse)
    def login_form(request: Request) -> Response:
        return page(request, "login.html", error=None)

    @app.post("/login", response_class=HTMLResponse)
    def login(request: Request, reader_id: str = Form(""), password: str = Form("")) -> Response:
        reader_id, client = reader_id.strip(), _client(request)
        wait = throttle.retry_after(reader_id, client)
        if wait:  # locked: the password is not even checked
            response = page(
                request,
                "login.html",
                429,
                error=f"Too many failed sign-ins: try again in {wait} s.",
            )
            response.headers["Retry-After"] = str(wait)
            return response
        if not reader_id or not password or not store.password_ok(reader_id, password):
            throttle.failed(reader_id, client)
            return page(
                request,
                "login.html",
                401,
                error="Unknown reader or wrong password (readers without a password "
                "sign in with their personal link).",
            )
        throttle.succeeded(reader_id, client)
        store.log_event(reader_id, "sign_in", detail="password")
        return signed_in(request, "reader", reader_id)

    def link_target(kind: str, token: str) -> tuple[str, str] | None:
        """(role, id) that a sign-in link names; None: not a valid link."""
        if kind == "admin":
            return ("admin", "admin") if store.admin_token_ok(token) else None
        reader_id = store.reader_for_token(token)
        return None if reader_id is None else ("reader", reader_id)

    def follow_link(request: Request, kind: str, token: str) -> Response:
        target = link_target(kind, token)
        if target is None:
            return message(
                request,
                404,
                "Unknown link",
                f"This {'admin' if kind == 'admin' else 'sign-in'} link is not valid "
                "for this study.",
            )
        current = _user(request)
        if request.method == "GET" and current is not None and current != target:
            # switching who this browser reads as takes a click on our own page, so a
            # link planted elsewhere cannot silently swap a signed-in reader's account
            return page(
                request, "switch.html", current=current, target=target, action=request.url.path
            )
        if target[0] == "reader":
            store.log_event(target[1], "sign_in", detail="link")
        return signed_in(request, *target)

    # GET follows the link; POST is the confirmed switch from another signed-in user.
    @app.api_route("/r/{token}", methods=["GET", "POST"])
    def link_sign_in(request: Request, token: str) -> Response:
        return follow_link(request, "reader", token)

    @app.api_route("/admin/login/{token}", methods=["GET", "POST"])
    def admin_sign_in(request: Request, token: str) -> Response:
        return follow_link(request, "admin", token)

    @app.get("/logout", response_class=HTMLResponse)
    def logout_form(request: Request) -> Response:
        # signing out changes state, so it is a POST with the token; this page offers it
        return page(request, "logout.html")

    @app.post("/logout")
    def logout() -> Response:
        response = RedirectResponse("/login", 303)
        response.delete_cookie(COOKIE, path="/")
        return response

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    # --- reader pages ------------------------------------------------------------------
    @app.get("/reader/{reader_id}", response_class=HTMLResponse)
    def reader_home(request: Request, reader_id: str) -> Response:
        require_reader(request, reader_id)
        steps = store.steps(reader_id)
        done = store.answers(reader_id)
        current = first_unanswered(steps, done)
        waiting = None
        if current is not None and current.session == "aided":
            opens = store.aided_opens_at(reader_id)
            if opens is not None and opens > time.time():
                waiting = iso(opens)
        return page(
            request,
            "home.html",
            reader=store.reader(reader_id),
            n_done=len(done),
            n_steps=len(steps),
            current=current,
            waiting=waiting,
            washout=store.washout_s is not None,
        )

    @app.get("/reader/{reader_id}/next")
    def next_step(request: Request, reader_id: str) -> Response:
        require_reader(request, reader_id)
        current = store.current_step(reader_id)
        if current is None:
            return RedirectResponse(f"/reader/{reader_id}", 303)
        return RedirectResponse(f"/reader/{reader_id}/step/{current.step}", 303)

    def case_page(
        request: Request,
        reader_id: str,
        step: Step,
        status: int = 200,
        error: str | None = None,
        entered: dict[str, Any] | None = None,
    ) -> HTMLResponse:
        case = store.case(step.case_id)
        steps = store.steps(reader_id)
        answers = store.answers(reader_id)
        answer = answers.get((step.case_id, step.session))
        unaided = answers.get((step.case_id, "unaided")) if step.session == "aided" else None
        locked = answer is not None and unaided_is_final(steps, step)
        # what the reader entered but did not save comes back (autosave); what they just
        # submitted and got refused wins over an older draft
        draft = None if entered is not None or locked else store.draft(reader_id, step.step)
        base = f"/reader/{reader_id}/step/{step.step}"
        ai = ai_panel(case, study_dir, base) if step.session == "aided" else None
        n_cases = sum(1 for st in steps if st.session == step.session)
        # the time on this case counts from its first view (the reading clock)
        opened = steps[step.step].opened_at or time.time()
        return page(
            request,
            "case.html",
            status,
            reader_id=reader_id,
            step=step,
            n_steps=len(steps),
            n_cases=n_cases,
            video_url=f"{base}/video.mp4",
            fps=case["fps"],
            n_frames=case["n_frames"],
            duration=case["duration_s"],
            elapsed=max(0, int(time.time() - opened)),
            answer=entered or _draft_form(draft) or answer,
            unaided=unaided,
            saved=answer,
            locked=locked,
            ai=ai,
            error=error,
            draft_at=iso(draft["updated_at"]) if draft else None,
            categories=READ_CATEGORIES,
            keys=category_keys(READ_CATEGORIES),
            action=base,
        )

    @app.get("/reader/{reader_id}/step/{number}", response_class=HTMLResponse)
    def show_step(request: Request, reader_id: str, number: int) -> Response:
        require_reader(request, reader_id)
        step = store.open_step(reader_id, number)
        return case_page(request, reader_id, step)

    @app.post("/reader/{reader_id}/step/{number}", response_class=HTMLResponse)
    def answer_step(
        request: Request,
        reader_id: str,
        number: int,
        birads: str = Form(""),
        confidence: str = Form(""),
    ) -> Response:
        require_reader(request, reader_id)
        try:
            store.save_read(reader_id, number, birads, confidence)
        except ReadRejected as exc:
            if exc.status != 400:
                raise
            step = store.check_open(reader_id, number)
            return case_page(
                request,
                reader_id,
                step,
                400,
                error=exc.reason,
                entered={"birads": birads, "confidence": confidence},
            )
        return RedirectResponse(f"/reader/{reader_id}/next", 303)

    @app.post("/reader/{reader_id}/step/{number}/draft")
    def save_draft(
        request: Request,
        reader_id: str,
        number: int,
        birads: str = Form(""),
        confidence: str = Form(""),
        saved_at: str = Form(""),
    ) -> Response:
        """Autosave (fetch from draft.js): keep what the reader is entering; not a read.
        ``saved_at``: the saved answer's time as the page showed it ('' for none)."""
        require_reader(request, reader_id)
        try:
            base = float(saved_at) if saved_at else None
        except ValueError:
            raise ReadRejected("saved_at", f"not a time: {saved_at!r}") from None
        draft = store.save_draft(reader_id, number, birads, confidence, saved_at=base)
        return JSONResponse(
            {"kept": draft is not None, "updated_at": iso(draft["updated_at"]) if draft else None}
        )

    def aided_step(reader_id: str, number: int) -> Step:
        """The step, if open and aided: the AI result belongs to aided reads only."""
        step = store.check_open(reader_id, number)
        if step.session != "aided":
            raise ReadRejected(
                f"step {number}", "the AI result is not part of an unaided read", 403
            )
        return step

    @app.get("/reader/{reader_id}/step/{number}/model", response_class=HTMLResponse)
    def model_page(request: Request, reader_id: str, number: int) -> Response:
        """The card of the models that made this step's AI result (from its stored
        score document)."""
        require_reader(request, reader_id)
        step = aided_step(reader_id, number)
        return page(request, "model.html", card=model_card(store.case(step.case_id), study_dir))

    def media(request: Request, reader_id: str, number: int, kind: str) -> FileResponse:
        require_reader(request, reader_id)
        step = (
            store.check_open(reader_id, number)
            if kind == "video"
            else aided_step(reader_id, number)
        )
        case = store.case(step.case_id)
        if kind == "video":
            rel = case["video_file"]
        elif kind == "overlay":
            rel = case["overlay_file"]
        else:
            k = int(kind.removeprefix("heatmap"))
            rel = case["heatmaps"][k] if 0 <= k < len(case["heatmaps"]) else None
        if not rel or not (study_dir / rel).is_file():
            raise ReadRejected(f"step {number}", f"no {kind} for this step", 404)
        media_type = "video/mp4" if rel.endswith(".mp4") else "image/png"
        return FileResponse(study_dir / rel, media_type=media_type)

    @app.get("/reader/{reader_id}/step/{number}/video.mp4")
    def video(request: Request, reader_id: str, number: int) -> Response:
        return media(request, reader_id, number, "video")

    @app.get("/reader/{reader_id}/step/{number}/overlay.mp4")
    def overlay(request: Request, reader_id: str, number: int) -> Response:
        return media(request, reader_id, number, "overlay")

    @app.get("/reader/{reader_id}/step/{number}/heatmap/{k}.png")
    def heatmap(request: Request, reader_id: str, number: int, k: int) -> Response:
        return media(request, reader_id, number, f"heatmap{k}")

    # --- admin ------------------------------------------------------------------------
    @app.get("/admin", response_class=HTMLResponse)
    def admin(request: Request) -> Response:
        require_admin(request)
        progress = store.progress()
        return page(
            request,
            "admin.html",
            progress=progress,
            n_cases=len(store.cases()),
            n_audit=len(store.audit()),
            meta=meta,
            finished=all(p["finished"] for p in progress),
        )

    @app.get("/admin/export/{name}")
    def export_file(request: Request, name: str) -> Response:
        from sonorisk.reader_study.export import export_tables

        require_admin(request)
        tables = export_tables(store)
        if name == "imrmc_input.txt":
            text = tables.imrmc_text()
            if text is None:
                raise ReadRejected(
                    name,
                    "iMRMC needs a fully crossed design: every reader "
                    "must have read every case in both sessions",
                    409,
                )
            return Response(text, media_type="text/plain")
        frames = {
            "reads.csv": tables.reads,
            "truth.csv": tables.truth,
            "predictions.csv": tables.predictions,
            "audit.csv": tables.audit,
        }
        if name not in frames:
            raise ReadRejected(
                name, "unknown export; choose from " + ", ".join([*frames, "imrmc_input.txt"]), 404
            )
        buf = io.StringIO()
        frames[name].to_csv(buf, index=False)
        return Response(
            buf.getvalue(),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    return app


def category_keys(categories: tuple[str, ...]) -> dict[str, str]:
    """The key that chooses each BI-RADS category: its digit ("3"), or for a subdivided
    category its letter ("4B" -> "b"), since only one category is subdivided."""
    keys = {cat: cat[-1].lower() for cat in categories}
    if len(set(keys.values())) != len(keys):
        raise ValueError(f"BI-RADS categories {categories} need distinct keys")
    return keys


def _draft_form(draft: dict[str, Any] | None) -> dict[str, Any] | None:
    """A draft as the form's values ('' where the reader has not chosen yet)."""
    if draft is None:
        return None
    return {
        "birads": draft["birads"] or "",
        "confidence": "" if draft["confidence"] is None else draft["confidence"],
    }


def serve(
    study_dir: str | Path,
    db_url: str | None,
    host: str,
    port: int,
    limits: SignInLimits | None = None,
) -> None:
    import uvicorn

    # StudyError (no study, bad URL) before listening
    app = create_app(study_dir, db_url, throttle=SignInThrottle(limits))
    log.info("serving %s on http://%s:%d", study_dir, host, port)
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=False)
