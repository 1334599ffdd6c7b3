"""REST/JSON endpoints: a tiny router and the app-key HMAC check.

Success bodies are ``{"code": "0", "message": "ok", "data": ...}``; errors are
``{"code": "<UPPER_SNAKE>", "message": "..."}`` with a 4xx/5xx status.
"""

from __future__ import annotations

import hmac
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from bdchub.core.i18n import _

from .server import Call, Endpoint, HttpError, Request, Response, ok
from .signing import APPKEY_MAX_SKEW_S, NONCE_TTL_S, appkey_sign

_NONCE_RE = re.compile(r"^[A-Za-z0-9_\-]{8,64}$")


def route(method: str, pattern: str, operation: str, *, auth: bool = True) -> Callable:
    """Mark a handler ``(self, req, **path_params) -> Response | data``."""

    def mark(fn: Callable) -> Callable:
        fn._route = (method, re.compile(f"^{pattern}$"), operation, auth)  # type: ignore[attr-defined]
        return fn

    return mark


class RestEndpoint(Endpoint):
    kind = "rest"
    protocol = "REST/JSON"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        routes = []
        for klass in reversed(cls.__mro__):
            for value in vars(klass).values():
                spec = getattr(value, "_route", None)
                if spec is not None:
                    routes.append((spec, value))
        cls._routes = routes

    _routes: list = []

    def authenticate(self, req: Request) -> None:
        """Raise HttpError(401) unless the request is authorised. Default: open."""

    def identify(self, req: Request) -> Call:
        allowed = []
        for (method, regex, operation, auth), fn in self._routes:
            m = regex.match(req.path)
            if not m:
                continue
            allowed.append(method)
            if method != req.method and not (method == "GET" and req.method == "HEAD"):
                continue

            params = m.groupdict()

            def run(fn: Callable = fn, auth: bool = auth, params: dict = params) -> Response:
                if auth:
                    self.authenticate(req)
                result = fn(self, req, **params)
                return result if isinstance(result, Response) else ok(result)

            return Call(operation, req.recorded_body(), run)
        if allowed:
            raise HttpError(405, "METHOD_NOT_ALLOWED",
                            _("method {method} not allowed on {path}", method=req.method,
                              path=req.path), headers={"Allow": ", ".join(sorted(set(allowed)))})
        raise HttpError(404, "NOT_FOUND", _("no such operation: {method} {path}",
                                            method=req.method, path=req.path))


def require(body: dict[str, Any], *names: str) -> None:
    missing = [n for n in names if body.get(n) in (None, "")]
    if missing:
        raise HttpError(400, "MISSING_FIELD", _("missing required field(s): {names}",
                                                 names=", ".join(missing)))


class AppKeyAuth:
    """Server side of the app-key HMAC scheme (see ``sandbox.signing``)."""

    def __init__(self, app_key: str, app_secret: str):
        self.app_key = app_key
        self.app_secret = app_secret
        self._nonces: dict[str, float] = {}
        self._lock = threading.Lock()

    def check(self, req: Request) -> None:
        key = req.header("X-App-Key")
        ts = req.header("X-Timestamp")
        nonce = req.header("X-Nonce")
        sig = req.header("X-Signature")
        if not (key and ts and nonce and sig):
            raise HttpError(401, "MISSING_SIGNATURE",
                            _("X-App-Key, X-Timestamp, X-Nonce and X-Signature are required"))
        if key != self.app_key:
            raise HttpError(401, "UNKNOWN_APP_KEY", _("unknown app key"))
        try:
            stamp = int(ts)
        except ValueError:
            raise HttpError(401, "BAD_TIMESTAMP", _("X-Timestamp must be integer seconds")) from None
        now = time.time()
        if abs(now - stamp) > APPKEY_MAX_SKEW_S:
            raise HttpError(401, "STALE_TIMESTAMP",
                            _("timestamp is more than {n} seconds away from server time",
                              n=int(APPKEY_MAX_SKEW_S)))
        if not _NONCE_RE.match(nonce):
            raise HttpError(401, "BAD_NONCE", _("X-Nonce must be 8 to 64 characters [A-Za-z0-9_-]"))
        expected = appkey_sign(self.app_secret, key, ts, nonce, req.method, req.target, req.body)
        if not hmac.compare_digest(expected, sig.strip().lower()):
            raise HttpError(401, "INVALID_SIGNATURE", _("signature does not match"))
        with self._lock:
            for old in [n for n, t in self._nonces.items() if now - t > NONCE_TTL_S]:
                del self._nonces[old]
            if nonce in self._nonces:
                raise HttpError(401, "REPLAYED_NONCE", _("nonce already used"))
            self._nonces[nonce] = now
