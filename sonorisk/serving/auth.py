"""Token authentication for the HTTP API.

On by default whenever the server listens beyond loopback (``auth.enabled:
auto``). The token comes from ``auth.token``, ``auth.token_file``, the
``SONORISK_TOKEN`` environment variable, or, when none is given and auth is
on, is generated once and stored (mode 0600) in ``DATA_DIR/token``. Clients
send ``Authorization: Bearer TOKEN``.
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

from sonorisk.errors import ConfigError
from sonorisk.serving.config import ServeConfig, is_loopback

TOKEN_ENV = "SONORISK_TOKEN"


def auth_enabled(config: ServeConfig) -> bool:
    mode = config.auth.enabled
    if mode == "auto":
        return not is_loopback(config.host)
    return mode == "on"


def resolve_token(config: ServeConfig) -> str | None:
    """The token requests must carry, or None when auth is off."""
    if not auth_enabled(config):
        return None
    auth = config.auth
    if auth.token:
        token = auth.token
    elif auth.token_file:
        path = Path(auth.token_file)
        if not path.is_file():
            raise ConfigError(path, "auth.token_file does not exist")
        token = path.read_text().strip()
    elif os.environ.get(TOKEN_ENV):
        token = os.environ[TOKEN_ENV].strip()
    else:
        path = config.data_path / "token"
        if path.is_file():
            token = path.read_text().strip()
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            token = secrets.token_urlsafe(32)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(token + "\n")
    if len(token) < 16:
        raise ConfigError("auth.token", "must be at least 16 characters")
    return token


def token_matches(expected: str | None, authorization: str | None) -> bool:
    """Whether an ``Authorization`` header carries the expected bearer token."""
    if expected is None:
        return True
    if not authorization:
        return False
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(value.strip().encode(), expected.encode())
