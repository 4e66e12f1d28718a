"""``sonorisk <verb>``: one command for every entry point.

Each subpackage owns its verbs in its own ``cli.py`` with a
``register(groups: dict[str, argparse._SubParsersAction]) -> None`` function.
``groups`` holds the top-level verbs (``"root"``) and the verb groups that
several packages share (``"train"``, ``"eval"``). A registered parser sets
``func`` to a handler ``(args) -> int``; handlers import heavy libraries
(torch, ray) lazily so ``sonorisk --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from sonorisk import __version__
from sonorisk.errors import SonoriskError
from sonorisk.extras import MissingExtraError, extra_of, require_extra

# Order is the order verbs appear in --help.
VERB_MODULES = (
    "sonorisk.io.cli",
    "sonorisk.data.cli",
    "sonorisk.detector.cli",
    "sonorisk.video_classifier.cli",
    "sonorisk.still_classifier.cli",
    "sonorisk.pipeline.cli",
    "sonorisk.eval.cli",
    "sonorisk.serving.cli",
    "sonorisk.reader_study.cli",
    "sonorisk.models.cli",
)

# Verbs that need an install extra (sonorisk.extras): checked before the
# handler runs, so a missing one is one line naming `pip install 'sonorisk[X]'`.
VERB_EXTRAS = {"serve": "serve", "reader-study": "study"}

SHARED_GROUPS = {
    "train": "train a model",
    "eval": "evaluate a model or a table of predictions",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sonorisk",
        description="Lesion-by-lesion breast cancer risk from freehand ultrasound video. "
        "Research software: not a medical device.",
    )
    parser.add_argument("--version", action="version", version=f"sonorisk {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    root = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    groups: dict[str, argparse._SubParsersAction] = {"root": root}
    for name, help_text in SHARED_GROUPS.items():
        group_parser = root.add_parser(name, help=help_text, description=help_text)
        groups[name] = group_parser.add_subparsers(
            dest=f"{name}_what", metavar="WHAT", required=True
        )
    for module_name in VERB_MODULES:
        importlib.import_module(module_name).register(groups)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        if args.verb in VERB_EXTRAS:
            require_extra(VERB_EXTRAS[args.verb], f"sonorisk {args.verb}")
        return int(args.func(args) or 0)
    except ModuleNotFoundError as exc:
        # A module of an extra imported deeper down (the TimeSformer kind's
        # transformers): the same clear line; anything else is a bug, raised.
        extra = extra_of(exc.name or "")
        if extra is None:
            raise
        print(f"sonorisk: error: {MissingExtraError(extra, exc.name or '')}", file=sys.stderr)
        return 2
    except SonoriskError as exc:
        # A user error: one clear line, no traceback.
        print(f"sonorisk: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        # The file system refused (an --out that is a file, a folder that cannot
        # be written, a disk that is full): what and where, no traceback.
        where = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f)
        print(
            f"sonorisk: error: {where + ': ' if where else ''}{exc.strerror or exc}",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print("sonorisk: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
