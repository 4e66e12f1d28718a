"""``sonorisk models list | show | verify | install | remove`` (docs/models.md)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def register(groups: dict[str, argparse._SubParsersAction]) -> None:
    models = groups["root"].add_parser(
        "models",
        help="model bundles: list, show, verify, install, remove",
        description="Model bundles (weights, metadata.json with sha256 of every file, a "
        "model card): bundled with sonorisk or installed in the user model "
        "directory ($SONORISK_MODELS, else the platform cache directory). "
        "See docs/models.md.",
    )
    verbs = models.add_subparsers(dest="models_what", metavar="WHAT", required=True)

    ls = verbs.add_parser("list", help="bundled and installed bundles with held-out figures")
    ls.add_argument("--json", action="store_true", help="one JSON document instead of a table")
    ls.set_defaults(func=_list)

    show = verbs.add_parser("show", help="a bundle's metadata and model card path")
    show.add_argument("bundle", metavar="NAME|DIR", help="NAME[@VERSION] or a bundle folder")
    show.set_defaults(func=_show)

    verify = verbs.add_parser(
        "verify",
        help="check every file of a bundle against its sha256",
        description="Check that every file metadata.json lists is there with its size and "
        "sha256; name any file that is missing or changed (exit status 1), and "
        "list files that are not part of the bundle.",
    )
    verify.add_argument(
        "bundle",
        nargs="?",
        metavar="NAME|DIR",
        help="NAME[@VERSION] or a bundle folder (default: the default bundle)",
    )
    verify.set_defaults(func=_verify)

    install = verbs.add_parser(
        "install",
        help="install a bundle from a folder, an archive or an https URL",
        description="Install a bundle into the user model directory from a bundle folder, "
        "an archive (.tar.gz, .tgz, .tar, .zip) holding one, or an https:// URL "
        "of such an archive with its --sha256 (checked before unpacking). Every "
        "file is verified before the bundle is moved into place.",
    )
    install.add_argument("source", metavar="PATH|URL")
    install.add_argument(
        "--sha256", metavar="HEX", help="sha256 of the archive (required for a URL)"
    )
    install.add_argument(
        "--cafile",
        metavar="FILE",
        help="CA certificates (PEM) to trust for the https download "
        "(default: the system's, or $SSL_CERT_FILE)",
    )
    install.add_argument(
        "--force",
        action="store_true",
        help="replace an installed bundle of the same name and version",
    )
    install.set_defaults(func=_install)

    remove = verbs.add_parser("remove", help="delete an installed bundle (never a bundled one)")
    remove.add_argument(
        "bundle", metavar="NAME[@VERSION]", help="NAME removes every installed version of it"
    )
    remove.set_defaults(func=_remove)


def _figures(metrics: dict[str, dict[str, Any]]) -> str:
    parts = []
    for name, m in metrics.items():
        value = m.get("value")
        if not isinstance(value, int | float):
            continue
        ci = (
            f" [{m['ci_low']:.3f}-{m['ci_high']:.3f}]"
            if isinstance(m.get("ci_low"), int | float)
            and isinstance(m.get("ci_high"), int | float)
            else ""
        )
        parts.append(f"{name} {value:.3f}{ci}")
    return "; ".join(parts) or "-"


def _list(args: argparse.Namespace) -> int:
    from sonorisk.models.store import bundled_dir, default_spec, list_bundles, user_model_dir

    found = list_bundles()
    default = default_spec()
    rows: list[dict[str, Any]]
    rows = [
        {
            "name": x.bundle.name,
            "version": x.bundle.version,
            "where": x.where,
            "default": default in (x.bundle.name, f"{x.bundle.name}@{x.bundle.version}"),
            "size_bytes": x.bundle.size_bytes,
            "sha256": x.bundle.sha256,
            "path": str(x.bundle.path),
            "metrics": x.bundle.metrics,
        }
        for x in found
    ]
    if args.json:
        print(
            json.dumps(
                {
                    "installed_dir": str(user_model_dir()),
                    "bundled_dir": str(bundled_dir()),
                    "default": default,
                    "bundles": rows,
                },
                indent=2,
            )
        )
        return 0
    print(f"installed in {user_model_dir()} ; bundled in {bundled_dir()}")
    if not rows:
        print("no model bundles: `sonorisk models install PATH_OR_URL` adds one (docs/models.md)")
        return 0
    for row in rows:
        mark = " (default)" if row["default"] else ""
        print(
            f"{row['name']} {row['version']}{mark}  {row['where']}  "
            f"{row['size_bytes'] / 1e6:.1f} MB  sha256 {row['sha256'][:12]}  {row['path']}"
        )
        print(f"    held-out: {_figures(row['metrics'])}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from sonorisk.models.resolve import locate_bundle

    bundle, where = locate_bundle(args.bundle)
    print(json.dumps(bundle.metadata, indent=2))
    print(f"bundle: {bundle.name} {bundle.version} ({where}) at {bundle.path}")
    print(f"sha256 (of metadata.json): {bundle.sha256}")
    print(f"model card: {bundle.card}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from sonorisk.models.bundle import verify_bundle
    from sonorisk.models.resolve import locate_bundle

    bundle, where = locate_bundle(args.bundle)
    report = verify_bundle(bundle.path)
    for extra in report.extras:
        print(
            f"note: {bundle.path / extra} is not listed in metadata.json (not part of the bundle)"
        )
    if not report.ok:
        for problem in report.problems:
            print(
                f"sonorisk: error: {bundle.path / problem.file}: {problem.reason}", file=sys.stderr
            )
        print(
            f"FAILED: {bundle.name} {bundle.version} ({where}, {bundle.path}): "
            f"{len(report.problems)} of {len(bundle.files)} files missing or changed",
            file=sys.stderr,
        )
        return 1
    print(
        f"ok: {bundle.name} {bundle.version} ({where}, {bundle.path}): all "
        f"{len(bundle.files)} files match their sha256; bundle sha256 {bundle.sha256}"
    )
    return 0


def _install(args: argparse.Namespace) -> int:
    from sonorisk.models.install import install_bundle

    located = install_bundle(args.source, sha256=args.sha256, cafile=args.cafile, force=args.force)
    b = located.bundle
    print(
        f"installed {b.name} {b.version} at {b.path} (verified: {len(b.files)} files; "
        f"bundle sha256 {b.sha256})"
    )
    return 0


def _remove(args: argparse.Namespace) -> int:
    from sonorisk.models.store import remove_bundle

    for path in remove_bundle(args.bundle):
        print(f"removed {path}")
    return 0
