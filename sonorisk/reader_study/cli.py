"""Verbs of sonorisk.reader_study: ``sonorisk reader-study create|serve|export|progress|migrate``.

Handlers import sqlalchemy/fastapi lazily: ``sonorisk --help`` does not load them.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from sonorisk.cli_args import finite_float
from sonorisk.reader_study.throttle import SignInLimits  # stdlib only: cheap to import

DB_ENV = "SONORISK_STUDY_DB"
DB_HELP = (
    f"database URL (default: sqlite file study.sqlite in the study folder; or set "
    f"{DB_ENV}, which keeps a password out of the process list), e.g. "
    "postgresql+psycopg://user:pw@host/dbname"
)


def _db(args: argparse.Namespace) -> str | None:
    return args.db or os.environ.get(DB_ENV) or None


def register(groups: dict[str, argparse._SubParsersAction]) -> None:
    root = groups["root"]
    group = root.add_parser(
        "reader-study",
        help="two-read reader studies: create, serve to readers, export",
        description="Replay videos to radiologists, first without and then with the AI "
        "result, record both reads, and export them for `sonorisk eval report`. "
        "See docs/reader-study.md.",
    )
    verbs = group.add_subparsers(dest="reader_study_what", metavar="WHAT", required=True)

    create = verbs.add_parser(
        "create",
        help="make a study from a dataset, AI results and a reader list",
        description="Transcode the dataset's videos to H.264 MP4, attach each video's "
        "`sonorisk score` JSON, give each reader a secret sign-in link (written to "
        "OUT/links.txt) and a seeded random case order. Flags override --config keys "
        "(StudyConfig).",
    )
    create.add_argument("--dataset", type=Path, required=True, help="dataset folder")
    create.add_argument(
        "--ai",
        type=Path,
        required=True,
        help="folder of `sonorisk score` JSONs (<video stem>.json)",
    )
    create.add_argument(
        "--readers",
        type=Path,
        required=True,
        help="reader list: CSV with reader_id[,name][,password], or one id a line",
    )
    create.add_argument("--out", type=Path, required=True, help="study folder to create")
    create.add_argument("--db", help=DB_HELP)
    create.add_argument("--config", type=Path, help="YAML of StudyConfig keys")
    create.add_argument("--title", help="study title shown on every page")
    create.add_argument("--seed", type=int, help="seed of the per-reader case orders (default 0)")
    create.add_argument(
        "--washout",
        action="store_true",
        default=None,
        help="aided reads in a later session, in a new random order",
    )
    create.add_argument(
        "--washout-days",
        type=finite_float,
        help="days between a reader's last unaided read and the aided session (default 28)",
    )
    create.add_argument(
        "--show-overlay",
        action="store_true",
        default=None,
        help="aided step also plays the AI overlay video and heatmaps (score "
        "with --overlay --heatmaps)",
    )
    create.add_argument("--model-name", help="the AI's column name in predictions.csv (default AI)")
    create.add_argument(
        "--cases",
        type=Path,
        help="only these video ids (text file, one a line); default: every "
        "benign and malignant video",
    )
    create.set_defaults(func=_create)

    serve = verbs.add_parser("serve", help="serve a study to readers (web app)")
    serve.add_argument("study", type=Path, help="study folder (from create)")
    serve.add_argument("--db", help=DB_HELP)
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; put a TLS proxy in "
        "front for anything beyond this machine)",
    )
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--max-sign-in-failures",
        type=int,
        default=SignInLimits.account_failures,
        metavar="N",
        help="wrong passwords for one reader before sign-in is "
        "locked (default %(default)s; one client address gets 4x as many)",
    )
    serve.add_argument(
        "--lockout-seconds",
        type=finite_float,
        default=SignInLimits.lockout_s,
        metavar="S",
        help="the first lockout; it doubles with each further "
        "failure, up to 30x (default %(default)s)",
    )
    serve.set_defaults(func=_serve)

    export = verbs.add_parser("export", help="reads.csv, truth, predictions, iMRMC, audit")
    export.add_argument("study", type=Path)
    export.add_argument("--db", help=DB_HELP)
    export.add_argument("--out", type=Path, required=True, help="folder for the tables")
    export.add_argument(
        "--no-score",
        choices=("exclude", "negative"),
        default="exclude",
        help="cases where the AI found no scorable lesion: leave them out of "
        "the analysis (default) or count the AI as a negative call (score 0)",
    )
    export.set_defaults(func=_export)

    progress = verbs.add_parser("progress", help="reads saved per reader")
    progress.add_argument("study", type=Path)
    progress.add_argument("--db", help=DB_HELP)
    progress.set_defaults(func=_progress)

    relink = verbs.add_parser("relink", help="revoke a reader's sign-in link, print a new one")
    relink.add_argument("study", type=Path)
    relink.add_argument("reader_id")
    relink.add_argument("--db", help=DB_HELP)
    relink.set_defaults(func=_relink)

    migrate = verbs.add_parser("migrate", help="upgrade a study database to this version")
    migrate.add_argument("study", type=Path)
    migrate.add_argument("--db", help=DB_HELP)
    migrate.set_defaults(func=_migrate)


def _open(args: argparse.Namespace):  # noqa: ANN202 - StudyStore, imported lazily
    from sonorisk.reader_study.store import StudyStore, default_db_url

    return StudyStore.open(_db(args) or default_db_url(args.study))


def _create(args: argparse.Namespace) -> int:
    from sonorisk.config import load_config
    from sonorisk.reader_study.create import StudyConfig, create_study

    cases = None
    if args.cases:
        from sonorisk.errors import ConfigError

        if not args.cases.is_file():
            raise ConfigError(args.cases, "case list not found")
        cases = [
            ln.strip()
            for ln in args.cases.read_text().splitlines()
            if ln.strip() and not ln.startswith("#")
        ]
    config = load_config(
        StudyConfig,
        args.config,
        {
            "title": args.title,
            "seed": args.seed,
            "washout": args.washout,
            "washout_days": args.washout_days,
            "show_overlay": args.show_overlay,
            "model_name": args.model_name,
            "cases": cases,
        },
    )
    study = create_study(
        args.dataset, args.ai, args.readers, args.out, db_url=_db(args), config=config
    )
    print(f"study created in {study.out}: {study.n_cases} cases, {len(study.reader_links)} readers")
    if study.skipped:
        print(f"note: {len(study.skipped)} normal video(s) left out: {study.skipped[:5]}")
    print(f"sign-in links (secret): {study.out / 'links.txt'}")
    print(f"serve it: sonorisk reader-study serve {study.out}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from sonorisk.errors import ConfigError
    from sonorisk.reader_study.store import default_db_url
    from sonorisk.reader_study.web import serve

    if args.max_sign_in_failures < 1 or args.lockout_seconds <= 0:
        raise ConfigError("serve", "--max-sign-in-failures must be >= 1 and --lockout-seconds > 0")
    limits = SignInLimits(
        account_failures=args.max_sign_in_failures,
        client_failures=4 * args.max_sign_in_failures,
        lockout_s=args.lockout_seconds,
        max_lockout_s=30 * args.lockout_seconds,
    )
    serve(args.study, _db(args) or default_db_url(args.study), args.host, args.port, limits)
    return 0


def _export(args: argparse.Namespace) -> int:
    from sonorisk.reader_study.export import export_study

    store = _open(args)
    try:
        result = export_study(store, args.out, args.no_score)
    finally:
        store.close()
    for f in result.files:
        print(f"wrote {f}")
    for w in result.warnings:
        print(f"note: {w}")
    print(f"analyse: {result.report_command()}")
    return 0


def _progress(args: argparse.Namespace) -> int:
    store = _open(args)
    try:
        rows = store.progress()
    finally:
        store.close()
    print(f"{'reader':<16} {'unaided':>9} {'aided':>9} {'total':>9}  status")
    for p in rows:
        status = "finished" if p["finished"] else f"at step {p['current_step'] + 1}"
        print(
            f"{p['reader_id']:<16} {p['unaided_done']:>4}/{p['unaided_total']:<4} "
            f"{p['aided_done']:>4}/{p['aided_total']:<4} {p['done']:>4}/{p['total']:<4}  "
            f"{status}"
        )
    return 0


def _relink(args: argparse.Namespace) -> int:
    from sonorisk.reader_study.create import update_link
    from sonorisk.reader_study.security import new_token

    store = _open(args)
    token = new_token()
    try:
        store.set_token(args.reader_id, token)
    finally:
        store.close()
    link = f"/r/{token}"
    update_link(args.study / "links.txt", args.reader_id, link)
    print(f"new sign-in link of {args.reader_id} (the old one no longer works): {link}")
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from sonorisk.reader_study.schema import SCHEMA_VERSION

    store = _open(args)  # opening upgrades
    store.close()
    print(f"{store.source}: schema version {SCHEMA_VERSION}")
    return 0
