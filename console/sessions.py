"""Console sessions: server-side, in the store every hub process shares.

A session's token is 32 random bytes (``secrets``), given to the browser once in
an HttpOnly cookie; the store keeps only its SHA-256, so whoever reads the store
cannot take over a session. A session ends after ``ttl`` seconds without use
(each use moves the end on) and after ``max_age`` seconds whatever happens, at
logout, and when its account is disabled or its password, roles or tenants
change (``console.accounts``).

The CSRF token is derived from the session's: HMAC-SHA256 keyed by the session
token, so it needs no storage, changes with every session, and cannot be made
by a page that does not hold the cookie's value. Every state-changing request
sends it in ``X-CSRF-Token``; it is compared in constant time
(``hmac.compare_digest``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from bdchub.core.operators import OperatorStore

#: Seconds between sweeps of expired sessions (done by the next login).
PURGE_EVERY = 300.0


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def csrf_token(token: str) -> str:
    return hmac.new(token.encode("utf-8"), b"bdchub console csrf", hashlib.sha256).hexdigest()


def csrf_matches(token: str, given: str) -> bool:
    """Whether ``given`` is the CSRF token of session ``token`` (constant time)."""
    return hmac.compare_digest(csrf_token(token).encode("ascii"),
                               given.encode("utf-8", "replace"))


@dataclass(frozen=True)
class Session:
    token: str
    username: str
    created_at: float
    expires_at: float

    @property
    def csrf(self) -> str:
        return csrf_token(self.token)


class Sessions:
    def __init__(self, store: OperatorStore, *, ttl: float = 1800.0, max_age: float = 43200.0,
                 clock: Callable[[], float] = time.time):
        self.store = store
        self.ttl = ttl
        self.max_age = max_age
        self.clock = clock
        self._purged_at = 0.0

    def open(self, username: str) -> Session:
        now = self.clock()
        if now - self._purged_at > PURGE_EVERY:
            self._purged_at = now
            self.store.purge_sessions(now)
        token = secrets.token_urlsafe(32)
        expires = now + min(self.ttl, self.max_age)
        self.store.open_session(token_hash(token), username, now=now, expires_at=expires)
        return Session(token, username, now, expires)

    def find(self, token: str) -> Session | None:
        """The live session of ``token`` (its end moved on), or None: unknown, ended
        or expired (then forgotten)."""
        if not token or len(token) > 128:
            return None
        digest = token_hash(token)
        row = self.store.session(digest)
        if row is None:
            return None
        now = self.clock()
        if row["expires_at"] <= now:
            self.store.close_session(digest)
            return None
        expires = min(row["created_at"] + self.max_age, now + self.ttl)
        self.store.touch_session(digest, now=now, expires_at=expires)
        return Session(token, row["username"], row["created_at"], expires)

    def close(self, token: str) -> bool:
        return self.store.close_session(token_hash(token)) if token else False
