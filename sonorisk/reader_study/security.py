"""Sign-in secrets: link tokens, password hashes, signed session cookies, CSRF tokens.

Tokens and passwords are stored only as hashes (SHA-256 for random link tokens,
PBKDF2-SHA256 with a salt for passwords). A session cookie is
``role:id:issued:signature`` signed with HMAC-SHA256 under the study's secret
(kept in the database), so it survives a server restart and cannot be forged to
name another reader.

An anti-forgery (CSRF) token is an HMAC of the browser's session under the same
secret: another site can make a browser send its cookie, but cannot read a page to
learn the token, nor compute it. Being derived rather than stored, it needs no
table and survives a restart; a new sign-in (a new session) gives a new token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time

PBKDF2_ITERATIONS = 200_000
COOKIE_MAX_AGE_S = 14 * 24 * 3600


def new_token() -> str:
    return secrets.token_urlsafe(24)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def hash_password(password: str, iterations: int = PBKDF2_ITERATIONS) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    salt_b64, digest_b64 = base64.b64encode(salt).decode(), base64.b64encode(digest).decode()
    return f"pbkdf2_sha256${iterations}${salt_b64}${digest_b64}"


def check_password(password: str, stored: str | None) -> bool:
    if not stored:
        return False
    try:
        scheme, iterations, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "pbkdf2_sha256":
        return False
    got = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iterations))
    return hmac.compare_digest(got, base64.b64decode(digest))


def _signature(secret: str, payload: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def sign_session(secret: str, role: str, ident: str, now: float | None = None) -> str:
    payload = f"{role}:{ident}:{int(now if now is not None else time.time())}"
    return f"{payload}:{_signature(secret, payload)}"


def read_session(
    secret: str, cookie: str | None, now: float | None = None
) -> tuple[str, str] | None:
    """``(role, id)`` of a valid, unexpired cookie; else None."""
    if not cookie:
        return None
    try:
        payload, signature = cookie.rsplit(":", 1)
        role, ident, issued = payload.split(":")
        issued_at = int(issued)
    except ValueError:
        return None
    if not hmac.compare_digest(signature, _signature(secret, payload)):
        return None
    if (now if now is not None else time.time()) - issued_at > COOKIE_MAX_AGE_S:
        return None
    return role, ident


def csrf_token(secret: str, basis: str) -> str:
    """The anti-forgery token of one browser session (``basis``: its session cookie,
    or before sign-in its random pre-session nonce)."""
    return hmac.new(secret.encode(), f"csrf|{basis}".encode(), hashlib.sha256).hexdigest()


def csrf_ok(secret: str, basis: str | None, token: str | None) -> bool:
    """Whether ``token`` belongs to this session; compared in constant time."""
    if not basis or not token:
        return False
    return hmac.compare_digest(token.encode(), csrf_token(secret, basis).encode())
