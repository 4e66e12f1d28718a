"""Sign-in throttling: failed passwords per account and per client lead to a lockout.

Without a limit, a password can be guessed as fast as PBKDF2 allows (10 wrong
passwords took 0.4 s). After ``account_failures`` failures for one reader id, or
``client_failures`` from one client address, sign-in is refused with 429 and a
``Retry-After`` for ``lockout_s``; each further failure after a lockout doubles it
(up to ``max_lockout_s``). While locked, the password is not even checked, so a
lockout also stops the guessing from costing the server PBKDF2 time. A successful
sign-in clears both counters; failures are forgotten ``forget_s`` after the last one.

The client limit is higher than the account limit because several readers may share
one address (a hospital NAT); behind a reverse proxy on this machine, uvicorn takes
the client address from ``X-Forwarded-For`` (its ``forwarded_allow_ips``, 127.0.0.1 by
default), so readers are not all counted as the proxy.

The state lives in the memory of the server process: it outlives each request but
not a restart, and two server processes on one study keep separate counts.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class SignInLimits:
    account_failures: int = 5  # failed passwords for one reader id before a lockout
    client_failures: int = 20  # failed passwords from one client address
    lockout_s: float = 30.0  # the first lockout; doubles with each failure after it
    max_lockout_s: float = 900.0
    forget_s: float = 3600.0  # a key's failures are forgotten this long after the last
    max_keys: int = 10_000  # memory bound: random reader ids must not grow the table


@dataclass
class _Failures:
    count: int = 0
    last: float = 0.0
    locked_until: float = 0.0


class SignInThrottle:
    """Failed sign-ins per key (``account:ID``, ``client:ADDRESS``); thread-safe."""

    def __init__(
        self, limits: SignInLimits | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limits = limits or SignInLimits()
        self._clock = clock
        self._keys: dict[str, _Failures] = {}
        self._lock = threading.Lock()

    @staticmethod
    def keys(reader_id: str, client: str | None) -> dict[str, str]:
        return {"account": f"account:{reader_id}", "client": f"client:{client or '?'}"}

    def retry_after(self, reader_id: str, client: str | None) -> int:
        """Seconds until this account and client may try again (0: now)."""
        now = self._clock()
        with self._lock:
            waits = [
                self._keys[k].locked_until - now
                for k in self.keys(reader_id, client).values()
                if k in self._keys
            ]
        return max(0, math.ceil(max(waits, default=0.0)))

    def failed(self, reader_id: str, client: str | None) -> None:
        now = self._clock()
        limits = {"account": self.limits.account_failures, "client": self.limits.client_failures}
        with self._lock:
            self._forget(now)
            for kind, key in self.keys(reader_id, client).items():
                entry = self._keys.setdefault(key, _Failures())
                entry.count += 1
                entry.last = now
                over = entry.count - limits[kind]
                if over >= 0:
                    lock = min(self.limits.max_lockout_s, self.limits.lockout_s * 2**over)
                    entry.locked_until = now + lock

    def succeeded(self, reader_id: str, client: str | None) -> None:
        with self._lock:
            for key in self.keys(reader_id, client).values():
                self._keys.pop(key, None)

    def _forget(self, now: float) -> None:
        """Drop stale keys; past ``max_keys``, the least recently failed ones too."""
        stale = [
            k
            for k, e in self._keys.items()
            if now - e.last > self.limits.forget_s and now >= e.locked_until
        ]
        for key in stale:
            del self._keys[key]
        excess = len(self._keys) - self.limits.max_keys + 1
        if excess > 0:
            for key in sorted(self._keys, key=lambda k: self._keys[k].last)[:excess]:
                del self._keys[key]
