"""A real, throwaway PostgreSQL server for the tests that need one (reader study,
serving job store). The ``postgres_url`` fixture (tests/conftest.py) starts one per
test session; ``new_database`` makes an empty database on it for one test."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def _pg_bin() -> Path | None:
    """Debian's server binaries (``apt-get install postgresql``), newest version first."""
    for base in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (base / "initdb").is_file() and (base / "pg_ctl").is_file():
            return base
    return None


PG_BIN = _pg_bin()
# Skipped only off CI: CI installs PostgreSQL, so there a missing server fails.
needs_postgres = pytest.mark.skipif(
    PG_BIN is None and not os.environ.get("CI"), reason="PostgreSQL server binaries not installed"
)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def postgres_server() -> Iterator[str]:
    """A PostgreSQL server in a temp dir on a free port; yields its URL without a database.

    PostgreSQL refuses to run as root: as root, the cluster belongs to the ``postgres``
    user (Debian's package creates it), lives in a directory that user owns, and its
    commands run through ``runuser``."""
    if PG_BIN is None:
        pytest.fail("PostgreSQL server binaries missing (apt-get install postgresql)")
    base = Path(tempfile.mkdtemp(prefix="sonorisk-pg-"))
    data = base / "data"
    port = _free_port()
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]

    def run(*cmd: str) -> None:
        subprocess.run([*as_user, *cmd], check=True, capture_output=True, text=True, timeout=120)

    try:
        run(
            str(PG_BIN / "initdb"),
            "-D",
            str(data),
            "-U",
            "study",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        )
        run(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(base / "server.log"),
            "-w",
            "-t",
            "60",
            "-o",
            f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off",
            "start",
        )
        yield f"postgresql+psycopg://study@127.0.0.1:{port}/"
    finally:
        subprocess.run(
            [*as_user, str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(base, ignore_errors=True)


def new_database(server_url: str, prefix: str = "test") -> str:
    """A fresh, empty database on the server at ``server_url``; its URL."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    dsn = server_url.replace("postgresql+psycopg://", "postgresql://") + "postgres"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return server_url + name
