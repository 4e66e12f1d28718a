"""The study store: every read the web app accepts is committed before it answers.

One ``StudyStore`` wraps a SQLAlchemy engine (SQLite file by default, PostgreSQL by
URL). It enforces the study's rules in one place, so the web pages and the tests
share them:

- a reader sees their own steps only, in their order, and cannot open a step ahead
  of the first one they have not answered;
- an aided step (the AI result) opens only once the unaided read of that case is
  saved, and with a washout only after the whole unaided session plus the washout;
- an unaided read cannot change after the AI result of that case was shown;
- each answer is one transaction together with its audit row (old, new, who, when);
- an answer being entered is kept as a draft (autosave) until the answer is saved,
  which deletes it in the same transaction. A draft is never a read.

The gating rules (``first_unanswered``, ``aided_opening``, ``open_refusal``,
``unaided_is_final``) are pure functions of a reader's steps and saved answers, so
they are tested without a database and written once.

Reading time = (submission time - first time the step's page was shown) - video
duration (the paper's definition: total time minus the video's length).
"""

from __future__ import annotations

import datetime as _dt
import hmac
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from sonorisk import db
from sonorisk.db import normalize_url, safe_url  # noqa: F401 (re-exported)
from sonorisk.errors import InputError
from sonorisk.eval.birads import normalize_birads
from sonorisk.reader_study import schema as s
from sonorisk.reader_study.errors import ReadRejected, StudyError
from sonorisk.reader_study.migrations import migrate
from sonorisk.reader_study.security import check_password, token_hash

SESSIONS = ("unaided", "aided")
READ_CATEGORIES = ("2", "3", "4A", "4B", "4C", "5")  # what a reader may answer
SQLITE_NAME = "study.sqlite"


def default_db_url(study_dir: str | Path) -> str:
    return f"sqlite:///{(Path(study_dir) / SQLITE_NAME).resolve()}"


def iso(t: float | None) -> str | None:
    if t is None:
        return None
    return _dt.datetime.fromtimestamp(t, _dt.UTC).isoformat(timespec="seconds")


def make_engine(url: str) -> Engine:
    """The shared engine (``sonorisk.db``), its errors as ``StudyError``."""
    try:
        return db.make_engine(url)
    except InputError as exc:
        raise StudyError(exc.source, exc.reason) from exc


@dataclass(frozen=True)
class Step:
    reader_id: str
    step: int
    case_id: str
    session: str
    position: int
    opened_at: float | None


def _answer(row: Any) -> dict[str, Any]:
    return {"birads": row["birads"], "confidence": int(row["confidence"])}


# --- the gating rules: pure functions of a reader's steps and saved answers -------------
Answered = dict[tuple[str, str], Any]  # (case_id, session) -> the saved read


def first_unanswered(steps: list[Step], done: Answered) -> Step | None:
    """The step a reader is at: the first without a saved read (None: finished)."""
    return next((st for st in steps if (st.case_id, st.session) not in done), None)


def aided_opening(steps: list[Step], done: Answered, washout_s: float | None) -> float | None:
    """When the aided session opens: 0 without a washout; with one, the last unaided
    submission plus the washout (None: the unaided session is unfinished)."""
    if washout_s is None:
        return 0.0
    unaided = [done.get((st.case_id, st.session)) for st in steps if st.session == "unaided"]
    if any(r is None for r in unaided):
        return None
    return max(r["submitted_at"] for r in unaided if r is not None) + washout_s


def open_refusal(
    steps: list[Step], done: Answered, number: int, now: float, washout_s: float | None
) -> ReadRejected | None:
    """Why step ``number`` may not be opened now (403/404), or None: it may."""
    if not 0 <= number < len(steps):
        return ReadRejected(f"step {number}", f"no such step (this study has {len(steps)})", 404)
    step, current = steps[number], first_unanswered(steps, done)
    if step.session == "aided" and (step.case_id, "unaided") not in done:
        return ReadRejected(
            f"step {number}",
            "the AI result of this case is shown only after your unaided read of it is saved",
            403,
        )
    if current is not None and number > current.step:
        return ReadRejected(
            f"step {number}", f"not open yet: answer step {current.step} first", 403
        )
    if step.session == "aided":
        opens = aided_opening(steps, done, washout_s)
        if opens is None or now < opens:
            when = "after your unaided session" if opens is None else f"at {iso(opens)}"
            return ReadRejected(f"step {number}", f"the aided session opens {when} (washout)", 403)
    return None


def unaided_is_final(steps: list[Step], step: Step) -> bool:
    """An unaided read is final once the AI result of its case has been shown."""
    return step.session == "unaided" and any(
        st.case_id == step.case_id and st.session == "aided" and st.opened_at is not None
        for st in steps
    )


def validate_answer(birads: object, confidence: object, source: str = "answer") -> tuple[str, int]:
    """The canonical (BI-RADS, confidence) of a reader's answer, or ``ReadRejected`` 400."""
    if birads is None or str(birads).strip() == "":
        raise ReadRejected(
            source, "BI-RADS is missing: choose one of " + ", ".join(READ_CATEGORIES)
        )
    try:
        category = normalize_birads(birads, "BI-RADS")
    except InputError as exc:
        raise ReadRejected(
            source, f"{exc.reason}; choose one of " + ", ".join(READ_CATEGORIES)
        ) from exc
    if category not in READ_CATEGORIES:
        raise ReadRejected(
            source,
            f"BI-RADS {category} is not offered in this study; choose one "
            "of " + ", ".join(READ_CATEGORIES),
        )
    text = "" if confidence is None else str(confidence).strip()
    if text == "":
        raise ReadRejected(
            source,
            "confidence is missing: move the 0-100 slider to your "
            "confidence that the lesion is malignant",
        )
    try:
        value = float(text)
    except ValueError:
        raise ReadRejected(
            source, f"confidence must be a number from 0 to 100, got {text!r}"
        ) from None
    if not value.is_integer() or not 0 <= value <= 100:
        raise ReadRejected(source, f"confidence must be a whole number from 0 to 100, got {text}")
    return category, int(value)


def _draft_key(reader_id: str, number: int) -> Any:
    return and_(s.drafts.c.reader_id == reader_id, s.drafts.c.step == number)


def validate_draft(birads: object, confidence: object) -> tuple[str | None, int | None]:
    """The canonical parts of a draft: either may be unset (None), but a part that is
    set must be valid, so a restored form never holds a value that Save would refuse."""

    def given(value: object) -> bool:
        return value is not None and str(value).strip() != ""

    # each half is checked by validate_answer, with a valid stand-in for the other half
    category = validate_answer(birads, 50, "draft")[0] if given(birads) else None
    conf = (
        validate_answer(READ_CATEGORIES[0], confidence, "draft")[1] if given(confidence) else None
    )
    return category, conf


def _ai_shown_at(conn: Any, reader_id: str, case_id: str) -> float | None:
    """When the AI result of this case was first shown to this reader (locks the row)."""
    return conn.execute(
        select(s.steps.c.opened_at)
        .where(
            and_(
                s.steps.c.reader_id == reader_id,
                s.steps.c.case_id == case_id,
                s.steps.c.session == "aided",
            )
        )
        .with_for_update()
    ).scalar()


def _locked(number: int, shown: float) -> ReadRejected:
    return ReadRejected(
        f"step {number}",
        "the unaided read cannot change after the AI result "
        f"of this case was shown (at {iso(shown)})",
        409,
    )


def _replace_draft(
    conn: Any, step: Step, draft: dict[str, Any], saved_at: float | None
) -> dict[str, Any] | None:
    """In one write transaction: check the step's saved answer, then replace its draft
    (``StudyStore.save_draft``)."""
    reader_id, number = step.reader_id, step.step
    saved = conn.execute(
        select(s.reads).where(
            and_(
                s.reads.c.reader_id == reader_id,
                s.reads.c.case_id == step.case_id,
                s.reads.c.session == step.session,
            )
        )
    ).first()
    if saved is not None and step.session == "unaided":
        shown = _ai_shown_at(conn, reader_id, step.case_id)
        if shown is not None:
            raise _locked(number, shown)
    if (saved.updated_at if saved else None) != saved_at:
        raise ReadRejected(
            f"step {number}",
            "the answer of this step was saved after this page was shown: reload the page",
            409,
        )
    conn.execute(s.drafts.delete().where(_draft_key(reader_id, number)))
    values = {"birads": draft["birads"], "confidence": draft["confidence"]}
    if values == {"birads": None, "confidence": None}:
        return None  # nothing chosen: nothing to keep
    if saved is not None and _answer(saved._mapping) == values:
        return None  # what is already saved
    conn.execute(s.drafts.insert().values(reader_id=reader_id, step=number, **draft))
    return draft


class StudyStore:
    """Reads and writes one study database. Thread-safe (one engine, short transactions)."""

    def __init__(self, engine: Engine, source: str) -> None:
        self.engine = engine
        self.source = source
        self._meta: dict[str, str] | None = None

    # --- opening ---------------------------------------------------------------
    @classmethod
    def open(cls, url: str, *, create: bool = False) -> StudyStore:
        """Open (and upgrade) the study at ``url``; ``create`` allows an empty database."""
        source = safe_url(url)
        if url.startswith("sqlite:///") and not create:
            path = Path(url[len("sqlite:///") :])
            if not path.is_file():
                raise StudyError(
                    path,
                    "no study database here (run `sonorisk reader-study "
                    "create` first, or pass --db)",
                )
        engine = make_engine(url)
        try:
            migrate(engine, source=source)
            store = cls(engine, source)
            if not create:
                with engine.connect() as conn:
                    if conn.execute(select(s.study_meta.c.key).limit(1)).first() is None:
                        raise StudyError(
                            source,
                            "the database holds no study (run `sonorisk reader-study create`)",
                        )
        except SQLAlchemyError as exc:
            engine.dispose()
            raise StudyError(
                source, f"cannot open the study database: {str(exc).splitlines()[0]}"
            ) from exc
        except StudyError:
            engine.dispose()
            raise
        return store

    def close(self) -> None:
        self.engine.dispose()

    def _writing(self) -> Any:
        """A write transaction (SQLite: BEGIN IMMEDIATE)."""
        return self.engine.execution_options(immediate=True).begin()

    # --- creation --------------------------------------------------------------
    def initialize(
        self,
        meta: dict[str, str],
        readers: list[dict[str, Any]],
        cases: list[dict[str, Any]],
        steps: list[dict[str, Any]],
    ) -> None:
        """Write a new study in one transaction; refuses a database that holds one."""

        with self.engine.begin() as conn:
            if conn.execute(select(s.study_meta.c.key).limit(1)).first() is not None:
                raise StudyError(
                    self.source, "already holds a study; use a new database (or a new --out folder)"
                )
            conn.execute(s.study_meta.insert(), [{"key": k, "value": v} for k, v in meta.items()])
            conn.execute(s.readers.insert(), readers)
            conn.execute(s.cases.insert(), cases)
            conn.execute(s.steps.insert(), steps)
        self._meta = None

    # --- settings --------------------------------------------------------------
    def meta(self) -> dict[str, str]:

        if self._meta is None:  # written once at creation: safe to cache
            with self.engine.connect() as conn:
                rows = conn.execute(select(s.study_meta)).all()
            self._meta = {r.key: r.value for r in rows}
        return self._meta

    @property
    def washout_s(self) -> float | None:
        meta = self.meta()
        if meta.get("washout") != "true":
            return None
        return float(meta.get("washout_days", "0")) * 86400.0

    # --- readers and sign-in ---------------------------------------------------
    def reader_ids(self) -> list[str]:

        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    select(s.readers.c.reader_id).order_by(s.readers.c.reader_id)
                ).scalars()
            )

    def reader(self, reader_id: str) -> dict[str, Any] | None:

        with self.engine.connect() as conn:
            row = conn.execute(select(s.readers).where(s.readers.c.reader_id == reader_id)).first()
        return dict(row._mapping) if row else None

    def reader_for_token(self, token: str) -> str | None:

        with self.engine.connect() as conn:
            return conn.execute(
                select(s.readers.c.reader_id).where(s.readers.c.token_hash == token_hash(token))
            ).scalar()

    def admin_token_ok(self, token: str) -> bool:

        return hmac.compare_digest(token_hash(token), self.meta().get("admin_token_hash", ""))

    def password_ok(self, reader_id: str, password: str) -> bool:
        reader = self.reader(reader_id)
        return bool(reader and check_password(password, reader.get("password_hash")))

    def set_password(self, reader_id: str, password_hash: str | None) -> None:
        with self.engine.begin() as conn:
            done = conn.execute(
                s.readers.update()
                .where(s.readers.c.reader_id == reader_id)
                .values(password_hash=password_hash)
            ).rowcount
        if not done:
            raise StudyError(self.source, f"no reader {reader_id!r}")

    def set_token(self, reader_id: str, token: str) -> None:
        """Replace a reader's sign-in link token (the old link stops working)."""
        with self.engine.begin() as conn:
            done = conn.execute(
                s.readers.update()
                .where(s.readers.c.reader_id == reader_id)
                .values(token_hash=token_hash(token))
            ).rowcount
        if not done:
            raise StudyError(self.source, f"no reader {reader_id!r}")

    def log_event(
        self,
        reader_id: str,
        kind: str,
        step: int | None = None,
        detail: str | None = None,
        now: float | None = None,
    ) -> None:

        with self.engine.begin() as conn:
            conn.execute(
                s.events.insert().values(
                    at=now or time.time(), reader_id=reader_id, step=step, kind=kind, detail=detail
                )
            )

    # --- cases and steps -------------------------------------------------------
    def case(self, case_id: str) -> dict[str, Any]:

        with self.engine.connect() as conn:
            row = conn.execute(select(s.cases).where(s.cases.c.case_id == case_id)).first()
        if row is None:
            raise StudyError(self.source, f"no case {case_id!r}")
        out = dict(row._mapping)
        for key in ("covariates", "ai_notice", "ai_lesions", "heatmaps"):
            out[key] = json.loads(out[key])
        return out

    def cases(self) -> list[dict[str, Any]]:

        with self.engine.connect() as conn:
            ids = conn.execute(select(s.cases.c.case_id).order_by(s.cases.c.case_id)).scalars()
            return [self.case(i) for i in list(ids)]

    def steps(self, reader_id: str) -> list[Step]:

        with self.engine.connect() as conn:
            rows = conn.execute(
                select(s.steps).where(s.steps.c.reader_id == reader_id).order_by(s.steps.c.step)
            ).all()
        return [
            Step(r.reader_id, r.step, r.case_id, r.session, r.position, r.opened_at) for r in rows
        ]

    def answers(self, reader_id: str) -> dict[tuple[str, str], dict[str, Any]]:

        with self.engine.connect() as conn:
            rows = conn.execute(select(s.reads).where(s.reads.c.reader_id == reader_id)).all()
        return {(r.case_id, r.session): dict(r._mapping) for r in rows}

    def current_step(self, reader_id: str) -> Step | None:
        """The first step without a saved read (None: the reader has finished)."""
        return first_unanswered(self.steps(reader_id), self.answers(reader_id))

    def aided_opens_at(self, reader_id: str) -> float | None:
        """``aided_opening`` of this reader (0 without a washout)."""
        return aided_opening(self.steps(reader_id), self.answers(reader_id), self.washout_s)

    def check_open(self, reader_id: str, number: int, now: float | None = None) -> Step:
        """The step if this reader may open it now; else ``ReadRejected`` (403/404)."""
        now = time.time() if now is None else now
        steps = self.steps(reader_id)
        if not steps:
            raise ReadRejected(reader_id, "unknown reader", 404)
        refusal = open_refusal(steps, self.answers(reader_id), number, now, self.washout_s)
        if refusal is not None:
            raise refusal
        return steps[number]

    def open_step(self, reader_id: str, number: int, now: float | None = None) -> Step:
        """``check_open``, then record the first view (the reading clock starts there)."""
        now = time.time() if now is None else now
        step = self.check_open(reader_id, number, now)
        with self._writing() as conn:
            conn.execute(
                s.steps.update()
                .where(
                    and_(
                        s.steps.c.reader_id == reader_id,
                        s.steps.c.step == number,
                        s.steps.c.opened_at.is_(None),
                    )
                )
                .values(opened_at=now)
            )
            conn.execute(
                s.events.insert().values(
                    at=now,
                    reader_id=reader_id,
                    step=number,
                    kind="ai_shown" if step.session == "aided" else "view",
                    detail=step.session,
                )
            )
        return self.steps(reader_id)[number]

    # --- answers ---------------------------------------------------------------
    def save_read(
        self,
        reader_id: str,
        number: int,
        birads: object,
        confidence: object,
        actor: str | None = None,
        now: float | None = None,
    ) -> dict[str, Any]:
        """Validate and commit one answer with its audit row; returns the stored read."""

        now = time.time() if now is None else now
        category, conf = validate_answer(birads, confidence)
        step = self.check_open(reader_id, number, now)
        case = self.case(step.case_id)
        key = and_(
            s.reads.c.reader_id == reader_id,
            s.reads.c.case_id == step.case_id,
            s.reads.c.session == step.session,
        )
        new = {"birads": category, "confidence": conf}
        for _attempt in range(2):  # a concurrent first insert turns the retry into an update
            try:
                with self._writing() as conn:
                    # the row lock (PostgreSQL) / write lock (SQLite) makes concurrent
                    # changes of one answer take turns, so each audit row's "old" is right
                    old = conn.execute(select(s.reads).where(key).with_for_update()).first()
                    # the answer is saved: its draft goes in the same transaction
                    conn.execute(s.drafts.delete().where(_draft_key(reader_id, number)))
                    if old is not None:
                        old_answer = _answer(old._mapping)
                        if old_answer == new:
                            return dict(old._mapping)
                        if step.session == "unaided":
                            shown = _ai_shown_at(conn, reader_id, step.case_id)
                            if shown is not None:
                                raise _locked(number, shown)
                        conn.execute(
                            s.reads.update()
                            .where(key)
                            .values(birads=category, confidence=conf, updated_at=now)
                        )
                        action, old_json = "update", json.dumps(old_answer)
                    else:
                        opened = step.opened_at if step.opened_at is not None else now
                        if step.opened_at is None:
                            conn.execute(
                                s.steps.update()
                                .where(
                                    and_(s.steps.c.reader_id == reader_id, s.steps.c.step == number)
                                )
                                .values(opened_at=opened)
                            )
                        total = max(0.0, now - opened)
                        conn.execute(
                            s.reads.insert().values(
                                reader_id=reader_id,
                                case_id=step.case_id,
                                session=step.session,
                                step=number,
                                birads=category,
                                confidence=conf,
                                opened_at=opened,
                                submitted_at=now,
                                total_time_s=total,
                                video_duration_s=case["duration_s"],
                                reading_time_s=total - case["duration_s"],
                                updated_at=now,
                            )
                        )
                        action, old_json = "insert", None
                    conn.execute(
                        s.audit.insert().values(
                            at=now,
                            actor=actor or reader_id,
                            reader_id=reader_id,
                            case_id=step.case_id,
                            session=step.session,
                            action=action,
                            old=old_json,
                            new=json.dumps(new),
                        )
                    )
                break
            except IntegrityError:
                continue
        with self.engine.connect() as conn:
            return dict(conn.execute(select(s.reads).where(key)).one()._mapping)

    # --- drafts (autosave) -----------------------------------------------------
    def save_draft(
        self,
        reader_id: str,
        number: int,
        birads: object,
        confidence: object,
        saved_at: float | None = None,
        now: float | None = None,
    ) -> dict[str, Any] | None:
        """Keep the answer a reader is entering on an open step; returns the draft, or
        None when there is nothing to keep (empty, or equal to the saved answer).

        ``saved_at`` is the ``updated_at`` of the saved answer the reader's page showed
        (None: none). If the answer was saved since, the draft is older than it (a late
        autosave request, another tab) and is refused (409) rather than shadowing it.
        """
        now = time.time() if now is None else now
        category, conf = validate_draft(birads, confidence)
        step = self.check_open(reader_id, number, now)  # the same 403s as an answer
        draft = {"birads": category, "confidence": conf, "updated_at": now}
        for attempt in range(2):  # a concurrent first insert turns the retry into a replace
            try:
                with self._writing() as conn:
                    return _replace_draft(conn, step, draft, saved_at)
            except IntegrityError:
                if attempt:
                    raise
        return None  # not reached: the second attempt returns or raises

    def draft(self, reader_id: str, number: int) -> dict[str, Any] | None:
        """The unsaved answer of a step (None: none)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(s.drafts).where(_draft_key(reader_id, number))).first()
        if row is None:
            return None
        return {"birads": row.birads, "confidence": row.confidence, "updated_at": row.updated_at}

    def drafts(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [
                dict(r._mapping)
                for r in conn.execute(
                    select(s.drafts).order_by(s.drafts.c.reader_id, s.drafts.c.step)
                ).all()
            ]

    # --- tables for the admin pages and the export ------------------------------
    def reads(self) -> list[dict[str, Any]]:

        with self.engine.connect() as conn:
            rows = conn.execute(select(s.reads).order_by(s.reads.c.reader_id, s.reads.c.step)).all()
        return [dict(r._mapping) for r in rows]

    def audit(self) -> list[dict[str, Any]]:

        with self.engine.connect() as conn:
            return [
                dict(r._mapping) for r in conn.execute(select(s.audit).order_by(s.audit.c.id)).all()
            ]

    def events(self) -> list[dict[str, Any]]:

        with self.engine.connect() as conn:
            return [
                dict(r._mapping)
                for r in conn.execute(select(s.events).order_by(s.events.c.id)).all()
            ]

    def progress(self) -> list[dict[str, Any]]:
        """Per reader: steps done, per session, the current step, last activity."""
        out = []
        for rid in self.reader_ids():
            steps = self.steps(rid)
            done = self.answers(rid)
            current = first_unanswered(steps, done)
            per = {
                sess: (
                    sum(1 for st in steps if st.session == sess and (st.case_id, sess) in done),
                    sum(1 for st in steps if st.session == sess),
                )
                for sess in SESSIONS
            }
            last = max((r["updated_at"] for r in done.values()), default=None)
            reader = self.reader(rid)
            assert reader is not None  # one of reader_ids()
            out.append(
                {
                    "reader_id": rid,
                    "name": reader["name"],
                    "done": len(done),
                    "total": len(steps),
                    "unaided_done": per["unaided"][0],
                    "unaided_total": per["unaided"][1],
                    "aided_done": per["aided"][0],
                    "aided_total": per["aided"][1],
                    "current_step": None if current is None else current.step,
                    "finished": current is None,
                    "last_activity": iso(last),
                }
            )
        return out
