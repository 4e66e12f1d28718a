"""``sonorisk reader-study serve``: the reader web app (FastAPI, server-rendered pages).

Readers sign in with their secret link (``/r/TOKEN``) or a password; a signed cookie
then names them. Every URL of a reader's pages carries the reader id and is refused
(403) to anyone else. A case page plays the H.264 video (play, pause, frame step,
loop, speed) and takes BI-RADS and a 0-100 confidence; the answer is committed
before the page answers, so a refresh or a restarted server loses nothing, and
``/reader/ID/next`` always resumes at the first unanswered step. The AI result
(risk or "no scorable lesion", its notice, the optional overlay and heatmaps) is
rendered only on an aided step, which opens only after the unaided read of that
case is saved. Readers never see case ids, file names or pathology: pages and
media URLs use step numbers only.

Admin pages (``/admin/login/TOKEN``): progress per reader and the exports.
"""

from __future__ import annotations

import io
import logging
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Form, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from sonorisk.reader_study.errors import ReadRejected
from sonorisk.reader_study.security import COOKIE_MAX_AGE_S, read_session, sign_session
from sonorisk.reader_study.store import READ_CATEGORIES, Step, StudyStore, iso

log = logging.getLogger(__name__)

COOKIE = "sonorisk_study"
HERE = Path(__file__).parent
NO_SCORE_TEXT = ("No scorable lesion: the AI found no lesion track long enough to score "
                 "(8 frames) and gives no risk for this video.")


def _security_headers(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"  # sign-in tokens never leak
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self'; media-src 'self'; style-src 'self'; "
        "script-src 'self'; frame-ancestors 'none'")
    return response


def create_app(study_dir: str | Path, db_url: str | None = None,
               store: StudyStore | None = None) -> FastAPI:
    from sonorisk.reader_study.store import default_db_url

    study_dir = Path(study_dir).resolve()
    if store is None:
        store = StudyStore.open(db_url or default_db_url(study_dir))
    meta = store.meta()
    secret = meta["secret"]
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    app = FastAPI(title="sonorisk reader study", docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.store = store
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    @app.middleware("http")
    async def headers(request: Request, call_next: Any) -> Response:
        return _security_headers(await call_next(request))

    def page(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        context.setdefault("title", meta.get("title", "reader study"))
        context.setdefault("user", _user(request))
        return templates.TemplateResponse(request, name, context, status_code=status)

    def message(request: Request, status: int, heading: str, text: str,
                link: tuple[str, str] | None = None) -> HTMLResponse:
        return page(request, "message.html", status, heading=heading, text=text, link=link)

    def _user(request: Request) -> tuple[str, str] | None:
        return read_session(secret, request.cookies.get(COOKIE))

    def signed_in(response: Response, role: str, ident: str) -> Response:
        response.set_cookie(COOKIE, sign_session(secret, role, ident), max_age=COOKIE_MAX_AGE_S,
                            httponly=True, samesite="lax", path="/")
        return response

    def require_reader(request: Request, reader_id: str) -> None:
        user = _user(request)
        if user is None:
            raise ReadRejected("sign-in", "not signed in: open your personal study link or "
                                          "sign in with your password", 401)
        if user != ("reader", reader_id):
            raise ReadRejected(f"reader {reader_id}", "these pages belong to another reader",
                               403)

    def require_admin(request: Request) -> None:
        if _user(request) != ("admin", "admin"):
            raise ReadRejected("admin", "administrators only: open the admin link", 403)

    @app.exception_handler(ReadRejected)
    async def rejected(request: Request, exc: ReadRejected) -> HTMLResponse:
        heading = {401: "Please sign in", 403: "Not available", 404: "Not found",
                   409: "Cannot change this answer"}.get(exc.status, "Not accepted")
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
        reader_id = reader_id.strip()
        if not reader_id or not password or not store.password_ok(reader_id, password):
            return page(request, "login.html", 401,
                        error="Unknown reader or wrong password (readers without a password "
                              "sign in with their personal link).")
        store.log_event(reader_id, "sign_in", detail="password")
        return signed_in(RedirectResponse(f"/reader/{reader_id}", 303), "reader", reader_id)

    @app.get("/r/{token}")
    def link_sign_in(request: Request, token: str) -> Response:
        reader_id = store.reader_for_token(token)
        if reader_id is None:
            return message(request, 404, "Unknown link",
                           "This sign-in link is not valid for this study.")
        store.log_event(reader_id, "sign_in", detail="link")
        return signed_in(RedirectResponse(f"/reader/{reader_id}", 303), "reader", reader_id)

    @app.get("/admin/login/{token}")
    def admin_sign_in(request: Request, token: str) -> Response:
        if not store.admin_token_ok(token):
            return message(request, 404, "Unknown link",
                           "This admin link is not valid for this study.")
        return signed_in(RedirectResponse("/admin", 303), "admin", "admin")

    @app.get("/logout")
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
        current = next((st for st in steps if (st.case_id, st.session) not in done), None)
        waiting = None
        if current is not None and current.session == "aided":
            opens = store.aided_opens_at(reader_id)
            if opens is not None and opens > time.time():
                waiting = iso(opens)
        return page(request, "home.html", reader=store.reader(reader_id), n_done=len(done),
                    n_steps=len(steps), current=current, waiting=waiting,
                    washout=store.washout_s is not None)

    @app.get("/reader/{reader_id}/next")
    def next_step(request: Request, reader_id: str) -> Response:
        require_reader(request, reader_id)
        current = store.current_step(reader_id)
        if current is None:
            return RedirectResponse(f"/reader/{reader_id}", 303)
        return RedirectResponse(f"/reader/{reader_id}/step/{current.step}", 303)

    def case_page(request: Request, reader_id: str, step: Step, status: int = 200,
                  error: str | None = None, entered: dict[str, Any] | None = None
                  ) -> HTMLResponse:
        case = store.case(step.case_id)
        answers = store.answers(reader_id)
        answer = answers.get((step.case_id, step.session))
        unaided = answers.get((step.case_id, "unaided")) if step.session == "aided" else None
        locked = False
        if step.session == "unaided" and answer is not None:
            aided = next(st for st in store.steps(reader_id)
                         if st.case_id == step.case_id and st.session == "aided")
            locked = aided.opened_at is not None
        ai = _ai_view(case, reader_id, step) if step.session == "aided" else None
        n_cases = sum(1 for st in store.steps(reader_id) if st.session == step.session)
        base = f"/reader/{reader_id}/step/{step.step}"
        return page(request, "case.html", status, reader_id=reader_id, step=step,
                    n_steps=len(store.steps(reader_id)), n_cases=n_cases,
                    video_url=f"{base}/video.mp4", fps=case["fps"], n_frames=case["n_frames"],
                    duration=case["duration_s"], answer=entered or answer, unaided=unaided,
                    saved=answer, locked=locked, ai=ai, error=error,
                    categories=READ_CATEGORIES, action=base)

    def _ai_view(case: dict[str, Any], reader_id: str, step: Step) -> dict[str, Any]:
        base = f"/reader/{reader_id}/step/{step.step}"
        risk = case["ai_risk"]
        return {
            "status": case["ai_status"], "risk": risk,
            "risk_text": NO_SCORE_TEXT if risk is None else f"{risk:.2f}",
            "risk_pct": None if risk is None else round(100 * risk),
            "notice": case["ai_notice"],
            "lesions": case["ai_lesions"],
            "overlay_url": f"{base}/overlay.mp4" if case["overlay_file"] else None,
            "heatmap_urls": [f"{base}/heatmap/{k}.png" for k in range(len(case["heatmaps"]))],
        }

    @app.get("/reader/{reader_id}/step/{number}", response_class=HTMLResponse)
    def show_step(request: Request, reader_id: str, number: int) -> Response:
        require_reader(request, reader_id)
        step = store.open_step(reader_id, number)
        return case_page(request, reader_id, step)

    @app.post("/reader/{reader_id}/step/{number}", response_class=HTMLResponse)
    def answer_step(request: Request, reader_id: str, number: int,
                    birads: str = Form(""), confidence: str = Form("")) -> Response:
        require_reader(request, reader_id)
        try:
            store.save_read(reader_id, number, birads, confidence)
        except ReadRejected as exc:
            if exc.status != 400:
                raise
            step = store.check_open(reader_id, number)
            return case_page(request, reader_id, step, 400, error=exc.reason,
                             entered={"birads": birads, "confidence": confidence})
        return RedirectResponse(f"/reader/{reader_id}/next", 303)

    def media(request: Request, reader_id: str, number: int, kind: str) -> FileResponse:
        require_reader(request, reader_id)
        step = store.check_open(reader_id, number)
        case = store.case(step.case_id)
        if kind == "video":
            rel = case["video_file"]
        elif step.session != "aided":
            raise ReadRejected(f"step {number}", "the AI result is not part of an unaided "
                                                 "read", 403)
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
        return page(request, "admin.html", progress=progress, n_cases=len(store.cases()),
                    n_audit=len(store.audit()), meta=meta,
                    finished=all(p["finished"] for p in progress))

    @app.get("/admin/export/{name}")
    def export_file(request: Request, name: str) -> Response:
        from sonorisk.reader_study.export import export_tables

        require_admin(request)
        tables = export_tables(store)
        if name == "imrmc_input.txt":
            text = tables.imrmc_text()
            if text is None:
                raise ReadRejected(name, "iMRMC needs a fully crossed design: every reader "
                                         "must have read every case in both sessions", 409)
            return Response(text, media_type="text/plain")
        frames = {"reads.csv": tables.reads, "truth.csv": tables.truth,
                  "predictions.csv": tables.predictions, "audit.csv": tables.audit}
        if name not in frames:
            raise ReadRejected(name, "unknown export; choose from "
                                     + ", ".join([*frames, "imrmc_input.txt"]), 404)
        buf = io.StringIO()
        frames[name].to_csv(buf, index=False)
        return Response(buf.getvalue(), media_type="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})

    return app


def serve(study_dir: str | Path, db_url: str | None, host: str, port: int) -> None:
    import uvicorn

    app = create_app(study_dir, db_url)  # StudyError (no study, bad URL) before listening
    log.info("serving %s on http://%s:%d", study_dir, host, port)
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=False)
