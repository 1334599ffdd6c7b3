"""Request signatures: app-key HMAC-SHA256 with timestamp and nonce.

A caller sends four headers::

    X-App-Key:   its app key
    X-Timestamp: Unix seconds, e.g. 1717400000
    X-Nonce:     8 to 64 characters of [A-Za-z0-9_-], never reused
    X-Signature: hex(HMAC-SHA256(app_secret, string_to_sign))

    string_to_sign = f"{app_key}\\n{timestamp}\\n{nonce}\\n{METHOD}\\n{path}\\n{sha256_hex(body)}"

``path`` is the request target as sent: the path, plus ``?`` and the query
string when there is one (so query parameters cannot be altered). ``METHOD`` is
upper case; an empty body hashes to sha256 of b"". The sandbox and the REST
connector use the same scheme (``sign`` / ``signed_headers`` here).

Callers that cannot add headers (SOAP clients) send a WS-Security
UsernameToken with PasswordDigest instead (``Verifier.verify_token``).

A timestamp further than ``clock_skew`` from our clock, or a nonce this key
already used within ``nonce_ttl`` (2 x clock_skew by default), is refused.
Nonces live in a ``NonceStore``. A hub whose store others may open (any store
but an in-memory one: server processes of one ``hub run``, separate ``hub
run``s, a province's workers) uses ``StoreNonceStore``: a table in that store,
reached through ``HubPort.remember_nonce``, keyed by a digest of (app key,
nonce) with an expiry column; insert-or-fail is the whole check, so a request
taken by one of them is a replay at every other. Only signed requests with a
good signature write a row, and rows are swept once expired, so the table holds
at most the requests accepted within ``nonce_ttl`` (plus a minute). A hub on an
in-memory store, which nothing else can reach, keeps them in a
``MemoryNonceStore`` (bounded by ``nonce_capacity``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from bdchub.core import greenloop

NONCE_PATTERN = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
TIMESTAMP_PATTERN = re.compile(r"^\d{1,12}$")
SIGNATURE_PATTERN = re.compile(r"^[0-9a-fA-F]{64}$")
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def body_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256


def string_to_sign(app_key: str, timestamp: str, nonce: str, method: str, path: str,
                   body: bytes) -> bytes:
    return f"{app_key}\n{timestamp}\n{nonce}\n{method.upper()}\n{path}\n{body_hash(body)}".encode()


def sign(app_secret: str, app_key: str, timestamp: str, nonce: str, method: str, path: str,
         body: bytes) -> str:
    return hmac.new(app_secret.encode(), string_to_sign(app_key, timestamp, nonce, method, path, body),
                    hashlib.sha256).hexdigest()


def signed_headers(app_key: str, app_secret: str, method: str, path: str, body: bytes = b"",
                   *, timestamp: int | None = None, nonce: str | None = None) -> dict[str, str]:
    """The four headers a caller sends (for clients, the sandbox and tests)."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    nonce = nonce or os.urandom(12).hex()
    return {"X-App-Key": app_key, "X-Timestamp": ts, "X-Nonce": nonce,
            "X-Signature": sign(app_secret, app_key, ts, nonce, method, path, body)}


class NonceStore(Protocol):
    def remember(self, key: str, nonce: str, timestamp: float, ttl: float) -> bool:
        """Record ``nonce`` of ``key`` for ``ttl`` seconds. False if it was already
        there (a replay) or if the store cannot prove it was not."""
        ...


class StoreNonceStore:
    """Nonces in the hub's store, so that every process serving the same clients
    refuses a replay that another one saw first. ``store`` has ``remember_nonce``
    (``core.store.Store``, or the hub's ``HubPort.remember_nonce`` in front of it).
    Expiry is wall-clock time: processes share it, unlike a monotonic clock."""

    def __init__(self, store: Any, clock=time.time):
        self.store = store
        self._clock = clock

    def remember(self, key: str, nonce: str, timestamp: float, ttl: float) -> bool:
        now = self._clock()
        digest = hashlib.sha256(f"{key}\n{nonce}".encode()).hexdigest()
        # A database write: on the inbound server's loop a thread waits for it.
        return greenloop.blocking(self.store.remember_nonce, digest, now + ttl, now)


class MemoryNonceStore:
    """Nonces of one process, bounded to ``capacity`` entries.

    Entries expire in arrival order, so purging from the front is amortised
    O(1). When full, the oldest entry is dropped and requests timestamped at or
    before it are refused from then on: an evicted nonce can never be replayed.
    """

    def __init__(self, capacity: int = 1_000_000, clock=time.monotonic):
        self.capacity = capacity
        self._clock = clock
        self._seen: OrderedDict[tuple[str, str], tuple[float, float]] = OrderedDict()
        self._floor = float("-inf")  # request timestamps at or below this are refused
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._seen)

    def remember(self, key: str, nonce: str, timestamp: float, ttl: float) -> bool:
        now = self._clock()
        entry = (key, nonce)
        with self._lock:
            seen = self._seen
            while seen:
                first = next(iter(seen))
                if seen[first][0] > now:
                    break
                del seen[first]
            if entry in seen or timestamp <= self._floor:
                return False
            while len(seen) >= self.capacity:
                _, (_, evicted_ts) = seen.popitem(last=False)
                self._floor = max(self._floor, evicted_ts)
                if timestamp <= self._floor:
                    return False
            seen[entry] = (now + ttl, timestamp)
            return True


@dataclass(frozen=True)
class Client:
    name: str
    app_key: str
    app_secret: str
    tenants: tuple[str, ...]
    channel: str = "other"

    def allows(self, tenant: str) -> bool:
        for allowed in self.tenants:
            if allowed == tenant or allowed == "*":
                return True
            if allowed.endswith("*") and tenant.startswith(allowed[:-1]):
                return True
        return False


@dataclass(frozen=True)
class UsernameToken:
    """A WS-Security UsernameToken as received. ``digest`` is False for any password
    type but PasswordDigest: PasswordText would put the secret on the wire."""

    username: str
    password: str
    digest: bool
    nonce: str  # base64
    created: str  # xsd:dateTime


class AuthFailure(Exception):
    """Why a request is not authenticated: ``code`` is bad_signature | replayed_nonce."""

    def __init__(self, code: str, reason: str, client: str = ""):
        self.code = code
        self.reason = reason  # a stable token for the audit log, not for people
        self.client = client
        super().__init__(reason)


class Verifier:
    def __init__(self, clients: Mapping[str, Client], nonces: NonceStore, *,
                 clock_skew: float = 300, nonce_ttl: float | None = None, clock=time.time):
        self.by_key = {c.app_key: c for c in clients.values()}
        self.nonces = nonces
        self.clock_skew = clock_skew
        self.nonce_ttl = nonce_ttl if nonce_ttl is not None else 2 * clock_skew
        self.clock = clock

    def verify(self, method: str, path: str, headers: Mapping[str, str | None],
               body: bytes) -> Client:
        """The client that signed this request, or ``AuthFailure``.

        ``headers`` maps the lower-case names x-app-key, x-timestamp, x-nonce,
        x-signature. The nonce is spent only once the signature is good, so
        forged requests cannot fill the store.
        """
        app_key = headers.get("x-app-key") or ""
        ts = headers.get("x-timestamp") or ""
        nonce = headers.get("x-nonce") or ""
        signature = headers.get("x-signature") or ""
        if not (app_key and ts and nonce and signature):
            raise AuthFailure("bad_signature", "missing_headers")
        client = self.by_key.get(app_key)
        if client is None:
            raise AuthFailure("bad_signature", "unknown_app_key")
        if not (TIMESTAMP_PATTERN.match(ts) and NONCE_PATTERN.match(nonce)
                and SIGNATURE_PATTERN.match(signature)):
            raise AuthFailure("bad_signature", "malformed_headers", client.name)
        expected = sign(client.app_secret, app_key, ts, nonce, method, path, body)
        if not hmac.compare_digest(expected, signature.lower()):
            raise AuthFailure("bad_signature", "signature_mismatch", client.name)
        self.check_fresh(client, float(ts), nonce)
        return client

    def verify_token(self, token: UsernameToken) -> Client:
        """The client whose UsernameToken (PasswordDigest profile) this is, or
        ``AuthFailure``; its nonce is spent like a signed request's, in a scope of its own."""
        client = self.by_key.get(token.username)
        if client is None:
            raise AuthFailure("bad_signature", "unknown_app_key")
        if not token.digest:
            raise AuthFailure("bad_signature", "password_not_digest", client.name)
        try:
            nonce = base64.b64decode(token.nonce, validate=True)
            when = datetime.fromisoformat(token.created.replace("Z", "+00:00"))
            if when.tzinfo is None:
                raise ValueError("Created needs a time zone")
        except ValueError:
            raise AuthFailure("bad_signature", "malformed_token", client.name) from None
        if not 8 <= len(nonce) <= 64:
            raise AuthFailure("bad_signature", "malformed_token", client.name)
        expected = base64.b64encode(hashlib.sha1(  # noqa: S324 - fixed by the WSS profile
            nonce + token.created.encode() + client.app_secret.encode()).digest()).decode()
        if not hmac.compare_digest(expected, token.password):
            raise AuthFailure("bad_signature", "signature_mismatch", client.name)
        self.check_fresh(client, when.timestamp(), token.nonce, scope="wsse:")
        return client

    def check_fresh(self, client: Client, timestamp: float, nonce: str, scope: str = "") -> None:
        if abs(self.clock() - timestamp) > self.clock_skew:
            raise AuthFailure("bad_signature", "clock_skew", client.name)
        if not self.nonces.remember(scope + client.app_key, nonce, timestamp, self.nonce_ttl):
            raise AuthFailure("replayed_nonce", "replayed_nonce", client.name)
