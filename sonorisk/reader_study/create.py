"""``sonorisk reader-study create``: a study from a dataset, AI results and readers.

- cases: the dataset's videos (``sonorisk.data.load_dataset``); ``normal`` videos are
  left out (the paper's reader study reads lesion videos), or only the ids given;
- AI: one ``sonorisk score`` JSON per video (``AI_DIR/<video stem>.json``), checked
  against the schema; its risk may be null ("no scorable lesion"), its notice is
  shown with every AI display;
- media: each video transcoded to H.264 MP4 under an opaque code (file names and
  case ids may carry the label: readers never see them); overlay videos and heatmap
  strips copied when the study shows them;
- readers: a CSV (``reader_id``, optional ``name``, ``password``) or a text file of ids;
  each gets a secret sign-in link (``links.txt``, readable by the owner only);
- steps: per reader, the cases in a seeded random order; each case read unaided,
  then at once aided; with a washout, all unaided reads first, then the aided reads
  in a new random order, opening ``washout_days`` after the last unaided read.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sonorisk import __version__
from sonorisk.atomic import atomic_write_text
from sonorisk.reader_study.ai_panel import heatmap_clips
from sonorisk.reader_study.errors import StudyError
from sonorisk.reader_study.security import hash_password, new_token, token_hash
from sonorisk.reader_study.store import StudyStore, default_db_url, safe_url

log = logging.getLogger(__name__)

READER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
COVARIATES = ("site", "age", "lesion_size_mm", "birads", "subtype", "vendor")


@dataclass(frozen=True)
class StudyConfig:
    """Settings of a study (each ``create`` flag maps to a key; ``--config`` YAML)."""

    title: str = "sonorisk reader study"
    seed: int = 0
    washout: bool = False  # aided reads in a later session, in a new random order
    washout_days: float = 28.0
    show_overlay: bool = False  # aided step also plays the AI overlay and heatmaps
    model_name: str = "AI"  # the model's column in predictions.csv
    cases: list[str] | None = None  # only these video ids (default: all lesion videos)

    def validate(self) -> None:
        from sonorisk.errors import ConfigError

        if self.washout_days < 0:
            raise ConfigError("washout_days", f"must be >= 0, got {self.washout_days}")
        if not self.model_name.strip() or "," in self.model_name:
            raise ConfigError(
                "model_name", f"must be a non-empty name without commas, got {self.model_name!r}"
            )


@dataclass(frozen=True)
class ReaderSpec:
    reader_id: str
    name: str
    password: str | None = None


@dataclass
class CreatedStudy:
    out: Path
    db_url: str
    reader_links: dict[str, str]  # reader id -> path of the sign-in link (/r/TOKEN)
    admin_link: str
    n_cases: int
    skipped: list[str] = field(default_factory=list)


def load_readers(path: str | Path) -> list[ReaderSpec]:
    """A reader list: CSV with a ``reader_id`` header (``name``, ``password`` optional),
    or plain text with one reader id a line (``#`` comments)."""
    path = Path(path)
    if not path.is_file():
        raise StudyError(path, "reader list not found")
    text = path.read_text(encoding="utf-8-sig")
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise StudyError(path, "reader list is empty: need at least one reader")
    header = [h.strip().lower() for h in next(csv.reader([lines[0]]))]
    rows: list[tuple[int, dict[str, str]]]
    if "reader_id" in header:
        unknown = sorted(set(header) - {"reader_id", "name", "password"})
        if unknown:
            raise StudyError(path, f"unknown column(s) {unknown}; known: reader_id, name, password")
        reader = csv.DictReader(lines[1:], fieldnames=header)
        rows = [
            (i + 2, {k: (v or "").strip() for k, v in row.items() if k})
            for i, row in enumerate(reader)
        ]
    elif "," in lines[0]:
        raise StudyError(
            path,
            f"a CSV reader list needs a header row with 'reader_id' (first line: {lines[0]!r})",
        )
    else:
        rows = [(i + 1, {"reader_id": ln.strip()}) for i, ln in enumerate(lines)]
    specs: list[ReaderSpec] = []
    seen: set[str] = set()
    for line_no, row in rows:
        rid = row.get("reader_id", "")
        if not rid:
            raise StudyError(path, f"line {line_no}: empty reader id")
        if not READER_ID.match(rid):
            raise StudyError(
                path,
                f"line {line_no}: reader id {rid!r} may hold only letters, "
                "digits, '.', '_' and '-' (at most 64, starting with a "
                "letter or digit)",
            )
        if rid.lower() in seen:
            raise StudyError(path, f"line {line_no}: duplicate reader id {rid!r}")
        seen.add(rid.lower())
        password = row.get("password") or None
        if password is not None and len(password) < 8:
            raise StudyError(
                path, f"line {line_no}: password of {rid!r} is shorter than 8 characters"
            )
        specs.append(ReaderSpec(rid, row.get("name") or rid, password))
    if not specs:
        raise StudyError(path, "reader list has no reader rows")
    return specs


def reader_order(case_ids: list[str], reader_id: str, seed: int, round_: int = 0) -> list[str]:
    """Seeded random order of ``case_ids`` for one reader (round 1: the washout re-shuffle).

    Depends on the seed, the reader id and the set of cases, not on the other readers."""
    key = int(hashlib.sha256(reader_id.encode()).hexdigest()[:12], 16)
    rng = np.random.default_rng(np.random.SeedSequence([seed, key, round_]))
    ordered = sorted(case_ids)
    return [ordered[i] for i in rng.permutation(len(ordered))]


def plan_steps(
    case_ids: list[str], reader_id: str, seed: int, washout: bool
) -> list[dict[str, Any]]:
    """The reader's ordered steps: ``(case_id, session, position)``."""
    first = reader_order(case_ids, reader_id, seed, 0)
    if washout:
        second = reader_order(case_ids, reader_id, seed, 1)
        plan = [(c, "unaided", i + 1) for i, c in enumerate(first)]
        plan += [(c, "aided", i + 1) for i, c in enumerate(second)]
    else:
        plan = [(c, sess, i + 1) for i, c in enumerate(first) for sess in ("unaided", "aided")]
    return [
        {
            "reader_id": reader_id,
            "step": n,
            "case_id": c,
            "session": sess,
            "position": pos,
            "opened_at": None,
        }
        for n, (c, sess, pos) in enumerate(plan)
    ]


def _score_schema() -> dict[str, Any]:
    from importlib.resources import files

    return json.loads((files("sonorisk.pipeline") / "score.schema.json").read_text())


def load_ai_document(path: Path, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """A ``sonorisk score`` JSON, validated against its schema."""
    import jsonschema

    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StudyError(path, f"not a readable JSON document ({exc})") from exc
    try:
        jsonschema.validate(doc, schema or _score_schema())
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "top level"
        raise StudyError(path, f"not a sonorisk score document ({where}: {exc.message})") from None
    return doc


def _find_ai(ai_dir: Path, video_id: str, video_file: str) -> Path:
    stem = Path(video_file).stem
    for candidate in (ai_dir / f"{stem}.json", ai_dir / f"{video_id}.json"):
        if candidate.is_file():
            return candidate
    raise StudyError(
        ai_dir,
        f"no AI result for video {video_id!r} (expected {stem}.json; "
        "score it with `sonorisk score`)",
    )


def _lesions(doc: dict[str, Any]) -> list[dict[str, Any]]:
    from sonorisk.pipeline.document import ScoreDocument

    return [
        {
            "lesion_id": lz.lesion_id,
            "status": lz.status.value,
            "risk": lz.risk,
            "clips_used": lz.clips_used,
            "confidence": lz.confidence,
            "first_frame": lz.first_frame,
            "last_frame": lz.last_frame,
        }
        for lz in ScoreDocument.from_json(doc).lesions
    ]


def _truth(pathology: str, video_id: str) -> int:
    if pathology == "malignant":
        return 1
    if pathology == "benign":
        return 0
    raise StudyError(
        video_id, f"pathology {pathology!r}: a reader study needs benign or malignant cases"
    )


def _jsonable(value: Any) -> Any:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


def create_study(
    dataset: str | Path,
    ai_dir: str | Path,
    readers_file: str | Path,
    out: str | Path,
    *,
    db_url: str | None = None,
    config: StudyConfig | None = None,
) -> CreatedStudy:
    from sonorisk.data import load_dataset
    from sonorisk.reader_study.media import transcode_h264

    config = config or StudyConfig()
    config.validate()
    ai_dir, out = Path(ai_dir), Path(out)
    readers = load_readers(readers_file)
    if not ai_dir.is_dir():
        raise StudyError(ai_dir, "AI results folder not found")
    ds = load_dataset(dataset)
    records = {r.video_id: r for r in ds.videos}
    skipped: list[str] = []
    if config.cases is not None:
        unknown = sorted(set(config.cases) - set(records))
        if unknown:
            raise StudyError(ds.root, f"case id(s) not in the dataset: {unknown[:5]}")
        chosen = [records[c] for c in dict.fromkeys(config.cases)]
    else:
        chosen = [r for r in ds.videos if r.pathology != "normal"]
        skipped = [r.video_id for r in ds.videos if r.pathology == "normal"]
    if not chosen:
        raise StudyError(ds.root, "no benign or malignant video to read")
    schema = _score_schema()
    planned = []
    for rec in chosen:  # check every input before any slow work
        _truth(rec.pathology, rec.video_id)
        video = ds.root / rec.file
        if not video.is_file():
            raise StudyError(video, f"video of case {rec.video_id!r} not found")
        ai_path = _find_ai(ai_dir, rec.video_id, rec.file)
        doc = load_ai_document(ai_path, schema)
        scored_from = Path(str(doc["video"]["source"])).stem
        if scored_from != video.stem:
            raise StudyError(
                ai_path, f"was scored from {doc['video']['source']!r}, not from {rec.file!r}"
            )
        if config.show_overlay and not doc.get("outputs", {}).get("overlay"):
            raise StudyError(
                ai_path,
                "has no overlay video (score with --overlay, or create "
                "the study without show_overlay)",
            )
        planned.append((rec, video, ai_path, doc))

    out.mkdir(parents=True, exist_ok=True)
    url = db_url or default_db_url(out)
    store = StudyStore.open(url, create=True)
    try:
        if store.meta():
            raise StudyError(
                safe_url(url), "already holds a study; use a new --out folder or database"
            )
        codes: set[str] = set()
        case_rows = []
        for rec, video, ai_path, doc in planned:
            code = secrets.token_hex(5)
            while code in codes:
                code = secrets.token_hex(5)
            codes.add(code)
            log.info("transcoding %s", video.name)
            media = transcode_h264(video, out / "media" / f"{code}.mp4", fallback_fps=rec.fps)
            (out / "ai").mkdir(exist_ok=True)
            shutil.copyfile(ai_path, out / "ai" / f"{code}.json")
            overlay_file = None
            heatmaps: list[str] = []
            if config.show_overlay:
                src = ai_path.parent / doc["outputs"]["overlay"]
                if not src.is_file():
                    raise StudyError(ai_path, f"overlay video {src} not found")
                overlay_file = f"media/{code}.overlay.mp4"
                transcode_h264(src, out / overlay_file, fallback_fps=media.fps)
                for k, rel in enumerate(c.path for c in heatmap_clips(doc)):
                    png = ai_path.parent / rel
                    if not png.is_file():
                        raise StudyError(ai_path, f"heatmap {png} not found")
                    heatmaps.append(f"media/{code}.heatmap{k}.png")
                    shutil.copyfile(png, out / heatmaps[-1])
            covariates = {k: _jsonable(getattr(rec, k, None)) for k in COVARIATES}
            case_rows.append(
                {
                    "case_id": rec.video_id,
                    "code": code,
                    "video_file": f"media/{code}.mp4",
                    "fps": media.fps,
                    "n_frames": media.frames,
                    "duration_s": media.duration_s,
                    "width": media.width,
                    "height": media.height,
                    "pathology": rec.pathology,
                    "truth": _truth(rec.pathology, rec.video_id),
                    "covariates": json.dumps(covariates),
                    "ai_status": doc["status"],
                    "ai_risk": doc["risk"],
                    "ai_notice": json.dumps(doc["notice"]),
                    "ai_lesions": json.dumps(_lesions(doc)),
                    "ai_document": f"ai/{code}.json",
                    "overlay_file": overlay_file,
                    "heatmaps": json.dumps(heatmaps),
                }
            )
        now = time.time()
        links: dict[str, str] = {}
        reader_rows = []
        for spec in readers:
            token = new_token()
            links[spec.reader_id] = f"/r/{token}"
            reader_rows.append(
                {
                    "reader_id": spec.reader_id,
                    "name": spec.name,
                    "token_hash": token_hash(token),
                    "created_at": now,
                    "password_hash": (hash_password(spec.password) if spec.password else None),
                }
            )
        case_ids = [row["case_id"] for row in case_rows]
        steps = [
            st
            for spec in readers
            for st in plan_steps(case_ids, spec.reader_id, config.seed, config.washout)
        ]
        admin_token = new_token()
        meta = {
            "title": config.title,
            "seed": str(config.seed),
            "washout": "true" if config.washout else "false",
            "washout_days": repr(float(config.washout_days)),
            "show_overlay": "true" if config.show_overlay else "false",
            "model_name": config.model_name,
            "secret": secrets.token_hex(32),
            "admin_token_hash": token_hash(admin_token),
            "created_at": repr(now),
            "sonorisk_version": __version__,
            "dataset": str(Path(ds.root).resolve()),
            "ai_dir": str(ai_dir.resolve()),
            "skipped_cases": json.dumps(skipped),
        }
        store.initialize(meta, reader_rows, case_rows, steps)
    finally:
        store.close()
    admin_link = f"/admin/login/{admin_token}"
    _write_links(out / "links.txt", links, admin_link, {r.reader_id: r.name for r in readers})
    atomic_write_text(
        json.dumps(
            {
                "title": config.title,
                "db": safe_url(url),
                "cases": len(case_rows),
                "readers": [r.reader_id for r in readers],
                "washout": config.washout,
                "show_overlay": config.show_overlay,
                "seed": config.seed,
                "skipped_cases": skipped,
                "created_at": meta["created_at"],
                "sonorisk_version": __version__,
            },
            indent=2,
        )
        + "\n",
        out / "study.json",
    )
    return CreatedStudy(out, url, links, admin_link, len(case_rows), skipped)


def _write_links(path: Path, links: dict[str, str], admin: str, names: dict[str, str]) -> None:
    """The secret sign-in links: owner-only file; append each to the server's base URL."""
    lines = [
        "# sonorisk reader study sign-in links: SECRET. Append each to the server's",
        "# base URL (e.g. http://HOST:8000) and give each reader only their own.",
        "# role\tid\tname\tlink",
    ]
    lines += [f"reader\t{rid}\t{names[rid]}\t{link}" for rid, link in links.items()]
    lines += [f"admin\tadmin\tstudy administrator\t{admin}"]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("\n".join(lines) + "\n")


def update_link(path: Path, reader_id: str, link: str) -> None:
    """Replace one reader's link in ``links.txt`` (if the file is there)."""
    if not path.is_file():
        return
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        parts = line.split("\t")
        if len(parts) == 4 and parts[0] == "reader" and parts[1] == reader_id:
            lines[i] = "\t".join([*parts[:3], link])
    path.write_text("\n".join(lines) + "\n")


def read_links(path: str | Path) -> dict[str, str]:
    """``links.txt`` as ``{reader id or 'admin': link path}``."""
    out = {}
    for line in Path(path).read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        role, ident, _name, link = line.split("\t")
        out["admin" if role == "admin" else ident] = link
    return out
