"""Token authentication for the HTTP API, and the named users it signs in.

On by default whenever the server listens beyond loopback (``auth.enabled:
auto``). Clients send ``Authorization: Bearer TOKEN``; the token names the
user the request is made by (every job records it; ``/v1/history`` and the
job endpoints show a user only their own jobs).

* The single token of earlier versions is user ``default``: ``auth.token``,
  ``auth.token_file``, the ``SONORISK_TOKEN`` environment variable, or, when none
  is given, no users are configured and auth is on, generated once and stored
  (mode 0600) in ``DATA_DIR/token`` (a token stored there earlier stays valid).
* Named users: ``auth.users`` (a mapping name -> token) and ``auth.users_file``
  (``name token`` lines; ``#`` comments; refused unless only its owner may read
  it, like a private key).
* Auth off (loopback only): every request is the one local user ``default``.
"""

from __future__ import annotations

import hmac
import os
import re
import secrets
import stat
from pathlib import Path

from sonorisk.errors import ConfigError
from sonorisk.serving.config import ServeConfig, is_loopback

TOKEN_ENV = "SONORISK_TOKEN"
DEFAULT_USER = "default"  # the single token's user, and everybody when auth is off
USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$")
MIN_TOKEN = 16


def auth_enabled(config: ServeConfig) -> bool:
    mode = config.auth.enabled
    if mode == "auto":
        return not is_loopback(config.host)
    return mode == "on"


def _single_token(config: ServeConfig, *, generate: bool) -> str | None:
    """The token of user ``default`` (None: none configured and none generated)."""
    auth = config.auth
    if auth.token:
        return auth.token
    if auth.token_file:
        path = Path(auth.token_file)
        if not path.is_file():
            raise ConfigError(path, "auth.token_file does not exist")
        return path.read_text().strip()
    if os.environ.get(TOKEN_ENV):
        return os.environ[TOKEN_ENV].strip()
    path = config.data_path / "token"
    if path.is_file():
        return path.read_text().strip()
    if not generate:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    return token


def _check_token(token: str, where: str) -> None:
    if len(token) < MIN_TOKEN:
        raise ConfigError(where, f"must be at least {MIN_TOKEN} characters")


def read_users_file(path: str | Path) -> dict[str, str]:
    """``name token`` lines of ``auth.users_file`` -> {name: token}. Refused when the
    group or others may read or write it (the tokens are passwords)."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise ConfigError(path, f"auth.users_file cannot be read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(mode):
        raise ConfigError(path, "auth.users_file is not a regular file")
    if mode & 0o077:
        raise ConfigError(
            path,
            f"auth.users_file is mode {stat.S_IMODE(mode):04o}: it holds "
            f"tokens, so only its owner may read it (chmod 600 {path})",
        )
    users: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2:
            raise ConfigError(f"{path}:{number}", "expected 'NAME TOKEN' (two words)")
        name, token = parts
        if name in users:
            raise ConfigError(f"{path}:{number}", f"user {name!r} is listed twice")
        users[name] = token
    return users


def resolve_users(config: ServeConfig) -> dict[str, str] | None:
    """The users requests may sign in as, {name: token}; None when auth is off.

    Checks names (letters, digits, ``._@+-``), token lengths and that no two users
    share a token (a request could not say who it is)."""
    if not auth_enabled(config):
        return None
    auth = config.auth
    named: dict[str, tuple[str, str]] = {}  # name -> (token, where it was given)
    for name, token in (auth.users or {}).items():
        named[str(name)] = (str(token), f"auth.users.{name}")
    if auth.users_file:
        for name, token in read_users_file(auth.users_file).items():
            if name in named and named[name][0] != token:
                raise ConfigError(
                    "auth.users_file", f"user {name!r} is also in auth.users with another token"
                )
            named[name] = (token, f"auth.users_file ({name})")
    single = _single_token(config, generate=not named)
    if single is not None:
        if DEFAULT_USER in named and named[DEFAULT_USER][0] != single:
            raise ConfigError(
                f"auth.users.{DEFAULT_USER}",
                f"user {DEFAULT_USER!r} is the single token's (auth.token, "
                "auth.token_file, $SONORISK_TOKEN or DATA_DIR/token): give it no "
                "other token",
            )
        named[DEFAULT_USER] = (single, "auth.token")
    owners: dict[str, str] = {}
    for name, (token, where) in named.items():
        if not USER_NAME.match(name):
            raise ConfigError(
                where,
                f"user name {name!r}: use 1-64 letters, digits or ._@+- "
                "(starting with a letter or digit)",
            )
        _check_token(token, where)
        if token in owners:
            raise ConfigError(
                where,
                f"users {owners[token]!r} and {name!r} have the same "
                "token: each user needs their own",
            )
        owners[token] = name
    return {name: token for name, (token, _) in named.items()}


def resolve_token(config: ServeConfig) -> str | None:
    """The single token (user ``default``), or None when auth is off or only named
    users are configured. Generates ``DATA_DIR/token`` when auth is on and nothing
    else is configured; checks every configured user (``resolve_users``)."""
    users = resolve_users(config)
    return None if users is None else users.get(DEFAULT_USER)


def _bearer(authorization: str | None) -> bytes | None:
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip().encode()


def user_for(users: dict[str, str] | None, authorization: str | None) -> str | None:
    """The user an ``Authorization`` header signs in (``default`` when auth is off),
    or None when it names nobody. Every token is compared, in constant time each."""
    if users is None:
        return DEFAULT_USER
    given = _bearer(authorization)
    if given is None:
        return None
    found = None
    for name, token in users.items():
        if hmac.compare_digest(given, token.encode()):
            found = name
    return found


def token_matches(expected: str | None, authorization: str | None) -> bool:
    """Whether an ``Authorization`` header carries the expected bearer token."""
    if expected is None:
        return True
    given = _bearer(authorization)
    return given is not None and hmac.compare_digest(given, expected.encode())
